"""Neural-network ATen ops: matmuls, convolutions, normalisations, pooling, resampling.

Inference only: batch norm uses the running statistics (``_native_batch_norm_legit_no_training``)
and folds into a per-channel ``x * scale + shift`` on constants, which kiln's FoldBatchNorm pass
then folds into the preceding conv. Adaptive pooling to sizes that do not divide the input is a
product with a constant averaging matrix per axis (mean) or a max per output window (max).
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import ConversionError
from ...ir import dims as _dims
from ...ir import dtypes as kd
from ._util import dim_tensor, reshape, static_int
from .registry import converts

# --- matrix products ------------------------------------------------------------------------------


@converts("aten.mm.default", "aten.bmm.default", "aten.matmul.default", "aten.mv.default", "aten.dot.default",
          "aten.vdot.default")
def _mm(cx, a, b):
    dt = cx.out_dtype
    return cx.e.op("matmul", cx.tensor(a, dt), cx.tensor(b, dt))


def _scaled(cx, v, k):
    return v if k == 1 else cx.e.op("mul", v, cx.tensor(k, cx.e.dtype(v)))


@converts("aten.addmm.default", "aten.baddbmm.default", "aten.addmv.default", "aten.addbmm.default")
def _addmm(cx, bias, a, b, beta=1, alpha=1):
    e, dt = cx.e, cx.out_dtype
    p = e.op("matmul", cx.tensor(a, dt), cx.tensor(b, dt))
    if str(cx.node.target).startswith("aten.addbmm"):
        p = e.op("reduce_sum", p, axes=[0], keepdims=False)
    p = _scaled(cx, p, alpha)
    if beta == 0:
        return p
    return e.op("add", p, _scaled(cx, cx.tensor(bias, dt), beta))


@converts("aten.linear.default")
def _linear(cx, x, w, b=None):
    e = cx.e
    y = e.op("matmul", x, e.op("transpose", w, perm=list(reversed(range(e.rank(w))))) if e.rank(w) == 2 else w)
    return y if b is None else e.op("add", y, b)


# --- convolution ----------------------------------------------------------------------------------

def _listn(v, n, what):
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    if len(v) == 1:
        v = v * n
    if len(v) != n:
        raise ConversionError(f"{what} {v} does not have {n} entries")
    return [int(x) for x in v]


@converts("aten.convolution.default", "aten._convolution.default")
def _convolution(cx, x, w, bias, stride, padding, dilation, transposed, output_padding, groups, *_):
    e = cx.e
    nd = e.rank(w) - 2
    if e.rank(x) != nd + 2:
        raise ConversionError(f"convolution input of rank {e.rank(x)} with a weight of rank {e.rank(w)}")
    stride = _listn(stride, nd, "stride")
    dilation = _listn(dilation, nd, "dilation")
    if isinstance(padding, str):
        raise ConversionError(f"padding={padding!r} should have been resolved by torch.export")
    pad = _listn(padding, nd, "padding")
    dt = cx.out_dtype
    x, w = cx.tensor(x, dt), cx.tensor(w, dt)
    b = cx.tensor(bias, dt) if bias is not None else None
    if transposed:
        out_pad = _listn(output_padding, nd, "output_padding")
        return e.op("conv_transpose", x, w, b, strides=stride, dilations=dilation, pads=pad + pad,
                    output_padding=out_pad, group=int(groups))
    return e.op("conv", x, w, b, strides=stride, dilations=dilation, pads=pad + pad, group=int(groups))


# --- normalisation ---------------------------------------------------------------------------------

def _per_channel(cx, v, rank):
    """A [C] vector shaped to broadcast along axis 1 of a rank-``rank`` tensor."""
    n = cx.e.shape(v)[0]
    return reshape(cx, v, [n] + [1] * (rank - 2))


def batch_norm(cx, x, w, b, mean, var, eps):
    e = cx.e
    dt = e.dtype(x)
    rank = e.rank(x)
    c = e.shape(x)[1] if rank > 1 else e.shape(x)[0]
    inv = e.op("rsqrt", e.op("add", cx.tensor(var, dt), cx.tensor(eps, dt)))
    scale = inv if w is None else e.op("mul", cx.tensor(w, dt), inv)
    shift = e.op("neg", e.op("mul", cx.tensor(mean, dt), scale))
    if b is not None:
        shift = e.op("add", shift, cx.tensor(b, dt))
    if rank > 2:
        scale, shift = _per_channel(cx, scale, rank), _per_channel(cx, shift, rank)
    elif rank == 1:
        raise ConversionError(f"batch norm of a rank-1 tensor of {c} elements")
    return e.op("add", e.op("mul", x, scale), shift)


def _empty_stat(cx, i):
    """The saved mean / rstd results of an inference batch norm: empty tensors (never read in practice)."""
    if not cx.used(i):
        return None
    shape = cx.shape_of(cx.val[i])
    return cx.e.op("broadcast", cx.tensor(0.0, cx.out_dtype), shape=shape)


@converts("aten._native_batch_norm_legit_no_training.default")
def _bn_no_training(cx, x, w, b, running_mean, running_var, momentum, eps):
    return (batch_norm(cx, x, w, b, running_mean, running_var, eps), _empty_stat(cx, 1), _empty_stat(cx, 2))


@converts("aten.native_batch_norm.default", "aten._native_batch_norm_legit.default",
          "aten._native_batch_norm_legit_functional.default")
def _bn(cx, x, w, b, running_mean, running_var, training, momentum, eps):
    if not training:
        if running_mean is None or running_var is None:
            raise ConversionError("batch norm in inference mode without running statistics")
        y = batch_norm(cx, x, w, b, running_mean, running_var, eps)
        return (y, _empty_stat(cx, 1), _empty_stat(cx, 2)) + tuple(None for _ in range(3, len(cx.val)))
    # batch statistics (a BatchNorm without running stats, or InstanceNorm): a function of x alone;
    # the running-stat updates a training step would make are not part of an inference graph
    return batch_stats_norm(cx, x, w, b, eps) + tuple(None for _ in range(3, len(cx.val)))


@converts("aten._native_batch_norm_legit.no_stats")
def _bn_no_stats(cx, x, w, b, training, momentum, eps):
    return batch_stats_norm(cx, x, w, b, eps)


def batch_stats_norm(cx, x, w, b, eps):
    """``(y, mean, rstd)``: x normalised per channel (axis 1) by its own mean and biased variance."""
    e = cx.e
    dt = cx.out_dtype
    x = e.cast(x, dt)
    rank = e.rank(x)
    ax = [a for a in range(rank) if a != 1]
    mean = e.op("reduce_mean", x, axes=ax, keepdims=True)
    d = e.op("sub", x, mean)
    var = e.op("reduce_mean", e.op("mul", d, d), axes=ax, keepdims=True)
    rstd = e.op("rsqrt", e.op("add", var, cx.tensor(eps, dt)))
    y = e.op("mul", d, rstd)
    if w is not None:
        y = e.op("mul", y, _per_channel(cx, cx.tensor(w, dt), rank))
    if b is not None:
        y = e.op("add", y, _per_channel(cx, cx.tensor(b, dt), rank))
    c = [e.shape(x)[1]]
    return (y, reshape(cx, mean, c) if cx.used(1) else None, reshape(cx, rstd, c) if cx.used(2) else None)


@converts("aten.native_layer_norm.default")
def _layer_norm(cx, x, normalized_shape, w=None, b=None, eps=1e-5):
    e = cx.e
    dt = cx.out_dtype
    x = e.cast(x, dt)
    k = len(normalized_shape)
    ax = list(range(e.rank(x) - k, e.rank(x)))
    mean = e.op("reduce_mean", x, axes=ax, keepdims=True)
    d = e.op("sub", x, mean)
    var = e.op("reduce_mean", e.op("mul", d, d), axes=ax, keepdims=True)
    rstd = e.op("rsqrt", e.op("add", var, cx.tensor(eps, dt)))
    y = e.op("mul", d, rstd)
    if w is not None:
        y = e.op("mul", y, cx.tensor(w, dt))
    if b is not None:
        y = e.op("add", y, cx.tensor(b, dt))
    return (y, mean if cx.used(1) else None, rstd if cx.used(2) else None)


@converts("aten.native_group_norm.default")
def _group_norm(cx, x, w, b, n, c, hxw, group, eps):
    e = cx.e
    dt = cx.out_dtype
    x = e.cast(x, dt)
    shape = list(e.shape(x))
    g = int(group)
    per = _dims.div_exact(_dims.prod(shape[1:]), g)
    if per is None:
        raise ConversionError(f"group norm: {shape[1]} channels do not split into {g} groups")
    xg = reshape(cx, x, [shape[0], g, per])
    mean = e.op("reduce_mean", xg, axes=[2], keepdims=True)
    d = e.op("sub", xg, mean)
    var = e.op("reduce_mean", e.op("mul", d, d), axes=[2], keepdims=True)
    rstd = e.op("rsqrt", e.op("add", var, cx.tensor(eps, dt)))
    y = reshape(cx, e.op("mul", d, rstd), shape)
    rank = len(shape)
    if w is not None:
        y = e.op("mul", y, _per_channel(cx, cx.tensor(w, dt), rank) if rank > 2 else w)
    if b is not None:
        y = e.op("add", y, _per_channel(cx, cx.tensor(b, dt), rank) if rank > 2 else b)
    stat = [shape[0], g]
    return (y, reshape(cx, mean, stat) if cx.used(1) else None, reshape(cx, rstd, stat) if cx.used(2) else None)


# --- pooling ---------------------------------------------------------------------------------------

def _pool_params(nd, kernel, stride, padding, dilation=1):
    k = _listn(kernel, nd, "kernel_size")
    s = _listn(stride, nd, "stride") if stride not in (None, [], ()) else list(k)
    p = _listn(padding, nd, "padding")
    d = _listn(dilation, nd, "dilation")
    return k, s, p, d


def _max_pool(nd):
    def conv(cx, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        e = cx.e
        k, s, p, d = _pool_params(nd, kernel_size, stride, padding, dilation)
        want_idx = cx.used(1) if isinstance(cx.val, (list, tuple)) else False
        xin, squeeze = _batched(cx, x, nd)
        r = e.op("max_pool", xin, kernel=k, strides=s, pads=p + p, dilations=d, ceil_mode=bool(ceil_mode),
                 with_indices=want_idx)
        y = r[0] if isinstance(r, tuple) else r
        y = squeeze(y)
        if not isinstance(cx.val, (list, tuple)):
            return y
        idx = None
        if want_idx:  # kiln counts over [N, C, *spatial]; torch per (n, c) plane
            plane = _dims.prod(e.shape(xin)[2:])
            idx = squeeze(e.op("mod", r[1], dim_tensor(cx, plane, kd.int64)))
        return (y, idx)
    return conv


def _batched(cx, x, nd):
    """x with a batch dim (torch pools accept [C, *spatial]); and the function that undoes it."""
    e = cx.e
    if e.rank(x) == nd + 2:
        return x, lambda v: v
    if e.rank(x) == nd + 1:
        return reshape(cx, x, [1] + list(e.shape(x))), lambda v: reshape(cx, v, list(e.shape(v))[1:])
    raise ConversionError(f"{nd}-d pooling of a rank-{e.rank(x)} tensor")


for _nd in (1, 2, 3):
    converts(f"aten.max_pool{_nd}d_with_indices.default")(_max_pool(_nd))
converts("aten.max_pool2d.default", "aten.max_pool1d.default", "aten.max_pool3d.default")(
    lambda cx, x, kernel_size, *a, **k: _max_pool(len(_listn(kernel_size, cx.e.rank(x) - 2, "kernel_size")))(
        cx, x, kernel_size, *a, **k))


def _avg_pool(nd):
    def conv(cx, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None):
        e = cx.e
        k, s, p, _ = _pool_params(nd, kernel_size, stride, padding)
        xin, squeeze = _batched(cx, x, nd)
        y = e.op("avg_pool", xin, kernel=k, strides=s, pads=p + p, ceil_mode=bool(ceil_mode),
                 count_include_pad=bool(count_include_pad))
        if divisor_override:
            if any(p) and not count_include_pad or ceil_mode:
                raise ConversionError("avg_pool with divisor_override, padding excluded from the count or "
                                      "ceil_mode is not supported")
            y = e.op("mul", y, cx.tensor(math.prod(k) / divisor_override, e.dtype(y)))
        return squeeze(y)
    return conv


for _nd in (1, 2, 3):
    converts(f"aten.avg_pool{_nd}d.default")(_avg_pool(_nd))


def _windows(n_in, n_out):
    """torch's adaptive pooling windows: [floor(i*in/out), ceil((i+1)*in/out)) per output i."""
    return [((i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)) for i in range(n_out)]


def _adaptive_geometry(cx, x, output_size, nd):
    """``(output sizes, x with a batch dim, undo that, static spatial sizes)`` of an adaptive pool."""
    out = [static_int(cx, o, "an adaptive pooling size") for o in _listn_dims(cx, output_size, nd)]
    xin, squeeze = _batched(cx, x, nd)
    spatial = list(cx.e.shape(xin))[2:]
    if not all(isinstance(d, int) for d in spatial):
        raise ConversionError(f"adaptive pooling of the symbolic spatial dims {spatial}")
    return out, xin, squeeze, spatial


def _adaptive_avg(nd):
    def conv(cx, x, output_size):
        e = cx.e
        out, xin, squeeze, spatial = _adaptive_geometry(cx, x, output_size, nd)
        if all(i % o == 0 for i, o in zip(spatial, out)):
            k = [i // o for i, o in zip(spatial, out)]
            if all(kk == 1 for kk in k):
                return squeeze(xin)
            return squeeze(e.op("avg_pool", xin, kernel=k, strides=k, pads=[0] * (2 * nd)))
        # each axis: a product with the [in, out] matrix of window means (separable, so exact)
        y = xin
        dt = e.dtype(y)
        for j, (n_in, n_out) in enumerate(zip(spatial, out)):
            if n_in == n_out:
                continue
            m = np.zeros((n_in, n_out), np.float64)
            for i, (lo, hi) in enumerate(_windows(n_in, n_out)):
                m[lo:hi, i] = 1.0 / (hi - lo)
            a = 2 + j
            rank = e.rank(y)
            perm = [q for q in range(rank) if q != a] + [a]
            inv = list(np.argsort(perm))
            yt = e.op("transpose", y, perm=perm) if a != rank - 1 else y
            yt = e.op("matmul", yt, e.const(m.astype(dt.np)))
            y = e.op("transpose", yt, perm=[int(q) for q in inv]) if a != rank - 1 else yt
        return squeeze(y)
    return conv


def _listn_dims(cx, v, nd):
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return v * nd if len(v) == 1 else v


for _nd in (1, 2, 3):
    converts(f"aten._adaptive_avg_pool{_nd}d.default", f"aten.adaptive_avg_pool{_nd}d.default")(_adaptive_avg(_nd))


def _adaptive_max(nd):
    def conv(cx, x, output_size):
        e = cx.e
        if cx.used(1):
            raise ConversionError("the indices of adaptive max pooling are not supported")
        out, xin, squeeze, spatial = _adaptive_geometry(cx, x, output_size, nd)
        if all(i % o == 0 for i, o in zip(spatial, out)):
            k = [i // o for i, o in zip(spatial, out)]
            return (squeeze(e.op("max_pool", xin, kernel=k, strides=k, pads=[0] * (2 * nd))[0]), None)
        y = xin
        for j, (n_in, n_out) in enumerate(zip(spatial, out)):  # max is separable too: one axis at a time
            if n_in == n_out:
                continue
            a = 2 + j
            parts = [e.op("reduce_max", e.op("slice", y, starts=[lo], ends=[hi], axes=[a], steps=[1]),
                          axes=[a], keepdims=True) for lo, hi in _windows(n_in, n_out)]
            y = parts[0] if len(parts) == 1 else e.op("concat", *parts, axis=a)
        return (squeeze(y), None)
    return conv


for _nd in (1, 2, 3):
    converts(f"aten.adaptive_max_pool{_nd}d.default")(_adaptive_max(_nd))


# --- resampling ------------------------------------------------------------------------------------

def _resize(cx, x, nd, mode, coord, nearest_mode="floor", scales=None):
    """Resize the last ``nd`` dims of x to the node's result shape (ONNX Resize semantics)."""
    e = cx.e
    out = cx.out_shape
    shape = list(e.shape(x))
    spatial_in, spatial_out = shape[-nd:], out[-nd:]
    if not all(isinstance(d, int) for d in spatial_in + spatial_out):
        raise ConversionError(f"resizing symbolic spatial dims {spatial_in} -> {spatial_out}")
    if scales is None or any(s is None for s in scales):
        scales = [o / i for i, o in zip(spatial_in, spatial_out)]
    attrs = dict(mode=mode, coordinate_transformation_mode=coord)
    if mode == "nearest":
        attrs["nearest_mode"] = nearest_mode
    if mode == "cubic":
        attrs.update(cubic_coeff_a=-0.75, exclude_outside=False)
    return e.op("resize", x, sizes=shape[:-nd] + spatial_out, scales=[1.0] * (len(shape) - nd) + list(scales),
                **attrs)


def _scale_list(nd, scale_factors=None, *scalars):
    """The torch scale for each resized dim, or None where torch maps coordinates by in/out."""
    if scale_factors is not None:
        f = list(scale_factors) if isinstance(scale_factors, (list, tuple)) else [scale_factors]
        return [float(v) for v in (f * nd if len(f) == 1 else f)]
    if scalars and all(v is not None for v in scalars):
        return [float(v) for v in scalars]
    return None


def _nearest_vec(nd, exact=False):
    def conv(cx, x, output_size, scale_factors=None):
        return _resize(cx, x, nd, "nearest", "tf_half_pixel_for_nn" if exact else "asymmetric", "floor",
                       _scale_list(nd, scale_factors))
    return conv


def _nearest_default(nd, exact=False):
    def conv(cx, x, output_size, *scales):
        return _resize(cx, x, nd, "nearest", "tf_half_pixel_for_nn" if exact else "asymmetric", "floor",
                       _scale_list(nd, None, *scales[:nd]) if len(scales) >= nd else None)
    return conv


for _nd, _name in ((1, "1d"), (2, "2d"), (3, "3d")):
    converts(f"aten.upsample_nearest{_name}.vec")(_nearest_vec(_nd))
    converts(f"aten.upsample_nearest{_name}.default")(_nearest_default(_nd))
    converts(f"aten._upsample_nearest_exact{_name}.vec")(_nearest_vec(_nd, True))
    converts(f"aten._upsample_nearest_exact{_name}.default")(_nearest_default(_nd, True))


def _interp_vec(nd, mode):
    def conv(cx, x, output_size, align_corners, scale_factors=None):
        coord = "align_corners" if align_corners else "pytorch_half_pixel"
        return _resize(cx, x, nd, mode, coord, scales=None if align_corners else _scale_list(nd, scale_factors))
    return conv


def _interp_default(nd, mode):
    def conv(cx, x, output_size, align_corners, *scales):
        coord = "align_corners" if align_corners else "pytorch_half_pixel"
        sc = _scale_list(nd, None, *scales[:nd]) if len(scales) >= nd and not align_corners else None
        return _resize(cx, x, nd, mode, coord, scales=sc)
    return conv


for _nd, _name, _mode in ((1, "linear1d", "linear"), (2, "bilinear2d", "linear"), (3, "trilinear3d", "linear"),
                          (2, "bicubic2d", "cubic")):
    converts(f"aten.upsample_{_name}.vec")(_interp_vec(_nd, _mode))
    converts(f"aten.upsample_{_name}.default")(_interp_default(_nd, _mode))


@converts("aten.grid_sampler_2d.default", "aten.grid_sampler.default")
def _grid_sample(cx, x, grid, interpolation_mode, padding_mode, align_corners):
    modes = {0: "linear", 1: "nearest", 2: "cubic"}
    pads = {0: "zeros", 1: "border", 2: "reflection"}
    return cx.e.op("grid_sample", x, cx.tensor(grid, cx.e.dtype(x)), mode=modes[int(interpolation_mode)],
                   padding_mode=pads[int(padding_mode)], align_corners=bool(align_corners))


@converts("aten.pixel_shuffle.default")
def _pixel_shuffle(cx, x, r):
    e = cx.e
    n, c, h, w = e.shape(x)[-4:] if e.rank(x) == 4 else (None,) * 4
    if e.rank(x) != 4:
        raise ConversionError("pixel_shuffle of a tensor that is not [N, C, H, W]")
    r = int(r)
    oc = _dims.div_exact(c, r * r)
    v = reshape(cx, x, [n, oc, r, r, h, w])
    v = e.op("transpose", v, perm=[0, 1, 4, 2, 5, 3])
    return reshape(cx, v, [n, oc, _dims.mul(h, r), _dims.mul(w, r)])


@converts("aten.pixel_unshuffle.default")
def _pixel_unshuffle(cx, x, r):
    e = cx.e
    if e.rank(x) != 4:
        raise ConversionError("pixel_unshuffle of a tensor that is not [N, C, H, W]")
    n, c, h, w = e.shape(x)
    r = int(r)
    oh, ow = _dims.div_exact(h, r), _dims.div_exact(w, r)
    v = reshape(cx, x, [n, c, oh, r, ow, r])
    v = e.op("transpose", v, perm=[0, 1, 3, 5, 2, 4])
    return reshape(cx, v, [n, _dims.mul(c, r * r), oh, ow])

