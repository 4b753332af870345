"""Reductions, arg-reductions, softmax, scans and top-k.

torch's "all dims" (``dim=None`` or ``[]``) is spelled out as every axis (kiln's empty ``axes``
reduces nothing). Sums of bools and ints accumulate in the result dtype torch chose (int64).
"""
from __future__ import annotations

from ...ir import dims as _dims
from ...ir import dtypes as kd
from ._util import axes as _axes
from ._util import axis, dim_tensor, reshape, static_int
from .registry import converts


def _reduce(cx, kop, x, dims, keepdim, dtype=None):
    e = cx.e
    x = e.cast(x, dtype or cx.out_dtype)
    ax = _axes(dims, e.rank(x))
    if e.rank(x) == 0:
        return x
    return e.op(kop, x, axes=ax, keepdims=bool(keepdim))


@converts("aten.sum.dim_IntList", "aten.sum.default")
def _sum(cx, x, dim=None, keepdim=False, dtype=None):
    return _reduce(cx, "reduce_sum", x, dim, keepdim)


@converts("aten.mean.dim", "aten.mean.default")
def _mean(cx, x, dim=None, keepdim=False, dtype=None):
    return _reduce(cx, "reduce_mean", x, dim, keepdim)


@converts("aten.prod.dim_int", "aten.prod.default")
def _prod(cx, x, dim=None, keepdim=False, dtype=None):
    return _reduce(cx, "reduce_prod", x, dim, keepdim)


@converts("aten.amax.default", "aten.max.default")
def _amax(cx, x, dim=None, keepdim=False):
    return _reduce(cx, "reduce_max", x, dim, keepdim)


@converts("aten.amin.default", "aten.min.default")
def _amin(cx, x, dim=None, keepdim=False):
    return _reduce(cx, "reduce_min", x, dim, keepdim)


@converts("aten.any.dim", "aten.any.dims", "aten.any.default")
def _any(cx, x, dim=None, keepdim=False):
    return _reduce(cx, "reduce_max", cx.e.cast(x, kd.bool_), dim, keepdim, kd.bool_)


@converts("aten.all.dim", "aten.all.dims", "aten.all.default")
def _all(cx, x, dim=None, keepdim=False):
    return _reduce(cx, "reduce_min", cx.e.cast(x, kd.bool_), dim, keepdim, kd.bool_)


def _arg(kop):
    def conv(cx, x, dim=None, keepdim=False):
        e = cx.e
        if e.dtype(x).kind == "bool":
            x = e.cast(x, kd.uint8)
        if dim is None:
            flat = reshape(cx, x, [_dims.prod(e.shape(x))])
            r = e.op(kop, flat, axis=0, keepdims=False)
            return reshape(cx, r, [1] * e.rank(x)) if keepdim else r
        if e.rank(x) == 0:
            return cx.tensor(0, kd.int64)
        return e.op(kop, x, axis=axis(dim, e.rank(x)), keepdims=bool(keepdim))
    return conv


converts("aten.argmax.default")(_arg("argmax"))
converts("aten.argmin.default")(_arg("argmin"))


def _minmax_dim(kred, karg):
    def conv(cx, x, dim, keepdim=False):
        e = cx.e
        a = axis(dim, e.rank(x))
        vals = e.op(kred, x, axes=[a], keepdims=bool(keepdim)) if cx.used(0) else None
        idx = None
        if cx.used(1):
            xi = e.cast(x, kd.uint8) if e.dtype(x).kind == "bool" else x
            idx = e.op(karg, xi, axis=a, keepdims=bool(keepdim))
        return (vals, idx)
    return conv


converts("aten.max.dim")(_minmax_dim("reduce_max", "argmax"))
converts("aten.min.dim")(_minmax_dim("reduce_min", "argmin"))


def _count(cx, x, ax):
    n = _dims.prod([cx.e.shape(x)[a] for a in ax])
    return n


def variance(cx, x, dims, correction, keepdim):
    """``(var, mean)`` of x over ``dims`` with Bessel-style ``correction`` (torch's default 1)."""
    e = cx.e
    dt = cx.out_dtype
    x = e.cast(x, dt)
    ax = _axes(dims, e.rank(x))
    c = 1 if correction is None else correction
    mean = e.op("reduce_mean", x, axes=ax, keepdims=True)
    d = e.op("sub", x, mean)
    sq = e.op("mul", d, d)
    n = _count(cx, x, ax)
    if isinstance(n, int):
        var = e.op("div", e.op("reduce_sum", sq, axes=ax, keepdims=bool(keepdim)), cx.tensor(max(n - c, 0), dt))
    else:
        var = e.op("div", e.op("reduce_sum", sq, axes=ax, keepdims=bool(keepdim)),
                   e.op("sub", dim_tensor(cx, n, dt), cx.tensor(c, dt)))
    if not keepdim:
        mean = reshape(cx, mean, [s for k, s in enumerate(e.shape(mean)) if k not in ax])
    return var, mean


@converts("aten.var.correction", "aten.var.dim")
def _var(cx, x, dim=None, unbiased=None, keepdim=False, correction=None):
    if isinstance(unbiased, bool):
        correction = 1 if unbiased else 0
    return variance(cx, x, dim, correction, keepdim)[0]


@converts("aten.std.correction", "aten.std.dim")
def _std(cx, x, dim=None, unbiased=None, keepdim=False, correction=None):
    if isinstance(unbiased, bool):
        correction = 1 if unbiased else 0
    return cx.e.op("sqrt", variance(cx, x, dim, correction, keepdim)[0])


@converts("aten.var_mean.correction")
def _var_mean(cx, x, dim=None, correction=None, keepdim=False):
    return variance(cx, x, dim, correction, keepdim)


@converts("aten.std_mean.correction")
def _std_mean(cx, x, dim=None, correction=None, keepdim=False):
    var, mean = variance(cx, x, dim, correction, keepdim)
    return cx.e.op("sqrt", var), mean


@converts("aten.logsumexp.default")
def _logsumexp(cx, x, dim, keepdim=False):
    e = cx.e
    dt = cx.out_dtype
    x = e.cast(x, dt)
    ax = _axes(dim, e.rank(x))
    m = e.op("reduce_max", x, axes=ax, keepdims=True)
    m = e.op("where", e.op("isinf", m), cx.tensor(0.0, dt), m)
    s = e.op("log", e.op("reduce_sum", e.op("exp", e.op("sub", x, m)), axes=ax, keepdims=True))
    r = e.op("add", s, m)
    return r if keepdim else reshape(cx, r, [d for k, d in enumerate(e.shape(r)) if k not in ax])


def softmax(cx, x, dim, log=False):
    e = cx.e
    x = e.cast(x, cx.out_dtype)
    if e.rank(x) == 0:
        return cx.tensor(0.0 if log else 1.0, e.dtype(x))
    a = axis(dim, e.rank(x))
    m = e.op("reduce_max", x, axes=[a], keepdims=True)
    z = e.op("sub", x, m)
    ez = e.op("exp", z)
    s = e.op("reduce_sum", ez, axes=[a], keepdims=True)
    if log:
        return e.op("sub", z, e.op("log", s))
    return e.op("div", ez, s)


@converts("aten._softmax.default", "aten.softmax.int")
def _softmax(cx, x, dim, half_to_float=False):
    return softmax(cx, x, dim)


@converts("aten._log_softmax.default", "aten.log_softmax.int")
def _log_softmax(cx, x, dim, half_to_float=False):
    return softmax(cx, x, dim, log=True)


@converts("aten._safe_softmax.default")
def _safe_softmax(cx, x, dim, dtype=None):
    """softmax where a row of only -inf gives zeros instead of NaN."""
    e = cx.e
    sm = softmax(cx, x, dim)
    a = axis(dim, e.rank(sm))
    xin = e.cast(x, e.dtype(sm))
    dead = e.op("reduce_min", e.op("equal", xin, cx.tensor(float("-inf"), e.dtype(sm))), axes=[a], keepdims=True)
    return e.op("where", dead, cx.tensor(0.0, e.dtype(sm)), sm)


def _cumulative(core):
    def conv(cx, x, dim, dtype=None):
        e = cx.e
        x = e.cast(x, cx.out_dtype)
        if e.rank(x) == 0:
            return x
        return e.op(core, x, axis=axis(dim, e.rank(x)))
    return conv


converts("aten.cumsum.default")(_cumulative("cumsum"))
converts("aten.cumprod.default")(_cumulative("cumprod"))


@converts("aten.topk.default")
def _topk(cx, x, k, dim=-1, largest=True, sorted=True):
    e = cx.e
    k = static_int(cx, k, "topk's k")
    a = axis(dim, e.rank(x))
    vals, idx = e.op("topk", x, k=k, axis=a, largest=bool(largest), sorted=True)
    return (vals, idx)


@converts("aten.sort.default", "aten.sort.stable")
def _sort(cx, x, *args, **kwargs):
    e = cx.e
    if str(cx.node.target).endswith("stable"):
        dim = kwargs.get("dim", -1)
        descending = kwargs.get("descending", False)
    else:
        dim = args[0] if args else kwargs.get("dim", -1)
        descending = args[1] if len(args) > 1 else kwargs.get("descending", False)
    a = axis(dim, e.rank(x))
    n = static_int(cx, e.shape(x)[a], "the sorted dim")
    vals, idx = e.op("topk", x, k=n, axis=a, largest=bool(descending), sorted=True)
    return (vals, idx)


@converts("aten.linalg_vector_norm.default")
def _vector_norm(cx, x, ord=2, dim=None, keepdim=False, dtype=None):
    e = cx.e
    dt = cx.out_dtype
    x = e.cast(x, dt)
    ax = _axes(dim, e.rank(x))
    ab = e.op("abs", x)
    if ord == float("inf"):
        return e.op("reduce_max", ab, axes=ax, keepdims=bool(keepdim))
    if ord == float("-inf"):
        return e.op("reduce_min", ab, axes=ax, keepdims=bool(keepdim))
    if ord == 0:
        nz = e.cast(e.op("not", e.op("equal", x, cx.tensor(0.0, dt))), dt)
        return e.op("reduce_sum", nz, axes=ax, keepdims=bool(keepdim))
    if ord == 1:
        return e.op("reduce_sum", ab, axes=ax, keepdims=bool(keepdim))
    if ord == 2:
        return e.op("sqrt", e.op("reduce_sum", e.op("mul", x, x), axes=ax, keepdims=bool(keepdim)))
    p = float(ord)
    s = e.op("reduce_sum", e.op("pow", ab, cx.tensor(p, dt)), axes=ax, keepdims=bool(keepdim))
    return e.op("pow", s, cx.tensor(1.0 / p, dt))

