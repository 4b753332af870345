"""Converters for ONNX contractions and neural-network ops: MatMul, Gemm, Conv, pooling, attention.

Conv, ConvTranspose and the pools map onto the core windowed ops (``conv``, ``conv_transpose``,
``max_pool``, ``avg_pool``) with every ``auto_pad`` resolved to explicit pads here. Everything
else is a decomposition into core ops:

- Gemm, global pools, LpPool (avg_pool of |x|^p), Einsum (transpose/reshape/matmul/reduce_sum);
- MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv (int32 accumulation, float64 requantize);
- Attention (23-25), FlexAttention (preview), RotaryEmbedding, LinearAttention (unrolled);
- RNN, GRU, LSTM (unrolled over a static sequence length), CausalConvWithState;
- MaxUnpool (scatter), DeformConv and RoiAlign (bilinear sampling by gathers).
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
    return x if value == 1 else ctx.op("mul", x, _scalar(ctx, value, ctx.type_of(x).dtype))


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
    return ctx.op("pow", x, _scalar(ctx, p, ctx.type_of(x).dtype))


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


# --- attention ----------------------------------------------------------------------------------

def _heads_first(ctx, x, heads):
    """[B, S, H*D] -> [B, H, S, D]."""
    b, s, hd = ctx.type_of(x).shape
    d = dims.div_exact(hd, heads)
    if d is None:
        ctx.fail(f"hidden size {hd} does not split into {heads} heads")
    return ctx.op("transpose", ctx.op("reshape", x, shape=[b, s, heads, d]), perm=[0, 2, 1, 3])


def _neg_inf_where(ctx, allowed, dtype):
    """An additive bias: 0 where ``allowed``, -inf elsewhere."""
    return ctx.op("where", allowed, _scalar(ctx, 0, dtype), _scalar(ctx, -np.inf, dtype))


def _iota(ctx, x, axis):
    """0, 1, ... along dim ``axis`` of x: an int64 vector typed with that dim (a constant when static,
    else computed at run time)."""
    d = ctx.type_of(x).shape[axis]
    if isinstance(d, int):
        return ctx.const(np.arange(d, dtype=np.int64))
    n = ctx.op("shape", x, start=axis, end=axis + 1)
    r = ctx.op("range", ctx.const(np.int64(0)), ctx.op("reshape", n, shape=[]), ctx.const(np.int64(1)))
    return ctx.op("reshape_dynamic", r, n, dims=[d])


def _dim_value(ctx, x, axis):
    """Dim ``axis`` of x as an int64 [1] tensor (a constant when static)."""
    d = ctx.type_of(x).shape[axis]
    return ctx.const(np.array([d], np.int64)) if isinstance(d, int) else ctx.op("shape", x, start=axis, end=axis + 1)


def _positions_bias(ctx, q, k, past, nonpad, causal, left, right, dtype):
    """The causal / sliding-window bias for queries ``q`` and keys ``k`` ([B, H, len, D]). Query ``i``
    sits at absolute position ``p = i + offset`` (``offset`` = past length, or ``nonpad_kv_seqlen[b] -
    q_len`` per batch) and may see key ``j`` when ``j <= p`` (causal), ``p - left <= j`` and
    ``j <= p + right`` (windows, -1 = unbounded). Sequence lengths may be symbolic."""
    q_len, kv_len = ctx.type_of(q).shape[2], ctx.type_of(k).shape[2]
    rows = ctx.op("reshape", _iota(ctx, q, 2), shape=[q_len, 1])
    cols = ctx.op("reshape", _iota(ctx, k, 2), shape=[1, kv_len])
    diff = ctx.op("sub", rows, cols)  # p - j, before the offset
    if past is not None:
        diff = ctx.op("add", diff, _dim_value(ctx, past, 2))
    if nonpad is not None:
        per_batch = ctx.op("sub", ctx.op("reshape", nonpad, shape=[ctx.type_of(nonpad).shape[0], 1, 1, 1]),
                           _dim_value(ctx, q, 2))
        diff = ctx.op("add", diff, per_batch)  # [B, 1, q, kv]
    allowed = None
    conds = []
    if causal:
        conds.append(("greater_equal", 0))
    if left >= 0:
        conds.append(("less_equal", left))
    if right >= 0:
        conds.append(("greater_equal", -right))
    for op_name, bound in conds:
        c = ctx.op(op_name, diff, ctx.const(np.int64(bound)))
        allowed = c if allowed is None else ctx.op("and", allowed, c)
    return _neg_inf_where(ctx, allowed, dtype)


def _add_bias(ctx, bias, part):
    return part if bias is None else ctx.op("add", bias, part)


def _safe_softmax(ctx, x):
    """Softmax over the last axis that gives 0 (not NaN) for a row of -inf."""
    dt = ctx.type_of(x).dtype
    m = ctx.op("reduce_max", x, axes=[-1], keepdims=True)
    zero = _scalar(ctx, 0, dt)
    m = ctx.op("where", ctx.op("isinf", m, detect_positive=False), zero, m)
    e = ctx.op("exp", ctx.op("sub", x, m))
    s = ctx.op("reduce_sum", e, axes=[-1], keepdims=True)
    s = ctx.op("where", ctx.op("equal", s, zero), _scalar(ctx, 1, dt), s)
    return ctx.op("div", e, s)


def _softmax_last(ctx, x):
    m = ctx.op("reduce_max", x, axes=[-1], keepdims=True)
    e = ctx.op("exp", ctx.op("sub", x, m))
    return ctx.op("div", e, ctx.op("reduce_sum", e, axes=[-1], keepdims=True))


@converter("Attention", since=23)
def attention(ctx):
    """Scaled dot-product attention (opset 23; 24 adds nonpad_kv_seqlen; 25 sliding windows).

    softmax(softcap(Q*s @ (K*s)^T) + bias) @ V with s = sqrt(scale); the bias adds the mask,
    the causal frontier, the window and the padding mask; GQA repeats each KV head.
    """
    from ..importer import onnx_dtype

    q, k, v = ctx.input(0), ctx.input(1), ctx.input(2)
    rank = ctx.rank(0)
    if rank not in (3, 4) or ctx.rank(1) != rank or ctx.rank(2) != rank:
        ctx.fail(f"Q, K and V must all be 3-D or all 4-D, got {ctx.type(0)}, {ctx.type(1)}, {ctx.type(2)}")
    dt = ctx.dtype(0)
    if rank == 3:
        hq, hkv = ctx.attr("q_num_heads"), ctx.attr("kv_num_heads")
        if not hq or not hkv:
            ctx.fail("3-D inputs need the q_num_heads and kv_num_heads attributes")
        q, k, v = _heads_first(ctx, q, hq), _heads_first(ctx, k, hkv), _heads_first(ctx, v, hkv)
    elif ctx.opset >= 25 and (ctx.has_attr("q_num_heads") or ctx.has_attr("kv_num_heads")):
        ctx.fail("q_num_heads and kv_num_heads must not be given for 4-D inputs")
    if ctx.has_input(4) != ctx.has_input(5):
        ctx.fail("past_key and past_value must be given together")
    nonpad = ctx.input(6) if ctx.has_input(6) else None
    if nonpad is not None and ctx.has_input(4):
        ctx.fail("nonpad_kv_seqlen cannot be combined with past_key / past_value")
    past = ctx.input(4) if ctx.has_input(4) else None
    if past is not None:
        k = ctx.op("concat", ctx.input(4), k, axis=2)
        v = ctx.op("concat", ctx.input(5), v, axis=2)
    present_k, present_v = k, v
    hq, dq = ctx.type_of(q).shape[1], ctx.type_of(q).shape[3]
    hkv, kv_len = ctx.type_of(k).shape[1:3]

    # scores
    scale = ctx.attr("scale", None)
    if scale is None:
        if not isinstance(dq, int):
            ctx.fail(f"the default scale needs a static head size, got {dq}")
        scale = 1.0 / np.sqrt(dq)
    root = _scalar(ctx, np.sqrt(scale), dt)
    if hq != hkv:
        rep = dims.div_exact(hq, hkv)
        if rep is None:
            ctx.fail(f"{hq} query heads are not a multiple of {hkv} key/value heads")
        k, v = (_repeat_heads(ctx, t, rep) for t in (k, v))
    kt = ctx.op("transpose", ctx.op("mul", k, root), perm=[0, 1, 3, 2])
    qk = ctx.op("matmul", ctx.op("mul", q, root), kt)
    raw_qk = qk
    softcap = ctx.attr("softcap", 0.0)
    if softcap > 0:
        cap = _scalar(ctx, softcap, dt)
        qk = ctx.op("mul", ctx.op("tanh", ctx.op("div", qk, cap)), cap)
    capped_qk = qk

    # bias
    bias = None
    if ctx.has_input(3):
        mask = ctx.input(3)
        mt = ctx.type(3)
        short = dims.sub(kv_len, mt.shape[-1])
        if isinstance(short, int) and short > 0:  # pad the mask's key axis to kv_len (symbolic: assume it covers)
            fill = np.full(tuple(mt.shape[:-1]) + (short,), False if mt.dtype.kind == "bool" else -np.inf)
            mask = ctx.op("concat", mask, ctx.const(fill.astype(mt.dtype.np)), axis=-1)
        bias = _neg_inf_where(ctx, mask, dt) if mt.dtype.kind == "bool" else mask
    causal = bool(ctx.attr("is_causal", 0))
    left, right = ctx.attr("left_window_size", -1), ctx.attr("right_window_size", -1)
    if causal or left >= 0 or right >= 0:
        bias = _add_bias(ctx, bias, _positions_bias(ctx, q, k, past, nonpad, causal, left, right, dt))
    if nonpad is not None:
        seen = ctx.op("less", _iota(ctx, k, 2),
                      ctx.op("reshape", nonpad, shape=[ctx.type_of(nonpad).shape[0], 1]))
        pad_bias = _neg_inf_where(ctx, ctx.op("reshape", seen, shape=[ctx.type_of(nonpad).shape[0], 1, 1, kv_len]), dt)
        bias = _add_bias(ctx, bias, pad_bias)
    if bias is not None:
        qk = ctx.op("add", qk, bias)
    biased_qk = qk

    # softmax (optionally in another precision), with fully-masked rows set to 0
    sp = ctx.attr("softmax_precision", None)
    if sp is not None:
        qk = ctx.op("cast", qk, to=onnx_dtype(sp, "softmax_precision"))
    if bias is None:
        probs = _softmax_last(ctx, qk)
    else:
        probs = _safe_softmax(ctx, qk)
        dead = ctx.op("isinf", ctx.op("reduce_max", bias, axes=[-1], keepdims=True), detect_positive=False)
        dead_value = ctx.const_of(dead)
        if dead_value is None or dead_value.any():  # skip the guard when no row can be fully masked
            probs = ctx.op("where", dead, _scalar(ctx, 0, ctx.type_of(probs).dtype), probs)
    if sp is not None:
        probs = ctx.op("cast", probs, to=dt)
    y = ctx.op("matmul", probs, v)
    if rank == 3:
        yb, yh, ys, yd = ctx.type_of(y).shape
        y = ctx.op("reshape", ctx.op("transpose", y, perm=[0, 2, 1, 3]), shape=[yb, ys, dims.mul(yh, yd)])
    mode = ctx.attr("qk_matmul_output_mode", 0)
    if mode not in (0, 1, 2, 3):
        ctx.fail(f"qk_matmul_output_mode {mode} is not one of 0, 1, 2, 3")
    qk_out = (raw_qk, capped_qk, biased_qk, probs)[mode]
    if ctx.type_of(qk_out).dtype != dt:
        qk_out = ctx.op("cast", qk_out, to=dt)
    return [y, present_k, present_v, qk_out]


def _repeat_heads(ctx, x, rep):
    """[B, H, S, D] -> [B, H*rep, S, D], each head repeated ``rep`` times in place (h0 h0 h1 h1 ...)."""
    b, h, s, d = ctx.type_of(x).shape
    x = ctx.op("broadcast", ctx.op("reshape", x, shape=[b, h, 1, s, d]), shape=[b, h, rep, s, d])
    return ctx.op("reshape", x, shape=[b, dims.mul(h, rep), s, d])


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


# --- rotary embedding and max-unpool ------------------------------------------------------------

def _slice_last(ctx, x, start, end, step=1):
    return ctx.op("slice", x, starts=[start], ends=[end], axes=[-1], steps=[step])


@converter("RotaryEmbedding", since=23)
def rotary_embedding(ctx):
    """Rotate pairs of the first ``rotary_embedding_dim`` features of each head by the cached angles:
    (x1, x2) -> (cos*x1 - sin*x2, sin*x1 + cos*x2), halves or (interleaved) even/odd features."""
    x = ctx.input(0)
    t = ctx.type(0)
    if t.rank == 3:
        nh = ctx.attr("num_heads", 0)
        if not nh:
            ctx.fail("a 3-D input needs the num_heads attribute")
        b, s, hidden = t.shape
        d = dims.div_exact(hidden, nh)
        if d is None:
            ctx.fail(f"hidden size {hidden} does not split into {nh} heads")
        x = ctx.op("reshape", x, shape=[b, s, nh, d])  # [B, S, H, D]
        head_axis = 2
    elif t.rank == 4:
        d = t.shape[3]
        head_axis = 1  # [B, H, S, D]
    else:
        ctx.fail(f"input must be 3-D or 4-D, got {t}")
    if not isinstance(d, int):
        ctx.fail(f"the head size must be static, got {d}")
    r = ctx.attr("rotary_embedding_dim", 0) or d
    if r > d or r % 2:
        ctx.fail(f"rotary_embedding_dim {r} must be even and at most the head size {d}")
    cos, sin = ctx.input(1), ctx.input(2)
    if ctx.has_input(3):
        cos = ctx.op("gather", cos, ctx.input(3), axis=0)
        sin = ctx.op("gather", sin, ctx.input(3), axis=0)
    cb, cs, half = ctx.type_of(cos).shape
    if half != r // 2:
        ctx.fail(f"the caches' last dim {half} is not rotary_embedding_dim / 2 = {r // 2}")
    shape = [cb, cs, half]
    shape.insert(head_axis, 1)
    cos, sin = ctx.op("reshape", cos, shape=shape), ctx.op("reshape", sin, shape=shape)
    rot = _slice_last(ctx, x, 0, r) if r < d else x
    if ctx.attr("interleaved", 0):
        x1, x2 = _slice_last(ctx, rot, 0, r, 2), _slice_last(ctx, rot, 1, r, 2)
    else:
        x1, x2 = _slice_last(ctx, rot, 0, r // 2), _slice_last(ctx, rot, r // 2, r)
    real = ctx.op("sub", ctx.op("mul", cos, x1), ctx.op("mul", sin, x2))
    imag = ctx.op("add", ctx.op("mul", sin, x1), ctx.op("mul", cos, x2))
    if ctx.attr("interleaved", 0):
        lead = list(ctx.type_of(real).shape)
        pair = ctx.op("concat", ctx.op("reshape", real, shape=lead + [1]),
                      ctx.op("reshape", imag, shape=lead + [1]), axis=-1)
        rot = ctx.op("reshape", pair, shape=lead[:-1] + [r])
    else:
        rot = ctx.op("concat", real, imag, axis=-1)
    y = rot if r == d else ctx.op("concat", rot, _slice_last(ctx, x, r, d), axis=-1)
    return ctx.op("reshape", y, shape=t.shape) if t.rank == 3 else y


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
    return ctx.op("pad_dynamic", y, pads_rt, _scalar(ctx, 0, t.dtype))


# --- recurrent networks (unrolled) --------------------------------------------------------------

#: activation name -> (takes alpha, takes beta, default alpha, default beta)
_RNN_ACTIVATIONS = {
    "relu": (False, False, None, None), "tanh": (False, False, None, None),
    "sigmoid": (False, False, None, None), "softsign": (False, False, None, None),
    "softplus": (False, False, None, None), "affine": (True, True, 1.0, 0.0),
    "leakyrelu": (True, False, 0.01, None), "thresholdedrelu": (True, False, 1.0, None),
    "scaledtanh": (True, True, 1.0, 1.0), "hardsigmoid": (True, True, 0.2, 0.5), "elu": (True, False, 1.0, None),
}


def _rnn_activations(ctx, defaults, num_directions):
    """[(name, alpha, beta)] per direction; alphas and betas are consumed in order by the
    activations that take them."""
    names = ctx.attr("activations", None) or defaults * num_directions
    if len(names) != len(defaults) * num_directions:
        ctx.fail(f"activations {names} must list {len(defaults)} function(s) per direction")
    alphas = list(ctx.attr("activation_alpha", None) or [])
    betas = list(ctx.attr("activation_beta", None) or [])
    out = []
    for n in names:
        key = n.lower()
        if key not in _RNN_ACTIVATIONS:
            ctx.fail(f"activation '{n}' is not supported ({', '.join(sorted(_RNN_ACTIVATIONS))})")
        ta, tb, da, db = _RNN_ACTIVATIONS[key]
        a = (alphas.pop(0) if alphas else da) if ta else None
        b = (betas.pop(0) if betas else db) if tb else None
        out.append((key, a, b))
    k = len(defaults)
    return [out[d * k:(d + 1) * k] for d in range(num_directions)]


def _activate(ctx, fn, x):
    name, alpha, beta = fn
    dt = ctx.type_of(x).dtype
    c = lambda v: _scalar(ctx, v, dt)  # noqa: E731
    if name in ("relu", "tanh", "sigmoid"):
        return ctx.op(name, x)
    if name == "softsign":
        return ctx.op("div", x, ctx.op("add", ctx.op("abs", x), c(1)))
    if name == "softplus":  # log(1 + e^x), without overflow: max(x, 0) + log(1 + e^-|x|)
        tail = ctx.op("log", ctx.op("add", ctx.op("exp", ctx.op("neg", ctx.op("abs", x))), c(1)))
        return ctx.op("add", ctx.op("relu", x), tail)
    if name == "affine":
        return ctx.op("add", ctx.op("mul", x, c(alpha)), c(beta))
    if name == "leakyrelu":
        return ctx.op("where", ctx.op("less", x, c(0)), ctx.op("mul", x, c(alpha)), x)
    if name == "thresholdedrelu":
        return ctx.op("where", ctx.op("greater", x, c(alpha)), x, c(0))
    if name == "scaledtanh":
        return ctx.op("mul", ctx.op("tanh", ctx.op("mul", x, c(beta))), c(alpha))
    if name == "hardsigmoid":
        y = ctx.op("add", ctx.op("mul", x, c(alpha)), c(beta))
        return ctx.op("min", ctx.op("max", y, c(0)), c(1))
    if name == "elu":
        neg = ctx.op("mul", ctx.op("sub", ctx.op("exp", x), c(1)), c(alpha))
        return ctx.op("where", ctx.op("less", x, c(0)), neg, x)
    raise AssertionError(name)


class _Recurrence:
    """What every recurrent converter shares: operands per direction, the time loop, outputs."""

    def __init__(self, ctx, gates, default_acts):
        self.ctx = ctx
        self.h = ctx.attr("hidden_size", None)
        w_t = ctx.type(1)
        if w_t.rank != 3 or not isinstance(w_t.shape[1], int):
            ctx.fail(f"W must be [num_directions, {gates}*hidden_size, input_size], got {w_t}")
        if self.h is None:
            self.h = w_t.shape[1] // gates
        self.gates = gates
        direction = ctx.attr("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            ctx.fail(f"direction '{direction}' is not forward, reverse or bidirectional")
        self.dirs = ["forward", "reverse"] if direction == "bidirectional" else [direction]
        if w_t.shape[0] != len(self.dirs):
            ctx.fail(f"W has {w_t.shape[0]} directions, direction '{direction}' needs {len(self.dirs)}")
        self.acts = _rnn_activations(ctx, default_acts, len(self.dirs))
        self.clip = ctx.attr("clip", None)
        self.layout = ctx.attr("layout", 0)
        x = ctx.input(0)
        if self.layout:
            x = ctx.op("transpose", x, perm=[1, 0, 2])
        self.x = x
        self.steps, self.batch = ctx.type_of(x).shape[:2]
        if not isinstance(self.steps, int):
            ctx.fail(f"the sequence length must be static to unroll, got {self.steps}")
        self.dtype = ctx.dtype(0)
        self.lens = None
        if ctx.has_input(4):
            lens = ctx.const_value(4)
            if lens is None or (lens != self.steps).any():
                self.lens = ctx.op("reshape", ctx.input(4), shape=[self.batch, 1])

    def per_direction(self, i, d):
        """Input ``i`` ([num_directions, ...]) for direction ``d``, without its leading axis."""
        t = self.ctx.type(i)
        v = self.ctx.op("slice", self.ctx.input(i), starts=[d], ends=[d + 1], axes=[0], steps=[1])
        return self.ctx.op("reshape", v, shape=list(t.shape[1:]))

    def projections(self, d):
        """(X @ W^T + Wb for every step [T, B, G*H], R^T [H, G*H], Rb [G*H] or None)."""
        ctx = self.ctx
        gh = self.gates * self.h
        xw = ctx.op("matmul", self.x, ctx.op("transpose", self.per_direction(1, d), perm=[1, 0]))
        rt = ctx.op("transpose", self.per_direction(2, d), perm=[1, 0])
        rb = None
        if ctx.has_input(3):
            b = self.per_direction(3, d)
            xw = ctx.op("add", xw, _slice_last(ctx, b, 0, gh))
            rb = _slice_last(ctx, b, gh, 2 * gh)
        return xw, rt, rb

    def initial(self, i, d):
        if self.ctx.has_input(i):
            return self.per_direction(i, d)
        return self.ctx.op("broadcast", _scalar(self.ctx, 0, self.dtype), shape=[self.batch, self.h])

    def gate(self, pre, k, extra=None):
        """Gate ``k`` of a [B, G*H] pre-activation (plus ``extra``), clipped when ``clip`` is set."""
        g = _slice_last(self.ctx, pre, k * self.h, (k + 1) * self.h)
        if extra is not None:
            g = self.ctx.op("add", g, extra)
        if self.clip is not None:
            lo, hi = _scalar(self.ctx, -self.clip, self.dtype), _scalar(self.ctx, self.clip, self.dtype)
            g = self.ctx.op("min", self.ctx.op("max", g, lo), hi)
        return g

    def step_input(self, xw, t):
        return self.ctx.op("reshape", self.ctx.op("slice", xw, starts=[t], ends=[t + 1], axes=[0], steps=[1]),
                           shape=[self.batch, self.gates * self.h])

    def recurrent(self, h, rt, rb):
        y = self.ctx.op("matmul", h, rt)
        return y if rb is None else self.ctx.op("add", y, rb)

    def keep(self, t, new, old):
        """With sequence_lens, steps past a sequence's end keep the old state."""
        if self.lens is None:
            return new
        alive = self.ctx.op("less", self.ctx.const(np.asarray(t, self.ctx.dtype(4).np)), self.lens)
        return self.ctx.op("where", alive, new, old)

    def run(self, cell, n_states):
        """Unroll ``cell(d, x_t, states) -> states`` over time for every direction; returns the
        outputs (Y, final state per kind), in the node's layout."""
        ctx = self.ctx
        ys, finals = [], [[] for _ in range(n_states)]
        zero = ctx.op("broadcast", _scalar(ctx, 0, self.dtype), shape=[self.batch, self.h])
        for d, direction in enumerate(self.dirs):
            states, step = cell.start(d)
            order = range(self.steps) if direction == "forward" else range(self.steps - 1, -1, -1)
            per_t = {}
            for t in order:
                new = step(t, states)
                states = [self.keep(t, n, o) for n, o in zip(new, states)]
                per_t[t] = self.keep(t, new[0], zero)
            ys.append(ctx.op("concat", *[ctx.op("reshape", per_t[t], shape=[1, 1, self.batch, self.h])
                                         for t in range(self.steps)], axis=0))
            for k in range(n_states):
                finals[k].append(ctx.op("reshape", states[k], shape=[1, self.batch, self.h]))
        y = ys[0] if len(ys) == 1 else ctx.op("concat", *ys, axis=1)
        outs = [finals[k][0] if len(self.dirs) == 1 else ctx.op("concat", *finals[k], axis=0)
                for k in range(n_states)]
        if self.layout:
            y = ctx.op("transpose", y, perm=[2, 0, 1, 3])
            outs = [ctx.op("transpose", o, perm=[1, 0, 2]) for o in outs]
        return [y] + outs


class _RNNCell:
    def __init__(self, rec):
        self.rec = rec

    def start(self, d):
        rec = self.rec
        xw, rt, rb = rec.projections(d)
        f = rec.acts[d][0]

        def step(t, states):
            pre = rec.ctx.op("add", rec.step_input(xw, t), rec.recurrent(states[0], rt, rb))
            return [_activate(rec.ctx, f, rec.gate(pre, 0))]
        return [rec.initial(5, d)], step


@converter("RNN", since=7)
def rnn(ctx):
    """H_t = f(X_t W^T + H_{t-1} R^T + Wb + Rb), unrolled over the (static) sequence."""
    rec = _Recurrence(ctx, 1, ["Tanh"])
    return rec.run(_RNNCell(rec), 1)


class _GRUCell:
    def __init__(self, rec, linear_before_reset):
        self.rec, self.lbr = rec, linear_before_reset

    def start(self, d):
        rec, ctx = self.rec, self.rec.ctx
        xw, rt, rb = rec.projections(d)
        f, g = rec.acts[d]
        h = rec.h
        rt_zr = _slice_last(ctx, rt, 0, 2 * h)
        rt_h = _slice_last(ctx, rt, 2 * h, 3 * h)
        rb_zr = None if rb is None else _slice_last(ctx, rb, 0, 2 * h)
        rb_h = None if rb is None else _slice_last(ctx, rb, 2 * h, 3 * h)
        one = _scalar(ctx, 1, rec.dtype)

        def step(t, states):
            (hp,) = states
            xt = rec.step_input(xw, t)
            zr = ctx.op("add", _slice_last(ctx, xt, 0, 2 * h), rec.recurrent(hp, rt_zr, rb_zr))
            z = _activate(ctx, f, rec.gate(zr, 0))
            r = _activate(ctx, f, rec.gate(zr, 1))
            if self.lbr:
                hh = ctx.op("mul", r, rec.recurrent(hp, rt_h, rb_h))
            else:
                hh = rec.recurrent(ctx.op("mul", r, hp), rt_h, rb_h)
            pre = ctx.op("add", _slice_last(ctx, xt, 2 * h, 3 * h), hh)
            cand = _activate(ctx, g, rec.gate(pre, 0))
            hn = ctx.op("add", ctx.op("mul", ctx.op("sub", one, z), cand), ctx.op("mul", z, hp))
            return [hn]
        return [rec.initial(5, d)], step


@converter("GRU", since=7)
def gru(ctx):
    """Gates z, r, h (that order in W, R, B); ``linear_before_reset`` applies r after R_h."""
    rec = _Recurrence(ctx, 3, ["Sigmoid", "Tanh"])
    return rec.run(_GRUCell(rec, ctx.attr("linear_before_reset", 0)), 1)


class _LSTMCell:
    def __init__(self, rec, input_forget):
        self.rec, self.input_forget = rec, input_forget

    def start(self, d):
        rec, ctx = self.rec, self.rec.ctx
        xw, rt, rb = rec.projections(d)
        f, g, hf = rec.acts[d]
        peep = None
        if ctx.has_input(7):
            p = rec.per_direction(7, d)
            peep = [_slice_last(ctx, p, k * rec.h, (k + 1) * rec.h) for k in range(3)]  # i, o, f
        one = _scalar(ctx, 1, rec.dtype)

        def peephole(k, c):
            return None if peep is None else ctx.op("mul", peep[k], c)

        def step(t, states):
            hp, cp = states
            pre = ctx.op("add", rec.step_input(xw, t), rec.recurrent(hp, rt, rb))
            i = _activate(ctx, f, rec.gate(pre, 0, peephole(0, cp)))
            if self.input_forget:
                fg = ctx.op("sub", one, i)
            else:
                fg = _activate(ctx, f, rec.gate(pre, 2, peephole(2, cp)))
            cand = _activate(ctx, g, rec.gate(pre, 3))
            c = ctx.op("add", ctx.op("mul", fg, cp), ctx.op("mul", i, cand))
            o = _activate(ctx, f, rec.gate(pre, 1, peephole(1, c)))
            return [ctx.op("mul", o, _activate(ctx, hf, c)), c]
        return [rec.initial(5, d), rec.initial(6, d)], step


@converter("LSTM", since=7)
def lstm(ctx):
    """Gates i, o, f, c (that order in W, R, B); peepholes P are [i, o, f]."""
    rec = _Recurrence(ctx, 4, ["Sigmoid", "Tanh", "Tanh"])
    return rec.run(_LSTMCell(rec, ctx.attr("input_forget", 0)), 2)


# --- linear attention (unrolled recurrence) -----------------------------------------------------

def _time_step(ctx, x, t, axis):
    return ctx.op("slice", x, starts=[t], ends=[t + 1], axes=[axis], steps=[1])


@converter("LinearAttention", since=27)
def linear_attention(ctx):
    """The state S [B, Hkv, dk, dv] (float32) is updated once per step and read by every query:

        S *= exp(decay_t)                      (gated rules)
        v_t = beta_t * (v_t - k_t @ S)         (delta rules)
        S += k_t^T v_t;  o_t = scale * q_t @ S (KV heads repeated for GQA)
    """
    rule = ctx.attr("update_rule", "gated_delta")
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        ctx.fail(f"update_rule '{rule}' is not linear, gated, delta or gated_delta")
    gating, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if gating != ctx.has_input(4) or delta != ctx.has_input(5):
        ctx.fail(f"update_rule '{rule}' needs {'decay' if gating else 'no decay'} and {'beta' if delta else 'no beta'}")
    hq, hkv = ctx.attr("q_num_heads", 0), ctx.attr("kv_num_heads", 0)
    if hq <= 0 or hkv <= 0 or hq % hkv:
        ctx.fail(f"q_num_heads {hq} must be a positive multiple of kv_num_heads {hkv}")
    if any(ctx.rank(i) != 3 for i in range(3)):
        ctx.fail("query, key and value must be [B, T, H*D]")
    out_dt = ctx.dtype(0)
    f32 = lambda v: v if ctx.type_of(v).dtype.name == "f32" else ctx.op("cast", v, to="f32")  # noqa: E731
    q = _heads_first(ctx, f32(ctx.input(0)), hq)
    k = _heads_first(ctx, f32(ctx.input(1)), hkv)
    v = _heads_first(ctx, f32(ctx.input(2)), hkv)
    b, _, steps, dk = ctx.type_of(k).shape
    dv = ctx.type_of(v).shape[3]
    if not isinstance(steps, int):
        ctx.fail(f"the sequence length must be static to unroll, got {steps}")
    if gating:
        dec = f32(ctx.input(4))
        last = ctx.shape(4)[-1]
        if last == hkv:
            dec = ctx.op("reshape", dec, shape=[b, steps, hkv, 1])
            dec = ctx.op("transpose", dec, perm=[0, 2, 3, 1])  # [B, H, 1, T]
        else:
            dec = ctx.op("transpose", _heads_first(ctx, dec, hkv), perm=[0, 1, 3, 2])  # [B, H, dk, T]
        dec = ctx.op("exp", dec)
    if delta:
        bt = ctx.shape(5)[-1]
        beta = ctx.op("transpose", ctx.op("reshape", f32(ctx.input(5)), shape=[b, steps, bt, 1]), perm=[0, 2, 1, 3])
    state = f32(ctx.input(3)) if ctx.has_input(3) else \
        ctx.op("broadcast", ctx.const(np.float32(0)), shape=[b, hkv, dk, dv])
    scale = ctx.attr("scale", 0.0) or 1.0 / np.sqrt(dk)
    outs = []
    for t in range(steps):
        k_t, v_t = _time_step(ctx, k, t, 2), _time_step(ctx, v, t, 2)  # [B, H, 1, d]
        if gating:
            state = ctx.op("mul", state, _time_step(ctx, dec, t, 3))
        if delta:
            v_t = ctx.op("mul", _time_step(ctx, beta, t, 2), ctx.op("sub", v_t, ctx.op("matmul", k_t, state)))
        state = ctx.op("add", state, ctx.op("mul", ctx.op("transpose", k_t, perm=[0, 1, 3, 2]), v_t))
        read = state if hq == hkv else _repeat_heads(ctx, state, hq // hkv)
        outs.append(ctx.op("matmul", _time_step(ctx, q, t, 2), read))
    y = outs[0] if steps == 1 else ctx.op("concat", *outs, axis=2)
    y = ctx.op("mul", y, ctx.const(np.float32(scale)))
    y = ctx.op("reshape", ctx.op("transpose", y, perm=[0, 2, 1, 3]), shape=[b, steps, dims.mul(hq, dv)])
    if out_dt.name != "f32":
        y = ctx.op("cast", y, to=out_dt)
    state_dt = ctx.dtype(3) if ctx.has_input(3) else out_dt
    if state_dt.name != "f32":
        state = ctx.op("cast", state, to=state_dt)
    return [y, state]


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
    one = _scalar(ctx, 1, dt)
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
        weight = ctx.op("where", valid, weight, _scalar(ctx, 0, dt))
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
    c = lambda x: _scalar(ctx, x, dt)  # noqa: E731
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
    rois = ctx.op("mul", ctx.input(1), _scalar(ctx, scale, dt))
    if ctm == "half_pixel":
        rois = ctx.op("sub", rois, _scalar(ctx, 0.5, dt))
    col = lambda k: _slice_last(ctx, rois, k, k + 1)  # noqa: E731  [R, 1]
    axes = []
    for k, (out, size) in enumerate(((oh, h), (ow, w))):
        start = col(1 - k)
        extent = ctx.op("sub", col(3 - k), start)
        if ctm == "output_half_pixel":
            extent = ctx.op("max", extent, _scalar(ctx, 1, dt))
        axes.append(_roi_axis(ctx, start, ctx.op("div", extent, _scalar(ctx, out, dt)), out, ratio, size, dt))
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
        ctx.op("broadcast", _scalar(ctx, 0, ctx.dtype(0)), shape=[b, c, k - 1])
    padded = ctx.op("concat", past, x, axis=2) if k > 1 else x
    y = ctx.op("conv", *_operands(padded, ctx.input(1), ctx.input(2)), group=c)
    if act != "none":
        y = ctx.op("mul", y, ctx.op("sigmoid", y))
    start = -(k - 1) if k > 1 else 2**62  # k == 1: an empty state
    state = ctx.op("slice", padded, starts=[start], ends=[2**62], axes=[2], steps=[1])
    return [y, state]


# --- FlexAttention (ai.onnx.preview) ------------------------------------------------------------

@converter("FlexAttention", since=1, domain="ai.onnx.preview")
def flex_attention(ctx):
    """softmax(score_mod(Q*s @ (K*s)^T)) -> prob_mod -> @ V, s = sqrt(scale); scores in
    ``softmax_precision`` (float32 for narrow inputs); GQA repeats each KV head."""
    from ..importer import onnx_dtype

    if any(ctx.rank(i) != 4 for i in range(3)):
        ctx.fail(f"Q, K and V must be 4-D, got {ctx.type(0)}, {ctx.type(1)}, {ctx.type(2)}")
    dt = ctx.dtype(0)
    q, k, v = ctx.input(0), ctx.input(1), ctx.input(2)
    hq, e = ctx.shape(0)[1], ctx.shape(0)[3]
    hkv = ctx.shape(1)[1]
    scale = ctx.attr("scale", None)
    if scale is None:
        if not isinstance(e, int):
            ctx.fail(f"the default scale needs a static head size, got {e}")
        scale = 1.0 / np.sqrt(e)
    if hq != hkv:
        rep = dims.div_exact(hq, hkv)
        if rep is None:
            ctx.fail(f"{hq} query heads are not a multiple of {hkv} key/value heads")
        k, v = _repeat_heads(ctx, k, rep), _repeat_heads(ctx, v, rep)
    root = _scalar(ctx, np.sqrt(np.float32(scale)), dt)
    scores = ctx.op("matmul", ctx.op("mul", q, root), ctx.op("transpose", ctx.op("mul", k, root), perm=[0, 1, 3, 2]))
    sp = ctx.attr("softmax_precision", None)
    cdt = onnx_dtype(sp, "softmax_precision") if sp is not None else (dt if dt.bits >= 32 else onnx_dtype(1, ""))
    if cdt != dt:
        scores = ctx.op("cast", scores, to=cdt)
    if ctx.has_attr("score_mod"):
        (scores,) = ctx.inline_region("score_mod", [scores])
    probs = _softmax_last(ctx, scores)
    if ctx.has_attr("prob_mod"):
        (probs,) = ctx.inline_region("prob_mod", [probs])
    if cdt != dt:
        v = ctx.op("cast", v, to=cdt)
    y = ctx.op("matmul", probs, v)
    return y if cdt == dt else ctx.op("cast", y, to=dt)
