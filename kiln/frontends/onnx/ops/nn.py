"""Converters for ONNX contractions and neural-network ops: MatMul, Gemm, Conv, pooling, attention.

Conv, ConvTranspose and the pools map onto the core windowed ops (``conv``, ``conv_transpose``,
``max_pool``, ``avg_pool``) with every ``auto_pad`` resolved to explicit pads here. Everything
else (Gemm, global pools, LpPool, Einsum, Attention, RNNs, the integer and quantized forms) is a
decomposition into core ops.
"""
from __future__ import annotations

import numpy as np

from ....ir import dims
from ....ir.ops.linalg import window_count
from ..registry import converter


# --- helpers ------------------------------------------------------------------------------------

def _scalar(ctx, value, dtype):
    """A 0-d constant of ``dtype`` (a kiln dtype)."""
    return ctx.const(np.asarray(value).astype(dtype.np))


def _mul_scalar(ctx, x, value):
    return x if value == 1 else ctx.op("mul", x, _scalar(ctx, value, ctx._imp.b.type_of(x).dtype))


def _type(ctx, v):
    return ctx._imp.b.type_of(v)


def _ints(ctx, name, n, default):
    v = ctx.attr(name, None)
    if v is None or len(v) == 0:
        return [default] * n
    v = [int(a) for a in v]
    if len(v) != n:
        ctx.fail(f"attribute '{name}' {v} must have {n} entries")
    return v


def _window_pads(ctx, in_shape, kernel, strides, dilations, *, transpose=False):
    """Explicit ``pads`` (begins, then ends) from ``auto_pad`` / ``pads`` for a windowed op."""
    n = len(kernel)
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = _ints(ctx, "pads", 2 * n, 0)
        if any(p < 0 for p in pads):
            ctx.fail(f"negative pads {pads} are not supported")
        return pads
    if auto == "VALID":
        return [0] * (2 * n)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        ctx.fail(f"auto_pad '{auto}' is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER)")
    begins, ends = [], []
    for i in range(n):
        span = dilations[i] * (kernel[i] - 1) + 1
        size = in_shape[i]
        if strides[i] == 1:
            total = span - 1
        elif isinstance(size, int):
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + span - size)
        else:
            ctx.fail(f"auto_pad {auto} with stride {strides[i]} needs a static spatial size, got {size}")
        lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
        begins.append(lo)
        ends.append(total - lo)
    return begins + ends


def _spatial_rank(ctx, i=0):
    r = ctx.rank(i)
    if r < 3:
        ctx.fail(f"input must be [N, C, *spatial] with at least one spatial dim, got rank {r}")
    return r - 2


# --- matmul and gemm ----------------------------------------------------------------------------

@converter("MatMul", since=1)
def matmul(ctx):
    return ctx.op("matmul", ctx.input(0), ctx.input(1))


@converter("Gemm", since=7)
def gemm(ctx):
    """alpha * A' @ B' + beta * C, A' and B' optionally transposed; C broadcasts (optional from 11)."""
    a, b = ctx.input(0), ctx.input(1)
    if ctx.rank(0) != 2 or ctx.rank(1) != 2:
        ctx.fail(f"A and B must be 2-D, got {ctx.type(0)} and {ctx.type(1)}")
    if ctx.attr("transA", 0):
        a = ctx.op("transpose", a, perm=[1, 0])
    if ctx.attr("transB", 0):
        b = ctx.op("transpose", b, perm=[1, 0])
    y = _mul_scalar(ctx, ctx.op("matmul", a, b), ctx.attr("alpha", 1.0))
    if ctx.has_input(2):
        c = _mul_scalar(ctx, ctx.input(2), ctx.attr("beta", 1.0))
        y = ctx.op("add", y, c)
    return y


# --- convolution --------------------------------------------------------------------------------

def _conv_geometry(ctx, kernel):
    n = len(kernel)
    ks = ctx.attr("kernel_shape", None)
    if ks is not None and list(ks) != list(kernel):
        ctx.fail(f"kernel_shape {list(ks)} disagrees with the weight's spatial shape {list(kernel)}")
    strides = _ints(ctx, "strides", n, 1)
    dilations = _ints(ctx, "dilations", n, 1)
    return strides, dilations


@converter("Conv", since=1)
def conv(ctx):
    n = _spatial_rank(ctx)
    kernel = ctx.shape(1)[2:]
    if not dims.all_static(kernel):
        ctx.fail(f"the weight's spatial dims must be static, got {ctx.type(1)}")
    strides, dilations = _conv_geometry(ctx, kernel)
    pads = _window_pads(ctx, ctx.shape(0)[2:], kernel, strides, dilations)
    return ctx.op("conv", ctx.input(0), ctx.input(1), ctx.input(2), strides=strides, dilations=dilations,
                  pads=pads, group=ctx.attr("group", 1))


@converter("ConvTranspose", since=1)
def conv_transpose(ctx):
    """Explicit pads, or pads that produce ``output_shape`` (negative totals become output_padding)."""
    n = _spatial_rank(ctx)
    kernel = ctx.shape(1)[2:]
    if not dims.all_static(kernel):
        ctx.fail(f"the weight's spatial dims must be static, got {ctx.type(1)}")
    strides, dilations = _conv_geometry(ctx, kernel)
    opad = _ints(ctx, "output_padding", n, 0)
    in_shape = ctx.shape(0)[2:]
    auto = ctx.attr("auto_pad", "NOTSET")
    out_shape = ctx.attr("output_shape", None)
    if out_shape is not None and len(out_shape) > n:
        out_shape = list(out_shape)[-n:]
    if out_shape is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        out_shape = [dims.mul(s, st) for s, st in zip(in_shape, strides)]
    if out_shape is None:
        pads = _window_pads(ctx, in_shape, kernel, strides, dilations, transpose=True)
    else:
        begins, ends = [], []
        for i in range(n):
            full = dims.add(dims.mul(dims.add(in_shape[i], -1), strides[i]),
                            opad[i] + dilations[i] * (kernel[i] - 1) + 1)
            total = dims.sub(full, out_shape[i])
            if not isinstance(total, int):
                ctx.fail(f"output_shape {list(out_shape)} needs a static input spatial shape, got {list(in_shape)}")
            if total < 0:
                opad[i] -= total
                total = 0
            lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
            begins.append(lo)
            ends.append(total - lo)
        pads = begins + ends
    return ctx.op("conv_transpose", ctx.input(0), ctx.input(1), ctx.input(2), strides=strides,
                  dilations=dilations, pads=pads, output_padding=opad, group=ctx.attr("group", 1))


# --- pooling ------------------------------------------------------------------------------------

def _pool_geometry(ctx):
    n = _spatial_rank(ctx)
    kernel = ctx.attr("kernel_shape", None)
    if kernel is None or len(kernel) != n:
        ctx.fail(f"kernel_shape {kernel} must list {n} spatial sizes")
    kernel = [int(k) for k in kernel]
    strides = _ints(ctx, "strides", n, 1)
    dilations = _ints(ctx, "dilations", n, 1)
    pads = _window_pads(ctx, ctx.shape(0)[2:], kernel, strides, dilations)
    return dict(kernel=kernel, strides=strides, dilations=dilations, pads=pads,
                ceil_mode=bool(ctx.attr("ceil_mode", 0)))


@converter("MaxPool", since=1)
def max_pool(ctx):
    geo = _pool_geometry(ctx)
    if ctx.has_output(1):
        return list(ctx.op("max_pool", ctx.input(0), with_indices=True,
                           storage_order=ctx.attr("storage_order", 0), **geo))
    (y,) = ctx.op("max_pool", ctx.input(0), **geo)
    return y


@converter("AveragePool", since=1)
def average_pool(ctx):
    geo = _pool_geometry(ctx)
    return ctx.op("avg_pool", ctx.input(0), count_include_pad=bool(ctx.attr("count_include_pad", 0)), **geo)


def _pow_scalar(ctx, x, p):
    return ctx.op("pow", x, _scalar(ctx, p, _type(ctx, x).dtype))


@converter("LpPool", since=1)
def lp_pool(ctx):
    """(sum over the window of |x|^p)^(1/p) = avg_pool(|x|^p, counting pads) * window size.

    A ceil-mode overhang becomes more end padding, so that every window counts all its taps.
    """
    geo = _pool_geometry(ctx)
    if geo.pop("ceil_mode"):
        n, pads = len(geo["kernel"]), geo["pads"]
        for i, size in enumerate(ctx.shape(0)[2:]):
            k, s, d = geo["kernel"][i], geo["strides"][i], geo["dilations"][i]
            if not isinstance(size, int):
                ctx.fail(f"ceil_mode needs static spatial dims, got {list(ctx.shape(0))}")
            count = window_count(size, k, s, d, pads[i], pads[n + i], True)
            pads[n + i] += max(0, (count - 1) * s + d * (k - 1) + 1 - (size + pads[i] + pads[n + i]))
    p = ctx.attr("p", 2)
    x = _pow_scalar(ctx, ctx.op("abs", ctx.input(0)), p)
    s = ctx.op("avg_pool", x, count_include_pad=True, **geo)
    s = _mul_scalar(ctx, s, int(np.prod(geo["kernel"])))
    return _pow_scalar(ctx, s, 1.0 / p)


def _global_axes(ctx):
    return list(range(2, 2 + _spatial_rank(ctx)))


@converter("GlobalAveragePool", since=1)
def global_average_pool(ctx):
    return ctx.op("reduce_mean", ctx.input(0), axes=_global_axes(ctx), keepdims=True)


@converter("GlobalMaxPool", since=1)
def global_max_pool(ctx):
    return ctx.op("reduce_max", ctx.input(0), axes=_global_axes(ctx), keepdims=True)


@converter("GlobalLpPool", since=2)
def global_lp_pool(ctx):
    p = ctx.attr("p", 2)
    x = _pow_scalar(ctx, ctx.op("abs", ctx.input(0)), p)
    s = ctx.op("reduce_sum", x, axes=_global_axes(ctx), keepdims=True)
    return _pow_scalar(ctx, s, 1.0 / p)
