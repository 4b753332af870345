"""Image resampling: resize (nearest / linear / cubic interpolation, ONNX semantics).

Resizing is separable: each resized axis is interpolated on its own, with a small weight table
per output position (the ``n`` source taps around the mapped coordinate and their weights), so a
backend implements it as one gather-and-weight loop per axis. The coordinate mapping and tap
rules follow the ONNX Resize specification.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from .. import dims
from .. import loops as L
from ..registry import Attr, op
from ..types import TensorType
from ._util import require
from .movement import _dim, clamp, operand_buffer

MODES = ("nearest", "linear", "cubic")
COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
          "tf_crop_and_resize", "tf_half_pixel_for_nn")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
POLICIES = ("stretch", "not_larger", "not_smaller")

_MODE_ATTRS = {
    "mode": Attr("str", "nearest", MODES),
    "coordinate_transformation_mode": Attr("str", "half_pixel", COORDS),
    "nearest_mode": Attr("str", "round_prefer_floor", NEAREST),
    "cubic_coeff_a": Attr("float", -0.75),
    "exclude_outside": Attr("bool", False),
    "extrapolation_value": Attr("float", 0.0),
    "antialias": Attr("bool", False),
}


def _check_x(where, x: TensorType, mode, antialias):
    require(x.dtype.kind != "bool", f"{where}: bool input is not supported")
    require(not (antialias and mode == "nearest"), f"{where}: antialias needs linear or cubic mode")


@op("resize", inputs=("x",), attrs={"sizes": Attr("dims"), "scales": Attr("floats"), "roi": Attr("floats", None),
                                    **_MODE_ATTRS})
class Resize:
    """Resample x to ``sizes`` (every dim); ``scales`` (every dim) and ``roi`` ([starts.., ends..],
    used by tf_crop_and_resize) drive the coordinate mapping. Axes whose size is unchanged, scale
    is 1 and roi whole are left alone. A symbolic size is ``floor(scale * dim)`` at run time."""

    def infer(x: TensorType, sizes, scales, roi, mode, antialias, **_):
        _check_x("resize", x, mode, antialias)
        require(len(sizes) == x.rank and len(scales) == x.rank,
                f"resize: sizes {list(sizes)} and scales {list(scales)} must have one entry per dim of {x}")
        require(roi is None or len(roi) == 2 * x.rank, f"resize: roi must have 2 * rank entries, got {roi}")
        return TensorType(x.dtype, sizes)

    def reference(x, sizes, scales, roi, **kw):
        sizes = [d if isinstance(d, int) else int(math.floor(scales[i] * x.shape[i])) for i, d in enumerate(sizes)]
        return resize_array(x, sizes, scales, roi, **kw)

    def lower(b, x, sizes, scales, roi, **kw):
        return resize_tensor(b, x, sizes, scales, roi, **kw)


@op("resize_dynamic", inputs=("x", "roi?", "scales?", "sizes?"),
    attrs={"axes": Attr("ints", None), "keep_aspect_ratio_policy": Attr("str", "stretch", POLICIES), **_MODE_ATTRS})
class ResizeDynamic:
    """resize with run-time ``scales`` (float) or ``sizes`` (int64) for ``axes`` (default all),
    ONNX Resize-18 rules: sizes win, ``keep_aspect_ratio_policy`` applies to sizes. The resized
    dims are run-time dims."""

    def infer(x: TensorType, roi, scales, sizes, axes, keep_aspect_ratio_policy, mode, antialias, **_):
        _check_x("resize_dynamic", x, mode, antialias)
        require((scales is None) != (sizes is None), "resize_dynamic: give exactly one of scales and sizes")
        axes = range(x.rank) if axes is None else [a % x.rank for a in axes]
        return TensorType(x.dtype, [dims.UNKNOWN if i in axes else d for i, d in enumerate(x.shape)])

    def reference(x, roi, scales, sizes, axes, keep_aspect_ratio_policy, **kw):
        r = x.ndim
        axes = list(range(r)) if axes is None else [a % r for a in axes]
        out_sizes, out_scales = resize_plan(x.shape, axes, None if scales is None else scales.tolist(),
                                            None if sizes is None else sizes.tolist(), keep_aspect_ratio_policy)
        full_roi = None
        if roi is not None and roi.size:
            full_roi = [0.0] * r + [1.0] * r
            for j, a in enumerate(axes):
                full_roi[a], full_roi[a + r] = float(roi[j]), float(roi[j + len(axes)])
        return resize_array(x, out_sizes, out_scales, full_roi, **kw)

    def lower(b, x, roi=None, scales=None, sizes=None, *, axes, keep_aspect_ratio_policy, **kw):
        if axes is None or len(axes):
            raise NotImplementedError("resize_dynamic: the resized dims come from the run-time scales or sizes "
                                      "(data-dependent result shape)")
        return b.compute(x.shape, lambda *i: x[i], dtype=x.dtype)


def resize_plan(in_shape, axes, scales=None, sizes=None, policy="stretch"):
    """Full-rank (sizes, scales) from ONNX Resize operands given for ``axes``."""
    r = len(in_shape)
    out_sizes, out_scales = list(in_shape), [1.0] * r
    if sizes is not None:
        require(len(sizes) == len(axes), f"resize: sizes {sizes} must have one entry per axis {axes}")
        sc = {a: int(s) / in_shape[a] for a, s in zip(axes, sizes)}
        if policy != "stretch":
            s = (min if policy == "not_larger" else max)(sc.values())
            sc = {a: s for a in axes}
            sizes = [int(s * in_shape[a] + 0.5) for a in axes]
        for a, n in zip(axes, sizes):
            out_sizes[a], out_scales[a] = int(n), sc[a]
    else:
        require(scales is not None and len(scales) == len(axes),
                f"resize: scales {scales} must have one entry per axis {axes}")
        for a, s in zip(axes, scales):
            require(s > 0, f"resize: scales must be positive, got {scales}")
            out_sizes[a], out_scales[a] = int(math.floor(float(s) * in_shape[a])), float(s)
    return out_sizes, out_scales


def resize_array(x, sizes, scales, roi, mode, coordinate_transformation_mode, nearest_mode, cubic_coeff_a,
                 exclude_outside, extrapolation_value, antialias):
    r = x.ndim
    y = x.astype(np.float64)
    for a in range(r):
        whole = roi is None or (math.isclose(roi[a], 0.0) and math.isclose(roi[a + r], 1.0))
        if sizes[a] == x.shape[a] and math.isclose(scales[a], 1.0) and whole:
            continue
        y = _resize_axis(y, a, int(sizes[a]), float(scales[a]), None if roi is None else (roi[a], roi[a + r]),
                         mode, coordinate_transformation_mode, nearest_mode, cubic_coeff_a, exclude_outside,
                         extrapolation_value, antialias)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        return np.clip(np.round(y), info.min, info.max).astype(x.dtype)
    return y.astype(x.dtype)


def _source_coords(ctm, out_n, in_n, scale, roi):
    """Map output positions to (fractional) input coordinates; also which fall outside (crop mode)."""
    y = np.arange(out_n, dtype=np.float64)
    length = scale * in_n  # the (fractional) output width the scale implies
    outside = None
    if ctm == "align_corners":
        x = np.zeros(out_n) if length == 1 else y * (in_n - 1) / (length - 1)
    elif ctm == "asymmetric":
        x = y / scale
    elif ctm == "tf_crop_and_resize":
        require(roi is not None, "resize: tf_crop_and_resize needs a roi")
        lo, hi = roi
        x = np.full(out_n, (hi - lo) * (in_n - 1) / 2) if length == 1 else y * (hi - lo) * (in_n - 1) / (length - 1)
        x = x + lo * (in_n - 1)
        outside = (x < 0) | (x > in_n - 1)
    elif ctm == "pytorch_half_pixel":
        x = np.full(out_n, -0.5) if length == 1 else (y + 0.5) / scale - 0.5
    elif ctm == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif ctm == "tf_half_pixel_for_nn":  # Resize-11 only
        x = (y + 0.5) / scale
    else:  # half_pixel_symmetric
        offset = in_n / 2 * (1 - out_n / length)
        x = offset + (y + 0.5) / scale - 0.5
    return x, outside


def _cubic(t, a):
    t = np.abs(t)
    return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                    np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))


def _weights(ratio, mode, nearest_mode, a, scale, antialias):
    """Tap weights [out, n] for each output position's fractional offset ``ratio`` in (0, 1]."""
    r = ratio[:, None]
    if mode == "nearest":
        whole = r == 1.0
        right = {"round_prefer_floor": r > 0.5, "round_prefer_ceil": r >= 0.5,
                 "floor": np.zeros_like(whole), "ceil": np.ones_like(whole)}[nearest_mode] | whole
        return np.concatenate([~right, right], axis=1).astype(np.float64)
    s = min(scale, 1.0) if antialias else 1.0
    reach = 1 if mode == "linear" else 2
    start = int(np.floor(-reach / s) + 1)
    taps = np.arange(start, 2 - start)
    t = (taps[None, :] - r) * s
    w = np.clip(1 - np.abs(t), 0, 1) if mode == "linear" else _cubic(t, a)
    return w / w.sum(axis=1, keepdims=True) if antialias else w


def resize_taps(in_n, out_n, scale, roi, mode, ctm, nearest_mode, a, exclude_outside, antialias):
    """The weight table of one resized axis: for each output position, the n source indices (clipped
    into the axis: edge values beyond the border), their weights [out_n, n], and which positions fall
    outside (crop mode; None otherwise)."""
    x, outside = _source_coords(ctm, out_n, in_n, scale, roi)
    base = np.floor(x)
    ratio = np.where(x == base, 1.0, x - base)  # prefer the left pixel: ratio in (0, 1]
    w = _weights(ratio, mode, nearest_mode, a, scale, antialias)
    n = w.shape[1]
    # the n taps nearest to x (ties to the smaller index), as in the ONNX reference
    pad = int(np.ceil(n / 2))
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    frac = xp - p
    if n % 2 == 0:
        first = p + np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        first = p + np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    idx = first[:, None] + np.arange(n)[None, :] - pad
    if exclude_outside:
        w = np.where((idx < 0) | (idx >= in_n), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return np.clip(idx, 0, in_n - 1), w, outside


def _resize_axis(y, axis, out_n, scale, roi, mode, ctm, nearest_mode, a, exclude_outside, extrap, antialias):
    in_n = y.shape[axis]
    if out_n == 0:
        shape = list(y.shape)
        shape[axis] = 0
        return np.empty(shape)
    idx, w, outside = resize_taps(in_n, out_n, scale, roi, mode, ctm, nearest_mode, a, exclude_outside, antialias)
    taken = np.take(y, idx, axis=axis)
    wshape = (1,) * axis + w.shape + (1,) * (y.ndim - axis - 1)
    out = (taken * w.reshape(wshape)).sum(axis=axis + 1)
    if outside is not None and outside.any():
        mshape = (1,) * axis + (out_n,) + (1,) * (y.ndim - axis - 1)
        out = np.where(outside.reshape(mshape), extrap, out)
    return out


# --- grid sampling -----------------------------------------------------------------------------

@op("grid_sample", inputs=("x", "grid"),
    attrs={"mode": Attr("str", "linear", MODES),
           "padding_mode": Attr("str", "zeros", ("zeros", "border", "reflection")),
           "align_corners": Attr("bool", False)})
class GridSample:
    """Sample x [N, C, *spatial] at the normalized points of grid [N, *out, D] (last axis ordered
    x, y, z: innermost spatial dim first; -1 and 1 are the edges, or the edge pixel centres with
    ``align_corners``); result [N, C, *out]. Points outside read zeros, the border, or a reflection."""

    def infer(x: TensorType, grid: TensorType, mode, padding_mode, align_corners):
        require(x.dtype.is_float and grid.dtype.is_float, f"grid_sample: x and grid must be float, got {x}, {grid}")
        require(x.rank >= 3, f"grid_sample: x must be [N, C, *spatial], got {x}")
        d = grid.shape[-1] if grid.rank else None
        require(grid.rank == x.rank and (d == x.rank - 2 or isinstance(d, str)),
                f"grid_sample: grid must be [N, *out, {x.rank - 2}] for {x}, got {grid}")
        require(not (mode == "cubic" and x.rank != 4), "grid_sample: cubic mode needs 2-D spatial data")
        return TensorType(x.dtype, (x.shape[0], x.shape[1]) + grid.shape[1:-1])

    def reference(x, grid, mode, padding_mode, align_corners):
        return grid_sample_array(x, grid, mode, padding_mode, align_corners)

    def lower(b, x, grid, mode, padding_mode, align_corners):
        return grid_sample_tensor(b, x, grid, mode, padding_mode, align_corners)


def _reflect(c, lo, hi):
    """Reflect coordinates into [lo, hi] by the nearer border, repeatedly."""
    span = hi - lo
    if span <= 0:
        return np.full_like(c, lo)
    below, above = c < lo, c > hi
    d = np.where(below, lo - c, c - hi)
    n = np.floor(d / span)
    r = d - n * span
    even = n % 2 == 0
    return np.where(below, np.where(even, lo + r, hi - r), np.where(above, np.where(even, hi - r, lo + r), c))


def _grid_taps(c, size, mode, padding_mode, lo, hi):
    """(index, weight) pairs along one spatial dim for sample coordinates c."""
    if mode == "nearest":
        taps = [(c, np.ones_like(c))]
    else:
        f = np.floor(c)
        t = c - f
        if mode == "linear":
            taps = [(f, 1 - t), (f + 1, t)]
        else:
            w = _cubic(np.stack([t + 1, t, 1 - t, 2 - t]), -0.75)
            taps = [(f + k - 1, w[k]) for k in range(4)]
    out = []
    for i, w in taps:
        if padding_mode == "zeros":
            w = np.where((i >= 0) & (i < size), w, 0.0)
        elif padding_mode == "reflection":
            i = np.trunc(_reflect(i, lo, hi))
        out.append((np.clip(i, 0, size - 1).astype(np.int64), w))
    return out


def grid_sample_array(x, grid, mode, padding_mode, align_corners):
    import itertools

    spatial = x.shape[2:]
    g = grid.astype(np.float64)[..., ::-1]  # one coordinate per spatial dim, outermost first
    per_dim = []
    for k, size in enumerate(spatial):
        n = g[..., k]
        c = (n + 1) / 2 * (size - 1) if align_corners else ((n + 1) * size - 1) / 2
        if mode == "nearest":
            c = np.rint(c)
        lo, hi = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
        outside = (c < lo) | (c > hi)
        if padding_mode == "border":
            c = np.where(outside, np.clip(c, 0, size - 1), c)
        elif padding_mode == "reflection":
            c = np.where(outside, _reflect(c, lo, hi), c)
        per_dim.append(_grid_taps(c, size, mode, padding_mode, lo, hi))
    batch = np.arange(x.shape[0]).reshape((-1,) + (1,) * (grid.ndim - 2))
    out = np.zeros((x.shape[0],) + grid.shape[1:-1] + (x.shape[1],))
    xf = np.moveaxis(x.astype(np.float64), 1, -1)  # [N, *spatial, C]
    for combo in itertools.product(*per_dim):
        w = np.prod([wk for _, wk in combo], axis=0)
        out += w[..., None] * xf[(batch,) + tuple(i for i, _ in combo)]
    return np.moveaxis(out, -1, 1).astype(x.dtype)


# --- col2im --------------------------------------------------------------------------------------

_COL2IM_ATTRS = {"dilations": Attr("ints", None), "pads": Attr("ints", None), "strides": Attr("ints", None)}


@op("col2im", inputs=("x",), attrs={"image_shape": Attr("ints"), "block_shape": Attr("ints"), **_COL2IM_ATTRS})
class Col2Im:
    """Sum sliding blocks back into an image (the inverse layout of im2col).

    x is [N, C * prod(block_shape), L] where L counts the block positions of a convolution window
    over the padded image; the result is [N, C, *image_shape]. ``pads`` is [begin.., end..];
    dilations, pads and strides default to 1, 0 and 1.
    """

    def infer(x: TensorType, image_shape, block_shape, dilations, pads, strides):
        return TensorType(x.dtype, [x.shape[0], _col2im_channels(x, block_shape)] + list(image_shape))

    def reference(x, image_shape, block_shape, dilations, pads, strides):
        return col2im_array(x, list(image_shape), list(block_shape), dilations, pads, strides)

    def lower(b, x, image_shape, block_shape, dilations, pads, strides):
        return col2im_tensor(b, x, list(image_shape), list(block_shape), dilations, pads, strides)


@op("col2im_dynamic", inputs=("x", "image_shape", "block_shape"), attrs=_COL2IM_ATTRS)
class Col2ImDynamic:
    """col2im with run-time int64 image and block shapes; the channel and image dims are run-time dims."""

    def infer(x: TensorType, image_shape: TensorType, block_shape: TensorType, dilations, pads, strides):
        for t in (image_shape, block_shape):
            require(t.rank == 1 and isinstance(t.shape[0], int) and t.dtype.is_int,
                    f"col2im_dynamic: shapes must be 1-D integer tensors of static length, got {t}")
        return TensorType(x.dtype, [x.shape[0], dims.UNKNOWN] + [dims.UNKNOWN] * image_shape.shape[0])

    def reference(x, image_shape, block_shape, dilations, pads, strides):
        return col2im_array(x, [int(v) for v in image_shape], [int(v) for v in block_shape], dilations, pads, strides)

    def lower(b, x, image_shape, block_shape, dilations, pads, strides):
        raise NotImplementedError("col2im_dynamic: the channel and image dims come from the run-time image and "
                                  "block shapes (data-dependent result shape)")


def _col2im_channels(x: TensorType, block_shape):
    require(x.rank == 3, f"col2im: x must be [N, C * prod(block), L], got {x}")
    c = dims.div_exact(x.shape[1], int(np.prod(block_shape)))
    require(c is not None, f"col2im: dim 1 of {x} is not divisible by prod(block_shape {list(block_shape)})")
    return c


def col2im_array(x, image_shape, block_shape, dilations, pads, strides):
    import itertools

    r = len(image_shape)
    dil = list(dilations or [1] * r)
    pads = list(pads or [0] * (2 * r))
    st = list(strides or [1] * r)
    require(len(block_shape) == r and len(dil) == r and len(st) == r and len(pads) == 2 * r,
            f"col2im: image_shape {image_shape}, block_shape {block_shape}, dilations, strides and pads disagree")
    padded = [image_shape[d] + pads[d] + pads[d + r] for d in range(r)]
    nblocks = [(padded[d] - dil[d] * (block_shape[d] - 1) - 1) // st[d] + 1 for d in range(r)]
    n, ck, length = x.shape
    k = int(np.prod(block_shape))
    require(ck % k == 0 and length == int(np.prod(nblocks)),
            f"col2im: input {list(x.shape)} does not match {nblocks} blocks of {block_shape}")
    cols = x.astype(np.float64).reshape([n, ck // k, k] + nblocks)
    out = np.zeros([n, ck // k] + padded)
    for j, offs in enumerate(itertools.product(*[range(b) for b in block_shape])):
        win = tuple(slice(o * dil[d], o * dil[d] + st[d] * (nblocks[d] - 1) + 1, st[d]) for d, o in enumerate(offs))
        out[(slice(None), slice(None)) + win] += cols[:, :, j]
    crop = tuple(slice(pads[d], pads[d] + image_shape[d]) for d in range(r))
    return out[(slice(None), slice(None)) + crop].astype(x.dtype)


# ------------------------------------------------------------------------------------------ lowering
# Resampling in float64 then one rounding to the result dtype, as the references do. resize reads
# per-axis tap tables: with static sizes they are the reference's own tables (``resize_taps``), baked in
# as weights; with symbolic sizes small kernels compute them, following the reference operation by
# operation (constant parts fold in Python, which rounds as numpy does). Tables are laid out [tap, out]
# so the innermost output loop reads them contiguously. Tap indices are clamped: every load is in bounds.
F64 = L.const(0.0, "f64").dtype


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _f(v):
    """A float64 expression of a Python number or an expression."""
    if _num(v):
        return L.Const(float(v), F64)
    return L.cast(v, F64)


def _fop(op, a, c):
    """``a op c`` in float64, folded in Python when both are numbers."""
    if _num(a) and _num(c) and not (op == "div" and c == 0):
        a, c = float(a), float(c)
        return {"add": a + c, "sub": a - c, "mul": a * c, "div": a / c if c else 0.0}[op]
    return L.binary(op, _f(a), _f(c))


def _fcmp(op, a, c):
    if _num(a) and _num(c):
        return L.Const({"eq": a == c, "lt": a < c, "le": a <= c, "gt": a > c, "ge": a >= c}[op], L.BOOL)
    return L.binary(op, _f(a), _f(c))


def _fsel(c, a, e):
    if isinstance(c, L.Const):
        return a if c.value else e
    return L.select(c, _f(a), _f(e))


def _or(a, c):
    return L.simplify(L.binary("or", a, c))


def _and(a, c):
    return L.simplify(L.binary("and", a, c))


def _floor(v):
    return float(math.floor(v)) if _num(v) else L.unary("floor", _f(v))


def _size(e):
    """A dim as a Python int when static, else the int64 expression."""
    e = L.simplify(e)
    return int(e.value) if isinstance(e, L.Const) else e


def _sum(terms):
    total = terms[0]
    for t in terms[1:]:
        total = _fop("add", total, t)
    return total


def _to_dtype(v, dt):
    """The float64 result in the op's dtype: integers round half to even and saturate (as the reference)."""
    if dt.is_float:
        return L.cast(v, dt)
    info = np.iinfo(dt.np)
    r = L.unary("round", v)
    return L.cast(L.minimum(L.maximum(r, L.Const(float(info.min), F64)), L.Const(float(info.max), F64)), dt)


def _cubic_w(t, a):
    t = _f(t) if _num(t) else L.unary("abs", _f(t))
    if isinstance(t, L.Const):
        t = L.Const(abs(t.value), F64)
    near = _fop("add", _fop("mul", _fop("mul", _fop("sub", _fop("mul", a + 2, t), a + 3), t), t), 1)
    far = _fop("sub", _fop("mul", _fop("add", _fop("mul", _fop("sub", _fop("mul", a, t), 5 * a), t), 8 * a), t), 4 * a)
    return _fsel(_fcmp("le", t, 1.0), near, _fsel(_fcmp("lt", t, 2.0), far, 0.0))


# --- resize ----------------------------------------------------------------------------------------
class _AxisPlan:
    """How one resized axis reads its input: ``n`` taps; ``index(j, o)`` the (in-range) source index of
    tap j at output position o; ``weight(j, o)`` its float64 weight (None: weight 1); ``outside(o)`` the
    crop-mode extrapolation test (None: never)."""

    def __init__(self, n, index, weight=None, outside=None):
        self.n, self.index, self.weight, self.outside = n, index, weight, outside


def _table(t):
    return lambda *i: t[i]


def _static_plan(b, in_n, out_n, scale, roi, mode, ctm, nearest_mode, a, exclude_outside, antialias):
    """The reference's own tap table, as compile-time weights; None when the builder cannot hold weights."""
    idx, w, outside = resize_taps(in_n, out_n, scale, roi, mode, ctm, nearest_mode, a, exclude_outside, antialias)
    if mode == "nearest":  # one tap: the one with weight 1 (weight 0 where exclude_outside left none)
        col = np.argmax(w, axis=1)
        rows = np.arange(out_n)
        idx, w = idx[rows, col][:, None], (w[rows, col][:, None] if exclude_outside else None)
    ti = b.weight(np.ascontiguousarray(idx.T.astype(np.int64)), "i64")
    if ti is None:
        return None
    tw = None if w is None else b.weight(np.ascontiguousarray(w.T.astype(np.float64)), "f64")
    to = b.weight(np.ascontiguousarray(outside), "bool") if outside is not None and outside.any() else None
    return _AxisPlan(idx.shape[1], _table(ti), None if tw is None else _table(tw), None if to is None else _table(to))


def _coord(y, in_n, out_n, scale, roi, ctm):
    """``_source_coords`` for output position y (float64 expression): coordinate and crop-mode outside."""
    length = _fop("mul", scale, in_n)
    one = _fcmp("eq", length, 1.0)
    outside = None
    if ctm == "align_corners":
        x = _fsel(one, 0.0, _fop("div", _fop("mul", y, _fop("sub", in_n, 1)), _fop("sub", length, 1)))
    elif ctm == "asymmetric":
        x = _fop("div", y, scale)
    elif ctm == "tf_crop_and_resize":
        lo, hi = roi
        span = _fop("sub", hi, lo)
        x = _fsel(one, _fop("div", _fop("mul", span, _fop("sub", in_n, 1)), 2),
                  _fop("div", _fop("mul", _fop("mul", y, span), _fop("sub", in_n, 1)), _fop("sub", length, 1)))
        x = _fop("add", x, _fop("mul", lo, _fop("sub", in_n, 1)))
        outside = _or(_fcmp("lt", x, 0.0), _fcmp("gt", x, _fop("sub", in_n, 1)))
    elif ctm == "pytorch_half_pixel":
        x = _fsel(one, -0.5, _fop("sub", _fop("div", _fop("add", y, 0.5), scale), 0.5))
    elif ctm == "half_pixel":
        x = _fop("sub", _fop("div", _fop("add", y, 0.5), scale), 0.5)
    elif ctm == "tf_half_pixel_for_nn":
        x = _fop("div", _fop("add", y, 0.5), scale)
    else:  # half_pixel_symmetric
        offset = _fop("mul", _fop("div", in_n, 2), _fop("sub", 1, _fop("div", out_n, length)))
        x = _fop("sub", _fop("add", offset, _fop("div", _fop("add", y, 0.5), scale)), 0.5)
    return x, outside


def _computed_plan(b, in_n, out_n, scale, roi, mode, ctm, nearest_mode, a, exclude_outside, antialias):
    """The tap table computed at run time (symbolic sizes), by small kernels over [tap, out]."""
    hi = L.simplify(L.as_expr(in_n) - 1)
    # the source coordinate of each output position and its fractional part, in (0, 1], once each
    xs = b.buffer(b.compute([out_n], lambda o: _f(_coord(_f(o), in_n, out_n, scale, roi, ctm)[0]), dtype=F64),
                  "resize_coord")

    def ratio_of(o):
        x = xs[o]
        base = _floor(x)
        return _fsel(_fcmp("eq", x, base), 1.0, _fop("sub", x, base))

    ratios = b.buffer(b.compute([out_n], ratio_of, dtype=F64), "resize_ratio")

    def coords(o):
        x = xs[o]
        return x, _or(_fcmp("lt", x, 0.0), _fcmp("gt", x, _fop("sub", in_n, 1))), ratios[o]

    def first_tap(x, n):  # the index of tap 0, unclipped
        pad = (n + 1) // 2
        xp = _fop("add", x, pad)
        p = _floor(xp)
        f = _fop("add", p, _fsel(_fcmp("eq", _fop("sub", xp, p), 0.0), -(n // 2), -(n // 2) + 1))
        return L.simplify((L.Const(int(f)) if _num(f) else L.cast(f, "i64")) - pad)

    def inside(i):
        return _and(L.binary("ge", i, L.Const(0)), L.binary("le", i, hi))

    if mode == "nearest":
        def chosen(k, o):
            x, _, ratio = coords(o)
            right = {"round_prefer_floor": _fcmp("gt", ratio, 0.5), "round_prefer_ceil": _fcmp("ge", ratio, 0.5),
                     "floor": L.Const(False, L.BOOL), "ceil": L.Const(True, L.BOOL)}[nearest_mode]
            right = _or(right, _fcmp("eq", ratio, 1.0))
            return L.simplify(first_tap(x, 2) + L.select(right, L.Const(1), L.Const(0)))

        raw = b.buffer(b.compute([1, out_n], chosen, dtype="i64"), "resize_index")
        n, weight = 1, None
        if exclude_outside:
            weight = _table(b.buffer(b.compute([1, out_n], lambda k, o: _fsel(inside(raw[k, o]), 1.0, 0.0),
                                               dtype=F64), "resize_weight"))
    else:
        s = min(scale, 1.0) if antialias else 1.0
        start = int(math.floor(-(1 if mode == "linear" else 2) / s) + 1)
        n = 2 - 2 * start
        raw = b.buffer(b.compute([n, out_n], lambda k, o: L.simplify(first_tap(coords(o)[0], n) + k), dtype="i64"),
                       "resize_index")

        def tap_weight(k, o):
            t = _fop("sub", _f(L.simplify(k + start)), coords(o)[2])
            if s != 1.0:
                t = _fop("mul", t, s)
            if mode == "linear":
                return L.minimum(L.maximum(_fop("sub", 1.0, L.unary("abs", t)), _f(0.0)), _f(1.0))
            return _cubic_w(t, a)

        w = b.buffer(b.compute([n, out_n], tap_weight, dtype=F64), "resize_weight")
        if antialias:
            w0 = w
            w = b.buffer(b.compute([n, out_n], lambda k, o: _fop("div", w0[k, o], _sum([w0[j, o] for j in range(n)])),
                                   dtype=F64), "resize_weight")
        if exclude_outside:
            w1 = w

            def excluded(k, o):
                kept = [_fsel(inside(raw[j, o]), w1[j, o], 0.0) for j in range(n)]
                total = _sum(kept)
                return _fop("div", _fsel(inside(raw[k, o]), w1[k, o], 0.0), _fsel(_fcmp("eq", total, 0.0), 1.0, total))

            w = b.buffer(b.compute([n, out_n], excluded, dtype=F64), "resize_weight")
        weight = _table(w)
    outside = None
    if ctm == "tf_crop_and_resize":
        outside = _table(b.buffer(b.compute([out_n], lambda o: coords(o)[1], dtype="bool"), "resize_outside"))
    return _AxisPlan(n, lambda j, o: clamp(raw[j, o], 0, hi), weight, outside)


def resize_tensor(b, x, sizes, scales, roi, mode, coordinate_transformation_mode, nearest_mode, cubic_coeff_a,
                  exclude_outside, extrapolation_value, antialias):
    r = x.ndim
    ctm = coordinate_transformation_mode
    out_shape = [b.dim(d) for d in sizes]
    if ctm == "tf_crop_and_resize" and roi is None:
        raise NotImplementedError("resize: tf_crop_and_resize needs a roi")
    plans, axes = {}, []
    for a in range(r):
        whole = roi is None or (math.isclose(roi[a], 0.0) and math.isclose(roi[a + r], 1.0))
        # a symbolic size is floor(scale * dim) at run time: the input's own dim when the scale is 1
        same = not isinstance(sizes[a], int) or _dim(x.shape[a]) == sizes[a]
        if same and math.isclose(scales[a], 1.0) and whole:
            continue
        axes.append(a)
        in_n, out_n = _size(x.shape[a]), _size(out_shape[a])
        args = (in_n, out_n, float(scales[a]), None if roi is None else (roi[a], roi[a + r]), mode, ctm,
                nearest_mode, cubic_coeff_a, exclude_outside, antialias)
        plan = None
        if isinstance(in_n, int) and isinstance(out_n, int):
            if out_n == 0:
                return b.compute(out_shape, lambda *i: L.const(0, x.dtype), dtype=x.dtype)
            plan = _static_plan(b, *args)
        plans[a] = plan or _computed_plan(b, *args)
    if not axes:
        return b.compute(out_shape, lambda *i: x[i], dtype=x.dtype)
    if any(plans[a].n > 1 for a in axes):
        x = operand_buffer(b, x, "resize_input")  # read once per tap: compute it once

    def level(k, o, idx):
        # the reference resizes axis by axis: the last resized axis sums over the earlier ones' results
        if k < 0:
            return L.cast(x[tuple(idx)], F64)
        a = axes[k]
        p = plans[a]
        total = None
        for j in range(p.n):
            sub = list(idx)
            sub[a] = p.index(L.Const(j), o[a])
            v = level(k - 1, o, sub)
            if p.weight is not None:
                v = _fop("mul", v, p.weight(L.Const(j), o[a]))
            total = v if total is None else _fop("add", total, v)
        if p.outside is not None:
            total = _fsel(p.outside(o[a]), float(extrapolation_value), total)
        return total

    if int(np.prod([plans[a].n for a in axes])) <= MAX_UNROLLED_TAPS:
        return b.compute(out_shape, lambda *o: _to_dtype(level(len(axes) - 1, o, list(o)), x.dtype), dtype=x.dtype)

    # many taps (antialiased downscaling): one reduction over every tap combination, the taps of the
    # first resized axis innermost; extrapolation where any axis falls outside (the weights of each
    # axis sum to 1, so that is what the reference's axis-by-axis extrapolation gives)
    rv = {a: b.var("t") for a in axes}

    def reduced(*o):
        idx = list(o)
        for a in axes:
            idx[a] = plans[a].index(rv[a], o[a])
        v = L.cast(x[tuple(idx)], F64)
        for a in axes:
            if plans[a].weight is not None:
                v = _fop("mul", v, plans[a].weight(rv[a], o[a]))
        total = L.Reduce("sum", L.Const(0.0, F64), tuple((rv[a], L.Const(plans[a].n)) for a in reversed(axes)), v)
        for a in axes:
            if plans[a].outside is not None:
                total = _fsel(plans[a].outside(o[a]), float(extrapolation_value), total)
        return _to_dtype(total, x.dtype)

    return b.compute(out_shape, reduced, dtype=x.dtype)


MAX_UNROLLED_TAPS = 64  # more tap combinations per output element than this: a reduction loop


# --- grid_sample -----------------------------------------------------------------------------------
def _reflect_expr(c, lo, hi):
    """``_reflect`` of the reference on a float64 expression (lo, hi Python floats or expressions)."""
    span = _fop("sub", hi, lo)
    if _num(span) and span <= 0:
        return _f(lo)
    below, above = _fcmp("lt", c, lo), _fcmp("gt", c, hi)
    d = _fsel(below, _fop("sub", lo, c), _fop("sub", c, hi))
    n = _floor(_fop("div", d, span))
    rem = _fop("sub", d, _fop("mul", n, span))
    even = _fcmp("eq", _fop("mul", _floor(_fop("mul", n, 0.5)), 2.0), n)
    inner = _fsel(below, _fsel(even, _fop("add", lo, rem), _fop("sub", hi, rem)),
                  _fsel(above, _fsel(even, _fop("sub", hi, rem), _fop("add", lo, rem)), c))
    if not _num(span):
        inner = _fsel(_fcmp("le", span, 0.0), lo, inner)
    return inner


def grid_sample_tensor(b, x, grid, mode, padding_mode, align_corners):
    x = operand_buffer(b, x, "grid_sample_input")  # read once per tap
    spatial = [_size(d) for d in x.shape[2:]]
    nd = len(spatial)
    points = grid.shape[:-1]  # [N, *out]
    bounds = []
    coords = []
    for k, size in enumerate(spatial):
        top = _fop("sub", size, 1)
        lo, hi = (0.0, top) if align_corners else (-0.5, _fop("sub", size, 0.5))
        bounds.append((lo, hi, top))

        def coord(*pt, k=k, size=size, lo=lo, hi=hi, top=top):
            g = _f(grid[pt + (L.Const(nd - 1 - k),)])  # the grid's last axis lists x (innermost) first
            if align_corners:
                c = _fop("mul", _fop("div", _fop("add", g, 1), 2), top)
            else:
                c = _fop("div", _fop("sub", _fop("mul", _fop("add", g, 1), size), 1), 2)
            if mode == "nearest":
                c = L.unary("round", c)
            out = _or(_fcmp("lt", c, lo), _fcmp("gt", c, hi))
            if padding_mode == "border":
                c = _fsel(out, L.minimum(L.maximum(c, _f(0.0)), _f(top)), c)
            elif padding_mode == "reflection":
                c = _fsel(out, _reflect_expr(c, lo, hi), c)
            return c

        # the sample coordinate along each spatial dim, once per point (every tap reads it)
        coords.append(b.buffer(b.compute(points, coord, dtype=F64), "grid_coord"))

    def element(n, ch, *o):
        per_dim = []
        for k, size in enumerate(spatial):
            lo, hi, top = bounds[k]
            c = coords[k][(n,) + o]
            if mode == "nearest":
                taps = [(c, None)]
            else:
                f = L.unary("floor", c)
                t = _fop("sub", c, f)
                if mode == "linear":
                    taps = [(f, _fop("sub", 1.0, t)), (_fop("add", f, 1.0), t)]
                else:
                    ts = [_fop("add", t, 1.0), t, _fop("sub", 1.0, t), _fop("sub", 2.0, t)]
                    taps = [(_fop("add", f, j - 1.0), _cubic_w(ts[j], -0.75)) for j in range(4)]
            res = []
            for i, w in taps:
                if padding_mode == "zeros":
                    w = _fsel(_and(_fcmp("ge", i, 0.0), _fcmp("lt", i, size)), 1.0 if w is None else w, 0.0)
                elif padding_mode == "reflection":
                    i = L.unary("trunc", _reflect_expr(i, lo, hi))
                res.append((L.cast(L.minimum(L.maximum(_f(i), _f(0.0)), _f(top)), "i64"), w))
            per_dim.append(res)
        total = None
        for combo in itertools.product(*per_dim):
            v = L.cast(x[(n, ch) + tuple(i for i, _ in combo)], F64)
            ws = [w for _, w in combo if w is not None]
            if ws:
                v = _fop("mul", _sum_prod(ws), v)
            total = v if total is None else _fop("add", total, v)
        return L.cast(total, x.dtype)

    return b.compute((x.shape[0], x.shape[1]) + tuple(points[1:]), element, dtype=x.dtype)


def _sum_prod(ws):
    w = ws[0]
    for w2 in ws[1:]:
        w = _fop("mul", w, w2)
    return w


# --- col2im ----------------------------------------------------------------------------------------
def col2im_tensor(b, x, image_shape, block_shape, dilations, pads, strides):
    """Each image position sums, over the block offsets (a reduction, in the reference's order), the
    column entries whose window covers it: no scatter."""
    r = len(image_shape)
    dil = list(dilations or [1] * r)
    pads = list(pads or [0] * (2 * r))
    st = list(strides or [1] * r)
    require(len(block_shape) == r and len(dil) == r and len(st) == r and len(pads) == 2 * r,
            f"col2im: image_shape {image_shape}, block_shape {block_shape}, dilations, strides and pads disagree")
    padded = [image_shape[d] + pads[d] + pads[d + r] for d in range(r)]
    nblocks = [(padded[d] - dil[d] * (block_shape[d] - 1) - 1) // st[d] + 1 for d in range(r)]
    k = int(np.prod(block_shape))
    ck = _dim(x.shape[1])
    c = None if ck is None else dims.div_exact(ck, k)
    if c is None:
        raise NotImplementedError(f"col2im: dim 1 of x ({L.fmt_expr(x.shape[1])}) is not a known multiple of "
                                  f"prod(block_shape) = {k}")
    shape = (x.shape[0], L.dim_expr(c)) + tuple(L.Const(v) for v in image_shape)
    rv = [b.var("r") for _ in range(r)]
    x = operand_buffer(b, x, "col2im_input")  # read once per block offset (most reads are then discarded)

    def element(n, ch, *p):
        # block offset o covers image position p when p + pad - o * dil == block * stride, 0 <= block < nblocks
        ok, blk = None, []
        for d in range(r):
            q = L.simplify(p[d] + pads[d] - rv[d] * dil[d])
            bd = L.binary("floordiv", q, L.Const(st[d])) if st[d] != 1 else q
            conds = [L.binary("ge", q, L.Const(0)), L.binary("lt", bd, L.Const(nblocks[d]))]
            if st[d] != 1:
                conds.append(L.binary("eq", L.binary("mod", q, L.Const(st[d])), L.Const(0)))
            for cnd in conds:
                ok = cnd if ok is None else L.binary("and", ok, cnd)
            blk.append(clamp(bd, 0, nblocks[d] - 1))
        j, lin = L.Const(0), L.Const(0)
        for d in range(r):
            j = j * block_shape[d] + rv[d]
            lin = lin * nblocks[d] + blk[d]
        v = L.cast(x[n, ch * k + j, lin], F64)
        red = L.Reduce("sum", L.Const(0.0, F64), tuple(zip(rv, (L.Const(v) for v in block_shape))),
                       L.select(ok, v, L.Const(0.0, F64)))
        return L.cast(red, x.dtype)

    return b.compute(shape, element, dtype=x.dtype)
