"""Resampling ops compiled for the CPU agree with the interpreter: resize (every mode, coordinate
transformation, nearest rounding, antialias, exclude_outside, crop-and-resize extrapolation),
grid_sample (every mode, padding mode, 1-D to 3-D) and col2im; ``resize_dynamic`` and
``col2im_dynamic`` (run-time result dims) are refused with the reason.

resize with static sizes reads the reference's own tap tables (baked in as weights); with symbolic
sizes small kernels compute the tables at run time, and those graphs run at several sizes, 1
included (where ``align_corners`` and ``pytorch_half_pixel`` special-case a length of 1). Several
attribute variants share one graph (one output each) to keep the number of compilations down.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("llvmlite")

from kiln.compiler.lower import CompileError  # noqa: E402
from kiln.ir import GraphBuilder  # noqa: E402
from kiln.ir import dtypes as kd  # noqa: E402
from kiln.ir.ops.image import COORDS, NEAREST  # noqa: E402
from kiln.testing import check_compiled  # noqa: E402

ROI = [0, 0, 0.2, 0.1, 1, 1, 0.9, 0.7]  # crop box for tf_crop_and_resize on [N, C, H, W]
# (sizes, scales) on [1, 2, 4, 5]: up, down, mixed, to one pixel
STATIC = [([1, 2, 8, 10], [1, 1, 2.0, 2.0]), ([1, 2, 3, 2], [1, 1, 0.75, 0.4]), ([1, 2, 7, 4], [1, 1, 1.75, 0.8]),
          ([1, 2, 1, 1], [1, 1, 0.25, 0.2])]


def values(dt: str, shape, seed=0, lo=-3, hi=3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = kd.dtype(dt)
    if d.is_float:
        return rng.uniform(lo, hi, shape).astype(d.np)
    return rng.integers(0 if d.kind == "uint" else lo, hi + 1, shape).astype(d.np)


def resize(b, x, sizes, scales, ctm, **attrs):
    return b.op("resize", x, sizes=sizes, scales=scales, roi=ROI if ctm == "tf_crop_and_resize" else None,
                coordinate_transformation_mode=ctm, extrapolation_value=-7.0, **attrs)


# ------------------------------------------------------------------------------------ resize
@pytest.mark.parametrize("ctm", COORDS)
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_static(mode, ctm):
    b = GraphBuilder("resize")
    x = b.input("x", "f32", (1, 2, 4, 5))
    outs = []
    for sizes, scales in STATIC:
        outs.append(resize(b, x, sizes, scales, ctm, mode=mode))
        outs.append(resize(b, x, sizes, scales, ctm, mode=mode, exclude_outside=True))
        if mode != "nearest":
            outs.append(resize(b, x, sizes, scales, ctm, mode=mode, antialias=True, cubic_coeff_a=-0.5))
    if mode == "nearest":
        outs += [resize(b, x, [1, 2, 9, 7], [1, 1, 2.25, 1.4], ctm, mode=mode, nearest_mode=nm) for nm in NEAREST]
    check_compiled(b.build(outs), [[values("f32", (1, 2, 4, 5), seed=s)] for s in (1, 2)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_symbolic_sizes_compute_their_tables(mode):
    """Tables computed at run time, following the reference operation by operation, at three sizes."""
    b = GraphBuilder("resize_sym")
    x = b.input("x", "f32", (1, 2, "h", "w"))
    outs = []
    for ctm in COORDS:
        outs.append(resize(b, x, [1, 2, "2*h", "w"], [1, 1, 2.0, 1.0], ctm, mode=mode))
        outs.append(resize(b, x, [1, 2, 3, "w"], [1, 1, 0.75, 1.0], ctm, mode=mode, exclude_outside=True,
                           antialias=mode != "nearest"))
    if mode == "nearest":
        outs += [resize(b, x, [1, 2, 5, "3*w"], [1, 1, 1.3, 3.0], "half_pixel", mode=mode, nearest_mode=nm)
                 for nm in NEAREST]
    sets = [[values("f32", (1, 2, h, w), seed=h + w)] for h, w in ((4, 5), (1, 1), (2, 3))]
    check_compiled(b.build(outs), sets, rtol=1e-5, atol=1e-5)


def test_resize_with_symbolic_batch_and_static_spatial_sizes():
    b = GraphBuilder("resize_batch")
    x = b.input("x", "f32", ("batch", 3, 4, 4))
    outs = [b.op("resize", x, sizes=["batch", 3, 8, 8], scales=[1, 1, 2, 2], mode="linear"),
            b.op("resize", x, sizes=["batch", 3, 8, 8], scales=[1, 1, 2, 2], mode="nearest",
                 coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
            b.op("resize", x, sizes=["batch", 3, 2, 2], scales=[1, 1, 0.5, 0.5], mode="cubic", antialias=True)]
    check_compiled(b.build(outs), [[values("f32", (n, 3, 4, 4), seed=n)] for n in (1, 3)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dt", ["u8", "i8", "i32", "i64", "f64", "f16", "bf16"])
def test_resize_dtypes(dt):
    """Integers round half to even and saturate (cubic overshoots); narrow floats round once."""
    b = GraphBuilder("resize_dtype")
    x = b.input("x", dt, (1, 1, 4, 4))
    outs = [b.op("resize", x, sizes=[1, 1, 8, 6], scales=[1, 1, 2, 1.5], mode=m) for m in ("nearest", "linear", "cubic")]
    outs.append(b.op("resize", x, sizes=[1, 1, 2, 3], scales=[1, 1, 0.5, 0.75], mode="linear", antialias=True))
    lo, hi = {"u8": (0, 255), "i8": (-128, 127)}.get(dt, (-50, 50))
    a = values(dt, (1, 1, 4, 4), seed=3, lo=lo, hi=hi)
    tol = {"f16": dict(rtol=2e-3, atol=2e-3), "bf16": dict(rtol=1e-2, atol=1e-2)}.get(dt, {})
    check_compiled(b.build(outs), [[a]], **tol)


def test_resize_every_axis_and_rank():
    b = GraphBuilder("resize_axes")
    x = b.input("x", "f32", (2, 3, 4))
    outs = [b.op("resize", x, sizes=[4, 3, 4], scales=[2, 1, 1], mode="linear"),        # a leading axis
            b.op("resize", x, sizes=[3, 5, 2], scales=[1.5, 5 / 3, 0.5], mode="cubic"),  # every axis
            b.op("resize", x, sizes=[2, 3, 4], scales=[1, 1, 1], mode="cubic"),          # nothing to do
            b.op("resize", x, sizes=[2, 3, 4], scales=[1, 1, 1], mode="linear",
                 coordinate_transformation_mode="tf_crop_and_resize", roi=[0, 0, 0.25, 1, 1, 0.75])]
    check_compiled(b.build(outs), rtol=1e-5, atol=1e-5)


def test_resize_of_a_computed_tensor():
    b = GraphBuilder("resize_chain")
    x = b.input("x", "f32", (1, 2, 3, 3))
    y = b.op("resize", b.op("neg", b.op("transpose", x, perm=[0, 1, 3, 2])), sizes=[1, 2, 6, 6],
             scales=[1, 1, 2, 2], mode="cubic")
    g = b.build([b.op("add", y, y)])
    check_compiled(g, rtol=1e-5, atol=1e-5)


def test_resize_to_an_empty_axis():
    b = GraphBuilder("resize_empty")
    x = b.input("x", "f32", (1, 1, 3, 3))
    check_compiled(b.build([b.op("resize", x, sizes=[1, 1, 0, 3], scales=[1, 1, 0.2, 1], mode="linear")]))


def test_resize_dynamic():
    b = GraphBuilder("resize_dynamic")
    x = b.input("x", "f32", (1, 1, 3, 3))
    g = b.build([b.op("resize_dynamic", x, None, b.input("s", "f32", (2,)), axes=[2, 3])])
    with pytest.raises(CompileError, match=r"resize_dynamic.*data-dependent"):
        check_compiled(g)
    b = GraphBuilder("resize_dynamic")
    x = b.input("x", "f32", (1, 1, 3, 3))
    g = b.build([b.op("resize_dynamic", x, None, b.const(np.zeros((0,), np.float32)), axes=[])])
    check_compiled(g)  # no axis resized: every dim known


@st.composite
def resize_cases(draw):
    mode = draw(st.sampled_from(["nearest", "linear", "cubic"]))
    ctm = draw(st.sampled_from(COORDS))
    sizes, scales = [1, 2], [1.0, 1.0]
    for n in (3, 4):
        out = draw(st.integers(1, 9))
        sizes.append(out)
        scales.append(draw(st.sampled_from([out / n, round(out / n, 2) or 0.1])))
    attrs = dict(mode=mode, coordinate_transformation_mode=ctm, exclude_outside=draw(st.booleans()),
                 nearest_mode=draw(st.sampled_from(NEAREST)), cubic_coeff_a=draw(st.sampled_from([-0.75, -0.5])),
                 antialias=mode != "nearest" and draw(st.booleans()))
    if ctm == "tf_crop_and_resize":
        lo = draw(st.lists(st.floats(-0.2, 0.5), min_size=2, max_size=2))
        hi = draw(st.lists(st.floats(0.5, 1.2), min_size=2, max_size=2))
        attrs["roi"] = [0, 0, *lo, 1, 1, *hi]
    return sizes, scales, attrs


@settings(max_examples=15, deadline=None)
@given(resize_cases())
def test_property_resize(case):
    sizes, scales, attrs = case
    b = GraphBuilder("resize_prop")
    x = b.input("x", "f32", (1, 2, 3, 4))
    check_compiled(b.build([b.op("resize", x, sizes=sizes, scales=scales, **attrs)]), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- grid_sample
GRIDS = {1: (3,), 2: (3, 2), 3: (2, 2, 3)}
SPATIAL = {1: (5,), 2: (4, 5), 3: (3, 4, 2)}


@pytest.mark.parametrize("mode,nd", [("nearest", 1), ("linear", 1), ("nearest", 2), ("linear", 2), ("cubic", 2),
                                     ("nearest", 3), ("linear", 3)])
def test_grid_sample(mode, nd):
    b = GraphBuilder("grid_sample")
    x = b.input("x", "f32", (2, 3) + SPATIAL[nd])
    grid = b.input("grid", "f32", (2,) + GRIDS[nd] + (nd,))
    outs = [b.op("grid_sample", x, grid, mode=mode, padding_mode=pm, align_corners=ac)
            for pm in ("zeros", "border", "reflection") for ac in (False, True)]
    # points well outside [-1, 1] exercise the padding modes (reflection several times over)
    sets = [[values("f32", (2, 3) + SPATIAL[nd], seed=s), values("f32", (2,) + GRIDS[nd] + (nd,), seed=s + 9, lo=-3.5,
                                                                 hi=3.5)] for s in (1, 2)]
    check_compiled(b.build(outs), sets, rtol=1e-5, atol=1e-5)


def test_grid_sample_symbolic_batch_and_dtypes():
    b = GraphBuilder("grid_sample_sym")
    x = b.input("x", "f64", ("n", 2, 3, 4))
    grid = b.input("grid", "f32", ("n", 5, 1, 2))
    outs = [b.op("grid_sample", x, grid, mode="linear"),
            b.op("grid_sample", x, grid, mode="cubic", padding_mode="border", align_corners=True)]
    sets = [[values("f64", (n, 2, 3, 4), seed=n), values("f32", (n, 5, 1, 2), seed=n, lo=-1.2, hi=1.2)]
            for n in (1, 3)]
    check_compiled(b.build(outs), sets, rtol=1e-6, atol=1e-6)
    b = GraphBuilder("grid_sample_f16")
    x = b.input("x", "f16", (1, 2, 3, 4))
    grid = b.input("grid", "f16", (1, 2, 2, 2))
    g = b.build([b.op("grid_sample", x, grid, mode=m) for m in ("nearest", "linear")])
    check_compiled(g, rtol=5e-3, atol=5e-3)


def test_grid_sample_of_a_single_pixel_axis():
    """align_corners on a size-1 axis: reflection has no span and keeps the border."""
    b = GraphBuilder("grid_sample_one")
    x = b.input("x", "f32", (1, 2, 1, 4))
    grid = b.input("grid", "f32", (1, 3, 3, 2))
    outs = [b.op("grid_sample", x, grid, mode=m, padding_mode="reflection", align_corners=ac)
            for m in ("nearest", "linear") for ac in (False, True)]
    sets = [[values("f32", (1, 2, 1, 4), seed=1), values("f32", (1, 3, 3, 2), seed=2, lo=-2.5, hi=2.5)]]
    check_compiled(b.build(outs), sets, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------ col2im
@pytest.mark.parametrize("image,block,dil,pads,strides", [
    ([4, 5], [2, 2], None, None, None),
    ([5, 6], [3, 2], [2, 1], [1, 0, 2, 1], [2, 3]),
    ([7], [3], [2], [1, 1], [2]),
    ([3, 3, 4], [2, 1, 2], None, [0, 1, 0, 1, 0, 1], [1, 2, 1]),
])
def test_col2im(image, block, dil, pads, strides):
    r = len(image)
    d_, p_, s_ = dil or [1] * r, pads or [0] * (2 * r), strides or [1] * r
    nblocks = [(image[d] + p_[d] + p_[d + r] - d_[d] * (block[d] - 1) - 1) // s_[d] + 1 for d in range(r)]
    b = GraphBuilder("col2im")
    x = b.input("x", "f32", ("n", 2 * int(np.prod(block)), int(np.prod(nblocks))))
    g = b.build([b.op("col2im", x, image_shape=image, block_shape=block, dilations=dil, pads=pads, strides=strides)])
    check_compiled(g, [[values("f32", (n, 2 * int(np.prod(block)), int(np.prod(nblocks))), seed=n)] for n in (1, 2)],
                   rtol=1e-5, atol=1e-5)


def test_col2im_of_ints():
    b = GraphBuilder("col2im_int")
    x = b.input("x", "i32", (1, 8, 6))
    check_compiled(b.build([b.op("col2im", x, image_shape=[3, 4], block_shape=[2, 2])]))


def test_col2im_dynamic_is_refused():
    b = GraphBuilder("col2im_dynamic")
    x = b.input("x", "f32", (1, 4, 6))
    g = b.build([b.op("col2im_dynamic", x, b.input("i", "i64", (2,)), b.input("k", "i64", (2,)))])
    with pytest.raises(CompileError, match=r"col2im_dynamic.*data-dependent"):
        check_compiled(g)
