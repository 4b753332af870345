"""Reductions, arg-reductions, cumulative scans, sort and top_k.

``cummax``/``cummin`` have no core op: they are ``log2(n)`` steps of max with a shifted copy
(Hillis-Steele). ``sort`` with one key is a stable ascending ``topk`` over the whole axis; further
operands (``argsort``'s iota) follow the key through ``gather_elements``.
"""
from __future__ import annotations

import numpy as np

from .registry import converter


def _axes(cx):
    return [int(a) for a in cx.params["axes"]]


def _reduce(core):
    def conv(cx, x):
        axes = _axes(cx)
        return cx.op(core, x, axes=axes, keepdims=False) if axes else x

    return conv


for _name in ("sum", "max", "min", "prod"):
    converter(f"reduce_{_name}")(_reduce(f"reduce_{_name}"))


@converter("reduce_and", "reduce_or", "reduce_xor")
def reduce_logic(cx, x):
    axes = _axes(cx)
    if not axes:
        return x
    if cx.dtype(x).kind != "bool":
        raise cx.error(f"{cx.name} of {cx.dtype(x)} (bitwise) is not supported; only of bools")
    i = cx.cast(x, "i32")
    if cx.name == "reduce_xor":
        s = cx.op("reduce_sum", i, axes=axes, keepdims=False)
        return cx.cast(cx.op("mod", s, cx.const(2, "i32")), "bool")
    core = "reduce_min" if cx.name == "reduce_and" else "reduce_max"
    return cx.cast(cx.op(core, i, axes=axes, keepdims=False), "bool")


@converter("argmax", "argmin")
def arg_reduce(cx, x):
    (axis,) = _axes(cx)
    if cx.dtype(x).kind == "bool":
        x = cx.cast(x, "i32")
    r = cx.op(cx.name, x, axis=axis, keepdims=False, select_last_index=False)
    return cx.cast(r, cx.out_dtype())


@converter("cumsum", "cumprod")
def cumulative(cx, x):
    return cx.op(cx.name, x, axis=int(cx.params["axis"]), exclusive=False, reverse=bool(cx.params["reverse"]))


@converter("cummax", "cummin")
def cum_extreme(cx, x):
    axis = int(cx.params["axis"]) % cx.rank(x)
    n = cx.static_dim(cx.shape(x)[axis], f"the length of the {cx.name} axis")
    reverse, core = bool(cx.params["reverse"]), "max" if cx.name == "cummax" else "min"
    dt = cx.dtype(x)
    if dt.kind == "float":
        fill = -np.inf if core == "max" else np.inf
    elif dt.kind == "bool":
        fill = core != "max"
    else:
        info = np.iinfo(dt.np)
        fill = info.min if core == "max" else info.max
    if dt.kind == "bool":
        core = "or" if core == "max" else "and"
    value = cx.scalar_like(fill, x)
    r, shift, rank = x, 1, cx.rank(x)
    while shift < n:  # r[i] = extreme of the 2*shift elements ending at i
        pads = [0] * (2 * rank)
        if reverse:
            part = cx.op("slice", r, starts=[shift], ends=[n], axes=[axis], steps=[1])
            pads[rank + axis] = shift
        else:
            part = cx.op("slice", r, starts=[0], ends=[n - shift], axes=[axis], steps=[1])
            pads[axis] = shift
        r = cx.op(core, r, cx.op("pad", part, value, pads=pads))
        shift *= 2
    return r


@converter("sort")
def sort(cx, *operands):
    if int(cx.params.get("num_keys", 1)) != 1:
        raise cx.error(f"sort with {cx.params['num_keys']} keys (lexicographic) is not supported; only one")
    axis = int(cx.params["dimension"]) % cx.rank(operands[0])
    key = operands[0]
    n = cx.static_dim(cx.shape(key)[axis], "the length of the sorted axis")
    kdt = cx.dtype(key)
    k = cx.cast(key, "i32") if kdt.kind == "bool" else key
    vals, idx = cx.op("topk", k, k=n, axis=axis, largest=False, sorted=True)  # stable: ties keep their order
    outs = [cx.cast(vals, kdt)]
    for other in operands[1:]:
        outs.append(cx.op("gather_elements", other, idx, axis=axis))
    return outs


@converter("top_k")
def top_k(cx, x, *dyn):
    if dyn:
        raise cx.error("top_k with k computed at run time is not supported")
    axis = int(cx.params.get("axis", -1))
    vals, idx = cx.op("topk", x, k=int(cx.params["k"]), axis=axis, largest=True, sorted=True)
    return [vals, cx.cast(idx, cx.out_dtype(1))]
