"""Constant folding: evaluate nodes whose operands are all constants with the op's own reference.

The result becomes a constant under the node's output name (so graph outputs keep their names),
and constants no longer used are dropped. Nodes are left alone when an op has the ``random``
trait, or when a result would have more than ``max_elements`` elements (option
``fold_constants.max_elements``; the default keeps weights-sized tensors from being materialised
by, say, a broadcast).

A result whose type has run-time dims (``nonzero``, a ``*_dynamic`` op, ...) folds too: its size,
now known, replaces the dim's symbol in every type and ``dims`` attribute of the graph, so the
nodes downstream may fold in turn. Symbols that appear in the graph's input or output types are
part of its signature and are never bound this way.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import VerificationError
from ..ir import dims as _dims
from ..ir.builder import infer_node
from ..ir.graph import Graph
from ..ir.registry import get as get_op
from ..ir.types import TensorType
from ..ir.verify import verify
from .base import Pass, PassContext, map_regions

__all__ = ["fold_constants", "FoldConstants"]

DEFAULT_MAX_ELEMENTS = 1 << 16


def fold_constants(graph: Graph, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Graph:
    """A copy of ``graph`` with constant subexpressions evaluated (``graph`` itself if none);
    regions are folded on their own (a region's constants, not the operands passed in)."""
    graph = map_regions(graph, lambda r: fold_constants(r, max_elements))
    out, bound = _fold(graph, max_elements, bind=True)
    if bound:
        try:
            verify(out)
        except VerificationError:
            # a bound size proved a dim that the signature keeps symbolic: fold static results only
            out, _ = _fold(graph, max_elements, bind=False)
    return out


def _fold(graph: Graph, max_elements: int, bind: bool):
    consts = dict(graph.constants)
    types = dict(graph.types)
    protected = {s for v in (*graph.inputs, *graph.outputs) for d in graph.types[v].shape
                 for s in _dims.symbols(d)}
    if not bind:
        protected = {s for t in types.values() for d in t.shape for s in _dims.symbols(d)}
    env: dict = {}  # run-time symbol -> the size a folded result showed
    nodes = []
    folded = False
    for n in graph.nodes:
        if env:
            for o in n.outputs:
                types[o] = _subst_type(types[o], env)
        arrays = _evaluate(n, consts, types, protected, max_elements)
        if arrays is not None:
            for a, o in zip(arrays, n.outputs):
                for d, size in zip(types[o].shape, a.shape):
                    if not isinstance(d, int):
                        env[d] = int(size)
                types[o] = TensorType(types[o].dtype, a.shape)
                consts[o] = a
            folded = True
            continue
        nodes.append(n)
    if not folded:
        return graph, False
    g = graph.copy()
    g.constants = consts
    if env:
        nodes = [_subst_attrs(n, env) for n in nodes]
        _learn_proven_dims(nodes, types, env, protected)
        g.types = {k: _subst_type(t, env) for k, t in types.items()}
        nodes = [_subst_attrs(n, env) for n in nodes]
    else:
        g.types = types
    g.nodes = nodes
    return g.prune_constants(), bool(env)


def _evaluate(n, consts, types, protected, max_elements):
    """The node's results as constant arrays, or None when it does not fold."""
    if not all(i in consts for i in n.inputs if i):
        return None
    try:
        opdef = get_op(n.op)
    except KeyError:
        return None
    if "random" in opdef.traits:
        return None
    for o in n.outputs:
        t = types[o]
        static = [d for d in t.shape if isinstance(d, int)]
        if int(np.prod(static, dtype=np.int64)) > max_elements:
            return None
        for d in t.shape:  # a run-time dim folds only when it is a plain symbol we may bind
            if not isinstance(d, int) and (_dims.symbols(d) != {d} or d in protected):
                return None
    try:
        with np.errstate(all="ignore"):
            res = opdef.reference(*[consts[i] if i else None for i in n.inputs], **n.attrs)
    except Exception:  # noqa: BLE001 - leave it to run time (and its error message)
        return None
    results = list(res) if isinstance(res, (tuple, list)) else [res]
    if len(results) != len(n.outputs):
        return None
    arrays, bound = [], {}
    for r, o in zip(results, n.outputs):
        a = np.asarray(r)
        t = types[o]
        if a.dtype != t.dtype.np or a.ndim != t.rank or a.size > max_elements:
            return None
        for d, size in zip(t.shape, a.shape):
            if isinstance(d, int):
                if d != size:
                    return None
            elif bound.setdefault(d, size) != size:
                return None
        a = np.array(a, order="C")  # an owned copy: never a view of an operand
        a.flags.writeable = False
        arrays.append(a)
    return arrays


def _learn_proven_dims(nodes, types, env, protected):
    """Once sizes are bound, a run-time dim downstream may be proven (an ``if`` whose branches now
    agree, say): its symbol is bound too, so that recorded types keep matching inference."""
    for n in nodes:
        for o in n.outputs:
            types[o] = _subst_type(types[o], env)
        try:
            opdef = get_op(n.op)
            inferred = infer_node(opdef, [types[i] if i else None for i in n.inputs], dict(n.attrs), n.label)
        except (KeyError, ValueError, TypeError):
            continue
        for o, t in zip(n.outputs, inferred):
            rec = types[o]
            if rec.rank != t.rank:
                continue
            learned = {d: i for d, i in zip(rec.shape, t.shape)
                       if isinstance(i, int) and isinstance(d, str) and _dims.symbols(d) == {d}
                       and d not in protected and d not in env}
            if learned:
                env.update(learned)
                types[o] = _subst_type(rec, env)


_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _subst_dim(d, env):
    if isinstance(d, int) or not (_dims.symbols(d) & env.keys()):
        return d
    return _dims.canonical(_SYMBOL.sub(lambda m: str(env.get(m.group(0), m.group(0))), d))


def _subst_type(t: TensorType, env) -> TensorType:
    if all(isinstance(d, int) for d in t.shape):
        return t
    return TensorType(t.dtype, [_subst_dim(d, env) for d in t.shape])


def _subst_attrs(n, env):
    try:
        schema = get_op(n.op).attrs
    except KeyError:
        return n
    changed = {}
    for k, v in n.attrs.items():
        if k in schema and schema[k].kind == "dims" and v is not None:
            new = tuple(_subst_dim(d, env) for d in v)
            if new != v:
                changed[k] = new
    return n.with_(attrs={**n.attrs, **changed}) if changed else n


class FoldConstants(Pass):
    name = "fold_constants"

    def __init__(self, max_elements: int | None = None):
        self.max_elements = max_elements

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        limit = self.option(ctx, "max_elements", self.max_elements, DEFAULT_MAX_ELEMENTS)
        return fold_constants(graph, limit)
