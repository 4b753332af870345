"""Reductions compiled for the CPU agree with the interpreter: every ``reduce_*`` kind, its dynamic
twin, ``argmax`` / ``argmin``, and the softmax and layer-norm chains the ONNX frontend emits.

Each test builds a graph, compiles it with ``kiln.compile`` (``kiln.testing.check_compiled``) and
compares every output with the reference interpreter: ints and bools exactly, f32/f64 closely,
f16/bf16 within a loose tolerance (the reference accumulates in f64 and rounds once, so does the
compiled code; bf16 may land one rounding step away). Several attribute variants share one graph
(one output each) to keep the number of compilations down.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

pytest.importorskip("llvmlite")

import kiln.testing as kt  # noqa: E402
from kiln.compiler.lower import CompileError  # noqa: E402
from kiln.ir import GraphBuilder  # noqa: E402
from kiln.ir import dtypes as kd  # noqa: E402
from kiln.ir.ops.reduce import REDUCTIONS  # noqa: E402
from kiln.passes import DeadCodeElimination  # noqa: E402
from kiln.testing import check_compiled  # noqa: E402

KINDS = sorted(REDUCTIONS)  # max, mean, min, prod, sum
DTYPES = ["f32", "f64", "f16", "bf16", "i8", "u8", "i32", "i64"]
LOOSE = {"f16": dict(rtol=1e-2, atol=1e-2), "bf16": dict(rtol=2e-2, atol=2e-2)}
# (axes, keepdims): one axis, several, negative, all, all kept
VARIANTS = [((1,), True), ((0, 2), False), ((-1,), False), ((0, 1, 2), False), ((0, -2, 2), True)]


def tol(dt: str) -> dict:
    return LOOSE.get(dt, {})


def values(dt: str, shape, seed=0, lo=-3, hi=3) -> np.ndarray:
    """Random values of ``dt``: floats in [lo, hi], ints in [lo, hi] (uints from 0)."""
    rng = np.random.default_rng(seed)
    d = kd.dtype(dt)
    if d.kind == "bool":
        return rng.random(shape) < 0.5
    if d.is_float:
        return rng.uniform(lo, hi, shape).astype(d.np)
    return rng.integers(0 if d.kind == "uint" else lo, hi + 1, shape).astype(d.np)


def single(op, dt, shape, **attrs):
    b = GraphBuilder(op)
    x = b.input("x", dt, shape)
    return b.build([b.op(op, x, **attrs)])


# --------------------------------------------------------------------------------- every reduce_*
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_reduce_axes_and_keepdims(kind, dt):
    b = GraphBuilder(f"reduce_{kind}")
    x = b.input("x", dt, (3, 4, 5))
    outs = [b.op(f"reduce_{kind}", x, axes=axes, keepdims=keep) for axes, keep in VARIANTS]
    g = b.build(outs)
    # small ints keep the products inside i8; prod of floats stays moderate
    hi = 2 if kind == "prod" else 3
    check_compiled(g, [[values(dt, (3, 4, 5), seed=s, lo=-hi, hi=hi)] for s in (1, 2)], **tol(dt))


@pytest.mark.parametrize("kind", ["max", "min"])
def test_reduce_max_min_of_bools(kind):
    g = single(f"reduce_{kind}", "bool", (4, 6), axes=(1,), keepdims=False)
    x = values("bool", (4, 6), seed=3)
    x[0] = True
    x[1] = False
    check_compiled(g, [[x]])


@pytest.mark.parametrize("kind", KINDS)
def test_reduce_with_no_axes_is_the_identity(kind):
    # opt_level 0: the simplifier would replace the node by `identity` before lowering
    g = single(f"reduce_{kind}", "f32", (3, 4), axes=(), keepdims=False)
    model = check_compiled(g, opt_level=0)
    assert model.program.kernels


@pytest.mark.parametrize("kind", KINDS)
def test_reduce_of_a_scalar_is_the_identity(kind):
    g = single(f"reduce_{kind}", "f64", (), axes=(0,), keepdims=True)
    check_compiled(g, [[np.array(2.5)]], opt_level=0)


@pytest.mark.parametrize("dt", ["f32", "i32", "u8"])
def test_reduce_of_an_empty_set_gives_the_identity(dt):
    """0 for sum, 1 for prod, -inf / the smallest int for max, ...; a mean of nothing is NaN (0 for ints)."""
    b = GraphBuilder("empty")
    x = b.input("x", dt, (3, 0))
    g = b.build([b.op(f"reduce_{k}", x, axes=(1,), keepdims=False) for k in KINDS])
    check_compiled(g, [[np.zeros((3, 0), kd.dtype(dt).np)]])


def test_float_reductions_propagate_nan_and_inf():
    b = GraphBuilder("nan")
    x = b.input("x", "f32", (3, 4))
    g = b.build([b.op(f"reduce_{k}", x, axes=(1,), keepdims=False) for k in KINDS])
    a = np.array([[1, np.nan, 3, -2], [np.inf, 1, -1, 0], [-np.inf, np.inf, 2, 2]], np.float32)
    check_compiled(g, [[a]])


def test_narrow_floats_accumulate_wide():
    """4096 halves summed: an f16 accumulator would stall at 2048; f64 accumulation matches the reference."""
    for dt in ("f16", "bf16"):
        b = GraphBuilder("long")
        x = b.input("x", dt, (2, 4096))
        g = b.build([b.op("reduce_sum", x, axes=(1,), keepdims=False),
                     b.op("reduce_mean", x, axes=(1,), keepdims=False)])
        a = np.ones((2, 4096), kd.dtype(dt).np)
        a[1] = values(dt, (4096,), seed=5)
        model = check_compiled(g, [[a]], **tol(dt))
        assert float(np.asarray(model(a)[0])[0]) == 4096.0


def test_int_reductions_wrap_and_int_means_truncate():
    b = GraphBuilder("ints")
    x = b.input("x", "i8", (2, 10))
    g = b.build([b.op("reduce_sum", x, axes=(1,), keepdims=False),
                 b.op("reduce_prod", x, axes=(1,), keepdims=False),
                 b.op("reduce_mean", x, axes=(1,), keepdims=False)])
    a = np.array([[100] * 10, [-3, -4, 7, -7, 1, -1, 2, 3, -9, 10]], np.int8)  # sums 1000 (wraps), -1
    model = check_compiled(g, [[a]])
    assert np.asarray(model(a)[2]).tolist() == [100, 0]  # -0.1 truncates toward zero


def test_reduce_over_symbolic_dims_at_two_sizes():
    """mean over the symbolic batch dim divides by the run-time count; one compiled model, two batch sizes."""
    b = GraphBuilder("sym")
    x = b.input("x", "f32", ("batch", 3, 4))
    outs = [b.op("reduce_mean", x, axes=(0,), keepdims=False),
            b.op("reduce_mean", x, axes=(0, 2), keepdims=True),
            b.op("reduce_sum", x, axes=(1,), keepdims=False),
            b.op("reduce_max", x, axes=(0, 1, 2), keepdims=False),
            b.op("reduce_prod", x, axes=(-1,), keepdims=True),
            b.op("reduce_min", x, axes=(0,), keepdims=True)]
    g = b.build(outs)
    check_compiled(g, [[values("f32", (n, 3, 4), seed=n)] for n in (2, 7)])


def test_mean_over_two_symbols():
    b = GraphBuilder("two_syms")
    x = b.input("x", "f64", ("batch", "seq", 3))
    g = b.build([b.op("reduce_mean", x, axes=(0, 1), keepdims=False)])
    check_compiled(g, [[values("f64", (n, m, 3), seed=n * m)] for n, m in ((1, 5), (4, 3))])


@pytest.mark.parametrize("shape", [(8, 30), ("batch", 30)], ids=["static", "symbolic"])
@pytest.mark.parametrize("kind", ["mean", "max"])
def test_reduction_across_rows_gets_its_own_kernel(kind, shape):
    """x - reduce(x, axis 0): the reduction cannot be computed once per output row, so it is
    materialised once (its own kernel) instead of being recomputed for every row."""
    b = GraphBuilder("center")
    x = b.input("x", "f32", shape)
    r = b.op(f"reduce_{kind}", x, axes=(0,), keepdims=True)
    g = b.build([b.op("sub", x, r)])
    model = check_compiled(g, [[values("f32", (n, 30), seed=n)] for n in ((8,) if shape[0] == 8 else (3, 9))])
    assert len(model.program.calls) == 2
    reducing = [str(k) for k in model.program.kernels.values() if f"{'sum' if kind == 'mean' else kind}(" in str(k)]
    assert len(reducing) == 1 and "p0: f32[1, 30]" in reducing[0], reducing


# -------------------------------------------------------------------------------- dynamic twins
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("keepdims", [True, False])
def test_dynamic_reduce_with_empty_axes_lowers(kind, keepdims):
    """An empty axes operand has a known result shape: every axis reduced, or (noop) the identity."""
    b = GraphBuilder("dyn")
    x = b.input("x", "f32", ("batch", 4))
    empty = b.const(np.zeros((0,), np.int64), "axes")
    g = b.build([b.op(f"reduce_{kind}_dynamic", x, empty, keepdims=keepdims),
                 b.op(f"reduce_{kind}_dynamic", x, empty, keepdims=keepdims, noop_with_empty_axes=True)])
    check_compiled(g, [[values("f32", (n, 4), seed=n)] for n in (1, 3)], opt_level=0)


@pytest.mark.parametrize("kind", KINDS)
def test_dynamic_reduce_with_axes_is_refused_with_the_reason(kind):
    b = GraphBuilder("dyn")
    x = b.input("x", "f32", (3, 4))
    axes = b.input("axes", "i64", (1,))
    g = b.build([b.op(f"reduce_{kind}_dynamic", x, axes, keepdims=False)])
    with pytest.raises(CompileError, match=rf"reduce_{kind}_dynamic.*known only at run time"):
        check_compiled(g)


# ------------------------------------------------------------------------------ argmax / argmin
@pytest.mark.parametrize("dt", ["f32", "f64", "f16", "bf16", "i8", "u8", "i32", "i64"])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_arg_reductions(op, dt):
    b = GraphBuilder(op)
    x = b.input("x", dt, (3, 4, 5))
    outs = [b.op(op, x, axis=axis, keepdims=keep, select_last_index=last)
            for axis in (0, 1, -1) for keep in (True, False) for last in (False, True)]
    g = b.build(outs)
    # few distinct values: many ties, so first / last index matters
    check_compiled(g, [[values(dt, (3, 4, 5), seed=s, lo=-2, hi=2)] for s in (1, 2)])


@pytest.mark.parametrize("dt", ["f32", "f16", "bf16", "f64"])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_arg_reductions_pick_nan_like_numpy(op, dt):
    """NaN counts as the extreme: the first NaN, or the last one with select_last_index."""
    b = GraphBuilder(op)
    x = b.input("x", dt, (5, 6))
    g = b.build([b.op(op, x, axis=1, keepdims=False, select_last_index=last) for last in (False, True)])
    nan = np.nan
    a = np.array([[1, nan, 3, nan, 3, 0], [2, 2, 0, 0, 1, 2], [nan] * 6, [5, 1, 5, 1, 0, nan],
                  [-np.inf, np.inf, 0, np.inf, -np.inf, 1]], np.float64).astype(kd.dtype(dt).np)
    model = check_compiled(g, [[a]])
    first, last = (np.asarray(r).tolist() for r in model(a))
    assert first[0] == 1 and last[0] == 3 and first[2] == 0 and last[2] == 5


def test_arg_reductions_over_a_symbolic_dim_at_two_sizes():
    b = GraphBuilder("argsym")
    x = b.input("x", "f32", ("batch", 7))
    g = b.build([b.op("argmax", x, axis=0, keepdims=False), b.op("argmin", x, axis=1, keepdims=True),
                 b.op("argmax", x, axis=-1, keepdims=False, select_last_index=True)])
    check_compiled(g, [[values("f32", (n, 7), seed=n, lo=-1, hi=1).round()] for n in (1, 6)])


# ----------------------------------------------------------------------------- frontend patterns
def _softmax(b, x):
    m = b.op("reduce_max", x, axes=(-1,), keepdims=True)
    e = b.op("exp", b.op("sub", x, m))
    s = b.op("reduce_sum", e, axes=(-1,), keepdims=True)
    return b.op("div", e, s)


def test_softmax_chain_is_at_most_two_kernels():
    """reduce_max -> sub -> exp -> reduce_sum -> div, as ONNX Softmax decomposes: one fused kernel
    (the row's max and sum hoisted out of the column loop), at most two."""
    b = GraphBuilder("softmax")
    x = b.input("x", "f32", (8, 100))
    g = b.build([_softmax(b, x)])
    a = values("f32", (8, 100), seed=7, lo=-20, hi=20)
    model = check_compiled(g, [[a]])
    assert len(model.program.kernels) <= 2, "\n\n".join(map(str, model.program.kernels.values()))
    y = np.asarray(model(a)[0])
    e = np.exp(a.astype(np.float64) - a.max(-1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)


def test_softmax_is_stable_for_large_logits():
    b = GraphBuilder("softmax")
    x = b.input("x", "f32", ("batch", 100))
    g = b.build([_softmax(b, x)])
    a = values("f32", (3, 100), seed=8) + np.float32(1000.0)  # exp(1000) overflows f32 without the max
    model = check_compiled(g, [[a], [values("f32", (1, 100), seed=9)]])
    assert np.isfinite(np.asarray(model(a)[0])).all()


def test_layer_norm_chain_is_at_most_two_kernels():
    """mean, sub, square, mean, add eps, sqrt, div, mul gamma, add beta (ONNX LayerNormalization)."""
    rng = np.random.default_rng(11)
    b = GraphBuilder("layer_norm")
    x = b.input("x", "f32", (8, 100))
    gamma = b.const(rng.uniform(0.5, 1.5, 100).astype(np.float32), "gamma")
    beta = b.const(rng.uniform(-1, 1, 100).astype(np.float32), "beta")
    eps = b.const(np.array(1e-5, np.float32), "eps")
    mean = b.op("reduce_mean", x, axes=(-1,), keepdims=True)
    d = b.op("sub", x, mean)
    var = b.op("reduce_mean", b.op("mul", d, d), axes=(-1,), keepdims=True)
    y = b.op("add", b.op("mul", b.op("div", d, b.op("sqrt", b.op("add", var, eps))), gamma), beta)
    g = b.build([y])
    a = values("f32", (8, 100), seed=12) * np.float32(5) + np.float32(3)
    model = check_compiled(g, [[a]], rtol=1e-5, atol=1e-5)
    assert len(model.program.kernels) <= 2, "\n\n".join(map(str, model.program.kernels.values()))
    a64 = a.astype(np.float64)
    want = (a64 - a64.mean(-1, keepdims=True)) / np.sqrt(a64.var(-1, keepdims=True) + 1e-5)
    want = want * g.constants[gamma] + g.constants[beta]
    np.testing.assert_allclose(np.asarray(model(a)[0]), want, rtol=1e-4, atol=1e-4)


def _onnx_model(op, x_shape, opset, inits=(), **attrs):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["x", *[i.name for i in inits]], ["y"], **attrs)
    g = helper.make_graph([node], op, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=list(inits))
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    from kiln.frontends.onnx import from_onnx

    return from_onnx(model)


@pytest.mark.parametrize("op", ["ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"])
def test_onnx_long_tail_reductions_compile(op):
    """The ONNX reductions kiln decomposes into the core ones compile through them; ReduceLogSumExp
    subtracts the max first (as its decomposition does), so large logits stay finite."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, -1])
    g = _onnx_model(op, ["batch", 5, 3], 18, inits=[axes], keepdims=0)
    big = values("f32", (2, 5, 3), seed=13) + np.float32(500)
    inputs = [[np.abs(values("f32", (n, 5, 3), seed=n)) + np.float32(0.1)] for n in (1, 4)]
    model = check_compiled(g, inputs + ([[big]] if op == "ReduceLogSumExp" else []))
    if op == "ReduceLogSumExp":
        assert np.isfinite(np.asarray(model(big)[0])).all()


def test_onnx_softmax_and_layer_norm_are_at_most_two_kernels():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    g = _onnx_model("Softmax", ["batch", 100], 13, axis=-1)
    model = check_compiled(g, [[values("f32", (n, 100), seed=n, lo=-30, hi=30)] for n in (1, 8)])
    assert len(model.program.kernels) <= 2, "\n\n".join(map(str, model.program.kernels.values()))
    rng = np.random.default_rng(14)
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [100], rng.uniform(0.5, 2, 100).astype(np.float32))
    bias = helper.make_tensor("bias", TensorProto.FLOAT, [100], rng.uniform(-1, 1, 100).astype(np.float32))
    g = _onnx_model("LayerNormalization", ["batch", 100], 17, inits=[scale, bias], axis=-1, epsilon=1e-5)
    model = check_compiled(g, [[values("f32", (n, 100), seed=n)] for n in (1, 8)], rtol=1e-5, atol=1e-5)
    assert len(model.program.kernels) <= 2, "\n\n".join(map(str, model.program.kernels.values()))


# ----------------------------------------------------------------------------------- properties
REDUCE_OPS = [f"reduce_{k}" for k in KINDS] + ["argmax", "argmin"]


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=REDUCE_OPS, min_nodes=2, max_nodes=5))
def test_property_reductions_compile_like_the_interpreter(g):
    check_compiled(g, rtol=1e-4, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=REDUCE_OPS + ["mul"], min_nodes=2, max_nodes=6))
def test_property_reductions_of_products(g):
    check_compiled(g, rtol=1e-4, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=REDUCE_OPS, dtypes=["f16", "bf16", "i8", "u8", "bool"], min_nodes=2, max_nodes=4))
def test_property_narrow_dtypes(g):
    check_compiled(g, rtol=3e-2, atol=3e-2)


DYNAMIC = ["reduce_sum_dynamic", "reduce_max_dynamic", "reduce_mean_dynamic"]


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=DYNAMIC, max_nodes=3))
def test_property_dynamic_twins_lower_or_say_why(g):
    """A dynamic reduction compiles when its axes operand is empty (its result shape is known);
    otherwise compiling refuses, naming the op and the reason."""
    live = DeadCodeElimination().run(g)  # what the compiler lowers
    known = all(live.types[n.inputs[1]].shape == (0,) for n in live.nodes if n.op in DYNAMIC)
    if known:
        check_compiled(g, rtol=1e-4, atol=1e-5, opt_level=0)
    else:
        with pytest.raises(CompileError, match=r"_dynamic.*known only at run time"):
            check_compiled(g, opt_level=0)
