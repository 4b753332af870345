"""Dead-code elimination: drop nodes none of whose results reach a graph output, and unused constants.

Graph inputs stay (they are the signature) even when unused.
"""
from __future__ import annotations

from ..ir.graph import Graph
from .base import Pass, PassContext, map_regions

__all__ = ["dce", "DeadCodeElimination"]


def dce(graph: Graph) -> Graph:
    """A copy of ``graph`` without dead nodes and constants (``graph`` itself if nothing is dead).

    Control-flow regions are cleaned too (their signatures stay)."""
    graph = map_regions(graph, dce)
    live = set(graph.outputs)
    keep = []
    for n in reversed(graph.nodes):
        if any(o in live for o in n.outputs):
            keep.append(n)
            live.update(i for i in n.inputs if i)
    dead_consts = [c for c in graph.constants if c not in live]
    if len(keep) == len(graph.nodes) and not dead_consts:
        return graph
    g = graph.copy()
    g.nodes = keep[::-1]
    kept_values = set(g.inputs) | {o for n in g.nodes for o in n.outputs} | (set(g.constants) - set(dead_consts))
    for c in dead_consts:
        del g.constants[c]
    g.types = {k: t for k, t in g.types.items() if k in kept_values}
    return g


class DeadCodeElimination(Pass):
    name = "dce"

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        return dce(graph)
