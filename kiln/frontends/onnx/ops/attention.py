"""Converters for ONNX attention ops, as decompositions into matmul, softmax-style reductions and
elementwise ops: Attention (23-25: GQA, past/present key and value, causal and sliding-window
masks, softcap, qk_matmul_output_mode), RotaryEmbedding, LinearAttention (unrolled recurrence)
and FlexAttention (ai.onnx.preview, with its score_mod/prob_mod bodies inlined).
"""
from __future__ import annotations

import numpy as np

from ....ir import dims
from ..registry import converter
from ._helpers import scalar_like, slice_last


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
    return ctx.op("where", allowed, ctx.const(0, dtype), ctx.const(-np.inf, dtype))


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
    zero = ctx.const(0, dt)
    m = ctx.op("where", ctx.op("isinf", m, detect_positive=False), zero, m)
    e = ctx.op("exp", ctx.op("sub", x, m))
    s = ctx.op("reduce_sum", e, axes=[-1], keepdims=True)
    s = ctx.op("where", ctx.op("equal", s, zero), ctx.const(1, dt), s)
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
    root = ctx.const(np.sqrt(scale), dt)
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
        cap = ctx.const(softcap, dt)
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
            probs = ctx.op("where", dead, scalar_like(ctx, 0, probs), probs)
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


# --- rotary embedding ------------ ------------------------------------------------------------



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
    rot = slice_last(ctx, x, 0, r) if r < d else x
    if ctx.attr("interleaved", 0):
        x1, x2 = slice_last(ctx, rot, 0, r, 2), slice_last(ctx, rot, 1, r, 2)
    else:
        x1, x2 = slice_last(ctx, rot, 0, r // 2), slice_last(ctx, rot, r // 2, r)
    real = ctx.op("sub", ctx.op("mul", cos, x1), ctx.op("mul", sin, x2))
    imag = ctx.op("add", ctx.op("mul", sin, x1), ctx.op("mul", cos, x2))
    if ctx.attr("interleaved", 0):
        lead = list(ctx.type_of(real).shape)
        pair = ctx.op("concat", ctx.op("reshape", real, shape=lead + [1]),
                      ctx.op("reshape", imag, shape=lead + [1]), axis=-1)
        rot = ctx.op("reshape", pair, shape=lead[:-1] + [r])
    else:
        rot = ctx.op("concat", real, imag, axis=-1)
    y = rot if r == d else ctx.op("concat", rot, slice_last(ctx, x, r, d), axis=-1)
    return ctx.op("reshape", y, shape=t.shape) if t.rank == 3 else y


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
    root = ctx.const(np.sqrt(np.float32(scale)), dt)
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
