"""Contractions and windowed primitives: dot_general, conv_general_dilated, reduce_window*.

``dot_general`` becomes a ``matmul``: operands transposed to ``[batch, free, contract]`` /
``[batch, contract, free]`` and reshaped to one free and one contracting dim where there are
several. ``conv_general_dilated`` transposes to NC+spatial / OI+spatial, maps ``lhs_dilation``
(a transposed convolution) to ``conv_transpose`` where the padding allows, and otherwise dilates the
input. ``reduce_window`` over any axes becomes ``max_pool`` / ``avg_pool`` over the windowed axes
with the others folded into N and C.
"""
from __future__ import annotations

import numpy as np

from ...ir import dims as _dims
from .registry import converter
from .shape import dilate, reverse


def _transpose(cx, x, perm):
    perm = [int(p) for p in perm]
    return x if perm == list(range(len(perm))) else cx.op("transpose", x, perm=perm)


def _reshape(cx, x, shape):
    shape = list(shape)
    return x if list(cx.shape(x)) == shape else cx.op("reshape", x, shape=shape)


# --- dot_general ----------------------------------------------------------------------------------

@converter("dot_general")
def dot_general(cx, a, b):
    (lc, rc), (lb, rb) = cx.params["dimension_numbers"]
    lc, rc, lb, rb = ([int(i) for i in v] for v in (lc, rc, lb, rb))
    dt = cx.out_dtype()
    a, b = cx.cast(a, dt), cx.cast(b, dt)
    sa, sb = cx.shape(a), cx.shape(b)
    lf = [i for i in range(len(sa)) if i not in lc and i not in lb]
    rf = [i for i in range(len(sb)) if i not in rc and i not in rb]
    batch = [sa[i] for i in lb]
    lfree, rfree = [sa[i] for i in lf], [sb[i] for i in rf]
    k = _dims.prod(sa[i] for i in lc)
    a = _transpose(cx, a, lb + lf + lc)
    b = _transpose(cx, b, rb + rc + rf)
    n = _dims.prod(rfree)
    if not lb:  # [..free.., K] @ [K, N]: matmul broadcasts the lhs' leading dims
        a = _reshape(cx, a, lfree + [k])
        b = _reshape(cx, b, [k, n])
        y = cx.op("matmul", a, b)
        return _reshape(cx, y, lfree + rfree)
    m = _dims.prod(lfree)
    a = _reshape(cx, a, batch + [m, k])
    b = _reshape(cx, b, batch + [k, n])
    return _reshape(cx, cx.op("matmul", a, b), batch + lfree + rfree)


# --- conv_general_dilated ----------------------------------------------------------------------------

@converter("conv_general_dilated")
def conv_general_dilated(cx, x, w):
    p = cx.params
    if int(p.get("batch_group_count", 1)) != 1:
        raise cx.error("batch_group_count > 1 (a weight-gradient convolution) is not supported")
    dn = p["dimension_numbers"]
    ns = cx.rank(x) - 2
    lhs_spec, rhs_spec, out_spec = (dn.lhs_spec, dn.rhs_spec, dn.out_spec) if dn is not None else (
        [tuple(range(ns + 2))] * 3)
    dt = cx.out_dtype()
    x = cx.cast(_transpose(cx, x, lhs_spec), dt)  # [N, C, *spatial]
    w = cx.cast(_transpose(cx, w, rhs_spec), dt)  # [M, C/group, *kernel]
    strides = [int(s) for s in p["window_strides"]]
    pads = [(int(lo), int(hi)) for lo, hi in p["padding"]]
    lhs_dil = [int(d) for d in (p.get("lhs_dilation") or [1] * ns)]
    rhs_dil = [int(d) for d in (p.get("rhs_dilation") or [1] * ns)]
    group = int(p.get("feature_group_count", 1))
    kernel = [cx.static_dim(k, "a kernel size") for k in cx.shape(w)[2:]]
    y = None
    if any(d > 1 for d in lhs_dil):
        y = _as_conv_transpose(cx, x, w, strides, pads, lhs_dil, rhs_dil, group, kernel)
        if y is None:
            x = dilate(cx, x, [1, 1] + lhs_dil, cx.scalar_like(0, x))
    if y is None:
        if any(lo < 0 or hi < 0 for lo, hi in pads):  # negative padding crops the input first
            crop = [0, 0] + [min(lo, 0) for lo, _ in pads] + [0, 0] + [min(hi, 0) for _, hi in pads]
            x = cx.op("pad", x, pads=crop)
            pads = [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
        y = cx.op("conv", x, w, strides=strides, dilations=rhs_dil, group=group,
                  pads=[lo for lo, _ in pads] + [hi for _, hi in pads])
    inv = [int(i) for i in np.argsort(out_spec)] if dn is not None else list(range(ns + 2))
    return _transpose(cx, y, inv)


def _as_conv_transpose(cx, x, w, strides, pads, lhs_dil, rhs_dil, group, kernel):
    """A convolution of the dilated input with stride 1 is conv_transpose with the flipped, swapped
    kernel (when its padding is not negative at the start); None where it is not."""
    if any(s != 1 for s in strides):
        return None
    full = [d * (k - 1) for d, k in zip(rhs_dil, kernel)]
    begin = [f - lo for f, (lo, _) in zip(full, pads)]
    end = [f - hi for f, (_, hi) in zip(full, pads)]
    if any(b < 0 for b in begin):
        return None
    m, cg = cx.shape(w)[:2]
    ns = len(kernel)
    # [M, C/g, *k] -> [g, M/g, C/g, *k] -> [g, C/g, M/g, *k] -> [C, M/g, *k], spatially flipped
    wg = cx.op("reshape", w, shape=[group, _dims.div_exact(m, group), cg] + kernel)
    wg = cx.op("transpose", wg, perm=[0, 2, 1] + list(range(3, 3 + ns)))
    wt = cx.op("reshape", wg, shape=[_dims.mul(cg, group), _dims.div_exact(m, group)] + kernel)
    wt = reverse(cx, wt, list(range(2, 2 + ns)))
    return cx.op("conv_transpose", x, wt, strides=lhs_dil, dilations=rhs_dil, group=group,
                 pads=begin + [max(e, 0) for e in end], output_padding=[max(-e, 0) for e in end])


# --- reduce_window --------------------------------------------------------------------------------

def _window_params(cx, rank):
    p = cx.params
    wd = [int(d) for d in p["window_dimensions"]]
    ws = [int(s) for s in p["window_strides"]]
    pad = [(int(lo), int(hi)) for lo, hi in p["padding"]]
    bd = [int(d) for d in (p.get("base_dilation") or [1] * rank)]
    wdil = [int(d) for d in (p.get("window_dilation") or [1] * rank)]
    return wd, ws, pad, bd, wdil


def _identity(kind, dt):
    if kind == "sum":
        return 0
    if dt.kind == "float":
        return -np.inf if kind == "max" else np.inf
    info = np.iinfo(dt.np)
    return info.min if kind == "max" else info.max


def window_reduce(cx, x, kind):
    """reduce_window with ``kind`` in sum / max / min and the identity as its initial value."""
    r = cx.rank(x)
    wd, ws, pad, bd, wdil = _window_params(cx, r)
    dt = cx.dtype(x)
    if kind == "sum" and dt.kind != "float":
        raise cx.error(f"reduce_window_sum of {dt} is not supported (only of floats)")
    if dt.kind not in ("float", "int", "uint"):
        raise cx.error(f"reduce_window of {dt} is not supported")
    if any(b > 1 for b in bd):
        x = dilate(cx, x, bd, cx.scalar_like(_identity(kind, dt), x))
    if any(lo < 0 or hi < 0 for lo, hi in pad):
        x = cx.op("pad", x, pads=[min(lo, 0) for lo, _ in pad] + [min(hi, 0) for _, hi in pad])
        pad = [(max(lo, 0), max(hi, 0)) for lo, hi in pad]
    sp = [a for a in range(r) if (wd[a], ws[a], pad[a], wdil[a]) != (1, 1, (0, 0), 1)]
    if not sp:
        return x
    keep = [a for a in range(r) if a not in sp]
    shape = cx.shape(x)
    kept = [shape[a] for a in keep]
    xt = _transpose(cx, x, keep + sp)
    if len(keep) <= 2:
        lead = [1] * (2 - len(keep)) + kept
    else:
        lead = [_dims.prod(kept[:-1]), kept[-1]]
    xt = _reshape(cx, xt, lead + [shape[a] for a in sp])
    attrs = dict(kernel=[wd[a] for a in sp], strides=[ws[a] for a in sp], dilations=[wdil[a] for a in sp],
                 pads=[pad[a][0] for a in sp] + [pad[a][1] for a in sp])
    if kind == "max":
        y = cx.op("max_pool", xt, **attrs)[0]
    elif kind == "min":
        y = cx.op("neg", cx.op("max_pool", cx.op("neg", xt), **attrs)[0]) if dt.kind == "float" else \
            cx.op("bitwise_not", cx.op("max_pool", cx.op("bitwise_not", xt), **attrs)[0])
    else:  # every tap counts (padding included): the mean times the window size is the sum
        y = cx.op("avg_pool", xt, count_include_pad=True, **attrs)
        y = cx.op("mul", y, cx.scalar_like(int(np.prod(attrs["kernel"])), y))
    out = cx.shape(y)[2:]
    y = _reshape(cx, y, kept + list(out))
    return _transpose(cx, y, [int(i) for i in np.argsort(keep + sp)])


@converter("reduce_window_sum", "reduce_window_max", "reduce_window_min")
def reduce_window_monoid(cx, x):
    return window_reduce(cx, x, cx.name.rsplit("_", 1)[1])


@converter("reduce_window")
def reduce_window(cx, *operands):
    """The generic form: one operand, a computation of one add / max / min, a constant initial value."""
    if len(operands) != 2:
        raise cx.error(f"reduce_window over {len(operands) // 2} operands at once is not supported")
    x, init = operands
    jaxpr = cx.params["jaxpr"]
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    names = [e.primitive.name for e in jaxpr.eqns]
    kinds = {"add": "sum", "max": "max", "min": "min"}
    if len(names) != 1 or names[0] not in kinds or list(jaxpr.eqns[0].invars) != list(jaxpr.invars) or \
            list(jaxpr.eqns[0].outvars) != list(jaxpr.outvars):
        raise cx.error(f"reduce_window with the computation {names} is not supported (only one add, max or min)")
    kind = kinds[names[0]]
    init_v = cx.const_of(init)
    if init_v is None:
        raise cx.error("reduce_window with an initial value computed at run time is not supported")
    dt = cx.dtype(x)
    if float(init_v) == _identity(kind, dt):
        return window_reduce(cx, x, kind)
    if kind == "sum":  # padding holds the initial value too: only its identity is supported
        raise cx.error(f"reduce_window of add starting from {float(init_v)} (not 0) is not supported")
    y = window_reduce(cx, x, kind)  # padding never wins, and the initial value enters every window once
    return cx.op(kind, y, cx.const(init_v, dt))
