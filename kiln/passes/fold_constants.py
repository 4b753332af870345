"""Constant folding: evaluate nodes whose operands are all constants with the op's own reference.

The result becomes a constant under the node's output name (so graph outputs keep their names),
and constants no longer used are dropped. Nodes are left alone when an op has the ``random``
trait, when a result type has symbolic dims, or when a result would have more than
``max_elements`` elements (option ``fold_constants.max_elements``; the default keeps weights-sized
tensors from being materialised by, say, a broadcast).
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from ..ir.registry import get as get_op
from .base import Pass, PassContext, map_regions

__all__ = ["fold_constants", "FoldConstants"]

DEFAULT_MAX_ELEMENTS = 1 << 16


def fold_constants(graph: Graph, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Graph:
    """A copy of ``graph`` with constant subexpressions evaluated (``graph`` itself if none);
    regions are folded on their own (a region's constants, not the operands passed in)."""
    graph = map_regions(graph, lambda r: fold_constants(r, max_elements))
    consts = dict(graph.constants)
    nodes = []
    folded = False
    for n in graph.nodes:
        if _foldable(graph, n, consts, max_elements):
            opdef = get_op(n.op)
            try:
                with np.errstate(all="ignore"):
                    res = opdef.reference(*[consts[i] if i else None for i in n.inputs], **n.attrs)
            except Exception:  # noqa: BLE001 - leave it to run time (and its error message)
                res = None
            if res is not None:
                results = list(res) if isinstance(res, (tuple, list)) else [res]
                arrays = [np.asarray(r) for r in results]
                if len(arrays) == len(n.outputs) and all(
                        a.dtype == graph.types[o].dtype.np and tuple(a.shape) == tuple(graph.types[o].shape)
                        for a, o in zip(arrays, n.outputs)):
                    for a, o in zip(arrays, n.outputs):
                        a = np.array(a, order="C")  # an owned copy: never a view of an operand
                        a.flags.writeable = False
                        consts[o] = a
                    folded = True
                    continue
        nodes.append(n)
    if not folded:
        return graph
    g = graph.copy()
    g.nodes = nodes
    g.constants = consts
    return g.prune_constants()


def _foldable(graph, n, consts, max_elements) -> bool:
    if not all(i in consts for i in n.inputs if i):
        return False
    try:
        opdef = get_op(n.op)
    except KeyError:
        return False
    if "random" in opdef.traits:
        return False
    for o in n.outputs:
        t = graph.types[o]
        if not t.is_static or int(np.prod(t.shape, dtype=np.int64)) > max_elements:
            return False
    return True


class FoldConstants(Pass):
    name = "fold_constants"

    def __init__(self, max_elements: int | None = None):
        self.max_elements = max_elements

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        limit = self.max_elements
        if limit is None:
            limit = ctx.option("fold_constants.max_elements", DEFAULT_MAX_ELEMENTS) if ctx else DEFAULT_MAX_ELEMENTS
        return fold_constants(graph, limit)
