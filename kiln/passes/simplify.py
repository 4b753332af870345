"""Algebraic simplification: local rewrites that read like algebra.

    x + 0 -> x        0 + x -> x        x - 0 -> x
    x * 1 -> x        1 * x -> x        x / 1 -> x
    x * 0 -> 0        (integers only: for floats NaN * 0 and inf * 0 are NaN)
    identity(x) -> x                     (kept where a graph output needs its own name)
    transpose(transpose(x, p), q) -> transpose(x, p∘q), or x when that is the identity
    transpose(x, identity perm) -> x
    transpose(x, p) that moves only dims of size 1 -> reshape (or x)
    reshape(reshape(x, s), t) -> reshape(x, t)
    reshape(x, shape of x) -> x          broadcast(x, shape of x) -> x
    cast(x, to=dtype of x) -> x
    neg(neg(x)) -> x                     not(not(x)) -> x        bitwise_not(bitwise_not(x)) -> x
    max(x, x), min(x, x), and(x, x), or(x, x), where(c, x, x) -> x
    slice keeping whole axes -> x        concat(x) -> x          reduce over no axes -> x

``x + 0 -> x`` is exact except for the sign of a zero (``-0.0 + 0.0`` is ``+0.0``), as in every
compiler that does it.

A rule that replaces a value by another applies only when their types are equal (``x + zeros``
that broadcasts ``x`` to a larger shape stays). Rewrites are applied in one forward sweep, each
node rewritten to a fixed point, so chains collapse. A graph output keeps its name: where its
value becomes another value, an ``identity`` carries the name, and where that other value is an
intermediate result its producer is renamed instead. Dead nodes are removed at the end.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..ir.graph import Graph, Node
from .base import Pass, PassContext, map_regions
from .dce import dce

__all__ = ["simplify", "Simplify", "RULES"]


class _State:
    """What rules can look at: constants (old and new), types, the producers emitted so far."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.types = graph.types
        self.constants = dict(graph.constants)
        self.producer: dict = {}

    def const(self, v):
        return self.constants.get(v) if v else None

    def is_all(self, v, value) -> bool:
        c = self.const(v)
        return c is not None and c.size > 0 and bool(np.all(c == value))


# A rule takes (node, state) and returns None (no change), ("value", v) (the node's single result
# equals value v), ("node", new_node) (same outputs, simpler) or ("const", array).
Rule = Callable[[Node, _State], "tuple | None"]


def _same_type(s: _State, a: str, b: str) -> bool:
    return s.types[a] == s.types[b]


def _neutral(n: Node, s: _State):
    y = n.outputs[0]
    a, b = n.inputs
    if n.op == "add":
        for x, c in ((a, b), (b, a)):
            if s.is_all(c, 0) and _same_type(s, x, y):
                return ("value", x)
    elif n.op == "sub":
        if s.is_all(b, 0) and _same_type(s, a, y):
            return ("value", a)
    elif n.op == "mul":
        for x, c in ((a, b), (b, a)):
            if s.is_all(c, 1) and _same_type(s, x, y):
                return ("value", x)
        t = s.types[y]
        if t.dtype.is_int and t.is_static and (s.is_all(a, 0) or s.is_all(b, 0)):
            return ("const", np.zeros(t.shape, t.dtype.np))
    elif n.op == "div":
        if s.is_all(b, 1) and _same_type(s, a, y):
            return ("value", a)
    return None


def _identity(n: Node, s: _State):
    return ("value", n.inputs[0])


def _transpose(n: Node, s: _State):
    x = n.inputs[0]
    perm = tuple(n.attrs["perm"])
    inner = s.producer.get(x)
    if inner is not None and inner.op == "transpose":
        p1 = tuple(inner.attrs["perm"])
        q = tuple(p1[j] for j in perm)
        x = inner.inputs[0]
        if q != tuple(range(len(q))):
            return ("node", n.with_(inputs=(x,), attrs={**n.attrs, "perm": q}))
        perm = q
    y = n.outputs[0]
    if _same_type(s, x, y) and (perm == tuple(range(len(perm))) or _moves_only_unit_dims(s.types[x].shape, perm)):
        return ("value", x)
    if _moves_only_unit_dims(s.types[x].shape, perm) and _reshapeable(s.types[y].shape):
        return ("node", Node("reshape", (x,), (y,), {"shape": s.types[y].shape}, n.name))
    return None


def _moves_only_unit_dims(shape, perm) -> bool:
    """Whether the dims other than 1 keep their order: then the transpose is a reshape."""
    kept = [p for p in perm if shape[p] != 1]
    return kept == sorted(kept)


def _reshapeable(shape) -> bool:
    return sum(1 for d in shape if not isinstance(d, int)) <= 1  # reshape binds one run-time dim


def _reshape(n: Node, s: _State):
    x = n.inputs[0]
    y = n.outputs[0]
    inner = s.producer.get(x)
    if inner is not None and inner.op == "reshape":
        x = inner.inputs[0]
        if not _same_type(s, x, y):
            return ("node", n.with_(inputs=(x,)))
    if _same_type(s, x, y):
        return ("value", x)
    return None


def _same_value_if_same_type(n: Node, s: _State):
    x, y = n.inputs[0], n.outputs[0]
    return ("value", x) if _same_type(s, x, y) else None


def _involution(n: Node, s: _State):
    """neg(neg(x)) -> x, not(not(x)) -> x, bitwise_not(bitwise_not(x)) -> x."""
    inner = s.producer.get(n.inputs[0])
    if inner is not None and inner.op == n.op and _same_type(s, inner.inputs[0], n.outputs[0]):
        return ("value", inner.inputs[0])
    return None


def _idempotent(n: Node, s: _State):
    """max(x, x), min(x, x), and(x, x), or(x, x) -> x."""
    a, b = n.inputs
    if a == b and _same_type(s, a, n.outputs[0]):
        return ("value", a)
    return None


def _where_same(n: Node, s: _State):
    c, a, b = n.inputs
    if a == b and _same_type(s, a, n.outputs[0]):
        return ("value", a)
    return None


def _whole_slice(n: Node, s: _State):
    """A slice that keeps every element of every sliced axis."""
    x, y = n.inputs[0], n.outputs[0]
    if not _same_type(s, x, y):
        return None
    shape = s.types[x].shape
    for st, e, a, step in zip(n.attrs["starts"], n.attrs["ends"], n.attrs["axes"], n.attrs["steps"]):
        d = shape[a % len(shape)]
        if step != 1:
            return None
        if isinstance(d, int):
            if not (st == 0 or st <= -d) or e < d:
                return None
        elif st != 0 or e < 2**62:
            return None
    return ("value", x)


def _single_concat(n: Node, s: _State):
    if len(n.inputs) == 1 and _same_type(s, n.inputs[0], n.outputs[0]):
        return ("value", n.inputs[0])
    return None


#: op name -> rules tried on its nodes, in order
RULES: dict = {
    "add": [_neutral], "sub": [_neutral], "mul": [_neutral], "div": [_neutral],
    "identity": [_identity],
    "transpose": [_transpose],
    "reshape": [_reshape],
    "broadcast": [_same_value_if_same_type],  # broadcast to its own shape
    "cast": [_same_value_if_same_type],  # cast to its own dtype
    "neg": [_involution], "not": [_involution], "bitwise_not": [_involution],
    "max": [_idempotent], "min": [_idempotent], "and": [_idempotent], "or": [_idempotent],
    "where": [_where_same],
    "slice": [_whole_slice],
    "concat": [_single_concat],
}


def _trivial_reduce(n: Node, s: _State):
    """A reduction over no axes, or over axes of size 1 kept: the identity.

    Not for an integer mean, whose reference goes through float64 (inexact for huge ints).
    """
    if n.op == "reduce_mean" and not s.types[n.inputs[0]].dtype.is_float:
        return None
    return _same_value_if_same_type(n, s)


for _r in ("reduce_sum", "reduce_prod", "reduce_max", "reduce_min", "reduce_mean"):
    RULES[_r] = [_trivial_reduce]


def _rewrite(n: Node, s: _State, max_steps: int = 8):
    """Apply rules to ``n`` until none fires; returns ("node", n) or a ("value"/"const", ...) result."""
    for _ in range(max_steps):
        if len(n.outputs) != 1:
            return ("node", n)
        r = None
        for rule in RULES.get(n.op, ()):
            r = rule(n, s)
            if r is not None:
                break
        if r is None:
            return ("node", n)
        if r[0] != "node":
            return r
        n = r[1]
    return ("node", n)


def simplify(graph: Graph) -> Graph:
    """A simplified copy of ``graph`` (``graph`` itself if nothing applies); regions too."""
    graph = map_regions(graph, simplify)
    s = _State(graph)
    outputs = set(graph.outputs)
    subst: dict = {}
    nodes: list = []
    changed = False
    for n in graph.nodes:
        ins = tuple(subst.get(i, i) for i in n.inputs)
        orig = n.with_(inputs=ins) if ins != n.inputs else n
        kind, what = _rewrite(orig, s)
        y = orig.outputs[0]
        if kind == "value":
            if y in outputs:
                # the graph output keeps its name: an identity carries it
                new = Node("identity", (what,), (y,), {}, orig.name)
                if new != n:
                    changed = True
                nodes.append(new)
                s.producer[y] = new
                # later users read the value itself, so that rules see through the identity
            else:
                changed = True
            subst[y] = what
            continue
        if kind == "const":
            s.constants[y] = _frozen(what)
            changed = True
            continue
        if what != n:
            changed = True
        nodes.append(what)
        for o in what.outputs:
            s.producer[o] = what
    g = graph.copy()
    g.nodes = nodes
    g.constants = s.constants
    g, renamed = _fold_output_identities(g)
    if not changed and not renamed:
        out = dce(graph)
        return out
    for v in subst:
        if v not in outputs:
            g.types.pop(v, None)
    return dce(g).prune_constants()


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, order="C")
    a.flags.writeable = False
    return a


def _fold_output_identities(g: Graph):
    """``y = identity(x)`` with y a graph output and x an intermediate result: rename x to y."""
    renamed = False
    while True:
        outputs = set(g.outputs)
        defined_by_node = {o: n for n in g.nodes for o in n.outputs}
        target = None
        for n in g.nodes:
            if n.op != "identity" or n.outputs[0] not in outputs:
                continue
            x, y = n.inputs[0], n.outputs[0]
            if x in outputs or x not in defined_by_node or x in g.constants or x in g.inputs:
                continue
            if g.types[x] != g.types[y]:
                continue
            target = (n, x, y)
            break
        if target is None:
            return g, renamed
        n, x, y = target
        renamed = True
        nodes = []
        for m in g.nodes:
            if m is n:
                continue
            if x in m.outputs:
                m = m.with_(outputs=tuple(y if o == x else o for o in m.outputs),
                            name=y if m.name == x else m.name)
            if x in m.inputs:
                m = m.with_(inputs=tuple(y if i == x else i for i in m.inputs))
            nodes.append(m)
        g = g.copy()
        g.nodes = nodes
        del g.types[x]


class Simplify(Pass):
    name = "simplify"

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        return simplify(graph)
