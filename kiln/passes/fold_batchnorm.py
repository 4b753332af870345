"""Batch-norm folding: per-output-channel affine ops on constants fold into the producer's weights.

An inference batch norm reaches the graph as elementwise ops on constants (the ONNX importer
decomposes it; :mod:`.fold_constants` leaves ``conv -> sub(mean) -> mul(1/std) -> mul(scale) ->
add(shift)``). Each of those is ``y = s * v + t`` per output channel, and so is a chain of them,
which folds into the producer::

    conv(x, W, b) * s + t            -> conv(x, W * s, b * s + t)       (s along W's output axis)
    conv_transpose(x, W, b) * s + t  -> conv_transpose(x, W * s, b * s + t)
    matmul(x, W) * s                 -> matmul(x, W * s)                  (W constant [K, N], s [N])
    (matmul(x, W) + t) * s           -> matmul(x, W * s) + t * s

The folded ops are ``mul``/``div`` by a constant and ``add``/``sub`` of a constant (either operand
order, except a constant divided by the value), where the constant broadcasts only along the
output-channel axis (axis 1 of a conv's ``[N, M, *spatial]`` result, the last axis of a matmul's)
and does not change the value's type. Every value folded away must have that one user and not be a
graph output. A matmul keeps a trailing ``add`` (fusion takes it as an epilogue): its chain is
rewritten only when that saves nodes. Conv biases are created when a shift needs them.

The folded weights are computed in float64 and cast back to the weight dtype; a fold whose result
would not be finite in that dtype (or whose constant is not finite, or divides by zero) is not
done. Integer dtypes are left alone, as are non-constant weights and biases.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import dtypes
from ..ir.graph import Graph, Node
from ..ir.types import TensorType
from .base import Pass, PassContext, map_regions

__all__ = ["fold_batchnorm", "FoldBatchNorm"]

_AFFINE = ("mul", "div", "add", "sub")
_PRODUCERS = ("conv", "conv_transpose", "matmul")


@dataclass
class _Chain:
    """A producer node and the affine ops folded into it so far: its value is ``s * P(x) + t``,
    with ``P`` the producer without its bias (``t`` starts as the bias)."""

    node: Node
    channels: int  # the size of the output-channel axis
    axis: int  # that axis, counted from the end of the result's shape
    dtype: np.dtype
    s: np.ndarray  # float64 [channels]
    t: np.ndarray | None  # float64 [channels], or None (no bias, no shift)
    absorbed: list = field(default_factory=list)  # the folded nodes, in order
    out: str = ""  # the value the chain computes now
    weight_max: np.ndarray | None = None  # per channel, max |W|: bounds the folded weights

    @property
    def scaled(self) -> bool:
        return bool(np.any(self.s != 1.0))


def fold_batchnorm(graph: Graph) -> Graph:
    """A copy of ``graph`` with per-channel affine constants folded into conv / conv_transpose /
    matmul weights (``graph`` itself when nothing folds); regions too."""
    return _fold(graph, _all_names(graph))


def _all_names(graph: Graph) -> set:
    names = set(graph.types)
    for r in graph.regions():
        names |= set(r.types)
    return names


def _fold(graph: Graph, taken: set) -> Graph:
    graph = map_regions(graph, lambda r: _fold(r, taken))
    uses: dict = {}
    for n in graph.nodes:
        for i in n.inputs:
            if i:
                uses[i] = uses.get(i, 0) + 1
    outputs = set(graph.outputs)
    open_chains: dict = {}  # value -> the chain computing it
    chains: list = []
    for n in graph.nodes:
        if n.op in _AFFINE and len(n.inputs) == 2:
            for v in n.inputs:
                ch = open_chains.get(v)
                if ch is None or uses.get(v) != 1 or v in outputs:
                    continue
                if _absorb(ch, n, v, graph):
                    del open_chains[v]
                    ch.out = n.outputs[0]
                    open_chains[ch.out] = ch
                break
            continue
        if n.op in _PRODUCERS:
            ch = _start(n, graph)
            if ch is not None:
                chains.append(ch)
                open_chains[ch.out] = ch
    done = [ch for ch in chains if ch.absorbed and _emitted_count(ch) < 1 + len(ch.absorbed)]
    if not done:
        return graph
    g = graph.copy()
    replace: dict = {}  # node -> the nodes standing in for it (dropped when empty)
    for ch in done:
        replace[ch.node] = _emit(ch, g, uses, outputs, taken)
        for m in ch.absorbed:
            replace[m] = []
    g.nodes = [m for n in graph.nodes for m in replace.get(n, [n])]
    for ch in done:  # the intermediate values folded away
        kept = {o for m in replace[ch.node] for o in m.outputs}
        for m in [ch.node, *ch.absorbed[:-1]]:
            if m.outputs[0] not in kept:
                del g.types[m.outputs[0]]
    return g.prune_constants()


# --- matching ------------------------------------------------------------------------------------

def _start(n: Node, graph: Graph) -> _Chain | None:
    """The chain of a producer node whose weights may fold, or None."""
    y = n.outputs[0]
    ty = graph.types[y]
    if not ty.dtype.is_float or len(n.outputs) != 1:
        return None
    w = n.inputs[1]
    wt = graph.types[w]
    if w not in graph.constants:
        return None
    if n.op == "matmul":
        if wt.rank != 2:
            return None
        m = wt.shape[1]
        return _Chain(n, m, 0, ty.dtype.np, np.ones(m), None, out=y)
    bias = n.inputs[2] if len(n.inputs) > 2 else ""
    if bias and bias not in graph.constants:
        return None
    m = wt.shape[0] if n.op == "conv" else wt.shape[1] * n.attrs["group"]
    t = np.asarray(graph.constants[bias], np.float64).reshape(m) if bias else None
    return _Chain(n, m, ty.rank - 2, ty.dtype.np, np.ones(m), t, out=y)


def _weight_max(ch: _Chain, graph: Graph) -> np.ndarray:
    """max |W| per output channel (computed once per chain, when it first folds a scale)."""
    if ch.weight_max is None:
        w = np.abs(np.asarray(graph.constants[ch.node.inputs[1]], np.float64))
        if ch.node.op == "conv":  # w [M, C/group, *kernel]
            per = w.reshape(ch.channels, -1)
        elif ch.node.op == "conv_transpose":  # w [C, M/group, *kernel]: channel g * M/group + j
            group = ch.node.attrs["group"]
            c, mg = w.shape[:2]
            per = np.moveaxis(w.reshape(group, c // group, mg, -1), 2, 1).reshape(ch.channels, -1)
        else:  # matmul: w [K, N]
            per = w.T
        ch.weight_max = per.max(axis=1) if per.size else np.zeros(ch.channels)
    return ch.weight_max


def _channel_vector(k: np.ndarray, tk: TensorType, ty: TensorType, ch: _Chain) -> np.ndarray | None:
    """The constant as a float64 vector over the output channels, or None when it varies along
    any other axis (or broadcasts the value to a bigger type)."""
    if tk.dtype != ty.dtype or tk.rank > ty.rank:
        return None
    at = tk.rank - ch.axis - 1  # the channel axis, in k's dims (may be < 0: k has no such dim)
    for i, d in enumerate(k.shape):
        if d != 1 and not (i == at and d == ch.channels):
            return None
    vec = np.broadcast_to(np.asarray(k, np.float64).reshape(-1), (ch.channels,))
    if not np.all(np.isfinite(vec)):
        return None
    return vec


def _absorb(ch: _Chain, n: Node, v: str, graph: Graph) -> bool:
    """Fold the affine node ``n`` (one operand ``v``, the chain's value) into the chain if it fits."""
    a, b = n.inputs
    k = b if a == v else a
    if k == v or k not in graph.constants:
        return False
    ty = graph.types[n.outputs[0]]
    if ty != graph.types[v]:
        return False
    vec = _channel_vector(graph.constants[k], graph.types[k], ty, ch)
    if vec is None:
        return False
    s, t = ch.s, ch.t
    if n.op == "mul":
        s, t = s * vec, None if t is None else t * vec
    elif n.op == "div":
        if k == a or np.any(vec == 0):  # k / v is not affine; v / 0 is not a scale
            return False
        s, t = s / vec, None if t is None else t / vec
    elif n.op == "add":
        t = vec.copy() if t is None else t + vec
    elif k == b:  # v - k
        t = -vec if t is None else t - vec
    else:  # k - v
        s, t = -s, vec.copy() if t is None else vec - t
    limit = _max_finite(ch.dtype)
    with np.errstate(all="ignore"):
        if not (np.all(_weight_max(ch, graph) * np.abs(s) <= limit) and (t is None or np.all(np.abs(t) <= limit))):
            return False
    ch.s, ch.t = s, t
    ch.absorbed.append(n)
    return True


def _max_finite(dt: np.dtype) -> float:
    import ml_dtypes

    try:
        return float(ml_dtypes.finfo(dt).max)
    except (ValueError, TypeError):  # pragma: no cover - every float kiln dtype has a finfo
        return float(np.finfo(dt).max)


# --- rewriting -----------------------------------------------------------------------------------

def _emitted_count(ch: _Chain) -> int:
    """How many nodes the chain becomes: the producer, and a matmul's shift as an add."""
    return 2 if ch.node.op == "matmul" and ch.t is not None else 1


def _fresh(hint: str, taken: set) -> str:
    name, k = hint, 0
    while name in taken:
        k += 1
        name = f"{hint}_{k}"
    taken.add(name)
    return name


def _emit(ch: _Chain, g: Graph, uses: dict, outputs: set, taken: set) -> list:
    """The nodes replacing the chain's producer (its folded nodes are dropped)."""
    n, last = ch.node, ch.absorbed[-1]
    y = last.outputs[0]
    w = n.inputs[1]
    dt = np.dtype(ch.dtype)
    if ch.scaled:
        w64 = np.asarray(g.constants[w], np.float64)
        if n.op == "conv":  # w [M, C/group, *kernel]
            w64 = w64 * ch.s.reshape((-1,) + (1,) * (w64.ndim - 1))
        elif n.op == "conv_transpose":  # w [C, M/group, *kernel]
            group = n.attrs["group"]
            c, mg = w64.shape[:2]
            scale = ch.s.reshape((group, 1, mg) + (1,) * (w64.ndim - 2))
            w64 = (w64.reshape((group, c // group) + w64.shape[1:]) * scale).reshape(w64.shape)
        else:  # matmul: w [K, N]
            w64 = w64 * ch.s[None, :]
        w = _put_const(g, w, w64.astype(dt), uses, outputs, taken, f"{w}_folded")
    if n.op == "matmul":
        if ch.t is None:
            return [n.with_(inputs=(n.inputs[0], w), outputs=(y,), name=_name(n, y))]
        t = _put_const(g, "", ch.t.astype(dt), uses, outputs, taken, f"{y}_shift")
        return [n.with_(inputs=(n.inputs[0], w)), Node("add", (n.outputs[0], t), (y,), {}, last.name)]
    bias = n.inputs[2] if len(n.inputs) > 2 else ""
    if ch.t is not None and (bias or np.any(ch.t != 0)):
        bias = _put_const(g, bias, ch.t.astype(dt), uses, outputs, taken,
                          f"{bias}_folded" if bias else f"{y}_bias")
    ins = (n.inputs[0], w, bias) if bias else (n.inputs[0], w)
    return [n.with_(inputs=ins, outputs=(y,), name=_name(n, y))]


def _put_const(g: Graph, name: str, arr: np.ndarray, uses: dict, outputs: set, taken: set, hint: str) -> str:
    """Store ``arr`` under ``name`` when the folded node was that constant's only user (its type
    stays), else under a fresh name made from ``hint``."""
    arr = np.array(arr, order="C")
    arr.flags.writeable = False
    if not (name and uses.get(name) == 1 and name not in outputs):
        name = _fresh(hint, taken)
        g.types[name] = TensorType(dtypes.of(arr), arr.shape)
    g.constants[name] = arr
    return name


def _name(n: Node, y: str) -> str:
    """The folded node's name: its own, unless that was just the name of its old result."""
    return y if n.name == n.outputs[0] else n.name


class FoldBatchNorm(Pass):
    name = "fold_batchnorm"

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        return fold_batchnorm(graph)
