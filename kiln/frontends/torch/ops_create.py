"""Tensor factories: arange, full / zeros / ones / empty (and their ``_like`` / ``new_`` forms), scalar_tensor, eye.

Static results are constants (the Emitter folds them); a symbolic shape gives a ``broadcast`` of
the fill value, and a symbolic ``arange`` a ``range`` op whose length is the symbolic dim. ``empty``
is filled with zeros, so a model that reads it before writing it still gives the same answer on
every run.
"""
from __future__ import annotations

import numpy as np

from ...errors import ConversionError
from ...ir import dtypes as kd
from ._util import dim_tensor
from .registry import converts


def full(cx, value, shape=None, dtype=None):
    dt = dtype or cx.out_dtype
    shape = cx.out_shape if shape is None else shape
    v = cx.tensor(value, dt)
    if not shape:
        return v
    return cx.e.op("broadcast", v, shape=shape)


@converts("aten.full.default", "aten.new_full.default")
def _full(cx, *args, **kwargs):
    value = args[-1] if str(cx.node.target) == "aten.full.default" else args[2]
    return full(cx, value)


@converts("aten.zeros.default", "aten.new_zeros.default", "aten.zeros_like.default", "aten.empty.memory_format",
          "aten.empty.default", "aten.new_empty.default", "aten.empty_like.default", "aten.empty_strided.default",
          "aten.new_empty_strided.default", "aten.empty_permuted.default")
def _zeros(cx, *_, **__):
    return full(cx, 0)


@converts("aten.ones.default", "aten.new_ones.default", "aten.ones_like.default")
def _ones(cx, *_, **__):
    return full(cx, 1)


@converts("aten.full_like.default")
def _full_like(cx, x, fill_value, **_):
    return full(cx, fill_value)


@converts("aten.scalar_tensor.default")
def _scalar_tensor(cx, value, **_):
    return cx.tensor(value, cx.out_dtype)


@converts("aten.arange.default", "aten.arange.start", "aten.arange.start_step")
def _arange(cx, *args, **kwargs):
    target = str(cx.node.target)
    if target == "aten.arange.default":
        start, end, step = 0, args[0], 1
    elif target == "aten.arange.start":
        start, end, step = args[0], args[1], 1
    else:
        start, end, step = args[0], args[1], args[2] if len(args) > 2 else kwargs.get("step", 1)
    dt = cx.out_dtype
    (n,) = cx.out_shape
    vals = [getattr(v, "dim", v) for v in (start, end, step)]
    if all(isinstance(v, (int, float)) for v in vals):
        s, _, d = (float(v) for v in vals)
        count = int(n)
        arr = (np.float64(s) + np.float64(d) * np.arange(count, dtype=np.float64)) if dt.is_float else \
            np.int64(vals[0]) + np.int64(vals[2]) * np.arange(count, dtype=np.int64)
        return cx.e.const(arr.astype(dt.np))
    if dt.is_float and any(isinstance(v, float) and not float(v).is_integer() for v in vals):
        raise ConversionError("arange with a symbolic bound and a fractional start or step is not supported")
    wide = kd.float64 if dt.is_float else kd.int64
    ts = [dim_tensor(cx, v, wide) if not isinstance(v, float) else cx.tensor(v, wide) for v in vals]
    return cx.e.cast(cx.e.op("range", *ts, dims=[n]), dt)


@converts("aten.eye.default", "aten.eye.m")
def _eye(cx, n, m=None, **_):
    rows, cols = cx.out_shape
    if not isinstance(rows, int) or not isinstance(cols, int):
        raise ConversionError("eye of a symbolic size is not supported")
    return cx.e.const(np.eye(rows, cols).astype(cx.out_dtype.np))


@converts("aten.linspace.default")
def _linspace(cx, start, end, steps, **_):
    steps = int(steps)
    if not all(isinstance(v, (int, float)) for v in (start, end)):
        raise ConversionError("linspace with tensor bounds is not supported")
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    # torch fills the first half from start and the second half from end
    i = np.arange(steps, dtype=np.float64)
    vals = np.where(i < steps // 2, start + step * i, end - step * (steps - 1 - i))
    return cx.e.const(vals.astype(cx.out_dtype.np) if cx.out_dtype.is_float else
                      np.trunc(vals).astype(cx.out_dtype.np))

