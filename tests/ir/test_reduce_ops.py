"""Core reductions, arg-reductions, scans and top-k: inference agrees with the reference.

For each op, the reference result has exactly the dtype and shape ``infer`` promises (symbolic and
run-time dims included), and the semantics that are easy to get wrong: empty sets, identities,
ties, exclusive/reverse scans, accumulation in narrow floats. Then the errors ``infer`` raises.
"""
from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiln.ir import GraphBuilder, interpret
from kiln.ir import dtypes as kd
from kiln.ir.ops.reduce import REDUCTIONS
from kiln.ir.registry import get
from kiln.ir.types import TensorType

RNG = np.random.default_rng(0)
DTYPES = [kd.float32, kd.float16, kd.bfloat16, kd.float64, kd.int8, kd.int32, kd.int64, kd.uint8]


def run(name, arrays, types=None, **attrs):
    """(inferred types, reference results) of one op; checks the results agree with the types."""
    opdef = get(name)
    attrs = opdef.normalize_attrs(attrs)
    types = types or [None if a is None else TensorType(kd.of(a), a.shape) for a in arrays]
    t = opdef.infer(*types, **attrs)
    ts = list(t) if isinstance(t, tuple) else [t]
    ys = opdef.reference(*arrays, **attrs)
    ys = list(ys) if isinstance(ys, tuple) else [ys]
    for ti, yi in zip(ts, ys):
        assert yi.dtype == ti.dtype.np, (name, yi.dtype, ti.dtype)
        assert len(yi.shape) == ti.rank
        for d, e in zip(yi.shape, ti.shape):
            assert not isinstance(e, int) or d == e, (name, yi.shape, ti.shape)
    return ts, ys


def sample(dt, shape):
    if dt.kind == "bool":
        return RNG.integers(0, 2, size=shape).astype(bool)
    if dt.is_int:
        lo = 0 if dt.kind == "uint" else -3
        return RNG.integers(lo, 4, size=shape).astype(dt.np)
    return RNG.standard_normal(shape).astype(dt.np)


# --- reductions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(REDUCTIONS))
@pytest.mark.parametrize("dt", DTYPES, ids=str)
def test_reduction_dtypes_and_shapes(kind, dt):
    x = sample(dt, (2, 3, 4))
    for axes, keep in [((1,), True), ((0, -1), False), ((0, 1, 2), False)]:
        (t,), (y,) = run(f"reduce_{kind}", [x], axes=axes, keepdims=keep)
        want = getattr(np, kind)(x.astype(np.float64), axis=tuple(a % 3 for a in axes), keepdims=keep)
        tol = 2e-2 if dt.bits <= 16 else 1e-6
        if dt.is_int:
            want = want.astype(np.int64).astype(dt.np)  # wraps like the target's integers
        np.testing.assert_allclose(y.astype(np.float64), np.asarray(want, np.float64), rtol=tol, atol=tol)


def test_reduction_symbolic_dims_and_identity():
    t = get("reduce_sum").infer(TensorType("f32", ("batch", 3, "seq")), axes=(2,), keepdims=False)
    assert t.shape == ("batch", 3)
    t = get("reduce_max").infer(TensorType("f32", ("batch", 3)), axes=(-1,), keepdims=True)
    assert t.shape == ("batch", 1)
    x = sample(kd.float32, (2, 3))
    (t,), (y,) = run("reduce_sum", [x], axes=(), keepdims=False)  # no axes: the identity
    assert t.shape == (2, 3)
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("kind,value", [("sum", 0), ("prod", 1), ("max", -np.inf), ("min", np.inf), ("mean", np.nan)])
def test_reduction_of_empty_set(kind, value):
    x = np.zeros((2, 0, 3), np.float32)
    _, (y,) = run(f"reduce_{kind}", [x], axes=(1,), keepdims=True)
    np.testing.assert_array_equal(y, np.full((2, 1, 3), value, np.float32))
    _, (y,) = run(f"reduce_{kind}", [x], axes=(2,), keepdims=False)  # the reduced axis is not the empty one
    assert y.shape == (2, 0)


def test_max_min_of_empty_ints_and_bools():
    _, (y,) = run("reduce_max", [np.zeros((0, 2), np.int8)], axes=(0,), keepdims=False)
    np.testing.assert_array_equal(y, [-128, -128])
    _, (y,) = run("reduce_min", [np.zeros((0, 2), np.uint8)], axes=(0,), keepdims=False)
    np.testing.assert_array_equal(y, [255, 255])
    _, (y,) = run("reduce_max", [np.zeros((0,), bool)], axes=(0,), keepdims=False)
    assert y.dtype == np.bool_ and not y
    x = np.array([[True, False], [False, False]])
    _, (y,) = run("reduce_max", [x], axes=(1,), keepdims=False)
    np.testing.assert_array_equal(y, [True, False])
    _, (y,) = run("reduce_min", [x], axes=(0,), keepdims=False)
    np.testing.assert_array_equal(y, [False, False])


def test_narrow_float_sum_accumulates_wide():
    x = np.full(4096, 1.0, np.float16)
    _, (y,) = run("reduce_sum", [x], axes=(0,), keepdims=False)
    assert float(y) == 4096.0  # a float16 accumulator stalls at 2048
    xb = np.full(1000, 0.1, ml_dtypes.bfloat16)
    _, (y,) = run("reduce_mean", [xb], axes=(0,), keepdims=False)
    assert abs(float(y) - 0.1) < 1e-3


@pytest.mark.parametrize("kind", sorted(REDUCTIONS))
def test_dynamic_twin_matches_static(kind):
    x = sample(kd.float32, (2, 3, 4))
    for axes, keep in [([1], True), ([0, -1], False), ([2], False)]:
        a = np.array(axes, np.int64)
        (t,), (y,) = run(f"reduce_{kind}_dynamic", [x, a], keepdims=keep)
        assert t.rank == (3 if keep else 3 - len(axes)) and all(d == "?" for d in t.shape)
        _, (want,) = run(f"reduce_{kind}", [x], axes=axes, keepdims=keep)
        np.testing.assert_allclose(y, want, rtol=1e-6)


def test_dynamic_twin_empty_axes():
    x = sample(kd.float32, (2, 3))
    empty = np.zeros((0,), np.int64)
    (t,), (y,) = run("reduce_sum_dynamic", [x, empty], keepdims=True)  # every axis
    assert t.shape == (1, 1)
    np.testing.assert_allclose(y, x.sum(keepdims=True), rtol=1e-6)
    (t,), (y,) = run("reduce_sum_dynamic", [x, empty], keepdims=False)
    assert t.shape == ()
    (t,), (y,) = run("reduce_sum_dynamic", [x, empty], keepdims=False, noop_with_empty_axes=True)
    assert t.shape == (2, 3)
    np.testing.assert_array_equal(y, x)


def test_dynamic_twin_in_a_graph_binds_runtime_dims():
    b = GraphBuilder()
    x = b.input("x", "f32", ("n", 4))
    a = b.input("axes", "i64", (1,))
    y = b.op("reduce_mean_dynamic", x, a, keepdims=False)
    g = b.build([y])
    assert g.types[y].rank == 1 and isinstance(g.types[y].shape[0], str)
    xv = sample(kd.float32, (3, 4))
    (out,) = interpret(g, [xv, np.array([0], np.int64)]).values()
    np.testing.assert_allclose(out, xv.mean(0), rtol=1e-6)


def test_reduction_errors():
    with pytest.raises(ValueError, match="out of range"):
        get("reduce_sum").infer(TensorType("f32", (2, 3)), axes=(2,), keepdims=True)
    with pytest.raises(ValueError, match="repeat"):
        get("reduce_sum").infer(TensorType("f32", (2, 3)), axes=(1, -1), keepdims=True)
    with pytest.raises(ValueError, match="does not accept bool"):
        get("reduce_sum").infer(TensorType("bool", (2, 3)), axes=(1,), keepdims=True)
    with pytest.raises(ValueError, match="static length"):
        get("reduce_sum_dynamic").infer(TensorType("f32", (2, 3)), TensorType("i64", ("k",)),
                                        keepdims=True, noop_with_empty_axes=False)
    with pytest.raises(ValueError, match="3 axes for an operand of rank 2"):
        get("reduce_max_dynamic").infer(TensorType("f32", (2, 3)), TensorType("i64", (3,)),
                                        keepdims=True, noop_with_empty_axes=False)


# --- argmax / argmin ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_reductions(name):
    x = np.array([[1, 3, 3, 0], [0, 0, 2, 2]], np.float32)
    (t,), (y,) = run(name, [x], axis=1, keepdims=False)
    assert t.dtype == kd.int64 and t.shape == (2,)
    np.testing.assert_array_equal(y, [1, 2] if name == "argmax" else [3, 0])
    _, (y,) = run(name, [x], axis=-1, keepdims=True, select_last_index=True)
    np.testing.assert_array_equal(y, [[2], [3]] if name == "argmax" else [[3], [1]])
    for dt in DTYPES:
        run(name, [sample(dt, (3, 4))], axis=0, keepdims=True)
    with pytest.raises(ValueError, match="out of range"):
        get(name).infer(TensorType("f32", (2,)), axis=1, keepdims=True, select_last_index=False)


# --- cumsum / cumprod -----------------------------------------------------------------------------

def _scan_want(fn, ident, x, axis, exclusive, reverse):
    y = np.flip(x, axis) if reverse else x
    r = fn(y.astype(np.float64), axis=axis)
    if exclusive:
        r = np.concatenate([np.full_like(np.take(r, [0], axis), ident), np.take(r, range(r.shape[axis] - 1), axis)],
                           axis)
    return (np.flip(r, axis) if reverse else r).astype(x.dtype)


@pytest.mark.parametrize("name,fn,ident", [("cumsum", np.cumsum, 0), ("cumprod", np.cumprod, 1)])
@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_scans(name, fn, ident, exclusive, reverse):
    for dt in (kd.float32, kd.int32, kd.float16, kd.uint8):
        x = sample(dt, (3, 4))
        for axis in (0, 1, -1):
            want = _scan_want(fn, ident, x, axis % 2, exclusive, reverse)
            (t,), (y,) = run(name, [x], axis=axis, exclusive=exclusive, reverse=reverse)
            assert t == TensorType(dt, (3, 4))
            np.testing.assert_allclose(y.astype(np.float64), want.astype(np.float64), rtol=1e-2)
            (t,), (yd,) = run(f"{name}_dynamic", [x, np.array(axis, np.int32)], exclusive=exclusive, reverse=reverse)
            np.testing.assert_array_equal(yd, y)


def test_scan_symbolic_and_errors():
    t = get("cumsum").infer(TensorType("f32", ("n", 3)), axis=0, exclusive=False, reverse=False)
    assert t.shape == ("n", 3)
    with pytest.raises(ValueError, match="out of range"):
        get("cumsum").infer(TensorType("f32", (2, 3)), axis=2, exclusive=False, reverse=False)
    with pytest.raises(ValueError, match="does not accept dtype bool"):
        get("cumprod").infer(TensorType("bool", (2,)), axis=0, exclusive=False, reverse=False)
    with pytest.raises(ValueError, match="integer scalar"):
        get("cumsum_dynamic").infer(TensorType("f32", (2,)), TensorType("f32", ()), exclusive=False, reverse=False)


# --- topk -----------------------------------------------------------------------------------------

def test_topk_sorted_with_stable_ties():
    x = np.array([[3, 1, 3, 2, 1]], np.int64)
    (tv, ti), (v, i) = run("topk", [x], k=3, axis=1)
    assert tv == TensorType("i64", (1, 3)) and ti == TensorType("i64", (1, 3))
    np.testing.assert_array_equal(v, [[3, 3, 2]])
    np.testing.assert_array_equal(i, [[0, 2, 3]])
    _, (v, i) = run("topk", [x], k=3, axis=-1, largest=False)
    np.testing.assert_array_equal(v, [[1, 1, 2]])
    np.testing.assert_array_equal(i, [[1, 4, 3]])


@pytest.mark.parametrize("dt", DTYPES, ids=str)
def test_topk_dtypes_and_axes(dt):
    x = sample(dt, (4, 5, 3))
    for axis in (0, 1, -1):
        for largest in (True, False):
            _, (v, i) = run("topk", [x], k=2, axis=axis, largest=largest)
            np.testing.assert_array_equal(np.take_along_axis(x, i, axis), v)
            ordered = np.sort(x.astype(np.float64), axis=axis)
            if largest:
                ordered = np.flip(ordered, axis)
            np.testing.assert_array_equal(v.astype(np.float64), np.take(ordered, [0, 1], axis))


def test_topk_dynamic():
    x = sample(kd.float32, (3, 6))
    (tv, ti), (v, i) = run("topk_dynamic", [x, np.array([4], np.int64)], axis=1)
    assert tv.shape == (3, "?") and ti.dtype == kd.int64
    _, (v2, i2) = run("topk", [x], k=4, axis=1)
    np.testing.assert_array_equal(v, v2)
    np.testing.assert_array_equal(i, i2)


def test_topk_errors():
    with pytest.raises(ValueError, match="exceeds the axis length"):
        get("topk").infer(TensorType("f32", (2, 3)), k=4, axis=1, largest=True, sorted=True)
    with pytest.raises(ValueError, match="out of range"):
        get("topk").infer(TensorType("f32", (2, 3)), k=1, axis=2, largest=True, sorted=True)
    with pytest.raises(ValueError, match="k operand"):
        get("topk_dynamic").infer(TensorType("f32", (2, 3)), TensorType("i64", (2,)), axis=1, largest=True,
                                  sorted=True)


def test_text_round_trip():
    from kiln.ir import parse, verify

    b = GraphBuilder()
    x = b.input("x", "f32", ("n", 4))
    a = b.input("axes", "i64", (1,))
    k = b.input("k", "i64", (1,))
    outs = [b.op("reduce_sum_dynamic", x, a, keepdims=False, noop_with_empty_axes=True),
            b.op("reduce_max", x, axes=(0,), keepdims=False),
            b.op("cumsum", x, axis=1, exclusive=True),
            b.op("cumprod_dynamic", x, b.input("axis", "i32", ()), reverse=True),
            *b.op("topk_dynamic", x, k, axis=1, largest=False),
            *b.op("topk", x, k=2),
            b.op("argmin", x, axis=1, select_last_index=True)]
    g = b.build(outs)
    text = str(g)
    g2 = parse(text)
    verify(g2)
    assert str(g2) == text


# --- properties: any shape (empty dims included), any axes ----------------------------------------



@st.composite
def _reduction_case(draw):
    shape = tuple(draw(st.lists(st.integers(0, 3), min_size=1, max_size=4)))
    axes = draw(st.lists(st.integers(-len(shape), len(shape) - 1), unique_by=lambda a: a % len(shape)))
    return shape, tuple(axes), draw(st.booleans()), draw(st.sampled_from(sorted(REDUCTIONS)))


@given(_reduction_case())
def test_reduction_property(case):
    shape, axes, keep, kind = case
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) % 5 - 2
    (t,), (y,) = run(f"reduce_{kind}", [x], axes=axes, keepdims=keep)
    assert y.shape == t.shape
    ax = tuple(sorted(a % len(shape) for a in axes))
    if not ax:
        np.testing.assert_array_equal(y, x)
        return
    if x.size == 0 and kind in ("max", "min"):
        want = np.full(t.shape, -np.inf if kind == "max" else np.inf)
    else:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's "mean of empty slice"
            want = getattr(np, kind)(x, axis=ax, keepdims=keep)
    np.testing.assert_allclose(y, want, rtol=1e-12)
    # the dynamic twin agrees (an empty axes operand there means every axis)
    (td,), (yd,) = run(f"reduce_{kind}_dynamic", [x, np.array(axes, np.int64)], keepdims=keep)
    np.testing.assert_array_equal(yd, y)
