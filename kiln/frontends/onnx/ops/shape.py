"""Converters for ONNX shape and data-movement ops, constants and identity."""
from __future__ import annotations

import numpy as np

from ..registry import converter


@converter("Identity", since=1)
def identity(ctx):
    return ctx.input(0)


@converter("Constant", since=1)
def constant(ctx):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if ctx.has_attr(key):
            v = ctx.attr(key)
            if key in ("value_float", "value_floats"):
                return ctx.const(np.asarray(v, dtype=np.float32))
            if key in ("value_int", "value_ints"):
                return ctx.const(np.asarray(v, dtype=np.int64))
            return ctx.const(v)
    ctx.fail("only tensor, float(s) and int(s) constants are supported")


@converter("Shape", since=1)
def shape(ctx):
    s = ctx.shape(0)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    sel = s[slice(start, end)]
    if all(isinstance(d, int) for d in sel):
        return ctx.const(np.array(sel, dtype=np.int64))
    ctx.fail(f"input shape {list(s)} has run-time dims; dynamic Shape is not supported yet")


@converter("Reshape", since=5)
def reshape(ctx):
    target = ctx.require_const(1, "the target shape")
    in_shape = ctx.shape(0)
    allowzero = ctx.attr("allowzero", 0)
    out = []
    for i, d in enumerate(target.tolist()):
        out.append(in_shape[i] if d == 0 and not allowzero else d)
    if -1 in out:
        from ....ir import dims

        known = dims.prod([d for d in out if d != -1])
        rest = dims.div_exact(dims.prod(in_shape), known)
        if rest is None:
            ctx.fail(f"cannot infer -1 in shape {target.tolist()} from input shape {list(in_shape)}")
        out[out.index(-1)] = rest
    return ctx.op("reshape", ctx.input(0), shape=out)
