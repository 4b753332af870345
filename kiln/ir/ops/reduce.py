"""Reductions over a set of axes, and arg-reductions over one axis.

An empty ``axes`` reduces nothing (the identity), matching ONNX's ``noop_with_empty_axes``;
frontends spell "all axes" out explicitly.
"""
from __future__ import annotations

import numpy as np

from ..registry import Attr, OpDef, register
from ..types import TensorType
from ._util import norm_axes, norm_axis, require


def _reduced_shape(x: TensorType, axes, keepdims):
    ax = norm_axes(axes, x.rank)
    if keepdims:
        return [1 if i in ax else d for i, d in enumerate(x.shape)]
    return [d for i, d in enumerate(x.shape) if i not in ax]


def _np_reduce(fn, empty_ok):
    def run(x, axes, keepdims):
        ax = tuple(a % x.ndim for a in axes) if x.ndim else ()
        if not ax:
            return x.copy()
        if x.size == 0 and not empty_ok:
            # max/min over nothing: the identity of the reduction (-inf / +inf, or int bounds)
            out_shape = [1 if i in ax else d for i, d in enumerate(x.shape)]
            ident = _identity(fn, x.dtype)
            r = np.full(out_shape, ident, dtype=x.dtype)
            return r if keepdims else r.reshape([d for i, d in enumerate(x.shape) if i not in ax])
        with np.errstate(all="ignore"):
            return np.asarray(fn(x, axis=ax, keepdims=keepdims)).astype(x.dtype)
    return run


def _identity(fn, dt):
    big = np.inf if dt.kind == "f" else (np.iinfo(dt).max if dt.kind in "iu" else True)
    small = -np.inf if dt.kind == "f" else (np.iinfo(dt).min if dt.kind in "iu" else False)
    return small if fn is np.max else big


#: name -> (numpy reduction, defined on empty input?)
REDUCTIONS = {
    "reduce_sum": (np.sum, True),
    "reduce_prod": (np.prod, True),
    "reduce_max": (np.max, False),
    "reduce_min": (np.min, False),
    "reduce_mean": (np.mean, True),
}


def _make(name, fn, empty_ok):
    def infer(x: TensorType, axes, keepdims):
        require(x.dtype.name != "bool" or name in ("reduce_max", "reduce_min"),
                f"{name} does not accept bool")
        return TensorType(x.dtype, _reduced_shape(x, axes, keepdims))

    return OpDef(name, ("x",), {"axes": Attr("ints"), "keepdims": Attr("bool", True)}, 1, infer,
                 _np_reduce(fn, empty_ok), frozenset({"reduction"}), doc=f"{name} over axes")


for _n, (_f, _e) in REDUCTIONS.items():
    register(_make(_n, _f, _e))


def _arg_infer(x: TensorType, axis, keepdims, select_last_index):
    a = norm_axis(axis, x.rank)
    return TensorType("i64", _reduced_shape(x, (a,), keepdims))


def _arg_ref(fn):
    def run(x, axis, keepdims, select_last_index):
        a = axis % x.ndim
        if select_last_index:
            r = x.shape[a] - 1 - fn(np.flip(x, a), axis=a)
        else:
            r = fn(x, axis=a)
        r = r.astype(np.int64)
        return np.expand_dims(r, a) if keepdims else r
    return run


for _n, _f in (("argmax", np.argmax), ("argmin", np.argmin)):
    register(OpDef(_n, ("x",), {"axis": Attr("int"), "keepdims": Attr("bool", True),
                                "select_last_index": Attr("bool", False)}, 1,
                   _arg_infer, _arg_ref(_f), frozenset({"reduction"}),
                   doc=f"{_n} along one axis, int64 indices"))
