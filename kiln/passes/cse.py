"""Common-subexpression elimination.

Two nodes with the same op, the same operands and the same attributes compute the same values;
the later one is dropped and its results replaced by the earlier one's. Operands of ops with the
``commutative`` trait match in either order. Ops with the ``random`` trait are never merged.
Identical constants (same dtype, shape and bytes, up to ``cse.max_constant_elements`` elements)
are merged too. A node whose result is a graph output keeps its name: it is not merged away.
"""
from __future__ import annotations

from ..ir.graph import Graph
from ..ir.registry import get as get_op
from .base import Pass, PassContext, map_regions

__all__ = ["cse", "CommonSubexpressions"]

DEFAULT_MAX_CONSTANT_ELEMENTS = 1 << 12


def _freeze(v):
    if isinstance(v, Graph):  # a region: by its text, and its constants by identity
        return ("graph", str(v), tuple((k, id(a)) for k, a in v.constants.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    try:
        hash(v)
    except TypeError:
        return ("id", id(v))  # never equal to anything but itself
    return (type(v).__name__, v)


def cse(graph: Graph, max_constant_elements: int = DEFAULT_MAX_CONSTANT_ELEMENTS) -> Graph:
    """A copy of ``graph`` with common subexpressions merged (``graph`` itself if there are none);
    regions are processed on their own."""
    graph = map_regions(graph, lambda r: cse(r, max_constant_elements))
    outputs = set(graph.outputs)
    subst: dict = {}

    # identical constants
    seen_consts: dict = {}
    for c, arr in graph.constants.items():
        if arr.size > max_constant_elements or c in outputs:
            continue
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key in seen_consts:
            subst[c] = seen_consts[key]
        else:
            seen_consts[key] = c

    seen: dict = {}
    nodes = []
    for n in graph.nodes:
        ins = tuple(subst.get(i, i) for i in n.inputs)
        if ins != n.inputs:
            n = n.with_(inputs=ins)
        try:
            opdef = get_op(n.op)
            traits = opdef.traits
        except KeyError:
            traits = frozenset({"random"})  # unknown op: assume nothing
        if "random" in traits:
            nodes.append(n)
            continue
        key_ins = ins
        if "commutative" in traits and len(ins) == 2:
            key_ins = tuple(sorted(ins))
        key = (n.op, key_ins, _freeze(dict(n.attrs)))
        prev = seen.get(key)
        if (prev is not None and not outputs.intersection(n.outputs)
                and all(graph.types[a] == graph.types[b] for a, b in zip(n.outputs, prev.outputs))):
            for a, b in zip(n.outputs, prev.outputs):
                subst[a] = b
            continue
        if prev is None:
            seen[key] = n
        nodes.append(n)
    if not subst:
        return graph
    g = graph.copy()
    g.nodes = nodes
    for v in subst:
        g.types.pop(v, None)
        g.constants.pop(v, None)
    return g


class CommonSubexpressions(Pass):
    name = "cse"

    def __init__(self, max_constant_elements: int | None = None):
        self.max_constant_elements = max_constant_elements

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        limit = self.option(ctx, "max_constant_elements", self.max_constant_elements,
                            DEFAULT_MAX_CONSTANT_ELEMENTS)
        return cse(graph, limit)
