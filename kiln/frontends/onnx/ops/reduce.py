"""Converters for ONNX reductions, softmax family, normalizations, losses, scans and top-k.

Everything here decomposes into a handful of core ops: the reductions (``reduce_*`` and their
``*_dynamic`` twins), ``argmax`` / ``argmin``, ``cumsum`` / ``cumprod`` and ``topk``, plus
elementwise and movement ops. Softmax is ``exp(x - max) / sum``, LayerNormalization is two
means and an ``rsqrt``, the losses pick the target class with a one-hot mask, and so on.

Version notes (the ``since`` of each converter):

* Reduce*: ``axes`` is an attribute before opset 18 (13 for ReduceSum), an input after, with
  ``noop_with_empty_axes``. No axes means every axis.
* Softmax / LogSoftmax / Hardmax: before 13 the input is coerced to 2-D at ``axis`` (default 1),
  i.e. the op works over all axes from ``axis`` on; from 13 over the one ``axis`` (default -1).
* TopK: ``k`` is an attribute before 10; ``largest`` / ``sorted`` since 11.
* BatchNormalization: ``spatial`` until 9, ``training_mode`` since 14.
* GroupNormalization: ``scale`` / ``bias`` are per group at 18, per channel since 21.
"""
from __future__ import annotations

import numpy as np

from ....ir import dims
from ....ir import dtypes as kd
from ..registry import converter
from ._helpers import cast

# --- small helpers -------------------------------------------------------------------------------


def _norm_axis(ctx, axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        ctx.fail(f"{what} {axis} is out of range for an input of rank {rank}")
    return axis % rank if rank else 0


def _to_float(ctx, v):
    """(v as a float tensor, its original dtype): ints go through float64, floats stay."""
    dt = ctx.type_of(v).dtype
    return (v, dt) if dt.is_float else (ctx.op("cast", v, to=kd.float64), dt)


def _channel_param(ctx, v, rank: int):
    """Reshape a per-channel vector [C] to [C, 1, ...] so it broadcasts over [N, C, D1, ...]."""
    t = ctx.type_of(v)
    if t.rank != 1:
        ctx.fail(f"per-channel parameter must be 1-D, got {t}")
    return ctx.op("reshape", v, shape=[t.shape[0]] + [1] * (rank - 2))


# --- Reduce* -------------------------------------------------------------------------------------


class _Axes:
    """Which axes a Reduce* node reduces: static (a tuple; () = the identity) or a run-time value."""

    def __init__(self, static=None, dynamic=None, noop=False):
        self.static, self.dynamic, self.noop = static, dynamic, noop

    def reduce(self, ctx, kind: str, x, keepdims: bool):
        if self.dynamic is not None:
            return ctx.op(f"reduce_{kind}_dynamic", x, self.dynamic, keepdims=keepdims,
                          noop_with_empty_axes=self.noop)
        return ctx.op(f"reduce_{kind}", x, axes=self.static, keepdims=keepdims)

    @property
    def is_identity(self) -> bool:
        return self.dynamic is None and not self.static


def _axes_from_attr(ctx) -> _Axes:
    rank = ctx.rank(0)
    axes = ctx.attr("axes", None)
    if not axes:
        return _Axes(tuple(range(rank)))
    return _Axes(tuple(_norm_axis(ctx, a, rank, "axes entry") for a in axes))


def _axes_from_input(ctx) -> _Axes:
    rank = ctx.rank(0)
    noop = bool(ctx.attr("noop_with_empty_axes", 0))
    if not ctx.has_input(1):
        return _Axes(() if noop else tuple(range(rank)))
    t = ctx.type(1)
    if t.rank != 1 or not isinstance(t.shape[0], int):
        ctx.fail(f"axes input must be a 1-D tensor of static length, got {t}")
    val = ctx.const_value(1)
    if val is None and t.shape[0] > 0:
        return _Axes(dynamic=ctx.input(1), noop=noop)
    axes = [] if val is None else [int(a) for a in val.reshape(-1)]
    if not axes:
        return _Axes(() if noop else tuple(range(rank)))
    return _Axes(tuple(_norm_axis(ctx, a, rank, "axes entry") for a in axes))


def _reduce_body(kind):
    """The decomposition of one Reduce* op as fn(ctx, x, axes, keepdims)."""

    def plain(ctx, x, ax, kd_):
        return ax.reduce(ctx, kind, x, kd_)

    def l1(ctx, x, ax, kd_):
        return ax.reduce(ctx, "sum", ctx.op("abs", x), kd_)

    def sum_square(ctx, x, ax, kd_):
        return ax.reduce(ctx, "sum", ctx.op("mul", x, x), kd_)

    def l2(ctx, x, ax, kd_):
        xf, dt = _to_float(ctx, x)
        return cast(ctx, ctx.op("sqrt", ax.reduce(ctx, "sum", ctx.op("mul", xf, xf), kd_)), dt)

    def log_sum(ctx, x, ax, kd_):
        xf, dt = _to_float(ctx, x)
        return cast(ctx, ctx.op("log", ax.reduce(ctx, "sum", xf, kd_)), dt)

    def log_sum_exp(ctx, x, ax, kd_):
        # log(sum(exp(x - m))) + m with m the max, taken as 0 where it is infinite (all -inf, or empty)
        xf, dt = _to_float(ctx, x)
        f = ctx.type_of(xf).dtype
        m = ax.reduce(ctx, "max", xf, True)
        m = ctx.op("where", ctx.op("isinf", m), ctx.const(0, f), m)
        s = ax.reduce(ctx, "sum", ctx.op("exp", ctx.op("sub", xf, m)), kd_)
        m_out = m if kd_ else ax.reduce(ctx, "max", m, False)
        return cast(ctx, ctx.op("add", ctx.op("log", s), m_out), dt)

    return {"sum": plain, "mean": plain, "max": plain, "min": plain, "prod": plain, "l1": l1,
            "l2": l2, "log_sum": log_sum, "log_sum_exp": log_sum_exp, "sum_square": sum_square}[kind]


def _reduce_converter(kind, axes_of):
    body = _reduce_body(kind)

    def convert(ctx):
        ax = axes_of(ctx)
        if ax.is_identity:
            return ctx.op("identity", ctx.input(0))
        return body(ctx, ctx.input(0), ax, bool(ctx.attr("keepdims", 1)))

    return convert


#: ONNX op -> (kind, opset where axes became an input)
_REDUCE_OPS = {
    "ReduceSum": ("sum", 13), "ReduceMean": ("mean", 18), "ReduceMax": ("max", 18),
    "ReduceMin": ("min", 18), "ReduceProd": ("prod", 18), "ReduceL1": ("l1", 18),
    "ReduceL2": ("l2", 18), "ReduceLogSum": ("log_sum", 18), "ReduceLogSumExp": ("log_sum_exp", 18),
    "ReduceSumSquare": ("sum_square", 18),
}

for _op, (_kind, _since) in _REDUCE_OPS.items():
    converter(_op, since=1)(_reduce_converter(_kind, _axes_from_attr))
    converter(_op, since=_since)(_reduce_converter(_kind, _axes_from_input))


def _arg_converter(name):
    def convert(ctx):
        rank = ctx.rank(0)
        if rank == 0:
            ctx.fail("input must have rank >= 1")
        axis = _norm_axis(ctx, ctx.attr("axis", 0), rank)
        return ctx.op(name, ctx.input(0), axis=axis, keepdims=bool(ctx.attr("keepdims", 1)),
                      select_last_index=bool(ctx.attr("select_last_index", 0)))
    return convert


converter("ArgMax", since=1)(_arg_converter("argmax"))
converter("ArgMin", since=1)(_arg_converter("argmin"))


# --- Softmax family ------------------------------------------------------------------------------


def _softmax_axes(ctx, per_axis: bool):
    """The axes a softmax-family node normalises over: one axis (opset 13+) or all from axis on."""
    rank = ctx.rank(0)
    if rank == 0:
        ctx.fail("input must have rank >= 1")
    a = _norm_axis(ctx, ctx.attr("axis", -1 if per_axis else 1), rank)
    return (a,) if per_axis else tuple(range(a, rank))


def softmax(ctx, x, axes):
    """exp(x - max) / sum(exp(x - max)) over ``axes``."""
    e = ctx.op("exp", ctx.op("sub", x, ctx.op("reduce_max", x, axes=axes, keepdims=True)))
    return ctx.op("div", e, ctx.op("reduce_sum", e, axes=axes, keepdims=True))


def log_softmax(ctx, x, axes):
    """(x - max) - log(sum(exp(x - max))) over ``axes``."""
    d = ctx.op("sub", x, ctx.op("reduce_max", x, axes=axes, keepdims=True))
    lse = ctx.op("log", ctx.op("reduce_sum", ctx.op("exp", d), axes=axes, keepdims=True))
    return ctx.op("sub", d, lse)


def _hardmax_axis(ctx, x, axis):
    """1 at the first maximum along ``axis``, 0 elsewhere: max mask, then keep its first 1 (cumsum)."""
    dt = ctx.type_of(x).dtype
    is_max = ctx.op("equal", x, ctx.op("reduce_max", x, axes=(axis,), keepdims=True))
    count = ctx.op("cumsum", ctx.op("cast", is_max, to=kd.int32), axis=axis)
    first = ctx.op("and", is_max, ctx.op("equal", count, ctx.const(1, kd.int32)))
    return ctx.op("cast", first, to=dt)


def _softmax_converter(fn, per_axis: bool):
    """A converter applying ``fn(ctx, x, axes)`` over the node's ``_softmax_axes``."""

    def convert(ctx):
        return fn(ctx, ctx.input(0), _softmax_axes(ctx, per_axis))

    return convert


for _op, _fn in (("Softmax", softmax), ("LogSoftmax", log_softmax)):
    converter(_op, since=1)(_softmax_converter(_fn, per_axis=False))
    converter(_op, since=13)(_softmax_converter(_fn, per_axis=True))


@converter("Hardmax", since=1)
def hardmax_v1(ctx):
    axes = _softmax_axes(ctx, False)
    x, shape = ctx.input(0), ctx.shape(0)
    if len(axes) == 1 and axes[0] == len(shape) - 1:
        return _hardmax_axis(ctx, x, axes[0])
    a = axes[0]
    flat = ctx.op("reshape", x, shape=[dims.prod(shape[:a]), dims.prod(shape[a:])])
    return ctx.op("reshape", _hardmax_axis(ctx, flat, 1), shape=list(shape))


@converter("Hardmax", since=13)
def hardmax_v13(ctx):
    return _hardmax_axis(ctx, ctx.input(0), _softmax_axes(ctx, True)[0])


# --- Normalizations ------------------------------------------------------------------------------


def _moments(ctx, x, axes):
    """(mean, x - mean, population variance) over ``axes``, keeping dims."""
    mean = ctx.op("reduce_mean", x, axes=axes, keepdims=True)
    d = ctx.op("sub", x, mean)
    var = ctx.op("reduce_mean", ctx.op("mul", d, d), axes=axes, keepdims=True)
    return mean, d, var


def _inv_std(ctx, var, eps):
    dt = ctx.type_of(var).dtype
    return ctx.op("rsqrt", ctx.op("add", var, ctx.const(eps, dt)))


def _stash_dtype(ctx, x_dtype):
    """The dtype statistics are computed in: the stash type, but never narrower than the input."""
    from ..importer import onnx_dtype

    code = ctx.attr("stash_type", 1)
    if code in (0, -1):  # "no stash type": compute in the input type
        return x_dtype
    stash = onnx_dtype(code, f"stash_type of node '{ctx.name}'")
    if not stash.is_float:
        ctx.fail(f"stash_type {stash} is not a float type")
    return x_dtype if x_dtype.bits > stash.bits else stash


def _norm_axes_from(ctx, what: str = "axis"):
    rank = ctx.rank(0)
    return tuple(range(_norm_axis(ctx, ctx.attr("axis", -1), rank, what), rank))


@converter("LayerNormalization", since=17)
def layer_normalization(ctx):
    x, dt = ctx.input(0), ctx.dtype(0)
    axes = _norm_axes_from(ctx)
    st = _stash_dtype(ctx, dt)
    xs = cast(ctx, x, st)
    mean, d, var = _moments(ctx, xs, axes)
    inv = _inv_std(ctx, var, ctx.attr("epsilon", 1e-5))
    y = ctx.op("mul", cast(ctx, ctx.op("mul", d, inv), dt), ctx.input(1))
    if ctx.has_input(2):
        y = ctx.op("add", y, ctx.input(2))
    return [y, mean if ctx.has_output(1) else None, inv if ctx.has_output(2) else None]


@converter("RMSNormalization", since=23)
def rms_normalization(ctx):
    x, dt = ctx.input(0), ctx.dtype(0)
    axes = _norm_axes_from(ctx)
    xs = cast(ctx, x, _stash_dtype(ctx, dt))
    ms = ctx.op("reduce_mean", ctx.op("mul", xs, xs), axes=axes, keepdims=True)
    y = cast(ctx, ctx.op("mul", xs, _inv_std(ctx, ms, ctx.attr("epsilon", 1e-5))), dt)
    return ctx.op("mul", y, ctx.input(1))


def _group_mean(ctx, v, n, groups: int, c: int, rank: int):
    """The mean of ``v`` [N, C, D...] over each group of channels and all of D, broadcast back to
    [N, C, 1, ...]. Each channel has the same number of elements, so it is the mean over the group
    of the per-channel means: only [N, C]-sized values are reshaped, and D may be symbolic."""
    spatial = tuple(range(2, rank))
    per_c = ctx.op("reduce_mean", v, axes=spatial, keepdims=False) if spatial else v
    g = ctx.op("reduce_mean", ctx.op("reshape", per_c, shape=[n, groups, c // groups]), axes=(2,), keepdims=True)
    g = ctx.op("broadcast", g, shape=[n, groups, c // groups])
    return ctx.op("reshape", g, shape=[n, c] + [1] * (rank - 2))


def _group_norm(ctx, per_channel: bool):
    x, dt, shape = ctx.input(0), ctx.dtype(0), ctx.shape(0)
    rank = len(shape)
    if rank < 2:
        ctx.fail(f"input must have rank >= 2, got {ctx.type(0)}")
    groups, n, c = ctx.attr("num_groups"), shape[0], shape[1]
    if groups is None or groups <= 0:
        ctx.fail(f"num_groups must be a positive int, got {groups}")
    if not isinstance(c, int):
        ctx.fail(f"the channel dim must be static, got {c}")
    if c % groups:
        ctx.fail(f"{c} channels do not split into {groups} groups")
    xs = cast(ctx, x, _stash_dtype(ctx, dt) if per_channel else dt)
    d = ctx.op("sub", xs, _group_mean(ctx, xs, n, groups, c, rank))
    var = _group_mean(ctx, ctx.op("mul", d, d), n, groups, c, rank)
    y = cast(ctx, ctx.op("mul", d, _inv_std(ctx, var, ctx.attr("epsilon", 1e-5))), dt)
    scale, bias = ctx.input(1), ctx.input(2)
    if not per_channel:  # opset 18: scale and bias per group; repeat each over its channels
        scale, bias = (ctx.op("reshape", ctx.op("broadcast", ctx.op("reshape", v, shape=[groups, 1]),
                                                shape=[groups, c // groups]), shape=[c])
                       for v in (scale, bias))
    y = ctx.op("mul", y, _channel_param(ctx, scale, rank))
    return ctx.op("add", y, _channel_param(ctx, bias, rank))


@converter("GroupNormalization", since=18)
def group_normalization_v18(ctx):
    return _group_norm(ctx, per_channel=False)


@converter("GroupNormalization", since=21)
def group_normalization_v21(ctx):
    return _group_norm(ctx, per_channel=True)


@converter("InstanceNormalization", since=6)
def instance_normalization(ctx):
    x, rank = ctx.input(0), ctx.rank(0)
    if rank < 3:
        ctx.fail(f"input must have rank >= 3 (N, C, D1, ...), got {ctx.type(0)}")
    _, d, var = _moments(ctx, x, tuple(range(2, rank)))
    y = ctx.op("mul", ctx.op("mul", d, _inv_std(ctx, var, ctx.attr("epsilon", 1e-5))),
               _channel_param(ctx, ctx.input(1), rank))
    return ctx.op("add", y, _channel_param(ctx, ctx.input(2), rank))


def _batch_norm(ctx, training: bool, spatial: bool = True):
    x, rank = ctx.input(0), ctx.rank(0)
    if rank < 2:
        ctx.fail(f"input must have rank >= 2 (N, C, ...), got {ctx.type(0)}")
    dt = ctx.dtype(0)
    eps = ctx.attr("epsilon", 1e-5)

    def param(i):
        v = ctx.input(i)
        if ctx.dtype(i) != dt:
            v = ctx.op("cast", v, to=dt)
        if spatial:
            return _channel_param(ctx, v, rank)
        return v  # spatial=0 (opset 7-8): parameters are [C, D1, ...] and broadcast as they are

    scale, bias = param(1), param(2)
    if not training:
        mean, var = param(3), param(4)
        d = ctx.op("sub", x, mean)
        y = ctx.op("mul", ctx.op("mul", d, _inv_std(ctx, var, eps)), scale)
        return [ctx.op("add", y, bias)]
    axes = (0,) + tuple(range(2, rank))
    mean, d, var = _moments(ctx, x, axes)
    y = ctx.op("add", ctx.op("mul", ctx.op("mul", d, _inv_std(ctx, var, eps)), scale), bias)
    mom = ctx.attr("momentum", 0.9)
    outs = [y]
    for i, batch_stat in ((3, mean), (4, var)):
        if not ctx.has_output(len(outs)):
            outs.append(None)
            continue
        st = ctx.type_of(ctx.input(i)).dtype
        flat = cast(ctx, ctx.op("reshape", batch_stat, shape=list(ctx.shape(i))), st)
        running = ctx.op("add", ctx.op("mul", ctx.input(i), ctx.const(mom, st)),
                         ctx.op("mul", flat, ctx.const(1 - mom, st)))
        outs.append(running)
    return outs


@converter("BatchNormalization", since=7)
def batch_normalization_v7(ctx):
    if ctx.num_outputs > 1 and any(ctx.has_output(i) for i in range(1, ctx.num_outputs)):
        ctx.fail("training outputs (mean, var, saved_mean, saved_var) are not supported before opset 14")
    return _batch_norm(ctx, training=False, spatial=bool(ctx.attr("spatial", 1)))


@converter("BatchNormalization", since=9)
def batch_normalization_v9(ctx):
    if ctx.num_outputs > 1 and any(ctx.has_output(i) for i in range(1, ctx.num_outputs)):
        ctx.fail("training outputs (mean, var, saved_mean, saved_var) are not supported before opset 14")
    return _batch_norm(ctx, training=False)


@converter("BatchNormalization", since=14)
def batch_normalization_v14(ctx):
    return _batch_norm(ctx, training=bool(ctx.attr("training_mode", 0)))


@converter("LpNormalization", since=1)
def lp_normalization(ctx):
    x, rank, dt = ctx.input(0), ctx.rank(0), ctx.dtype(0)
    axis = _norm_axis(ctx, ctx.attr("axis", -1), rank)
    p = ctx.attr("p", 2)
    if p == 1:
        norm = ctx.op("reduce_sum", ctx.op("abs", x), axes=(axis,), keepdims=True)
    elif p == 2:
        norm = ctx.op("sqrt", ctx.op("reduce_sum", ctx.op("mul", x, x), axes=(axis,), keepdims=True))
    else:
        ctx.fail(f"p={p} is not supported (only 1 and 2)")
    zero = ctx.const(0, dt)
    safe = ctx.op("where", ctx.op("equal", norm, zero), ctx.const(1, dt), norm)
    return ctx.op("where", ctx.op("equal", norm, zero), zero, ctx.op("div", x, safe))


@converter("MeanVarianceNormalization", since=9)
def mean_variance_normalization(ctx):
    x, rank, dt = ctx.input(0), ctx.rank(0), ctx.dtype(0)
    axes = tuple(sorted({_norm_axis(ctx, a, rank, "axes entry") for a in ctx.attr("axes", [0, 2, 3])}))
    _, d, var = _moments(ctx, x, axes)
    return ctx.op("div", d, ctx.op("add", ctx.op("sqrt", var), ctx.const(1e-9, dt)))


@converter("LRN", since=1)
def lrn(ctx):
    """x / (bias + alpha/size * window sum of x^2 over channels)^beta; the window sum is a matmul
    with a 0/1 band matrix over the (static) channel axis."""
    x, shape, dt = ctx.input(0), ctx.shape(0), ctx.dtype(0)
    size = ctx.attr("size")
    if size is None or size <= 0:
        ctx.fail(f"size must be a positive int, got {size}")
    if len(shape) < 3:
        ctx.fail(f"input must have rank >= 3 (N, C, D1, ...), got {ctx.type(0)}")
    c = shape[1]
    if not isinstance(c, int):
        ctx.fail(f"the channel dim must be static, got {c}")
    lo, hi = (size - 1) // 2, (size - 1) - (size - 1) // 2
    src, dst = np.arange(c)[:, None], np.arange(c)[None, :]
    band = ((src >= dst - lo) & (src <= dst + hi)).astype(dt.np)  # band[c', c]: c' in window(c)
    rank = len(shape)
    to_last = [0] + list(range(2, rank)) + [1]
    back = [0, rank - 1] + list(range(1, rank - 1))
    sq = ctx.op("transpose", ctx.op("mul", x, x), perm=to_last)
    ss = ctx.op("transpose", ctx.op("matmul", sq, ctx.const(band)), perm=back)
    alpha, beta, bias = ctx.attr("alpha", 1e-4), ctx.attr("beta", 0.75), ctx.attr("bias", 1.0)
    base = ctx.op("add", ctx.const(bias, dt), ctx.op("mul", ss, ctx.const(alpha / size, dt)))
    return ctx.op("div", x, ctx.op("pow", base, ctx.const(beta, dt)))


# --- Losses --------------------------------------------------------------------------------------


def nll_loss(ctx, logp, target, weight, reduction: str, ignore_index):
    """NegativeLogLikelihoodLoss on log-probabilities ``logp`` [N, C, d...] and ``target`` [N, d...].

    The target class is picked with a one-hot mask (target == iota over C), so no gather is needed.
    """
    lt, tt = ctx.type_of(logp), ctx.type_of(target)
    if lt.rank < 2 or tt.rank != lt.rank - 1:
        ctx.fail(f"input must be [N, C, d1, ...] and target [N, d1, ...], got {lt} and {tt}")
    if not tt.dtype.is_int:
        ctx.fail(f"target must be an integer tensor, got {tt}")
    if reduction not in ("none", "sum", "mean"):
        ctx.fail(f"reduction '{reduction}' is not supported (none, sum, mean)")
    c, dt, rank = lt.shape[1], lt.dtype, lt.rank
    if not isinstance(c, int):
        ctx.fail(f"the class dim must be static, got {c}")
    ones = [1] * (rank - 2)
    iota = ctx.const(np.arange(c, dtype=tt.dtype.np).reshape([1, c] + ones))
    t1 = ctx.op("reshape", target, shape=[tt.shape[0], 1] + list(tt.shape[1:]))
    hot = ctx.op("equal", t1, iota)
    zero = ctx.const(0, dt)
    loss = ctx.op("neg", ctx.op("reduce_sum", ctx.op("where", hot, logp, zero), axes=(1,), keepdims=False))
    w = None
    if weight is not None:
        wc = ctx.op("reshape", cast(ctx, weight, dt), shape=[1, c] + ones)
        w = ctx.op("reduce_sum", ctx.op("where", hot, wc, zero), axes=(1,), keepdims=False)
    if ignore_index is not None:
        keep = ctx.op("not", ctx.op("equal", target, ctx.const(ignore_index, tt.dtype)))
        w = ctx.op("cast", keep, to=dt) if w is None else ctx.op("where", keep, w, zero)
    if w is not None:
        loss = ctx.op("mul", loss, w)
    every = tuple(range(tt.rank))
    if reduction == "none":
        return loss
    total = ctx.op("reduce_sum", loss, axes=every, keepdims=False)
    if reduction == "sum":
        return total
    if w is None:
        return ctx.op("reduce_mean", loss, axes=every, keepdims=False)
    return ctx.op("div", total, ctx.op("reduce_sum", w, axes=every, keepdims=False))


@converter("NegativeLogLikelihoodLoss", since=12)
def negative_log_likelihood_loss(ctx):
    return nll_loss(ctx, ctx.input(0), ctx.input(1), ctx.input(2), ctx.attr("reduction", "mean"),
                    ctx.attr("ignore_index", None))


@converter("SoftmaxCrossEntropyLoss", since=12)
def softmax_cross_entropy_loss(ctx):
    if ctx.rank(0) < 2:
        ctx.fail(f"scores must be [N, C, d1, ...], got {ctx.type(0)}")
    logp = log_softmax(ctx, ctx.input(0), (1,))
    loss = nll_loss(ctx, logp, ctx.input(1), ctx.input(2), ctx.attr("reduction", "mean"),
                    ctx.attr("ignore_index", None))
    return [loss, logp if ctx.has_output(1) else None]


# --- Scans and top-k -----------------------------------------------------------------------------


def _scan_converter(name):
    def convert(ctx):
        x, rank = ctx.input(0), ctx.rank(0)
        if rank == 0:
            ctx.fail("input must have rank >= 1")
        flags = dict(exclusive=bool(ctx.attr("exclusive", 0)), reverse=bool(ctx.attr("reverse", 0)))
        if ctx.type(1).shape not in ((), (1,)):
            ctx.fail(f"axis must be a scalar, got {ctx.type(1)}")
        axis = ctx.const_value(1)
        if axis is None:
            return ctx.op(f"{name}_dynamic", x, ctx.input(1), **flags)
        return ctx.op(name, x, axis=_norm_axis(ctx, int(axis.reshape(-1)[0]), rank), **flags)
    return convert


converter("CumSum", since=11)(_scan_converter("cumsum"))
converter("CumProd", since=26)(_scan_converter("cumprod"))


def _topk(ctx, k_static, k_value):
    rank = ctx.rank(0)
    if rank == 0:
        ctx.fail("input must have rank >= 1")
    axis = _norm_axis(ctx, ctx.attr("axis", -1), rank)
    flags = dict(axis=axis, largest=bool(ctx.attr("largest", 1)), sorted=bool(ctx.attr("sorted", 1)))
    if k_static is None:
        return list(ctx.op("topk_dynamic", ctx.input(0), k_value, **flags))
    d = ctx.shape(0)[axis]
    if k_static < 0 or (isinstance(d, int) and k_static > d):
        ctx.fail(f"k={k_static} is out of range for axis {axis} of length {d}")
    return list(ctx.op("topk", ctx.input(0), k=k_static, **flags))


@converter("TopK", since=1)
def topk_v1(ctx):
    k = ctx.attr("k")
    if k is None:
        ctx.fail("attribute k is required")
    return _topk(ctx, int(k), None)


@converter("TopK", since=10)
def topk_v10(ctx):
    t = ctx.type(1)
    if t.shape not in ((), (1,)) or not t.dtype.is_int:
        ctx.fail(f"K must be a 1-element integer tensor, got {t}")
    k = ctx.const_value(1)
    return _topk(ctx, None if k is None else int(k.reshape(-1)[0]), ctx.input(1))


# --- Det -----------------------------------------------------------------------------------------

_MAX_DET_N = 6


@converter("Det", since=11)
def det(ctx):
    """Laplace expansion along the rows, sharing the minors (n * 2^n products): fine for the
    small static matrices Det meets in practice (n <= 6)."""
    x, shape = ctx.input(0), ctx.shape(0)
    if len(shape) < 2 or shape[-1] != shape[-2] or not isinstance(shape[-1], int):
        ctx.fail(f"input must be [..., n, n] with a static n, got {ctx.type(0)}")
    n = shape[-1]
    if n > _MAX_DET_N:
        ctx.fail(f"{n}x{n} determinants are not supported (at most {_MAX_DET_N}x{_MAX_DET_N})")
    if n == 0:
        ctx.fail("0x0 determinants are not supported")
    elem = {}

    def at(i, j):  # x[..., i:i+1, j:j+1]
        if (i, j) not in elem:
            elem[i, j] = ctx.op("slice", x, starts=[i, j], ends=[i + 1, j + 1], axes=[-2, -1], steps=[1, 1])
        return elem[i, j]

    minors = {}

    def minor(cols: tuple):  # det of rows n-len(cols).. and the given columns
        if len(cols) == 1:
            return at(n - 1, cols[0])
        if cols not in minors:
            row, acc = n - len(cols), None
            for k, j in enumerate(cols):
                term = ctx.op("mul", at(row, j), minor(cols[:k] + cols[k + 1:]))
                acc = term if acc is None else ctx.op("sub" if k % 2 else "add", acc, term)
            minors[cols] = acc
        return minors[cols]

    return ctx.op("reshape", minor(tuple(range(n))), shape=list(shape[:-2]))
