"""Converters for ONNX resampling and image-geometry ops: Resize (10/11/13/18/19) and Upsample
(7/9) onto the core ``resize`` op, GridSample onto ``grid_sample``, Col2Im onto ``col2im``, and
AffineGrid as a decomposition (a constant base grid when the size is known, else built at run
time).
"""
from __future__ import annotations

import math

import numpy as np

from ....ir import dims as D
from ..registry import converter
from .shape import _axis, _i64, _scalar, known_dims, reshape_to


def _present(ctx, i):
    """An optional Resize operand counts as given unless absent or empty."""
    if not ctx.has_input(i):
        return False
    v = ctx.const_value(i)
    if v is not None:
        return v.size > 0
    return ctx.shape(i) != (0,)


def _static_plan(xs, axes, scales, sizes=None, policy="stretch"):
    """Result sizes and scales of every dim, or None when they are known only at run time.

    A symbolic dim resized by a whole-number factor keeps a symbolic size (``2*h``), whether the
    factor comes as a scale or as a size that is a multiple of the dim.
    """
    from ....ir.ops.image import resize_plan

    sym = [j for j, a in enumerate(axes) if not isinstance(xs[a], int)]
    if not sym:
        if sizes is not None and any(not isinstance(n, int) for n in sizes):
            return None
        return resize_plan(list(xs), axes, scales, sizes, policy)
    out_sizes, out_scales = list(xs), [1.0] * len(xs)
    for j, a in enumerate(axes):
        d = xs[a]
        if sizes is not None:
            if policy != "stretch":
                return None
            n = D.canonical(sizes[j])
            f = D.div_exact(n, d) if not isinstance(d, int) else None
            if isinstance(d, int):
                if not isinstance(n, int):
                    return None
                out_sizes[a], out_scales[a] = n, n / d
            elif isinstance(f, int):
                out_sizes[a], out_scales[a] = n, float(f)
            else:
                return None
        else:
            f = float(scales[j])
            if not isinstance(d, int) and f != int(f):
                return None
            out_sizes[a] = int(math.floor(f * d)) if isinstance(d, int) else D.mul(d, int(f))
            out_scales[a] = f
    return out_sizes, out_scales


def _resize(ctx, x, roi_i, scales_i, sizes_i, **attrs):
    r = ctx.rank(0)
    axes = ctx.attr("axes", None) if ctx.opset >= 18 else None
    axes = list(range(r)) if axes is None else [_axis(ctx, a, r) for a in axes]
    policy = ctx.attr("keep_aspect_ratio_policy", "stretch") if ctx.opset >= 18 else "stretch"
    has_scales = scales_i is not None and _present(ctx, scales_i)
    has_sizes = sizes_i is not None and _present(ctx, sizes_i)
    if has_scales == has_sizes:
        ctx.fail("needs exactly one of scales and sizes")
    roi = ctx.const_value(roi_i) if roi_i is not None and _present(ctx, roi_i) else None
    roi_rt = roi_i is not None and _present(ctx, roi_i) and roi is None
    operand = scales_i if has_scales else sizes_i
    val = ctx.const_value(operand)
    xs = ctx.shape(0)
    plan = None
    if has_sizes and val is None:
        val = known_dims(ctx, sizes_i)  # sizes computed from symbolic dims
        val = None if val is None or None in val else np.array(val, dtype=object)
    if val is not None and not roi_rt:
        plan = _static_plan(xs, axes, val.tolist() if has_scales else None, val.tolist() if has_sizes else None,
                            policy)
    if plan is not None:
        sizes, scales = plan
        full_roi = None
        if roi is not None:
            rv = [float(v) for v in roi.reshape(-1)]
            if len(rv) != 2 * len(axes):
                ctx.fail(f"roi {rv} must have 2 entries per resized axis")
            full_roi = [0.0] * r + [1.0] * r
            for j, a in enumerate(axes):
                full_roi[a], full_roi[a + r] = rv[j], rv[j + len(axes)]
        return ctx.op("resize", x, sizes=sizes, scales=scales, roi=full_roi, **attrs)
    roi_v = ctx.input(roi_i) if roi_i is not None and _present(ctx, roi_i) else None
    if roi_v is not None and ctx.dtype(roi_i).name != "f32":
        roi_v = ctx.op("cast", roi_v, to="f32")
    sc = ctx.input(scales_i) if has_scales else None
    sz = _i64(ctx, ctx.input(sizes_i)) if has_sizes else None
    return ctx.op("resize_dynamic", x, roi_v, sc, sz, axes=axes, keep_aspect_ratio_policy=policy, **attrs)


def _resize_attrs(ctx):
    mode = ctx.attr("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        ctx.fail(f"mode '{mode}' is not supported")
    ctm = ctx.attr("coordinate_transformation_mode", "half_pixel")
    known = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize")
    known += ("tf_half_pixel_for_nn",) if ctx.opset < 13 else ()
    if ctm not in known + (("half_pixel_symmetric",) if ctx.opset >= 19 else ()):
        ctx.fail(f"coordinate_transformation_mode '{ctm}' is not supported")
    nm = ctx.attr("nearest_mode", "round_prefer_floor")
    if nm not in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
        ctx.fail(f"nearest_mode '{nm}' is not supported")
    return dict(mode=mode, coordinate_transformation_mode=ctm, nearest_mode=nm,
                cubic_coeff_a=ctx.attr("cubic_coeff_a", -0.75), exclude_outside=bool(ctx.attr("exclude_outside", 0)),
                extrapolation_value=ctx.attr("extrapolation_value", 0.0),
                antialias=bool(ctx.attr("antialias", 0)) and ctx.opset >= 18 and mode != "nearest")


def _legacy_attrs(ctx):
    """Upsample and Resize-10: asymmetric coordinates, nearest rounds down."""
    mode = ctx.attr("mode", "nearest")
    mode = {"bilinear": "linear"}.get(mode, mode)
    if mode not in ("nearest", "linear"):
        ctx.fail(f"mode '{mode}' is not supported")
    return dict(mode=mode, coordinate_transformation_mode="asymmetric", nearest_mode="floor")


@converter("Resize", since=10)
def resize_v10(ctx):
    return _resize(ctx, ctx.input(0), None, 1, None, **_legacy_attrs(ctx))


@converter("Resize", since=11)
def resize_v11(ctx):
    return _resize(ctx, ctx.input(0), 1, 2, 3, **_resize_attrs(ctx))


@converter("Upsample", since=7)
def upsample_v7(ctx):
    x = ctx.input(0)
    scales = ctx.const(np.asarray(ctx.attr("scales"), np.float32))
    return _upsample(ctx, x, scales)


def _upsample(ctx, x, scales):
    val = ctx.graph.constants.get(scales)
    attrs = _legacy_attrs(ctx)
    xs = ctx.shape(0)
    plan = None if val is None else _static_plan(xs, list(range(len(xs))), val.tolist())
    if plan is not None:
        return ctx.op("resize", x, sizes=plan[0], scales=plan[1], **attrs)
    return ctx.op("resize_dynamic", x, None, scales, None, **attrs)


@converter("Upsample", since=9)
def upsample_v9(ctx):
    return _upsample(ctx, ctx.input(0), ctx.input(1))


@converter("GridSample", since=16)
def grid_sample(ctx):
    mode = ctx.attr("mode", "bilinear" if ctx.opset < 20 else "linear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    pad = ctx.attr("padding_mode", "zeros")
    if mode not in ("nearest", "linear", "cubic") or pad not in ("zeros", "border", "reflection"):
        ctx.fail(f"mode '{mode}' with padding_mode '{pad}' is not supported")
    if ctx.opset < 20 and ctx.rank(0) != 4:
        ctx.fail(f"GridSample before opset 20 takes 4-D input, got {ctx.type(0)}")
    return ctx.op("grid_sample", ctx.input(0), ctx.input(1), mode=mode, padding_mode=pad,
                  align_corners=bool(ctx.attr("align_corners", 0)))


@converter("Col2Im", since=18)
def col2im(ctx):
    attrs = {k: ctx.attr(k, None) for k in ("dilations", "pads", "strides")}
    img, blk = ctx.const_value(1), ctx.const_value(2)
    if img is not None and blk is not None:
        return ctx.op("col2im", ctx.input(0), image_shape=img.reshape(-1).tolist(),
                      block_shape=blk.reshape(-1).tolist(), **attrs)
    return ctx.op("col2im_dynamic", ctx.input(0), _i64(ctx, ctx.input(1)), _i64(ctx, ctx.input(2)), **attrs)


def _affine_base_grid(spatial, align_corners):
    """The normalized sampling points [*spatial, r+1]: (x, y[, z], 1), innermost dim first."""
    axes = []
    for n in spatial:
        i = np.arange(n, dtype=np.float64)
        axes.append(-1 + i * 2 / (n - 1) if align_corners and n > 1 else
                    (np.full(n, -1.0) if align_corners else -1 + (2 * i + 1) / n))
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack(list(mesh[::-1]) + [np.ones(spatial)], axis=-1)


def _affine_base_grid_runtime(ctx, size, r, dt, align_corners):
    """_affine_base_grid for a run-time size operand, as core ops."""
    spatial = ctx.op("slice", size, starts=[2], ends=[2 + r], axes=[0], steps=[1])
    one_i = ctx.const(np.array(1, np.int64))
    comps = []
    for d in range(r):
        s = _scalar(ctx, ctx.op("gather", size, ctx.const(np.array([2 + d], np.int64))))
        i = ctx.op("cast", ctx.op("range", ctx.const(np.array(0, np.int64)), s, one_i), to=dt)
        sf = ctx.op("cast", s, to=dt)
        c = lambda v: ctx.const(np.array(v, dt.np))  # noqa: E731
        if align_corners:
            coord = ctx.op("add", c(-1), ctx.op("div", ctx.op("mul", i, c(2)), ctx.op("sub", sf, c(1))))
        else:
            coord = ctx.op("add", c(-1), ctx.op("div", ctx.op("add", ctx.op("mul", i, c(2)), c(1)), sf))
        n = ctx.type_of(coord).shape[0]
        coord = reshape_to(ctx, coord, [n if k == d else 1 for k in range(r)] + [1])
        comps.append(coord)
    ones = ctx.const(np.ones([1] * (r + 1), dt.np))
    full = ctx.op("concat", spatial, ctx.const(np.array([1], np.int64)), axis=0)
    parts = [ctx.op("broadcast_dynamic", t, full) for t in comps[::-1] + [ones]]
    return ctx.op("concat", *parts, axis=r), spatial


@converter("AffineGrid", since=20)
def affine_grid(ctx):
    theta, dt = ctx.input(0), ctx.dtype(0)
    r = ctx.shape(0)[1]
    if ctx.rank(0) != 3 or r not in (2, 3) or ctx.shape(0)[2] != r + 1:
        ctx.fail(f"theta must be [N, 2, 3] or [N, 3, 4], got {ctx.type(0)}")
    align = bool(ctx.attr("align_corners", 0))
    theta_t = ctx.op("transpose", theta, perm=[0, 2, 1])  # [N, r+1, r]
    size = ctx.const_value(1)
    if size is not None:
        spatial = [int(v) for v in size.reshape(-1)[2:]]
        base = ctx.const(_affine_base_grid(spatial, align).reshape(1, -1, r + 1).astype(dt.np))
        out = ctx.op("matmul", base, theta_t)
        return reshape_to(ctx, out, [ctx.shape(0)[0]] + spatial + [r])
    size = _i64(ctx, ctx.input(1))
    base, spatial = _affine_base_grid_runtime(ctx, size, r, dt, align)
    base = ctx.op("reshape_dynamic", base, ctx.const(np.array([1, -1, r + 1], np.int64)))
    out = ctx.op("matmul", base, theta_t)
    shape = ctx.op("concat", ctx.op("shape", theta, start=0, end=1), spatial,
                   ctx.const(np.array([r], np.int64)), axis=0)
    return ctx.op("reshape_dynamic", out, shape)
