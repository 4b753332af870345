"""Reductions over a set of axes, and arg-reductions over one axis.

An empty ``axes`` attribute reduces nothing (the identity), matching ONNX's
``noop_with_empty_axes``; frontends spell "all axes" out explicitly. Reducing an empty set gives
the reduction's identity (0 for sum, 1 for prod, -inf / the smallest value for max, ...).

Each reduction has a ``*_dynamic`` twin, defined beside it, that takes the axes as a run-time
int64 operand (ONNX's ``axes`` input when it is a graph input). There an empty axes operand
reduces every axis unless ``noop_with_empty_axes`` is set, as in ONNX; the result rank follows
from the axes operand's static length, its dims are known only at run time.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from .. import dims
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


def _make(kind, fn):
    name = f"reduce_{kind}"

    def infer(x: TensorType, axes, keepdims):
        _check_dtype(name, kind, x)
        return TensorType(x.dtype, _reduced_shape(x, axes, keepdims))

    return OpDef(name, ("x",), {"axes": Attr("ints"), "keepdims": Attr("bool", True)}, 1, infer,
                 _static_ref(kind, fn), frozenset({"reduction"}),
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
                 _dynamic_ref(kind, fn), frozenset({"reduction"}),
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


for _n, _f in (("argmax", np.argmax), ("argmin", np.argmin)):
    register(OpDef(_n, ("x",), {"axis": Attr("int"), "keepdims": Attr("bool", True),
                                "select_last_index": Attr("bool", False)}, 1,
                   _arg_infer, _arg_ref(_f), frozenset({"reduction"}),
                   doc=f"{_n} along one axis, int64 indices; ties give the first index "
                       f"(the last with select_last_index)"))
