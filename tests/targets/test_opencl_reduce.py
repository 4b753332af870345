"""Reductions compiled for OpenCL and run on a real device (PoCL in CI) agree with the interpreter:
every ``reduce_*`` kind, argmax / argmin with ties and NaN, softmax and layer norm, over rows short
enough for one work-item each and long enough for a work-group reduction (strided partial results,
a tree in shared memory with barriers), a reduction of everything into one group, symbolic and empty
extents. Which schedule a kernel got is read from the artifact's launch table. Several variants
share one graph (one output each): a cold PoCL build costs ~0.1 s per kernel.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings

pytest.importorskip("pyopencl")

import kiln.testing as kt  # noqa: E402
from kiln.ir import GraphBuilder  # noqa: E402
from kiln.ir import dtypes as kd  # noqa: E402
from kiln.ir.ops.reduce import REDUCTIONS  # noqa: E402


def _have_device() -> bool:
    from kiln.runtime import opencl

    try:
        return bool(opencl.devices())
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _have_device(), reason="no OpenCL device")

KINDS = sorted(REDUCTIONS)  # max, mean, min, prod, sum
VARIANTS = [((1,), True), ((0, 2), False), ((-1,), False), ((0, 1, 2), False)]
LOOSE = {"f16": dict(rtol=1e-2, atol=1e-2), "bf16": dict(rtol=2e-2, atol=2e-2)}


def values(dt: str, shape, seed=0, lo=-3, hi=3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = kd.dtype(dt)
    if d.kind == "bool":
        return rng.random(shape) < 0.5
    if d.is_float:
        return rng.uniform(lo, hi, shape).astype(d.np)
    return rng.integers(0 if d.kind == "uint" else lo, hi + 1, shape).astype(d.np)


def check(g, inputs=None, **kw):
    return kt.check_compiled(g, inputs, target="opencl", **kw)


def strategies(model) -> list:
    """The schedule of every launch, in call order (from the artifact's launch table)."""
    table = json.loads(bytes(model._members["launch.json"]))
    return [ln["strategy"] for c in table["calls"] for ln in table["kernels"][c["kernel"]]["launches"]]


# --------------------------------------------------------------------------------- every reduce_*
@pytest.mark.parametrize("dt", ["f32", "f16", "i32", "u8"])
def test_reduce_kinds_axes_and_keepdims(dt):
    b = GraphBuilder(f"reduce_{dt}")
    x = b.input("x", dt, (3, 4, 5))
    g = b.build([b.op(f"reduce_{k}", x, axes=axes, keepdims=keep) for k in KINDS for axes, keep in VARIANTS])
    check(g, [[values(dt, (3, 4, 5), seed=s, lo=-2, hi=2)] for s in (1, 2)], **LOOSE.get(dt, {}))


def test_long_rows_use_work_group_reductions():
    """Rows of 1000 (and 2999: a partial last stride), everything at once, a product of two axes:
    work-group reductions; NaN and inf propagate through them. Columns of 6: one per work-item."""
    b = GraphBuilder("long")
    x = b.input("x", "f32", (6, 1000))
    y = b.input("y", "f32", (7, 3, 2999))
    outs = [b.op(f"reduce_{k}", x, axes=(1,), keepdims=False) for k in KINDS]
    outs += [b.op("reduce_sum", x, axes=(0,), keepdims=True), b.op("reduce_max", x, axes=(0, 1), keepdims=False),
             b.op("reduce_mean", y, axes=(1, 2), keepdims=False), b.op("reduce_min", y, axes=(2,), keepdims=True)]
    g = b.build(outs)
    a = values("f32", (6, 1000), seed=3, lo=0.9, hi=1.1)
    a[2, 17], a[3, 999], a[4, 500] = np.nan, np.inf, -np.inf
    model = check(g, [[a, values("f32", (7, 3, 2999), seed=4)]], rtol=1e-5, atol=1e-5)
    s = strategies(model)
    assert s == ["rows"] * 5 + ["elementwise"] + ["rows"] * 3, s


def test_short_rows_run_one_per_work_item():
    b = GraphBuilder("short")
    x = b.input("x", "f32", (5000, 3))
    g = b.build([b.op("reduce_sum", x, axes=(1,), keepdims=False), b.op("argmax", x, axis=1, keepdims=True,
                                                                          select_last_index=False)])
    model = check(g, [[values("f32", (5000, 3), seed=5, lo=-1, hi=1).round(1)]])
    assert strategies(model) == ["elementwise", "elementwise"]


def test_reductions_of_nothing_give_the_identity():
    b = GraphBuilder("empty")
    x = b.input("x", "f32", (3, 0))
    g = b.build([b.op(f"reduce_{k}", x, axes=(1,), keepdims=False) for k in KINDS])
    check(g, [[np.zeros((3, 0), np.float32)]])


def test_int_reductions_wrap_in_a_work_group():
    b = GraphBuilder("ints")
    x = b.input("x", "i8", (2, 300))
    g = b.build([b.op("reduce_sum", x, axes=(1,), keepdims=False),
                 b.op("reduce_prod", x, axes=(1,), keepdims=False),
                 b.op("reduce_max", x, axes=(1,), keepdims=False)])
    a = np.full((2, 300), 100, np.int8)
    a[1] = values("i8", (300,), seed=6, lo=-2, hi=2)
    check(g, [[a]])


def test_reductions_over_symbolic_dims_at_two_sizes():
    b = GraphBuilder("sym")
    x = b.input("x", "f32", ("batch", 3, "seq"))
    g = b.build([b.op("reduce_mean", x, axes=(0,), keepdims=False), b.op("reduce_sum", x, axes=(2,), keepdims=True),
                 b.op("reduce_max", x, axes=(0, 1, 2), keepdims=False),
                 b.op("argmin", x, axis=2, keepdims=False, select_last_index=True)])
    check(g, [[values("f32", (n, 3, m), seed=n, lo=-1, hi=1).round(1)] for n, m in ((2, 700), (5, 9), (1, 1))])


# ------------------------------------------------------------------------------ argmax / argmin
@pytest.mark.parametrize("dt", ["f32", "i64", "f16"])
def test_arg_reductions_with_ties_short_and_long(dt):
    b = GraphBuilder(f"arg_{dt}")
    x = b.input("x", dt, (3, 4, 5))
    y = b.input("y", dt, (4, 777))
    outs = [b.op(op, x, axis=axis, keepdims=False, select_last_index=last)
            for op in ("argmax", "argmin") for axis in (0, -1) for last in (False, True)]
    outs += [b.op(op, y, axis=1, keepdims=True, select_last_index=last) for op in ("argmax", "argmin")
             for last in (False, True)]
    g = b.build(outs)
    check(g, [[values(dt, (3, 4, 5), seed=s, lo=-2, hi=2), values(dt, (4, 777), seed=s + 7, lo=-2, hi=2)]
              for s in (1, 2)])


def test_arg_reductions_pick_nan_like_numpy_in_a_work_group():
    b = GraphBuilder("argnan")
    x = b.input("x", "f32", (4, 600))
    g = b.build([b.op(op, x, axis=1, keepdims=False, select_last_index=last)
                 for op in ("argmax", "argmin") for last in (False, True)])
    a = values("f32", (4, 600), seed=8)
    a[0, [5, 300, 599]] = np.nan
    a[1] = np.nan
    a[2, [0, 599]] = np.inf
    a[3, [1, 2]] = -np.inf
    model = check(g, [[a]])
    assert strategies(model) == ["rows"] * 4
    first = np.asarray(model(a)[0]).tolist()
    assert first[0] == 5 and first[1] == 0 and first[2] == 0


# ----------------------------------------------------------------------------- softmax / norms
def _softmax(b, x):
    m = b.op("reduce_max", x, axes=(-1,), keepdims=True)
    e = b.op("exp", b.op("sub", x, m))
    return b.op("div", e, b.op("reduce_sum", e, axes=(-1,), keepdims=True))


def _layer_norm(b, x, n):
    rng = np.random.default_rng(11)
    gamma = b.const(rng.uniform(0.5, 1.5, n).astype(np.float32), "gamma")
    beta = b.const(rng.uniform(-1, 1, n).astype(np.float32), "beta")
    eps = b.const(np.array(1e-5, np.float32), "eps")
    mean = b.op("reduce_mean", x, axes=(-1,), keepdims=True)
    d = b.op("sub", x, mean)
    var = b.op("reduce_mean", b.op("mul", d, d), axes=(-1,), keepdims=True)
    return b.op("add", b.op("mul", b.op("div", d, b.op("sqrt", b.op("add", var, eps))), gamma), beta)


def test_softmax_and_layer_norm_rows():
    """Rows long (384, 1000) and short (7), batch symbolic: the row's max and sum (mean and
    variance) are work-group reductions whose results every work-item reads."""
    b = GraphBuilder("norms")
    x = b.input("x", "f32", ("batch", 384))
    y = b.input("y", "f32", ("batch", 3, 1000))
    z = b.input("z", "f32", ("batch", 7))
    g = b.build([_softmax(b, x), _layer_norm(b, x, 384), _softmax(b, y), _layer_norm(b, z, 7)])
    sets = [[values("f32", (n, 384), seed=n, lo=-30, hi=30), values("f32", (n, 3, 1000), seed=n + 1),
             values("f32", (n, 7), seed=n + 2) * np.float32(4) + np.float32(2)] for n in (1, 5)]
    model = check(g, sets, rtol=1e-5, atol=1e-5)
    assert "rows" in strategies(model)
    out = np.asarray(model(*sets[1])[0], np.float64)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


def test_softmax_is_stable_for_large_logits():
    b = GraphBuilder("softmax")
    x = b.input("x", "f32", ("batch", 500))
    g = b.build([_softmax(b, x)])
    a = values("f32", (3, 500), seed=8) + np.float32(1000.0)
    model = check(g, [[a]])
    assert np.isfinite(np.asarray(model(a)[0])).all()


# ----------------------------------------------------------------------------------- properties
REDUCE_OPS = [f"reduce_{k}" for k in KINDS] + ["argmax", "argmin"]


@settings(max_examples=10, deadline=None)
@given(kt.graphs(ops=REDUCE_OPS + ["mul", "exp"], min_nodes=2, max_nodes=5))
def test_property_reductions_run_like_the_interpreter(g):
    check(g, rtol=1e-4, atol=1e-5)
