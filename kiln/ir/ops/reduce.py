"""Reductions over a set of axes, and arg-reductions over one axis.

An empty ``axes`` attribute reduces nothing (the identity), matching ONNX's
``noop_with_empty_axes``; frontends spell "all axes" out explicitly. Reducing an empty set gives
the reduction's identity (0 for sum, 1 for prod, -inf / the smallest value for max, ...); a mean
of an empty set is NaN (0 for ints, NaN converting as ``cast`` converts it).

Each reduction has a ``*_dynamic`` twin, defined beside it, that takes the axes as a run-time
int64 operand (ONNX's ``axes`` input when it is a graph input). There an empty axes operand
reduces every axis unless ``noop_with_empty_axes`` is set, as in ONNX; the result rank follows
from the axes operand's static length, its dims are known only at run time.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from .. import dims
from .. import loops as L
from ..lowering import Tensor
from ..registry import Attr, OpDef, register
from ..types import TensorType
from ._util import norm_axes, norm_axis, require


def _reduced_shape(x: TensorType, axes, keepdims):
    ax = norm_axes(axes, x.rank)
    if keepdims:
        return [1 if i in ax else d for i, d in enumerate(x.shape)]
    return [d for i, d in enumerate(x.shape) if i not in ax]


def _is_float(dt: np.dtype) -> bool:
    """True for numpy floats and the ml_dtypes float formats (bfloat16, float8, ...)."""
    if dt.kind == "f":
        return True
    return dt.type.__module__.startswith("ml_dtypes") and "int" not in dt.name


def _identity(kind: str, dt: np.dtype):
    """The value max/min reduce an empty set to."""
    if dt == np.bool_:
        return kind == "min"
    if _is_float(dt):
        return -np.inf if kind == "max" else np.inf
    info = ml_dtypes.iinfo(dt) if dt.type.__module__.startswith("ml_dtypes") else np.iinfo(dt)
    return info.min if kind == "max" else info.max


def _reduce_array(kind, fn, x: np.ndarray, ax: tuple, keepdims: bool) -> np.ndarray:
    """Reduce ``x`` over the normalised axes ``ax`` (non-empty) with numpy function ``fn``."""
    if x.size == 0 and kind in ("max", "min"):
        out_shape = [1 if i in ax else d for i, d in enumerate(x.shape)]
        r = np.full(out_shape, _identity(kind, x.dtype), dtype=x.dtype)
        return r if keepdims else r.reshape([d for i, d in enumerate(x.shape) if i not in ax])
    # accumulate floats in float64; ints wrap like the target's integer arithmetic
    wide = x.astype(np.float64) if _is_float(x.dtype) and kind in ("sum", "prod", "mean") else x
    with np.errstate(all="ignore"):
        if kind == "mean":  # sum / count (an empty set gives nan without numpy's warning)
            count = int(np.prod([x.shape[a] for a in ax]))
            r = np.sum(wide, axis=ax, keepdims=keepdims, dtype=np.float64) / np.float64(count)
            if not _is_float(x.dtype):  # an int mean of an empty set: the NaN converts to 0, as cast has it
                r = np.where(np.isnan(r), 0.0, r)
        else:
            r = np.asarray(fn(wide, axis=ax, keepdims=keepdims))
    return np.asarray(r).astype(x.dtype)


def _static_ref(kind, fn):
    def run(x, axes, keepdims):
        ax = tuple(sorted({a % x.ndim for a in axes})) if x.ndim else ()
        if not ax:
            return x.copy()
        return _reduce_array(kind, fn, x, ax, keepdims)
    return run


def _dynamic_ref(kind, fn):
    def run(x, axes, keepdims, noop_with_empty_axes):
        ax = [int(a) for a in np.asarray(axes).reshape(-1)]
        if not ax:
            if noop_with_empty_axes:
                return x.copy()
            ax = list(range(x.ndim))
        ax = tuple(sorted({a % x.ndim for a in ax})) if x.ndim else ()
        if not ax:
            return x.copy()
        return _reduce_array(kind, fn, x, ax, keepdims)
    return run


#: kind -> numpy reduction
REDUCTIONS = {
    "sum": np.sum,
    "prod": np.prod,
    "max": np.max,
    "min": np.min,
    "mean": np.mean,
}


def _check_dtype(name, kind, x: TensorType):
    require(x.dtype.name != "bool" or kind in ("max", "min"), f"{name} does not accept bool")


# ------------------------------------------------------------------------------------------ lowering
# A reduction lowers to one loop-IR ``Reduce`` per output element (the compiler hoists it to the loop
# level where its operands are known, so softmax / layer-norm chains stay in one kernel). sum, prod
# and mean of floats accumulate in f64 and round once, as the reference does; mean divides by the
# element count, a run-time value when a reduced dim is symbolic. Ints wrap in their own width
# (what the reference's int64 accumulation gives after its cast back); max / min are exact in any
# width and propagate NaN.
_F64 = "f64"


def _copy(b, x):
    """The identity (no axes to reduce): a fresh tensor reading ``x``."""
    return b.compute(x.shape, lambda *i: x[i], dtype=x.dtype)


def _reduced_dims(x, ax, keepdims):
    return [L.Const(1) if d in ax else s for d, s in enumerate(x.shape)] if keepdims else \
        [s for d, s in enumerate(x.shape) if d not in ax]


def _source_index(ndim, ax, keepdims, idx, ridx):
    """The operand index for output index ``idx`` and reduction index ``ridx`` (over axes ``ax``)."""
    out, it, rit = [], iter(idx), iter(ridx)
    for d in range(ndim):
        if d in ax:
            out.append(next(rit))
            if keepdims:
                next(it)  # the kept size-1 dim
        else:
            out.append(next(it))
    return tuple(out)


def lower_reduction(b, kind: str, x, ax: tuple, keepdims: bool):
    """``reduce_<kind>`` of tensor ``x`` over the normalised, non-empty axes ``ax``."""
    dt = x.dtype
    wide = (kind in ("sum", "prod", "mean") and dt.is_float) or kind == "mean"
    acc_dt = _F64 if wide else dt
    comb = "sum" if kind == "mean" else kind
    rshape = [x.shape[a] for a in ax]
    red = b.reduce(_reduced_dims(x, ax, keepdims), rshape,
                   lambda idx, r: L.cast(x[_source_index(x.ndim, ax, keepdims, idx, r)], acc_dt), comb)
    if not wide:
        return red
    count = L.Const(1)
    for s in rshape:
        count = count * s
    count = L.simplify(count)
    n = L.const(count.value, _F64) if isinstance(count, L.Const) else L.cast(count, _F64)

    def element(*i):
        r = red[i]
        owners = getattr(b, "reduce_owner", None)
        if owners is not None:  # a reduction the compiler must give a buffer is this tensor's
            owners[r] = out
        return L.cast(L.binary("div", r, n) if kind == "mean" else r, dt)

    # still a reduction to the compiler: it materialises or hoists it like the Reduce inside
    out = Tensor(red.shape, dt, element, kind="reduce")
    return out


def _lower_static(kind):
    def lower(b, x, axes, keepdims):
        if x.ndim == 0:
            return _copy(b, x)
        ax = norm_axes(axes, x.ndim)
        if not ax:
            return _copy(b, x)
        return lower_reduction(b, kind, x, ax, keepdims)
    return lower


def _lower_dynamic(kind):
    name = f"reduce_{kind}_dynamic"

    def lower(b, x, axes, keepdims, noop_with_empty_axes):
        n = axes.shape[0] if axes.ndim == 1 else None
        if isinstance(n, L.Const) and n.value == 0:  # the result's shape is known: lower it
            if noop_with_empty_axes or x.ndim == 0:
                return _copy(b, x)
            return lower_reduction(b, kind, x, tuple(range(x.ndim)), keepdims)
        raise NotImplementedError(
            f"{name}: the reduced axes are a run-time operand, so the result's shape is known only at "
            f"run time and compiled kernels need it at compile time; use reduce_{kind} with constant axes")

    return lower


def _make(kind, fn):
    name = f"reduce_{kind}"

    def infer(x: TensorType, axes, keepdims):
        _check_dtype(name, kind, x)
        return TensorType(x.dtype, _reduced_shape(x, axes, keepdims))

    return OpDef(name, ("x",), {"axes": Attr("ints"), "keepdims": Attr("bool", True)}, 1, infer,
                 _static_ref(kind, fn), frozenset({"reduction"}), lower=_lower_static(kind),
                 doc=f"{kind} over the listed axes (none listed: the identity)")


def _make_dynamic(kind, fn):
    name = f"reduce_{kind}_dynamic"

    def infer(x: TensorType, axes: TensorType, keepdims, noop_with_empty_axes):
        _check_dtype(name, kind, x)
        require(axes.dtype.is_int and axes.rank == 1 and isinstance(axes.shape[0], int),
                f"{name}: axes operand must be a 1-D integer tensor of static length, got {axes}")
        n = axes.shape[0]
        if n == 0:  # known now: the identity, or every axis
            if noop_with_empty_axes:
                return x
            return TensorType(x.dtype, [1] * x.rank if keepdims else [])
        require(n <= x.rank, f"{name}: {n} axes for an operand of rank {x.rank}")
        return TensorType(x.dtype, [dims.UNKNOWN] * (x.rank if keepdims else x.rank - n))

    return OpDef(name, ("x", "axes"), {"keepdims": Attr("bool", True),
                                       "noop_with_empty_axes": Attr("bool", False)}, 1, infer,
                 _dynamic_ref(kind, fn), frozenset({"reduction"}), lower=_lower_dynamic(kind),
                 doc=f"reduce_{kind} over run-time axes (empty: every axis, or none with noop_with_empty_axes)")


for _k, _f in REDUCTIONS.items():
    register(_make(_k, _f))
    register(_make_dynamic(_k, _f))


def _arg_infer(x: TensorType, axis, keepdims, select_last_index):
    require(x.rank >= 1, "arg-reductions need an operand of rank >= 1")
    require(x.dtype.name != "bool", "arg-reductions do not accept bool")
    a = norm_axis(axis, x.rank)
    return TensorType("i64", _reduced_shape(x, (a,), keepdims))


def _arg_ref(fn):
    def run(x, axis, keepdims, select_last_index):
        a = axis % x.ndim
        if select_last_index:
            r = x.shape[a] - 1 - fn(np.flip(x, a), axis=a)
        else:
            r = fn(x, axis=a)
        r = np.asarray(r).astype(np.int64)
        return np.expand_dims(r, a) if keepdims else r
    return run


def _arg_lower(combiner):
    """One ``Reduce`` with the arg combiner per output element: the first extreme index (the last
    with select_last_index); a NaN counts as the extreme, as numpy's argmax / argmin have it."""

    def lower(b, x, axis, keepdims, select_last_index):
        a = axis % x.ndim
        return b.reduce(_reduced_dims(x, (a,), keepdims), [x.shape[a]],
                        lambda idx, r: x[_source_index(x.ndim, (a,), keepdims, idx, r)], combiner,
                        select_last=select_last_index)
    return lower


for _n, _f in (("argmax", np.argmax), ("argmin", np.argmin)):
    register(OpDef(_n, ("x",), {"axis": Attr("int"), "keepdims": Attr("bool", True),
                                "select_last_index": Attr("bool", False)}, 1,
                   _arg_infer, _arg_ref(_f), frozenset({"reduction"}), lower=_arg_lower(_n),
                   doc=f"{_n} along one axis, int64 indices; ties give the first index "
                       f"(the last with select_last_index)"))
