"""Converters for ONNX contractions and neural-network ops: MatMul, Gemm, Conv, pooling.

Conv, ConvTranspose and the pools map onto the core windowed ops (``conv``, ``conv_transpose``,
``max_pool``, ``avg_pool``) with every ``auto_pad`` resolved to explicit pads here. Everything
else is a decomposition into core ops (attention in :mod:`.attention`, recurrent networks in
:mod:`.recurrent`):

- Gemm, global pools, LpPool (avg_pool of |x|^p), Einsum (transpose/reshape/matmul/reduce_sum);
- MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv (int32 accumulation, float64 requantize);
- CausalConvWithState (pad/concat + depthwise conv);
- MaxUnpool (scatter), DeformConv and RoiAlign (bilinear sampling by gathers).
"""
from __future__ import annotations

import numpy as np

from ....ir import dims
from ....ir.ops.linalg import window_count
from ..registry import converter
from ._helpers import scalar_like, slice_last


# --- helpers ------------------------------------------------------------------------------------


def _mul_scalar(ctx, x, value):
    return x if value == 1 else ctx.op("mul", x, scalar_like(ctx, value, x))


def _ints(ctx, name, n, default):
    v = ctx.attr(name, None)
    if v is None or len(v) == 0:
        return [default] * n
    v = [int(a) for a in v]
    if len(v) != n:
        ctx.fail(f"attribute '{name}' {v} must have {n} entries")
    return v


def _window_pads(ctx, in_shape, kernel, strides, dilations):
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


def _operands(*values):
    """Operands without trailing absent optional ones (so the IR reads conv(%x, %w))."""
    values = list(values)
    while values and values[-1] is None:
        values.pop()
    return values


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
    _spatial_rank(ctx)
    kernel = ctx.shape(1)[2:]
    if not dims.all_static(kernel):
        ctx.fail(f"the weight's spatial dims must be static, got {ctx.type(1)}")
    strides, dilations = _conv_geometry(ctx, kernel)
    pads = _window_pads(ctx, ctx.shape(0)[2:], kernel, strides, dilations)
    return ctx.op("conv", *_operands(ctx.input(0), ctx.input(1), ctx.input(2)), strides=strides, dilations=dilations,
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
        pads = _window_pads(ctx, in_shape, kernel, strides, dilations)
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
    return ctx.op("conv_transpose", *_operands(ctx.input(0), ctx.input(1), ctx.input(2)), strides=strides,
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
    return ctx.op("pow", x, scalar_like(ctx, p, x))


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


# --- einsum -------------------------------------------------------------------------------------

def _einsum_terms(ctx, equation, ranks):
    """Parse an einsum equation into per-operand label lists and the output labels.

    An ellipsis becomes distinct upper-case-free labels ('0', '1', ...) aligned to the right, so
    every dim of every operand has exactly one label.
    """
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        ctx.fail(f"equation '{equation}' names {len(terms)} operands, the node has {len(ranks)}")
    n_ell = 0
    for t, r in zip(terms, ranks):
        if "..." in t:
            n_ell = max(n_ell, r - len(t.replace("...", "")))
    ell = [str(i) for i in range(n_ell)]
    out_terms = []
    for t, r in zip(terms, ranks):
        letters = t.replace("...", "")
        if not all(c.isalpha() for c in letters):
            ctx.fail(f"equation '{equation}': bad term '{t}'")
        if "..." in t:
            k = r - len(letters)
            pre, post = t.split("...")
            labels = list(pre) + ell[n_ell - k:] + list(post)
        else:
            labels = list(t)
        if len(labels) != r:
            ctx.fail(f"equation '{equation}': term '{t}' does not match an operand of rank {r}")
        out_terms.append(labels)
    if arrow:
        if "..." in rhs:
            pre, post = rhs.split("...")
            out = list(pre) + ell + list(post)
        else:
            out = list(rhs)
    else:
        counts = {}
        for t in out_terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + sorted(c for c, n in counts.items() if n == 1 and c.isalpha())
    return out_terms, out


def _einsum_diagonal(ctx, x, labels):
    """Fold repeated labels of one operand into one dim (the diagonal), via an identity mask."""
    while len(set(labels)) < len(labels):
        c = next(c for c in labels if labels.count(c) > 1)
        i = labels.index(c)
        j = labels.index(c, i + 1)
        t = ctx.type_of(x)
        n = t.shape[i]
        if not isinstance(n, int):
            ctx.fail(f"a repeated label '{c}' needs a static dim, got {n}")
        eye = np.zeros([n if k in (i, j) else 1 for k in range(t.rank)], dtype=t.dtype.np)
        idx = [0] * t.rank
        for a in range(n):
            idx[i] = idx[j] = a
            eye[tuple(idx)] = 1
        x = ctx.op("reduce_sum", ctx.op("mul", x, ctx.const(eye)), axes=[j], keepdims=False)
        labels = labels[:j] + labels[j + 1:]
    return x, labels


def _einsum_pair(ctx, a, la, b, lb, keep):
    """Contract two operands; labels in ``keep`` survive, shared ones not in ``keep`` are summed."""
    batch = [c for c in la if c in lb and c in keep]
    contr = [c for c in la if c in lb and c not in keep]
    afree = [c for c in la if c not in lb]
    bfree = [c for c in lb if c not in la]
    ta, tb = ctx.type_of(a), ctx.type_of(b)
    da = dict(zip(la, ta.shape))
    db = dict(zip(lb, tb.shape))
    a = ctx.op("transpose", a, perm=[la.index(c) for c in batch + afree + contr])
    b = ctx.op("transpose", b, perm=[lb.index(c) for c in batch + contr + bfree])
    m = dims.prod([da[c] for c in afree])
    k = dims.prod([da[c] for c in contr])
    n = dims.prod([db[c] for c in bfree])
    a = ctx.op("reshape", a, shape=[da[c] for c in batch] + [m, k])
    b = ctx.op("reshape", b, shape=[db[c] for c in batch] + [k, n])
    y = ctx.op("matmul", a, b)
    bshape = list(ctx.type_of(y).shape[:len(batch)])
    y = ctx.op("reshape", y, shape=bshape + [da[c] for c in afree] + [db[c] for c in bfree])
    return y, batch + afree + bfree


@converter("Einsum", since=12)
def einsum(ctx):
    """Diagonals via an identity mask, single-operand sums via reduce_sum, pairwise contractions
    via transpose + reshape + matmul, left to right."""
    xs = [ctx.input(i) for i in range(ctx.num_inputs)]
    terms, out = _einsum_terms(ctx, ctx.attr("equation"), [ctx.rank(i) for i in range(ctx.num_inputs)])
    if len(set(out)) != len(out):
        ctx.fail(f"equation '{ctx.attr('equation')}': the output repeats a label")
    ops = []
    for k, (x, labels) in enumerate(zip(xs, terms)):
        x, labels = _einsum_diagonal(ctx, x, labels)
        # sum labels that appear nowhere else
        later = set(out).union(*[set(t) for j, t in enumerate(terms) if j != k])
        lone = [i for i, c in enumerate(labels) if c not in later]
        if lone:
            x = ctx.op("reduce_sum", x, axes=lone, keepdims=False)
            labels = [c for c in labels if c in later]
        ops.append((x, labels))
    x, labels = ops[0]
    for k in range(1, len(ops)):
        keep = set(out).union(*[set(t) for _, t in ops[k + 1:]])
        x, labels = _einsum_pair(ctx, x, labels, ops[k][0], ops[k][1], keep)
    extra = [i for i, c in enumerate(labels) if c not in out]
    if extra:
        x = ctx.op("reduce_sum", x, axes=extra, keepdims=False)
        labels = [c for c in labels if c in out]
    missing = [c for c in out if c not in labels]
    if missing:
        ctx.fail(f"output labels {missing} appear in no operand")
    perm = [labels.index(c) for c in out]
    if perm != list(range(len(perm))):
        x = ctx.op("transpose", x, perm=perm)
    return x if x not in xs else ctx.op("identity", x)


# --- integer and quantized contractions ---------------------------------------------------------

def _centered_i32(ctx, x, zp, zp_axis_from_end=None):
    """int32(x) - int32(zero point); a 1-D zero point of length > 1 applies along one axis."""
    x = ctx.op("cast", x, to="i32")
    if zp is None:
        return x
    z = ctx.op("cast", zp, to="i32")
    zt = ctx.type_of(z)
    if zp_axis_from_end is not None and zt.rank == 1 and zt.shape[0] != 1:
        z = ctx.op("reshape", z, shape=[zt.shape[0]] + [1] * zp_axis_from_end)
    return ctx.op("sub", x, z)


@converter("MatMulInteger", since=10)
def matmul_integer(ctx):
    """int32 matmul of zero-point-centered operands; A's zero point may be per row."""
    a = _centered_i32(ctx, ctx.input(0), ctx.input(2), zp_axis_from_end=1)
    b = _centered_i32(ctx, ctx.input(1), ctx.input(3))
    return ctx.op("matmul", a, b)


def _conv_attrs(ctx, x_index, w_shape):
    kernel = w_shape[2:]
    if not dims.all_static(kernel):
        ctx.fail(f"the weight's spatial dims must be static, got {list(w_shape)}")
    strides, dilations = _conv_geometry(ctx, kernel)
    pads = _window_pads(ctx, ctx.shape(x_index)[2:], kernel, strides, dilations)
    return dict(strides=strides, dilations=dilations, pads=pads, group=ctx.attr("group", 1))


@converter("ConvInteger", since=10)
def conv_integer(ctx):
    """int32 conv of zero-point-centered operands (padding reads as the zero point)."""
    w_rank = ctx.rank(1)
    x = _centered_i32(ctx, ctx.input(0), ctx.input(2))
    w = _centered_i32(ctx, ctx.input(1), ctx.input(3), zp_axis_from_end=w_rank - 1)
    return ctx.op("conv", x, w, **_conv_attrs(ctx, 0, ctx.shape(1)))


def _requantize(ctx, acc, scale, y_scale, y_zp, out_dtype, channel_axis_from_end=None):
    """Saturate(round_half_even(acc * scale / y_scale) + y_zp), computed in float64."""
    s = ctx.op("div", ctx.op("mul", *scale), y_scale)  # in the scales' own precision
    st = ctx.type_of(s)
    if channel_axis_from_end is not None and st.rank == 1 and st.shape[0] != 1:
        s = ctx.op("reshape", s, shape=[st.shape[0]] + [1] * channel_axis_from_end)
    y = ctx.op("mul", ctx.op("cast", acc, to="f64"), ctx.op("cast", s, to="f64"))
    if y_zp is not None:
        y = ctx.op("add", y, ctx.op("cast", y_zp, to="f64"))
    info = np.iinfo(out_dtype.np)
    y = ctx.op("round", y)
    y = ctx.op("min", ctx.op("max", y, ctx.const(np.float64(info.min))), ctx.const(np.float64(info.max)))
    return ctx.op("cast", y, to=out_dtype)


@converter("QLinearMatMul", since=10)
def qlinear_matmul(ctx):
    a = _centered_i32(ctx, ctx.input(0), ctx.input(2), zp_axis_from_end=1)
    b = _centered_i32(ctx, ctx.input(3), ctx.input(5))
    acc = ctx.op("matmul", a, b)
    out = ctx.dtype(7) if ctx.has_input(7) else ctx.dtype(0)
    return _requantize(ctx, acc, (ctx.input(1), ctx.input(4)), ctx.input(6), ctx.input(7), out)


@converter("QLinearConv", since=10)
def qlinear_conv(ctx):
    n = ctx.rank(3) - 1
    x = _centered_i32(ctx, ctx.input(0), ctx.input(2))
    w = _centered_i32(ctx, ctx.input(3), ctx.input(5), zp_axis_from_end=n)
    bias = ctx.input(8) if ctx.has_input(8) else None
    acc = ctx.op("conv", *_operands(x, w, bias), **_conv_attrs(ctx, 0, ctx.shape(3)))
    out = ctx.dtype(7) if ctx.has_input(7) else ctx.dtype(0)
    return _requantize(ctx, acc, (ctx.input(1), ctx.input(4)), ctx.input(6), ctx.input(7), out,
                       channel_axis_from_end=ctx.rank(0) - 2)


# --- max-unpool -------------------------------------------------------------------------------

@converter("MaxUnpool", since=9)
def max_unpool(ctx):
    """Scatter X into zeros at the flat indices MaxPool returned; the unpooled size per axis is
    ``(in - 1) * stride + kernel - pad_begin - pad_end``, then padded at the end to output_shape."""
    t = ctx.type(0)
    n = _spatial_rank(ctx)
    kernel = ctx.attr("kernel_shape")
    if kernel is None or len(kernel) != n:
        ctx.fail(f"kernel_shape {kernel} must list {n} spatial sizes")
    strides = _ints(ctx, "strides", n, 1)
    pads = _ints(ctx, "pads", 2 * n, 0)
    if not t.is_static:
        ctx.fail(f"MaxUnpool needs a static input shape, got {t}")
    shape = list(t.shape[:2]) + [(t.shape[2 + i] - 1) * strides[i] + kernel[i] - pads[i] - pads[n + i]
                                 for i in range(n)]
    size = int(np.prod(shape))
    flat = ctx.op("scatter_elements", ctx.const(np.zeros(size, t.dtype.np)),
                  ctx.op("reshape", ctx.input(1), shape=[t.size]), ctx.op("reshape", ctx.input(0), shape=[t.size]),
                  axis=0)
    y = ctx.op("reshape", flat, shape=shape)
    if not ctx.has_input(2):
        return y
    out = ctx.const_value(2)
    if out is not None:
        extra = [int(o) - s for o, s in zip(out.tolist(), shape)]
        return ctx.op("pad", y, pads=[0] * len(shape) + extra) if any(extra) else y
    ends = ctx.op("sub", ctx.input(2), ctx.const(np.array(shape, np.int64)))
    pads_rt = ctx.op("concat", ctx.const(np.zeros(len(shape), np.int64)), ends, axis=0)
    return ctx.op("pad_dynamic", y, pads_rt, ctx.const(0, t.dtype))


# --- deformable convolution ---------------------------------------------------------------------

def _bilinear_gather(ctx, xg, pos, sizes):
    """Sample ``xg`` [N, G, Cg, prod(sizes)] at fractional positions ``pos`` (one [N, G, K, P] tensor
    per spatial axis), multilinear over the 2^n neighbours, zero outside. Returns [N, G, Cg, K*P]."""
    dt = ctx.type_of(pos[0]).dtype
    n, g, k, p = ctx.type_of(pos[0]).shape
    cg = ctx.type_of(xg).shape[2]
    floors = [ctx.op("floor", q) for q in pos]
    fracs = [ctx.op("sub", q, f) for q, f in zip(pos, floors)]
    lows = [ctx.op("cast", f, to="i64") for f in floors]
    one = ctx.const(1, dt)
    strides = [int(np.prod(sizes[d + 1:])) for d in range(len(sizes))]
    total = None
    for corner in np.ndindex(*(2,) * len(sizes)):
        weight, valid, flat = None, None, None
        for d, c in enumerate(corner):
            idx = ctx.op("add", lows[d], ctx.const(np.int64(c))) if c else lows[d]
            w = fracs[d] if c else ctx.op("sub", one, fracs[d])
            ok = ctx.op("and", ctx.op("greater_equal", idx, ctx.const(np.int64(0))),
                        ctx.op("less", idx, ctx.const(np.int64(sizes[d]))))
            safe = ctx.op("min", ctx.op("max", idx, ctx.const(np.int64(0))), ctx.const(np.int64(sizes[d] - 1)))
            term = ctx.op("mul", safe, ctx.const(np.int64(strides[d])))
            weight = w if weight is None else ctx.op("mul", weight, w)
            valid = ok if valid is None else ctx.op("and", valid, ok)
            flat = term if flat is None else ctx.op("add", flat, term)
        weight = ctx.op("where", valid, weight, ctx.const(0, dt))
        index = ctx.op("broadcast", ctx.op("reshape", flat, shape=[n, g, 1, dims.mul(k, p)]),
                       shape=[n, g, cg, dims.mul(k, p)])
        val = ctx.op("gather_elements", xg, index, axis=3)
        val = ctx.op("mul", val, ctx.op("reshape", weight, shape=[n, g, 1, dims.mul(k, p)]))
        total = val if total is None else ctx.op("add", total, val)
    return total


@converter("DeformConv", since=19)
def deform_conv(ctx):
    """Convolution whose taps move by learned ``offset``s: every tap is sampled multilinearly
    (zero outside), scaled by ``mask``, then contracted with W by a grouped matmul."""
    x_t, w_t, off_t = ctx.type(0), ctx.type(1), ctx.type(2)
    ns = _spatial_rank(ctx)
    if not (x_t.is_static and w_t.is_static and off_t.is_static):
        ctx.fail(f"DeformConv needs static shapes, got X {x_t}, W {w_t}, offset {off_t}")
    kernel = list(w_t.shape[2:])
    strides, dilations = _conv_geometry(ctx, kernel)
    pads = _ints(ctx, "pads", 2 * ns, 0)
    group, og = ctx.attr("group", 1), ctx.attr("offset_group", 1)
    n, c = x_t.shape[:2]
    sizes = list(x_t.shape[2:])
    m = w_t.shape[0]
    out = [window_count(sizes[i], kernel[i], strides[i], dilations[i], pads[i], pads[ns + i]) for i in range(ns)]
    k, p = int(np.prod(kernel)), int(np.prod(out))
    if list(off_t.shape) != [n, og * k * ns] + out:
        ctx.fail(f"offset {off_t} must be [{n}, {og * k * ns}, {', '.join(map(str, out))}]")
    if c % og or c % group or w_t.shape[1] * group != c:
        ctx.fail(f"channels {c} do not fit group {group}, offset_group {og} and W {w_t}")
    dt = x_t.dtype
    off = ctx.op("reshape", ctx.input(2), shape=[n, og, k, ns, p])
    taps = np.stack(np.meshgrid(*[np.arange(kk) for kk in kernel], indexing="ij"), 0).reshape(ns, k)
    outs = np.stack(np.meshgrid(*[np.arange(o) for o in out], indexing="ij"), 0).reshape(ns, p)
    pos = []
    for d in range(ns):
        base = (outs[d][None, :] * strides[d] - pads[d] + taps[d][:, None] * dilations[d]).astype(dt.np)
        od = ctx.op("reshape", ctx.op("slice", off, starts=[d], ends=[d + 1], axes=[3], steps=[1]), shape=[n, og, k, p])
        pos.append(ctx.op("add", od, ctx.const(base)))
    xg = ctx.op("reshape", ctx.input(0), shape=[n, og, c // og, int(np.prod(sizes))])
    cols = _bilinear_gather(ctx, xg, pos, sizes)  # [N, og, C/og, K*P]
    if ctx.has_input(4):
        mask = ctx.op("reshape", ctx.input(4), shape=[n, og, 1, k * p])
        cols = ctx.op("mul", cols, mask)
    cw = c // group
    cols = ctx.op("reshape", cols, shape=[n, group, cw * k, p])
    w = ctx.op("reshape", ctx.input(1), shape=[group, m // group, cw * k])
    y = ctx.op("reshape", ctx.op("matmul", w, cols), shape=[n, m] + out)
    if ctx.has_input(3):
        y = ctx.op("add", y, ctx.op("reshape", ctx.input(3), shape=[m] + [1] * ns))
    return y


# --- RoiAlign -----------------------------------------------------------------------------------

def _roi_axis(ctx, start, bin_size, out, ratio, size, dt):
    """Sample positions along one axis of every ROI -> (low, high) int64 indices and their weights,
    each [R, out*ratio], with RoiAlign's clamping (outside [-1, size] weighs nothing)."""
    frac = (np.arange(out)[:, None] + (np.arange(ratio)[None, :] + 0.5) / ratio).reshape(1, -1)
    v = ctx.op("add", start, ctx.op("mul", bin_size, ctx.const(frac.astype(dt.np))))
    c = lambda x: ctx.const(x, dt)  # noqa: E731
    valid = ctx.op("and", ctx.op("greater_equal", v, c(-1)), ctx.op("less_equal", v, c(size)))
    v = ctx.op("max", v, c(0))
    low = ctx.op("floor", v)
    edge = ctx.op("greater_equal", low, c(size - 1))
    low = ctx.op("where", edge, c(size - 1), low)
    v = ctx.op("where", edge, low, v)
    high = ctx.op("where", edge, low, ctx.op("add", low, c(1)))
    w_high = ctx.op("where", valid, ctx.op("sub", v, low), c(0))
    w_low = ctx.op("where", valid, ctx.op("sub", c(1), ctx.op("sub", v, low)), c(0))
    return [(ctx.op("cast", low, to="i64"), w_low), (ctx.op("cast", high, to="i64"), w_high)]


def _roi_align(ctx, default_mode):
    """Bilinear samples on a fixed ``sampling_ratio`` grid per bin, gathered from X laid out as
    [C, N*H*W], then averaged (or, per ONNX, the max of the weighted corners) per bin."""
    x_t = ctx.type(0)
    if x_t.rank != 4 or not dims.all_static(x_t.shape[1:]):
        ctx.fail(f"X must be [N, C, H, W] with static C, H, W, got {x_t}")
    n, c, h, w = x_t.shape
    oh, ow = ctx.attr("output_height", 1), ctx.attr("output_width", 1)
    ratio = ctx.attr("sampling_ratio", 0)
    if ratio <= 0:
        ctx.fail("sampling_ratio 0 (adaptive, a data-dependent sample count) is not supported; "
                 "give a positive sampling_ratio")
    mode = ctx.attr("mode", "avg")
    if mode not in ("avg", "max"):
        ctx.fail(f"mode '{mode}' is not avg or max")
    ctm = ctx.attr("coordinate_transformation_mode", default_mode)
    if ctm not in ("half_pixel", "output_half_pixel"):
        ctx.fail(f"coordinate_transformation_mode '{ctm}' is not half_pixel or output_half_pixel")
    dt = x_t.dtype
    scale = ctx.attr("spatial_scale", 1.0)
    rois = ctx.op("mul", ctx.input(1), ctx.const(scale, dt))
    if ctm == "half_pixel":
        rois = ctx.op("sub", rois, ctx.const(0.5, dt))
    col = lambda k: slice_last(ctx, rois, k, k + 1)  # noqa: E731  [R, 1]
    axes = []
    for k, (out, size) in enumerate(((oh, h), (ow, w))):
        start = col(1 - k)
        extent = ctx.op("sub", col(3 - k), start)
        if ctm == "output_half_pixel":
            extent = ctx.op("max", extent, ctx.const(1, dt))
        axes.append(_roi_axis(ctx, start, ctx.op("div", extent, ctx.const(out, dt)), out, ratio, size, dt))
    r = ctx.shape(1)[0]
    base = ctx.op("mul", ctx.op("reshape", ctx.op("cast", ctx.input(2), to="i64"), shape=[r, 1, 1]),
                  ctx.const(np.int64(h * w)))
    xf = ctx.op("reshape", ctx.op("transpose", ctx.input(0), perm=[1, 0, 2, 3]), shape=[c, dims.mul(n, h * w)])
    ys, xs = oh * ratio, ow * ratio
    acc = None
    for yi, wy in axes[0]:
        for xi, wx in axes[1]:
            idx = ctx.op("add", ctx.op("add", base, ctx.op("mul", ctx.op("reshape", yi, shape=[r, ys, 1]),
                                                           ctx.const(np.int64(w)))),
                         ctx.op("reshape", xi, shape=[r, 1, xs]))
            wgt = ctx.op("mul", ctx.op("reshape", wy, shape=[r, ys, 1]), ctx.op("reshape", wx, shape=[r, 1, xs]))
            val = ctx.op("mul", ctx.op("gather", xf, idx, axis=1), wgt)  # [C, R, ys, xs]
            acc = val if acc is None else ctx.op("add" if mode == "avg" else "max", acc, val)
    acc = ctx.op("reshape", acc, shape=[c, r, oh, ratio, ow, ratio])
    y = ctx.op("reduce_mean" if mode == "avg" else "reduce_max", acc, axes=[3, 5], keepdims=False)
    return ctx.op("transpose", y, perm=[1, 0, 2, 3])


@converter("RoiAlign", since=10)
def roi_align_10(ctx):
    return _roi_align(ctx, "output_half_pixel")


@converter("RoiAlign", since=16)
def roi_align_16(ctx):
    """Opset 16 added coordinate_transformation_mode, defaulting to half_pixel."""
    return _roi_align(ctx, "half_pixel")


# --- causal depthwise conv with carried state ---------------------------------------------------

@converter("CausalConvWithState", since=27)
def causal_conv_with_state(ctx):
    """concat(past_state or zeros, x) -> depthwise valid conv (+ bias, optional SiLU); the new state
    is the last k-1 positions of the concatenation."""
    act = ctx.attr("activation", "none")
    if act not in ("none", "silu", "swish"):
        ctx.fail(f"activation '{act}' is not none, silu or swish")
    if ctx.rank(0) != 3 or ctx.rank(1) != 3:
        ctx.fail(f"input and weight must be rank 3, got {ctx.type(0)} and {ctx.type(1)}")
    b, c, _ = ctx.shape(0)
    k = ctx.shape(1)[2]
    if not isinstance(k, int) or not isinstance(c, int):
        ctx.fail(f"channels and kernel size must be static, got {ctx.type(0)} and {ctx.type(1)}")
    x = ctx.input(0)
    past = ctx.input(3) if ctx.has_input(3) else \
        ctx.op("broadcast", ctx.const(0, ctx.dtype(0)), shape=[b, c, k - 1])
    padded = ctx.op("concat", past, x, axis=2) if k > 1 else x
    y = ctx.op("conv", *_operands(padded, ctx.input(1), ctx.input(2)), group=c)
    if act != "none":
        y = ctx.op("mul", y, ctx.op("sigmoid", y))
    start = -(k - 1) if k > 1 else 2**62  # k == 1: an empty state
    state = ctx.op("slice", padded, starts=[start], ends=[2**62], axes=[2], steps=[1])
    return [y, state]
