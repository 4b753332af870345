"""Converters for ONNX signal processing and feature extraction: DFT, STFT, the window functions,
MelWeightMatrix and TfIdfVectorizer (token-id n-gram counts).

None of these adds a core op. A DFT along one axis is two matrix products with cos / sin
matrices (``[M, L]``, one row per output bin, one column per input sample): the axis is moved
next to the trailing real/imaginary dim, ``C_re @ x`` and ``C_im @ x`` give ``[..., M, 1 or 2]``
and the complex product is put together with slices, a sub and an add. The matrices are built
from ``range`` / ``mod`` / ``cos`` / ``sin`` on the sizes, so with static sizes they fold into
constants at import time; sizes only known at run time (e.g. an STFT's ``frame_length`` fed as
a graph input) give the same ops evaluated at run time. STFT gathers the frames with an index
matrix, multiplies by the window and takes the one-sided DFT of each frame. The windows and
the mel filter bank are elementwise formulas over ``range``: constants when their sizes are.

Version notes: DFT-17 takes ``axis`` as an attribute (default 1), DFT-20 as an optional input
(default -2); a run-time axis becomes a chain of ``if`` nodes, one branch per possible axis.
DFT with ``inverse=1, onesided=1`` is the inverse real FFT: a one-sided spectrum in, a real
signal (last dim 1) of ``dft_length`` (default ``2 * (bins - 1)``) samples out.

TfIdfVectorizer compares gathered token windows with the (constant) n-gram pool; only integer
token ids are supported (kiln has no string tensors), and the row length must be static.
"""
from __future__ import annotations

import math

import numpy as np

from ....ir import dims as _dims
from ....ir import dtypes as kd
from ....ir.builder import GraphBuilder, infer_node
from ....ir.registry import get as get_op
from ..registry import converter
from ._helpers import cast

I64, F64 = kd.int64, kd.float64

# --- emitting into the main graph or into a region ----------------------------------------------
# The helpers below emit through ``e``: the node's context itself (into its own graph; constant
# operands fold), or a ``_Region``, which offers the same ``op`` / ``const`` / ``type_of`` / ``fail``.


class _Region:
    """Emits into a fresh region graph (an ``if`` branch); constant operands fold here too."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.b = GraphBuilder(name)

    def op(self, name, *inputs, **attrs):
        opdef = get_op(name)
        ins = tuple("" if i is None else i for i in inputs)
        consts = self.b.graph.constants
        if opdef.outputs == 1 and any(ins) and all((not i) or i in consts for i in ins):
            nattrs = opdef.normalize_attrs(attrs, f"op '{name}'")
            (t,) = infer_node(opdef, [self.b.type_of(i) if i else None for i in ins], nattrs, f"op '{name}'")
            if all(isinstance(d, int) or d == _dims.UNKNOWN for d in t.shape):  # '?': known once evaluated
                return self.b.const(opdef.reference(*[consts[i] if i else None for i in ins], **nattrs), name)
        return self.b.op(name, *inputs, **attrs)

    def const(self, array):
        return self.b.const(np.asarray(array))

    def type_of(self, v):
        return self.b.type_of(v)

    def fail(self, msg):
        self.ctx.fail(msg)


# --- small helpers ------------------------------------------------------------------------------


def _i64(e, value):
    return e.const(np.asarray(value, dtype=np.int64))


def _f64(e, value):
    return e.const(np.asarray(value, dtype=np.float64))


def _scalar(e, v, to=I64, what="input"):
    """A one-element input as a rank-0 value of dtype ``to``."""
    t = e.type_of(v)
    if t.size != 1:
        e.fail(f"{what} must be a scalar, got {t}")
    v = cast(e, v, to)
    return v if t.rank == 0 else e.op("reshape", v, shape=())


def _dim(e, x, axis):
    """Dim ``axis`` of ``x`` as an int64 scalar value (a constant when the dim is static)."""
    d = e.type_of(x).shape[axis]
    if isinstance(d, int):
        return _i64(e, d)
    return e.op("reshape", e.op("shape", x, start=axis, end=axis + 1), shape=())


def _iota(e, n):
    """``[0, 1, ..., n-1]`` (int64) for an int64 scalar value ``n``."""
    return e.op("range", _i64(e, 0), n, _i64(e, 1))


def _column(e, v):
    """A 1-D value ``[n]`` as ``[n, 1]``."""
    return e.op("reshape", v, shape=(e.type_of(v).shape[0], 1))


def _last(e, v, k):
    """Component ``k`` (kept as a dim of 1) of the trailing real/imaginary dim."""
    r = e.type_of(v).rank
    return e.op("slice", v, starts=(k,), ends=(k + 1,), axes=(r - 1,), steps=(1,))


def _static_int(e, ctx, i, what):
    """Input ``i`` as a Python int when it is a constant, else None."""
    val = ctx.const_value(i)
    if val is None:
        return None
    if val.size != 1:
        e.fail(f"{what} must be a scalar, got shape {list(val.shape)}")
    return int(val.reshape(-1)[0])


# --- DFT ------------------------------------------------------------------------------------------


def dft(e, x, axis: int, n=None, inverse=False, onesided=False):
    """DFT of ``x`` (``[..., 1]`` real or ``[..., 2]`` complex) along the static ``axis``.

    ``n`` (an int64 scalar value or None) is the DFT length: the signal is cut or zero-padded to
    it. Forward: ``y[j] = sum_k x[k] exp(-2 pi i j k / n)``, ``j < n`` (``n // 2 + 1`` one-sided).
    Inverse: the sign is ``+`` and the sum is divided by ``n``. Inverse one-sided: the input
    holds bins ``0 .. n // 2`` of a Hermitian spectrum and the output is real (last dim 1).
    """
    t = e.type_of(x)
    r, c = t.rank, t.shape[-1]
    if c not in (1, 2):
        e.fail(f"the last dim of the input must be 1 (real) or 2 (complex), got {t}")
    if not 0 <= axis <= r - 2:
        e.fail(f"axis {axis} is out of range for an input of rank {r} (the last dim holds real/imaginary)")
    if not t.dtype.is_float:
        e.fail(f"the input must be a float tensor, got {t}")
    perm = list(range(r))
    perm[axis], perm[r - 2] = perm[r - 2], perm[axis]
    if axis != r - 2:
        x = e.op("transpose", x, perm=perm)
    irfft = inverse and onesided
    length = _dim(e, x, r - 2)
    if n is None:
        n = e.op("mul", e.op("sub", length, _i64(e, 1)), _i64(e, 2)) if irfft else length
    half = e.op("add", e.op("div", n, _i64(e, 2)), _i64(e, 1))  # n // 2 + 1
    m = half if onesided and not inverse else n  # output bins
    k, j = _iota(e, length), _iota(e, m)
    jk = e.op("mul", _column(e, j), k)  # [M, L]
    nf = cast(e, n, F64)
    theta = e.op("mul", cast(e, e.op("mod", jk, n), F64), e.op("div", _f64(e, 2 * math.pi), nf))
    cr, ci = e.op("cos", theta), e.op("sin", theta)
    if not inverse:
        ci = e.op("neg", ci)
    # per input sample: 0 past the signal's cut, 1 / n for inverses, 2 for the mirrored irfft bins
    weight = cast(e, e.op("less", k, half if irfft else n), F64)
    if inverse:
        weight = e.op("div", weight, nf)
    if irfft:
        once = e.op("or", e.op("equal", k, _i64(e, 0)), e.op("equal", e.op("mul", k, _i64(e, 2)), n))
        weight = e.op("mul", weight, e.op("where", once, _f64(e, 1.0), _f64(e, 2.0)))
    cr, ci = e.op("mul", cr, weight), e.op("mul", ci, weight)
    ct = t.dtype if t.dtype in (kd.float32, kd.float64) else kd.float32
    cr, ci, xc = cast(e, cr, ct), cast(e, ci, ct), cast(e, x, ct)
    a, b = e.op("matmul", cr, xc), e.op("matmul", ci, xc)  # [..., M, c]
    if c == 1:
        yr, yi = a, b
    else:
        yr = e.op("sub", _last(e, a, 0), _last(e, b, 1))
        yi = e.op("add", _last(e, b, 0), _last(e, a, 1))
    y = yr if irfft else e.op("concat", yr, yi, axis=r - 1)
    y = cast(e, y, t.dtype)
    if axis != r - 2:
        y = e.op("transpose", y, perm=perm)
    return y


def _dft_length(ctx, e, i):
    if not ctx.has_input(i):
        return None
    val = _static_int(e, ctx, i, "dft_length")
    if val is not None:
        if val < 1:
            ctx.fail(f"dft_length must be >= 1, got {val}")
        return _i64(e, val)
    return _scalar(e, ctx.input(i), what="dft_length")


def _check_axis(ctx, axis, rank):
    if not -rank <= axis <= rank - 2 or axis == -1:
        ctx.fail(f"axis {axis} is out of range for an input of rank {rank}: it must name a signal axis, "
                 f"not the last (real/imaginary) dim")
    return axis % rank


def _dft_node(ctx, axis):
    e = ctx  # emit into this node's graph
    return dft(e, ctx.input(0), _check_axis(ctx, axis, ctx.rank(0)), _dft_length(ctx, e, 1),
               bool(ctx.attr("inverse", 0)), bool(ctx.attr("onesided", 0)))


@converter("DFT", since=17)
def dft_17(ctx):
    """DFT-17: ``axis`` is an attribute (default 1)."""
    return _dft_node(ctx, int(ctx.attr("axis", 1)))


@converter("DFT", since=20)
def dft_20(ctx):
    """DFT-20: ``axis`` is an optional scalar input (default -2)."""
    if not ctx.has_input(2):
        return _dft_node(ctx, -2)
    e = ctx  # emit into this node's graph
    val = _static_int(e, ctx, 2, "axis")
    if val is not None:
        return _dft_node(ctx, val)
    # a run-time axis: one `if` branch per signal axis the value may name
    rank = ctx.rank(0)
    axis = e.op("mod", _scalar(e, ctx.input(2), what="axis"), _i64(e, rank))  # -r .. -2 -> 0 .. r-2
    operands = [ctx.input(0)]
    n = _dft_length(ctx, e, 1)
    n_static = None if n is None else ctx.const_of(n)
    if n is not None and n_static is None:
        operands.append(n)  # a run-time length enters the branches as an operand
    inverse, onesided = bool(ctx.attr("inverse", 0)), bool(ctx.attr("onesided", 0))

    def body(r, ins, a):
        # a constant length is re-made inside each branch, so the matrices fold there too
        length = ins[1] if len(ins) > 1 else (None if n_static is None else _i64(r, n_static))
        return dft(r, ins[0], a, length, inverse, onesided)

    return _axis_chain(ctx, e, axis, list(range(rank - 1)), operands, body)


def _axis_chain(ctx, e, axis, candidates, operands, body):
    """``body`` for whichever of the static ``candidates`` the run-time ``axis`` equals (the last
    candidate otherwise), as nested ``if`` nodes whose branches take ``(axis, *operands)``."""
    types = [e.type_of(v) for v in [axis] + operands]

    def branch(cands):
        r = _Region(ctx, f"axis_{cands[0]}" if len(cands) == 1 else f"axis_{cands[0]}_or_more")
        ins = [r.b.input(r.b.fresh(f"in{i}"), t.dtype, t.shape) for i, t in enumerate(types)]
        if len(cands) == 1:
            out = body(r, ins[1:], cands[0])
        else:
            out = _select(r, ins[0], ins, cands)
        graph = r.b.build([out])
        graph.prune_constants()  # the intermediates of folded matrices
        return graph

    def _select(em, ax, ins, cands):
        cond = em.op("equal", ax, _i64(em, cands[0]))
        return em.op("if", cond, *ins, then_branch=branch(cands[:1]), else_branch=branch(cands[1:]))[0]

    if len(candidates) == 1:
        return body(e, operands, candidates[0])
    return _select(e, axis, [axis] + operands, candidates)


# --- STFT -----------------------------------------------------------------------------------------


@converter("STFT", since=17)
def stft(ctx):
    """Frames ``x[:, s*i : s*i + frame_length]`` (a gather), times the window, one-sided DFT each."""
    e = ctx  # emit into this node's graph
    t = ctx.type(0)
    if t.rank != 3:
        ctx.fail(f"signal must be [batch, length, 1 or 2], got {t}")
    x = ctx.input(0)
    step = _scalar(e, ctx.input(1), what="frame_step")
    window = ctx.input(2)
    if window is not None and ctx.rank(2) != 1:
        ctx.fail(f"window must be 1-D, got {ctx.type(2)}")
    if ctx.has_input(3):
        fl_static = _static_int(e, ctx, 3, "frame_length")
        wl = ctx.shape(2)[0] if window is not None else None
        if fl_static is not None and isinstance(wl, int) and wl != fl_static:
            ctx.fail(f"frame_length {fl_static} differs from the window's length {wl}")
        frame_length = _i64(e, fl_static) if fl_static is not None else _scalar(e, ctx.input(3), what="frame_length")
    elif window is not None:
        frame_length = _dim(e, window, 0)
    else:
        frame_length = _dim(e, x, 1)
    length = _dim(e, x, 1)
    # 1 + (length - frame_length) // step, and no frames when the signal is shorter than one
    n_frames = e.op("max", e.op("div", e.op("add", e.op("sub", length, frame_length), step), step), _i64(e, 0))
    starts = e.op("mul", _iota(e, n_frames), step)
    index = e.op("add", _column(e, starts), _iota(e, frame_length))  # [frames, frame_length]
    frames = e.op("gather", x, index, axis=1)  # [batch, frames, frame_length, c]
    if window is not None:
        w = cast(e, window, t.dtype)
        frames = e.op("mul", frames, _column(e, w))
    return dft(e, frames, 2, frame_length, inverse=False, onesided=bool(ctx.attr("onesided", 1)))


# --- windows ----------------------------------------------------------------------------------------


def _out_dtype(ctx, default=kd.float32):
    from ..importer import onnx_dtype

    code = ctx.attr("output_datatype", 1)
    dt = onnx_dtype(code, f"{ctx.node.op_type} node '{ctx.name}' attribute 'output_datatype'")
    return dt or default


def _cosine_window(ctx, coefficients):
    """``sum_m (-1)^m a_m cos(2 pi m n / N)``, N = size (periodic) or size - 1 (symmetric)."""
    e = ctx  # emit into this node's graph
    size = _scalar(e, ctx.input(0), what="size")
    periodic = bool(ctx.attr("periodic", 1))
    denom = size if periodic else e.op("sub", size, _i64(e, 1))
    phase = e.op("div", e.op("mul", cast(e, _iota(e, size), F64), _f64(e, 2 * math.pi)), cast(e, denom, F64))
    y = _f64(e, coefficients[0])
    for m, a in enumerate(coefficients[1:], start=1):
        term = e.op("mul", e.op("cos", phase if m == 1 else e.op("mul", phase, _f64(e, m))), _f64(e, a))
        y = e.op("sub" if m % 2 else "add", y, term)
    return cast(e, y, _out_dtype(ctx))


@converter("HannWindow", since=17)
def hann_window(ctx):
    return _cosine_window(ctx, (0.5, 0.5))


@converter("HammingWindow", since=17)
def hamming_window(ctx):
    return _cosine_window(ctx, (25.0 / 46.0, 21.0 / 46.0))


@converter("BlackmanWindow", since=17)
def blackman_window(ctx):
    return _cosine_window(ctx, (0.42, 0.5, 0.08))


# --- MelWeightMatrix ------------------------------------------------------------------------------


@converter("MelWeightMatrix", since=17)
def mel_weight_matrix(ctx):
    """``[dft_length // 2 + 1, num_mel_bins]`` triangular filters, evenly spaced on the mel scale."""
    e = ctx  # emit into this node's graph
    for i in range(5):
        if not ctx.has_input(i):
            ctx.fail(f"input {i} is required")
    n_mel = _scalar(e, ctx.input(0), what="num_mel_bins")
    dft_length = _scalar(e, ctx.input(1), what="dft_length")
    rate = _scalar(e, ctx.input(2), F64, what="sample_rate")
    lo = _scalar(e, ctx.input(3), F64, what="lower_edge_hertz")
    hi = _scalar(e, ctx.input(4), F64, what="upper_edge_hertz")

    def mel(hz):  # 2595 * log10(1 + hz / 700)
        return e.op("mul", e.op("log", e.op("add", _f64(e, 1.0), e.op("div", hz, _f64(e, 700.0)))),
                    _f64(e, 2595.0 / math.log(10)))

    lo_mel, hi_mel = mel(lo), mel(hi)
    n_points = e.op("add", n_mel, _i64(e, 2))
    step = e.op("div", e.op("sub", hi_mel, lo_mel), cast(e, n_points, F64))
    points = e.op("add", e.op("mul", cast(e, _iota(e, n_points), F64), step), lo_mel)
    hz = e.op("mul", e.op("sub", e.op("exp", e.op("mul", points, _f64(e, math.log(10) / 2595.0))), _f64(e, 1.0)),
              _f64(e, 700.0))
    scale = cast(e, e.op("add", dft_length, _i64(e, 1)), F64)
    # FFT bin of each point: (dft_length + 1) * hz // rate, as numpy's floor division computes it
    # ((a - a mod b) / b, rounded), so bins on exact multiples agree with the spec's formula
    scaled = e.op("mul", scale, hz)
    bins = cast(e, e.op("round", e.op("div", e.op("sub", scaled, e.op("mod", scaled, rate)), rate)), I64)
    idx = _iota(e, n_mel)
    lower = e.op("gather", bins, idx, axis=0)
    center = e.op("gather", bins, e.op("add", idx, _i64(e, 1)), axis=0)
    upper = e.op("gather", bins, e.op("add", idx, _i64(e, 2)), axis=0)
    n_spec = e.op("add", e.op("div", dft_length, _i64(e, 2)), _i64(e, 1))
    j = _column(e, _iota(e, n_spec))  # [bins, 1] against [mel] filters
    one = _i64(e, 1)

    def ratio(num, den):
        return e.op("div", cast(e, num, F64), cast(e, e.op("max", den, one), F64))

    rising = e.op("where", e.op("greater", center, lower), ratio(e.op("sub", j, lower), e.op("sub", center, lower)),
                  _f64(e, 1.0))
    falling = ratio(e.op("sub", upper, j), e.op("sub", upper, center))
    in_rise = e.op("and", e.op("greater_equal", j, lower), e.op("less_equal", j, center))
    in_fall = e.op("and", e.op("greater_equal", j, center), e.op("less", j, upper))
    out = e.op("where", in_fall, falling, e.op("where", in_rise, rising, _f64(e, 0.0)))
    return cast(e, out, _out_dtype(ctx))



# --- TfIdfVectorizer ------------------------------------------------------------------------------


def _tfidf_pool(ctx):
    """The n-grams the node counts: {size: (grams [G, size] int64, output index per gram [G])}."""
    if ctx.has_attr("pool_strings") and not ctx.has_attr("pool_int64s"):
        ctx.fail("string n-gram pools (pool_strings) are not supported: kiln has no string tensors")
    pool = np.asarray(ctx.attr("pool_int64s", []), dtype=np.int64)
    counts = [int(c) for c in ctx.attr("ngram_counts", [])]
    indexes = [int(i) for i in ctx.attr("ngram_indexes", [])]
    lo, hi = int(ctx.attr("min_gram_length", 0)), int(ctx.attr("max_gram_length", 0))
    if not 1 <= lo <= hi:
        ctx.fail(f"min_gram_length {lo} and max_gram_length {hi} must satisfy 1 <= min <= max")
    if not indexes:
        ctx.fail("ngram_indexes is empty")
    table: dict = {}  # gram (tuple) -> output index; a repeated gram keeps its last id, as ONNX does
    gram_id = 0
    for level, start in enumerate(counts):
        size = level + 1
        end = counts[level + 1] if level + 1 < len(counts) else len(pool)
        if not 0 <= start <= end <= len(pool):
            ctx.fail(f"ngram_counts {counts} do not index the pool of {len(pool)} items")
        for g in range((end - start) // size):
            if lo <= size <= hi:
                if gram_id >= len(indexes):
                    ctx.fail(f"ngram_indexes has {len(indexes)} entries, fewer than the pool's n-grams")
                table[tuple(pool[start + g * size:start + (g + 1) * size])] = indexes[gram_id]
            gram_id += 1
    by_size: dict = {}
    for gram, out in table.items():
        by_size.setdefault(len(gram), []).append((gram, out))
    return {n: (np.array([g for g, _ in v], np.int64).reshape(len(v), n), np.array([o for _, o in v], np.int64))
            for n, v in sorted(by_size.items())}, max(indexes) + 1


@converter("TfIdfVectorizer", since=9)
def tfidf_vectorizer(ctx):
    """n-gram counts by comparison with the constant pool, then TF / IDF / TFIDF weighting.

    For each n-gram size ``n`` and skip distance ``d`` (``d = 1`` only for unigrams, else
    ``1 .. max_skip_count + 1``) the windows ``x[s], x[s + d], ..., x[s + (n - 1) d]`` are gathered
    ``[B, S, n]``, compared with the pool's n-grams of that size ``[G, n]``, reduced to matches per
    gram ``[B, G]`` and routed to output columns by a one-hot matrix product.
    """
    e = ctx  # emit into this node's graph
    t = ctx.type(0)
    mode = ctx.attr("mode", "")
    if mode not in ("TF", "IDF", "TFIDF"):
        ctx.fail(f"mode must be 'TF', 'IDF' or 'TFIDF', got {mode!r}")
    if not t.dtype.is_int:
        ctx.fail(f"input must be an int32/int64 tensor of token ids, got {t} (string tensors are not supported)")
    if t.rank not in (1, 2):
        ctx.fail(f"input must be [C] or [B, C], got {t}")
    length = t.shape[-1]
    if not isinstance(length, int):
        ctx.fail(f"the row length (last dim of {t}) must be known at compile time")
    skip = int(ctx.attr("max_skip_count", 0))
    if skip < 0:
        ctx.fail(f"max_skip_count must be >= 0, got {skip}")
    pools, out_size = _tfidf_pool(ctx)
    x = cast(e, ctx.input(0), I64)
    if t.rank == 1:
        x = e.op("reshape", x, shape=(1, length))
    batch = e.type_of(x).shape[0]
    onehots = {n: np.eye(out_size, dtype=np.float32)[outs] for n, (_, outs) in pools.items()}
    total = None
    for n, (grams, _) in pools.items():
        for d in range(1, (1 if n == 1 else skip + 1) + 1):
            span = (n - 1) * d
            if span >= length:
                break
            index = np.arange(length - span)[:, None] + d * np.arange(n)[None, :]  # [S, n]
            windows = e.op("gather", x, e.const(index), axis=1)  # [B, S, n]
            windows = e.op("reshape", windows, shape=(batch, length - span, 1, n))
            hit = e.op("cast", e.op("equal", windows, e.const(grams)), to=kd.float32)  # [B, S, G, n]
            per_gram = e.op("reduce_sum", e.op("reduce_min", hit, axes=(3,), keepdims=False), axes=(1,),
                            keepdims=False)  # [B, G]
            counts = e.op("matmul", per_gram, e.const(onehots[n]))
            total = counts if total is None else e.op("add", total, counts)
    if total is None:
        total = e.op("broadcast", e.const(np.zeros((1, out_size), np.float32)), shape=(batch, out_size))
    weights = ctx.attr("weights", None)
    w = None if weights is None or len(weights) == 0 else np.asarray(weights, np.float32)
    if w is not None and w.shape != (out_size,):
        ctx.fail(f"weights has {w.size} entries, the output has {out_size} columns")
    if mode == "IDF":
        seen = e.op("greater", total, e.const(np.float32(0)))
        total = e.op("where", seen, e.const(w if w is not None else np.float32(1)), e.const(np.float32(0)))
    elif mode == "TFIDF" and w is not None:
        total = e.op("mul", total, e.const(w))
    if t.rank == 1:
        total = e.op("reshape", total, shape=(out_size,))
    return total
