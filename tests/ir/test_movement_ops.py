"""Core data-movement, indexing and resampling ops: inference agrees with the reference.

Each case runs ``infer`` on the operand types and ``reference`` on arrays and checks that the
result has exactly the inferred dtype and (static) shape, then checks the values against plain
numpy. Bad operands must raise ValueError with a message naming the op.
"""
from __future__ import annotations

import numpy as np
import pytest

from kiln.ir import dims
from kiln.ir.builder import GraphBuilder
from kiln.ir.interpreter import interpret
from kiln.ir.registry import get
from kiln.ir.types import TensorType


def run(name, *arrays, **attrs):
    """infer + reference on arrays; checks the result against the inferred type."""
    opdef = get(name)
    attrs = opdef.normalize_attrs(attrs)
    types = [None if a is None else TensorType(a.dtype, a.shape) for a in arrays]
    res = opdef.infer(*types, **attrs)
    out = opdef.reference(*arrays, **attrs)
    ts = list(res) if isinstance(res, (list, tuple)) else [res]
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    for t, y in zip(ts, outs):
        assert y.dtype == t.dtype.np, (name, y.dtype, t)
        assert len(y.shape) == t.rank
        for d, e in zip(y.shape, t.shape):
            assert not isinstance(e, int) or d == e, (name, y.shape, t)
    return out


def infer(name, *types, **attrs):
    opdef = get(name)
    return opdef.infer(*types, **opdef.normalize_attrs(attrs))


X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
I64 = np.int64


def test_reshape_and_transpose():
    np.testing.assert_array_equal(run("reshape", X, shape=[6, 4]), X.reshape(6, 4))
    np.testing.assert_array_equal(run("transpose", X, perm=[2, 0, 1]), X.transpose(2, 0, 1))
    with pytest.raises(ValueError, match="reshape"):
        infer("reshape", TensorType("f32", [2, 3]), shape=[7])
    with pytest.raises(ValueError, match="transpose"):
        infer("transpose", TensorType("f32", [2, 3]), perm=[0, 0])


def test_reshape_symbolic_dims():
    t = infer("reshape", TensorType("f32", ["batch", 3, 4]), shape=["batch", 12])
    assert t.shape == ("batch", 12)
    assert run("reshape", X, shape=["b", 12]).shape == (2, 12)


@pytest.mark.parametrize("target,allowzero,want", [
    ([0, -1], False, (2, 12)), ([-1, 4], False, (6, 4)), ([4, 0, 6], True, None), ([3, 2, 4], False, (3, 2, 4))])
def test_reshape_dynamic_placeholders(target, allowzero, want):
    if want is None:  # allowzero: a 0 is a zero-sized dim, which does not fit 24 elements
        with pytest.raises(ValueError):
            run("reshape_dynamic", X, np.array(target, I64), allowzero=allowzero)
        return
    y = run("reshape_dynamic", X, np.array(target, I64), allowzero=allowzero)
    assert y.shape == want


def test_reshape_dynamic_dims_hint():
    t = infer("reshape_dynamic", TensorType("f32", ["b", "s", 8]), TensorType("i64", [4]), dims=["b", "s", 2, 4])
    assert t.shape == ("b", "s", 2, 4)
    t = infer("reshape_dynamic", TensorType("f32", [2, 3]), TensorType("i64", [2]))
    assert t.shape == (dims.UNKNOWN, dims.UNKNOWN)


def test_shape_op():
    np.testing.assert_array_equal(run("shape", X), [2, 3, 4])
    np.testing.assert_array_equal(run("shape", X, start=1), [3, 4])
    np.testing.assert_array_equal(run("shape", X, start=-1, end=None), [4])
    assert infer("shape", TensorType("f32", ["b", 3]), start=0, end=1).shape == (1,)


def test_broadcast_and_dynamic_twin():
    a = np.arange(3, dtype=np.float32).reshape(3, 1)
    np.testing.assert_array_equal(run("broadcast", a, shape=[2, 3, 4]), np.broadcast_to(a, (2, 3, 4)))
    # both-way broadcast: a dim of 1 in the shape keeps x's dim
    y = run("broadcast_dynamic", a, np.array([2, 1, 5], I64))
    assert y.shape == (2, 3, 5)
    assert infer("broadcast_dynamic", TensorType("f32", [3, 1]), TensorType("i64", [3])).shape == ("?", 3, "?")
    with pytest.raises(ValueError, match="broadcast"):
        infer("broadcast", TensorType("f32", [3]), shape=[4])


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], [1], [1]), ([-1], [-1000], [2], [-1]), ([0, 10], [5, -10], [0, 2], [1, -2]),
    ([2**62], [0], [1], [-1])])
def test_slice_and_dynamic_twin(starts, ends, axes, steps):
    idx = [slice(None)] * 3
    for s, e, a, st in zip(starts, ends, axes, steps):
        idx[a] = slice(s, e, st)
    want = X[tuple(idx)]
    np.testing.assert_array_equal(run("slice", X, starts=starts, ends=ends, axes=axes, steps=steps), want)
    got = run("slice_dynamic", X, np.array(starts, I64), np.array(ends, I64), None, np.array(steps, I64), axes=axes)
    np.testing.assert_array_equal(got, want)
    got = run("slice_dynamic", X, np.array(starts, I64), np.array(ends, I64), np.array(axes, I64),
              np.array(steps, I64))
    np.testing.assert_array_equal(got, want)


def test_slice_dynamic_keeps_unsliced_dims():
    t = infer("slice_dynamic", TensorType("f32", ["b", 8]), TensorType("i64", [1]), TensorType("i64", [1]),
              None, None, axes=[1])
    assert t.shape == ("b", "?")


def test_concat():
    y = run("concat", X, X[:, :1], axis=1)
    assert y.shape == (2, 4, 4)
    assert infer("concat", TensorType("f32", ["n", 2]), TensorType("f32", ["m", 2]), axis=0).shape == ("m+n", 2)
    with pytest.raises(ValueError, match="concat"):
        infer("concat", TensorType("f32", [1, 2]), TensorType("i64", [1, 2]), axis=0)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes(mode):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    pads = [1, 2, 2, 1]
    want = np.pad(x, [(1, 2), (2, 1)], mode=mode)
    np.testing.assert_array_equal(run("pad", x, None, pads=pads, mode=mode), want)
    np.testing.assert_array_equal(run("pad_dynamic", x, np.array(pads, I64), None, mode=mode), want)


def test_pad_negative_and_value():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    y = run("pad", x, np.array(7, np.int32), pads=[-1, 1, 0, -2], mode="constant")
    want = np.pad(x[1:, :2], [(0, 0), (1, 0)], constant_values=7)
    np.testing.assert_array_equal(y, want)
    assert infer("pad", TensorType("f32", ["n", 4]), None, pads=[1, 0, 1, 0]).shape == ("n+2", 4)
    with pytest.raises(ValueError, match="negative size"):
        infer("pad", TensorType("f32", [3]), None, pads=[-2, -2])


def test_gather_family():
    idx = np.array([[0, -1], [1, 1]], I64)
    np.testing.assert_array_equal(run("gather", X, idx, axis=1), np.take(X, [[0, 2], [1, 1]], axis=1))
    ge = np.array([[[0, 1, 2, 0]], [[2, 2, 1, 0]]], I64)
    np.testing.assert_array_equal(run("gather_elements", X, ge, axis=1), np.take_along_axis(X, ge, axis=1))
    nd = np.array([[0, 1], [1, 2]], I64)
    np.testing.assert_array_equal(run("gather_nd", X, nd), X[[0, 1], [1, 2]])
    bd = np.array([[1], [2]], I64)
    np.testing.assert_array_equal(run("gather_nd", X, bd, batch_dims=1), np.stack([X[0, 1], X[1, 2]]))
    with pytest.raises(ValueError, match="out of range"):
        run("gather", X, np.array([3], I64), axis=1)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatters(reduction):
    x = np.ones((3, 3), np.float32)
    idx = np.array([[1, 0, 2], [0, 2, 1]], I64)
    upd = np.arange(6, dtype=np.float32).reshape(2, 3) + 2
    want = x.copy()
    f = {"none": lambda a, b: b, "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}[reduction]
    for i in range(2):
        for j in range(3):
            want[idx[i, j], j] = f(want[idx[i, j], j], upd[i, j])
    np.testing.assert_array_equal(run("scatter_elements", x, idx, upd, axis=0, reduction=reduction), want)
    ind = np.array([[0], [2], [0]], I64)
    rows = np.arange(9, dtype=np.float32).reshape(3, 3)
    want = x.copy()
    for k, r in enumerate(ind[:, 0]):
        want[r] = f(want[r], rows[k])
    np.testing.assert_array_equal(run("scatter_nd", x, ind, rows, reduction=reduction), want)


def test_nonzero_and_range():
    x = np.array([[1, 0], [0, 3]], np.float32)
    np.testing.assert_array_equal(run("nonzero", x), np.array(np.nonzero(x)))
    np.testing.assert_array_equal(run("range", np.array(1, I64), np.array(10, I64), np.array(3, I64)), [1, 4, 7])
    y = run("range", np.float32(1), np.float32(0), np.float32(-0.25))
    np.testing.assert_allclose(y, [1, 0.75, 0.5, 0.25])
    assert run("range", np.array(5, np.int32), np.array(1, np.int32), np.array(1, np.int32)).shape == (0,)


def test_resize_nearest_and_linear():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    y = run("resize", x, sizes=[1, 1, 4, 4], scales=[1, 1, 2, 2], mode="nearest",
            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    np.testing.assert_array_equal(y, x.repeat(2, 2).repeat(2, 3))
    y = run("resize", x, sizes=[1, 1, 3, 3], scales=[1, 1, 1.5, 1.5], mode="linear",
            coordinate_transformation_mode="align_corners")
    np.testing.assert_allclose(y[0, 0], [[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]])
    y = run("resize_dynamic", x, None, np.array([1, 1, 0.5, 0.5], np.float32), None, mode="linear")
    assert y.shape == (1, 1, 1, 1)


def test_resize_integer_rounds_and_saturates():
    x = np.array([[0, 255]], np.uint8)
    y = run("resize", x, sizes=[1, 3], scales=[1, 1.5], mode="cubic", coordinate_transformation_mode="align_corners")
    assert y.dtype == np.uint8 and y[0, 0] == 0 and y[0, 2] == 255


def test_symbolic_reshape_through_the_interpreter():
    b = GraphBuilder()
    x = b.input("x", "f32", ("batch", 3, 4))
    y = b.op("reshape", x, shape=["batch", 12])
    s = b.op("shape", x)
    z = b.op("reshape_dynamic", x, s, dims=["batch", 3, 4])
    g = b.build([y, z])
    out = interpret(g, [X])
    np.testing.assert_array_equal(out[y], X.reshape(2, 12))
    np.testing.assert_array_equal(out[z], X)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_identity_grid(mode, padding_mode):
    """A grid at the pixel centres reads the input back unchanged, in every mode."""
    x = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    ys, xs = np.meshgrid((2 * np.arange(3) + 1) / 3 - 1, (2 * np.arange(4) + 1) / 4 - 1, indexing="ij")
    grid = np.stack([xs, ys], -1)[None].astype(np.float32)
    y = run("grid_sample", x, grid, mode=mode, padding_mode=padding_mode)
    np.testing.assert_allclose(y, x, atol=1e-5)


def test_grid_sample_outside_points():
    x = np.array([[[[1.0, 2.0]]]], np.float32)  # [1, 1, 1, 2]
    grid = np.array([[[[3.0, 0.0]]]], np.float32)  # far right of the image
    assert run("grid_sample", x, grid, mode="linear", padding_mode="zeros")[0, 0, 0, 0] == 0
    assert run("grid_sample", x, grid, mode="linear", padding_mode="border")[0, 0, 0, 0] == 2
    with pytest.raises(ValueError, match="grid_sample"):
        infer("grid_sample", TensorType("f32", [1, 1, 4, 4]), TensorType("f32", [1, 2, 2, 3]))


@pytest.mark.parametrize("axis,sorted_", [(None, True), (None, False), (0, True), (1, False)])
def test_unique(axis, sorted_):
    x = np.array([[2, 1, 2], [0, 1, 0], [2, 1, 2]], np.int32)
    y, first, inverse, counts = run("unique", x, axis=axis, sorted=sorted_)
    data = x.reshape(-1) if axis is None else x
    a = 0 if axis is None else axis
    np.testing.assert_array_equal(np.take(data, first, axis=a), y)
    np.testing.assert_array_equal(np.take(y, inverse, axis=a), data)
    assert counts.sum() == data.shape[a]
    if not sorted_:
        assert list(first) == sorted(first)


def test_col2im_inverts_im2col_counts():
    """col2im of all-ones columns counts how many blocks cover each pixel."""
    blocks = [(i, j) for i in range(2) for j in range(2)]  # 3x3 image, 2x2 blocks, stride 1
    x = np.ones((1, 4, len(blocks)), np.float32)
    y = run("col2im", x, image_shape=[3, 3], block_shape=[2, 2])
    np.testing.assert_array_equal(y[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    y2 = run("col2im_dynamic", x, np.array([3, 3], I64), np.array([2, 2], I64))
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(ValueError, match="divisible"):
        infer("col2im", TensorType("f32", [1, 5, 4]), image_shape=[3, 3], block_shape=[2, 2])


def test_text_form_round_trips():
    from kiln.ir import parse

    b = GraphBuilder()
    x = b.input("x", "f32", ("batch", 3, 4))
    s = b.op("shape", x)
    s2 = b.op("shape", x, start=1)
    outs = [b.op("reshape_dynamic", x, s, dims=["batch", "n", 4]),
            b.op("slice_dynamic", x, s2, s2, None, None, axes=[1, 2]),
            b.op("resize", x, sizes=["batch", 6, 8], scales=[1, 2, 2], mode="linear"),
            b.op("pad", x, None, pads=[0, 1, 1, 0, 1, 1], mode="reflect"),
            b.op("unique", x)[0], b.op("gather", x, s2, axis=2)]
    g = b.build(outs)
    assert str(parse(str(g))) == str(g)
    with pytest.raises(ValueError, match="must name all"):
        b.op("reshape_dynamic", x, s, dims=["batch", "?", 4])


@pytest.mark.parametrize("start,end,want", [(1, 2**63 - 1, "n-1"), (0, -1, "n-1"), (2, -1, "n-3"),
                                            (-3, 2**63 - 1, 3), (-3, -1, 2), (0, 3, "?")])
def test_slice_of_a_symbolic_dim(start, end, want):
    t = infer("slice", TensorType("f32", ["n", 4]), starts=[start], ends=[end], axes=[0], steps=[1])
    assert t.shape == (want, 4)
    b = GraphBuilder()
    x = b.input("x", "f32", ("n", 4))
    g = b.build([b.op("slice", x, starts=[start], ends=[end], axes=[0], steps=[1])])
    xv = np.zeros((6, 4), np.float32)
    assert list(interpret(g, [xv]).values())[0].shape == xv[start:end].shape


from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_BOUND = st.one_of(st.integers(-7, 7), st.sampled_from([2**63 - 1, -(2**63)]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_BOUND, _BOUND, st.sampled_from([-3, -1, 1, 2])), min_size=1, max_size=3))
def test_slice_inference_matches_numpy(specs):
    """Any bounds, clamped python-style: the inferred shape is numpy's, for slice and slice_dynamic."""
    x = np.arange(5 * 4 * 3, dtype=np.int32).reshape(5, 4, 3)
    specs = specs[:3]
    axes = list(range(len(specs)))
    starts, ends, steps = ([s[k] for s in specs] for k in range(3))
    want = x[tuple(slice(s, e, st_) for s, e, st_ in specs)]
    np.testing.assert_array_equal(run("slice", x, starts=starts, ends=ends, axes=axes, steps=steps), want)
    got = run("slice_dynamic", x, np.array(starts, I64), np.array(ends, I64), None, np.array(steps, I64), axes=axes)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-2, 3), min_size=2, max_size=2), st.sampled_from(["constant", "reflect", "edge", "wrap"]))
def test_pad_matches_numpy(pads2, mode):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assume(3 + min(pads2[0], 0) + min(pads2[1], 0) >= 1)  # something is left to pad
    pads = [pads2[0], 1, pads2[1], 0]
    crop = x[max(-pads[0], 0):3 - max(-pads[2], 0), :]
    want = np.pad(crop, [(max(pads[0], 0), max(pads[2], 0)), (1, 0)], mode=mode)
    np.testing.assert_array_equal(run("pad", x, None, pads=pads, mode=mode), want)


def test_broadcast_symbolic_dim_needs_an_operand_dim():
    with pytest.raises(ValueError, match="no dim of the operand"):
        run("broadcast", np.ones(4, np.float32), shape=["batch", 4])
    assert run("broadcast", np.ones((2, 1), np.float32), shape=["batch", 4]).shape == (2, 4)
