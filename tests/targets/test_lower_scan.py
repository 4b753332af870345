"""Scans and selections compiled for the CPU agree with the interpreter: ``cumsum`` / ``cumprod``
(exclusive, reverse, any axis), ``topk`` (largest / smallest, ties, NaN), their dynamic twins, and
``non_max_suppression`` (refused: its result's length depends on the data).

Scans and top-k lower to ``b.extern`` loop nests: a sequential loop along the axis inside loops over
the other dims, the outermost of them parallel when there is enough work. Graph outputs are written
by that kernel directly, and a top-k kernel writes both its results in one call.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings

pytest.importorskip("llvmlite")

import kiln.testing as kt  # noqa: E402
from kiln.compiler.lower import CompileError  # noqa: E402
from kiln.ir import GraphBuilder  # noqa: E402
from kiln.ir import dtypes as kd  # noqa: E402
from kiln.testing import check_compiled  # noqa: E402

DTYPES = ["f32", "f64", "f16", "bf16", "i8", "u8", "i32", "i64"]
LOOSE = {"f16": dict(rtol=1e-2, atol=1e-2), "bf16": dict(rtol=2e-2, atol=2e-2)}


def tol(dt: str) -> dict:
    return LOOSE.get(dt, {})


def values(dt: str, shape, seed=0, lo=-3, hi=3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = kd.dtype(dt)
    if d.is_float:
        return rng.uniform(lo, hi, shape).astype(d.np)
    return rng.integers(0 if d.kind == "uint" else lo, hi + 1, shape).astype(d.np)


def kernels_text(model) -> str:
    return "\n\n".join(str(k) for k in model.program.kernels.values())


# ----------------------------------------------------------------------------- cumsum / cumprod
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("op", ["cumsum", "cumprod"])
def test_scans_every_axis_exclusive_reverse(op, dt):
    b = GraphBuilder(op)
    x = b.input("x", dt, (3, 4, 5))
    outs = [b.op(op, x, axis=axis, exclusive=ex, reverse=rev)
            for axis in (0, 1, -1) for ex, rev in itertools.product((False, True), repeat=2)]
    g = b.build(outs)
    lo, hi = (-1, 2) if op == "cumprod" else (-3, 3)
    check_compiled(g, [[values(dt, (3, 4, 5), seed=s, lo=lo, hi=hi)] for s in (1, 2)], **tol(dt))


def test_scans_of_rank_one_and_length_one():
    b = GraphBuilder("short")
    x = b.input("x", "f32", (6,))
    y = b.input("y", "i32", (3, 1))
    g = b.build([b.op("cumsum", x, axis=0, exclusive=True), b.op("cumprod", x, axis=0, reverse=True),
                 b.op("cumsum", y, axis=1, exclusive=True, reverse=True), b.op("cumprod", y, axis=0)])
    check_compiled(g, [[values("f32", (6,), seed=3), values("i32", (3, 1), seed=4)]])


def test_float_scans_accumulate_in_f64():
    """1 + 1e-8 + ... in f32 would stall at 1; the reference accumulates in f64 and rounds each result."""
    b = GraphBuilder("acc")
    x = b.input("x", "f32", (2, 3000))
    g = b.build([b.op("cumsum", x, axis=1)])
    a = np.full((2, 3000), 1e-4, np.float32)
    a[:, 0] = 1e4
    model = check_compiled(g, [[a]], rtol=0, atol=0)
    assert np.asarray(model(a)[0])[0, -1] > np.float32(1e4)


def test_int_scans_wrap():
    b = GraphBuilder("wrap")
    x = b.input("x", "i8", (2, 6))
    g = b.build([b.op("cumsum", x, axis=1), b.op("cumprod", x, axis=1, reverse=True)])
    check_compiled(g, [[np.array([[100, 100, 100, -128, 1, 2], [7, -7, 9, 11, -13, 3]], np.int8)]])


def test_scans_over_a_symbolic_batch_at_two_sizes():
    b = GraphBuilder("sym")
    x = b.input("x", "f32", ("batch", 6))
    g = b.build([b.op("cumsum", x, axis=0), b.op("cumsum", x, axis=1, exclusive=True),
                 b.op("cumprod", x, axis=0, reverse=True, exclusive=True)])
    check_compiled(g, [[values("f32", (n, 6), seed=n, lo=-1.5, hi=1.5)] for n in (1, 5)])


def test_scan_outer_loop_is_parallel_when_there_is_enough_work():
    b = GraphBuilder("big")
    x = b.input("x", "f32", (256, 512))
    g = b.build([b.op("cumsum", x, axis=1, reverse=True)])
    model = check_compiled(g, trials=1)
    text = kernels_text(model)
    assert "parallel for" in text, text
    assert len(model.program.calls) == 1  # written straight into the output buffer

    b = GraphBuilder("small")
    x = b.input("x", "f32", (4, 16))
    g = b.build([b.op("cumsum", x, axis=1)])
    assert "parallel" not in kernels_text(check_compiled(g))


def test_scan_along_a_leading_axis_parallelises_the_other_dims():
    b = GraphBuilder("lead")
    x = b.input("x", "f64", (64, 8, 64))
    g = b.build([b.op("cumprod", x, axis=0, exclusive=True)])
    model = check_compiled(g, [[values("f64", (64, 8, 64), seed=1, lo=0.9, hi=1.1)]])
    assert "parallel for" in kernels_text(model)


def test_scan_result_feeding_other_ops():
    b = GraphBuilder("chain")
    x = b.input("x", "f32", ("batch", 5))
    c = b.op("cumsum", x, axis=1)
    s = b.op("reduce_sum", b.op("mul", c, c), axes=(1,), keepdims=True)
    g = b.build([b.op("div", c, s), c])
    check_compiled(g, [[values("f32", (n, 5), seed=n)] for n in (2, 3)])


def test_cumsum_dynamic_with_a_constant_axis_lowers():
    b = GraphBuilder("dyn")
    x = b.input("x", "f32", ("batch", 4, 3))
    outs = [b.op("cumsum_dynamic", x, b.const(np.array(a, np.int64), "axis"), exclusive=ex, reverse=rev)
            for a, ex, rev in ((1, False, False), (-1, True, False), (0, False, True))]
    outs.append(b.op("cumprod_dynamic", x, b.const(np.array([2], np.int32), "axis"), exclusive=True))
    g = b.build(outs)
    check_compiled(g, [[values("f32", (n, 4, 3), seed=n, lo=-1, hi=1)] for n in (1, 3)])


@pytest.mark.parametrize("op", ["cumsum_dynamic", "cumprod_dynamic"])
def test_scan_with_a_run_time_axis_is_refused_with_the_reason(op):
    b = GraphBuilder("dyn")
    x = b.input("x", "f32", (3, 4))
    axis = b.input("axis", "i64", ())
    g = b.build([b.op(op, x, axis)])
    with pytest.raises(CompileError, match=rf"{op}.*run-time value"):
        check_compiled(g)


# ------------------------------------------------------------------------------------------ topk
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("largest", [True, False], ids=["largest", "smallest"])
def test_topk_every_axis_and_k(largest, dt):
    b = GraphBuilder("topk")
    x = b.input("x", dt, (4, 5, 6))
    outs = []
    for axis, k in ((0, 1), (0, 4), (1, 3), (-1, 1), (-1, 4), (2, 6)):
        outs += b.op("topk", x, k=k, axis=axis, largest=largest, sorted=True)
    g = b.build(outs)
    # few distinct values: ties everywhere, so the index order of equal values is checked
    check_compiled(g, [[values(dt, (4, 5, 6), seed=s, lo=-2, hi=2).round()] for s in (1, 2)])


@pytest.mark.parametrize("dt", ["f32", "f64", "f16", "bf16"])
def test_topk_orders_nan_like_the_reference(dt):
    """NaN is the largest (first when largest, ascending index) and comes last when smallest."""
    b = GraphBuilder("topk_nan")
    x = b.input("x", dt, (3, 7))
    g = b.build([*b.op("topk", x, k=5, axis=1, largest=True),
                 *b.op("topk", x, k=7, axis=1, largest=False)])
    nan, inf = np.nan, np.inf
    a = np.array([[1, nan, 3, nan, 3, -1, 0], [nan] * 7, [-inf, 2, inf, nan, 2, -inf, 0]]).astype(kd.dtype(dt).np)
    model = check_compiled(g, [[a]])
    assert np.asarray(model(a)[1])[0].tolist() == [1, 3, 2, 4, 0]


def test_topk_unsorted_and_full_sort():
    """sorted=False allows any order; the compiled kernel, like the reference, returns sorted results."""
    b = GraphBuilder("topk_full")
    x = b.input("x", "f32", (3, 50))
    g = b.build([*b.op("topk", x, k=50, axis=1, largest=False, sorted=True),
                 *b.op("topk", x, k=7, axis=1, sorted=False)])
    check_compiled(g, [[values("f32", (3, 50), seed=4)]])


def test_topk_with_k_zero():
    b = GraphBuilder("topk0")
    x = b.input("x", "f32", (3, 4))
    g = b.build(list(b.op("topk", x, k=0, axis=1)))
    check_compiled(g, [[values("f32", (3, 4), seed=5)]])


def test_topk_over_a_symbolic_batch_at_two_sizes():
    b = GraphBuilder("topk_sym")
    x = b.input("x", "i32", ("batch", 9))
    g = b.build([*b.op("topk", x, k=3, axis=1), *b.op("topk", x, k=2, axis=-1, largest=False)])
    check_compiled(g, [[values("i32", (n, 9), seed=n)] for n in (1, 6)])


def test_topk_runs_once_for_both_results():
    """Both results of one topk come from one kernel call, also when one feeds another op."""
    b = GraphBuilder("topk_once")
    x = b.input("x", "f32", ("batch", 20))
    v, i = b.op("topk", x, k=5, axis=1)
    g = b.build([b.op("add", v, v), i, v])
    model = check_compiled(g, [[values("f32", (n, 20), seed=n)] for n in (2, 4)])
    topk_calls = [c for c in model.program.calls if "topk" in c.kernel]
    assert len(topk_calls) == 1, [c.kernel for c in model.program.calls]


def test_topk_indices_only():
    b = GraphBuilder("topk_idx")
    x = b.input("x", "f64", (4, 10))
    _, i = b.op("topk", x, k=3, axis=0, largest=False)
    g = b.build([i])
    check_compiled(g, [[values("f64", (4, 10), seed=6)]])


def test_topk_outer_loop_is_parallel_when_there_is_enough_work():
    b = GraphBuilder("topk_big")
    x = b.input("x", "f32", (128, 1000))
    g = b.build(list(b.op("topk", x, k=10, axis=1)))
    model = check_compiled(g, trials=1)
    assert "parallel for" in kernels_text(model)


def test_topk_dynamic_is_refused_with_the_reason():
    b = GraphBuilder("topk_dyn")
    x = b.input("x", "f32", (3, 8))
    k = b.const(np.array([2], np.int64), "k")
    g = b.build(list(b.op("topk_dynamic", x, k)))
    with pytest.raises(CompileError, match=r"topk_dynamic.*length of the selected axis is known only at run time"):
        check_compiled(g)


# ------------------------------------------------------------------------------------ detection
def test_non_max_suppression_is_refused_with_the_reason():
    b = GraphBuilder("nms")
    boxes = b.input("boxes", "f32", (1, 6, 4))
    scores = b.input("scores", "f32", (1, 2, 6))
    limit = b.const(np.array([3], np.int64), "max_output")
    iou = b.const(np.array([0.5], np.float32), "iou")
    g = b.build([b.op("non_max_suppression", boxes, scores, limit, iou)])
    with pytest.raises(CompileError, match=r"non_max_suppression.*number of selected boxes depends on the data"):
        check_compiled(g)


# ----------------------------------------------------------------------------------- properties
SCAN_OPS = ["cumsum", "cumprod", "topk"]


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=SCAN_OPS, min_nodes=2, max_nodes=5))
def test_property_scans_and_topk_compile_like_the_interpreter(g):
    check_compiled(g, rtol=1e-4, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=SCAN_OPS + ["mul"], min_nodes=2, max_nodes=6))
def test_property_scans_of_products(g):
    check_compiled(g, rtol=1e-4, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=SCAN_OPS, dtypes=["f16", "bf16", "i8", "u8"], min_nodes=2, max_nodes=4))
def test_property_narrow_dtypes(g):
    check_compiled(g, rtol=3e-2, atol=3e-2)
