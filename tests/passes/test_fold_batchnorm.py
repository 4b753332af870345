"""Batch-norm folding: per-channel affine constants folded into conv / conv_transpose / matmul weights."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import kiln
import kiln.testing as kt
from kiln.ir import GraphBuilder
from kiln.passes import FoldBatchNorm, PassContext, PassManager, default_pipeline

P = FoldBatchNorm()
TOL = dict(rtol=1e-4, atol=1e-4)
AFFINE = {"mul", "div", "add", "sub"}


def _ops(g):
    return [n.op for n in g.nodes]


# --- before / expected -----------------------------------------------------------------------------

def test_conv_batchnorm_chain_folds_into_weights_and_bias():
    # ((conv(x, w, b) - mean) * k) + shift, as fold_constants leaves an inference batch norm
    kt.assert_rewrites(P, """
graph g(%x: f32[batch, 1, 3, 3]) {
  %w: f32[2, 1, 1, 1] = const [1.0, 2.0]
  %b: f32[2] = const [0.5, -1.0]
  %mean: f32[2, 1, 1] = const [1.0, 2.0]
  %k: f32[2, 1, 1] = const [2.0, 0.5]
  %shift: f32[1, 2, 1, 1] = const [0.25, 0.0]
  %c: f32[batch, 2, 3, 3] = conv(%x, %w, %b)
  %d: f32[batch, 2, 3, 3] = sub(%c, %mean)
  %e: f32[batch, 2, 3, 3] = mul(%k, %d)
  %y: f32[batch, 2, 3, 3] = add(%e, %shift)
  return %y
}""", """
graph g(%x: f32[batch, 1, 3, 3]) {
  %w: f32[2, 1, 1, 1] = const [2.0, 1.0]
  %b: f32[2] = const [-0.75, -1.5]
  %y: f32[batch, 2, 3, 3] = conv(%x, %w, %b)
  return %y
}""")


def test_bias_is_created_for_a_shift_and_not_for_a_scale():
    kt.assert_rewrites(P, """
graph g(%x: f32[1, 2, 4]) {
  %w: f32[2, 2, 1] = const [1.0, 2.0, 3.0, 4.0]
  %v: f32[2, 2, 1] = const [1.0, 1.0, 1.0, 1.0]
  %s: f32[2, 1] = const [2.0, 4.0]
  %t: f32[] = const [0.5]
  %c: f32[1, 2, 4] = conv(%x, %w)
  %y: f32[1, 2, 4] = div(%c, %s)
  %c2: f32[1, 2, 4] = conv(%x, %v) @second
  %d: f32[1, 2, 4] = sub(%c2, %t)
  %z: f32[1, 2, 4] = mul(%d, %s)
  return %y, %z
}""", """
graph g(%x: f32[1, 2, 4]) {
  %w: f32[2, 2, 1] = const [0.5, 1.0, 0.75, 1.0]
  %v: f32[2, 2, 1] = const [2.0, 2.0, 4.0, 4.0]
  %z_bias: f32[2] = const [-1.0, -2.0]
  %y: f32[1, 2, 4] = conv(%x, %w)
  %z: f32[1, 2, 4] = conv(%x, %v, %z_bias) @second
  return %y, %z
}""")


def test_constant_minus_conv_negates_the_weights():
    kt.assert_rewrites(P, """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [1.0, -2.0]
  %b: f32[2] = const [1.0, 1.0]
  %k: f32[2, 1] = const [3.0, 0.0]
  %c: f32[1, 2, 3] = conv(%x, %w, %b)
  %y: f32[1, 2, 3] = sub(%k, %c)
  return %y
}""", """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [-1.0, 2.0]
  %b: f32[2] = const [2.0, -1.0]
  %y: f32[1, 2, 3] = conv(%x, %w, %b)
  return %y
}""")


def test_conv_transpose_scales_its_output_channel_axis():
    # w [C=2, M/group=2, k=1] with group 2: output channel g*2 + j is w[g, j]
    kt.assert_rewrites(P, """
graph g(%x: f32[1, 2, 3]) {
  %w: f32[2, 2, 1] = const [1.0, 1.0, 1.0, 1.0]
  %s: f32[4, 1] = const [1.0, 2.0, 3.0, 4.0]
  %t: f32[4, 1] = const [0.5, 0.5, 0.5, 0.5]
  %c: f32[1, 4, 3] = conv_transpose(%x, %w) {group=2}
  %m: f32[1, 4, 3] = mul(%c, %s)
  %y: f32[1, 4, 3] = add(%m, %t)
  return %y
}""", """
graph g(%x: f32[1, 2, 3]) {
  %w: f32[2, 2, 1] = const [1.0, 2.0, 3.0, 4.0]
  %y_bias: f32[4] = const [0.5, 0.5, 0.5, 0.5]
  %y: f32[1, 4, 3] = conv_transpose(%x, %w, %y_bias) {group=2}
  return %y
}""")


def test_matmul_scale_folds_and_the_shift_stays_an_add():
    kt.assert_rewrites(P, """
graph g(%x: f32[batch, 2]) {
  %w: f32[2, 3] = const [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
  %t: f32[3] = const [1.0, 2.0, 3.0]
  %s: f32[1, 3] = const [2.0, 1.0, 0.5]
  %m: f32[batch, 3] = matmul(%x, %w)
  %a: f32[batch, 3] = add(%m, %t)
  %y: f32[batch, 3] = mul(%a, %s)
  return %y
}""", """
graph g(%x: f32[batch, 2]) {
  %w: f32[2, 3] = const [2.0, 2.0, 1.5, 8.0, 5.0, 3.0]
  %y_shift: f32[3] = const [2.0, 2.0, 1.5]
  %m: f32[batch, 3] = matmul(%x, %w)
  %y: f32[batch, 3] = add(%m, %y_shift)
  return %y
}""")


def test_matmul_scale_alone_and_adds_merge():
    kt.assert_rewrites(P, """
graph g(%x: f32[4, 2]) {
  %w: f32[2, 2] = const [1.0, 2.0, 3.0, 4.0]
  %v: f32[2, 2] = const [1.0, 2.0, 3.0, 4.0]
  %s: f32[] = const [0.5]
  %t: f32[2] = const [1.0, 2.0]
  %m: f32[4, 2] = matmul(%x, %w)
  %y: f32[4, 2] = mul(%s, %m)
  %n: f32[4, 2] = matmul(%x, %v)
  %a: f32[4, 2] = add(%n, %t)
  %z: f32[4, 2] = sub(%a, %t)
  return %y, %z
}""", """
graph g(%x: f32[4, 2]) {
  %w: f32[2, 2] = const [0.5, 1.0, 1.5, 2.0]
  %v: f32[2, 2] = const [1.0, 2.0, 3.0, 4.0]
  %z_shift: f32[2] = const [0.0, 0.0]
  %y: f32[4, 2] = matmul(%x, %w)
  %n: f32[4, 2] = matmul(%x, %v)
  %z: f32[4, 2] = add(%n, %z_shift)
  return %y, %z
}""")


def test_shared_weights_get_folded_copies():
    out = kt.assert_rewrites(P, """
graph g(%x: f32[1, 1, 2]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %s: f32[2, 1] = const [2.0, 3.0]
  %c: f32[1, 2, 2] = conv(%x, %w)
  %d: f32[1, 2, 2] = conv(%x, %w)
  %y: f32[1, 2, 2] = mul(%c, %s)
  %z: f32[1, 2, 2] = add(%d, %y)
  return %z
}""", """
graph g(%x: f32[1, 1, 2]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %w_folded: f32[2, 1, 1] = const [2.0, 6.0]
  %y: f32[1, 2, 2] = conv(%x, %w_folded)
  %d: f32[1, 2, 2] = conv(%x, %w)
  %z: f32[1, 2, 2] = add(%d, %y)
  return %z
}""")
    assert out.nodes[0].name == "y"


# --- left alone ------------------------------------------------------------------------------------

UNTOUCHED = {
    "scale_over_spatial_axes": """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %s: f32[3] = const [1.0, 2.0, 3.0]
  %c: f32[1, 2, 3] = conv(%x, %w)
  %y: f32[1, 2, 3] = mul(%c, %s)
  return %y
}""",
    "scale_that_broadcasts_the_result": """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %s: f32[2, 2, 1] = const [1.0, 2.0, 3.0, 4.0]
  %c: f32[1, 2, 3] = conv(%x, %w)
  %y: f32[2, 2, 3] = mul(%c, %s)
  return %y
}""",
    "non_constant_scale": """
graph g(%x: f32[1, 1, 3], %s: f32[2, 1]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %c: f32[1, 2, 3] = conv(%x, %w)
  %y: f32[1, 2, 3] = mul(%c, %s)
  return %y
}""",
    "non_constant_weight": """
graph g(%x: f32[1, 1, 3], %w: f32[2, 1, 1]) {
  %s: f32[2, 1] = const [1.0, 2.0]
  %c: f32[1, 2, 3] = conv(%x, %w)
  %y: f32[1, 2, 3] = mul(%c, %s)
  return %y
}""",
    "non_constant_bias": """
graph g(%x: f32[1, 1, 3], %b: f32[2]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %s: f32[2, 1] = const [1.0, 2.0]
  %c: f32[1, 2, 3] = conv(%x, %w, %b)
  %y: f32[1, 2, 3] = mul(%c, %s)
  return %y
}""",
    "shared_intermediate": """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %s: f32[2, 1] = const [1.0, 2.0]
  %c: f32[1, 2, 3] = conv(%x, %w)
  %y: f32[1, 2, 3] = mul(%c, %s)
  %z: f32[1, 2, 3] = relu(%c)
  return %y, %z
}""",
    "intermediate_is_an_output": """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %s: f32[2, 1] = const [1.0, 2.0]
  %c: f32[1, 2, 3] = conv(%x, %w)
  %y: f32[1, 2, 3] = mul(%c, %s)
  return %y, %c
}""",
    "integer_conv": """
graph g(%x: i32[1, 1, 3]) {
  %w: i32[2, 1, 1] = const [1, 2]
  %s: i32[2, 1] = const [3, 4]
  %c: i32[1, 2, 3] = conv(%x, %w)
  %y: i32[1, 2, 3] = mul(%c, %s)
  return %y
}""",
    "constant_divided_by_conv": """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %s: f32[2, 1] = const [1.0, 2.0]
  %c: f32[1, 2, 3] = conv(%x, %w)
  %y: f32[1, 2, 3] = div(%s, %c)
  return %y
}""",
    "division_by_zero": """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %s: f32[2, 1] = const [1.0, 0.0]
  %c: f32[1, 2, 3] = conv(%x, %w)
  %y: f32[1, 2, 3] = div(%c, %s)
  return %y
}""",
    "non_finite_scale": """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %s: f32[2, 1] = const [1.0, inf]
  %c: f32[1, 2, 3] = conv(%x, %w)
  %y: f32[1, 2, 3] = mul(%c, %s)
  return %y
}""",
    "folded_weight_would_overflow_f16": """
graph g(%x: f16[1, 1, 3]) {
  %w: f16[2, 1, 1] = const [1.0, 100.0]
  %s: f16[2, 1] = const [1.0, 1000.0]
  %c: f16[1, 2, 3] = conv(%x, %w)
  %y: f16[1, 2, 3] = mul(%c, %s)
  return %y
}""",
    "matmul_scale_along_rows": """
graph g(%x: f32[2, 2]) {
  %w: f32[2, 2] = const [1.0, 2.0, 3.0, 4.0]
  %s: f32[2, 1] = const [1.0, 2.0]
  %m: f32[2, 2] = matmul(%x, %w)
  %y: f32[2, 2] = mul(%m, %s)
  return %y
}""",
    "matmul_batched_weight": """
graph g(%x: f32[2, 2]) {
  %w: f32[1, 2, 2] = const [1.0, 2.0, 3.0, 4.0]
  %s: f32[2] = const [1.0, 2.0]
  %m: f32[1, 2, 2] = matmul(%x, %w)
  %y: f32[1, 2, 2] = mul(%m, %s)
  return %y
}""",
    "matmul_with_a_lone_bias_add": """
graph g(%x: f32[2, 2]) {
  %w: f32[2, 2] = const [1.0, 2.0, 3.0, 4.0]
  %t: f32[2] = const [1.0, 2.0]
  %m: f32[2, 2] = matmul(%x, %w)
  %y: f32[2, 2] = add(%m, %t)
  %z: f32[2, 2] = relu(%y)
  return %z
}""",
    "affine_before_the_conv": """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %s: f32[] = const [2.0]
  %a: f32[1, 1, 3] = mul(%x, %s)
  %y: f32[1, 2, 3] = conv(%a, %w)
  return %y
}""",
}


@pytest.mark.parametrize("case", sorted(UNTOUCHED))
def test_non_matching_graphs_are_left_alone(case):
    g = kiln.parse(UNTOUCHED[case])
    assert P.run(g) is g


def test_a_chain_stops_where_the_pattern_does():
    # the spatial scale ends the chain: what came before it still folds
    out = kt.assert_rewrites(P, """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [1.0, 2.0]
  %s: f32[2, 1] = const [2.0, 2.0]
  %p: f32[3] = const [1.0, 2.0, 3.0]
  %c: f32[1, 2, 3] = conv(%x, %w)
  %a: f32[1, 2, 3] = mul(%c, %s)
  %b: f32[1, 2, 3] = mul(%a, %p)
  %y: f32[1, 2, 3] = add(%b, %s)
  return %y
}""", """
graph g(%x: f32[1, 1, 3]) {
  %w: f32[2, 1, 1] = const [2.0, 4.0]
  %s: f32[2, 1] = const [2.0, 2.0]
  %p: f32[3] = const [1.0, 2.0, 3.0]
  %a: f32[1, 2, 3] = conv(%x, %w)
  %b: f32[1, 2, 3] = mul(%a, %p)
  %y: f32[1, 2, 3] = add(%b, %s)
  return %y
}""")
    assert P.run(out) is out


# --- dtypes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dt, tol", [("f16", 2e-2), ("bf16", 5e-2), ("f32", 1e-5), ("f64", 1e-12)])
def test_folded_weights_keep_the_weight_dtype(dt, tol):
    rng = np.random.default_rng(0)
    npdt = kiln.ir.dtype(dt).np
    b = GraphBuilder("g")
    x = b.input("x", dt, ("batch", 3, 5, 5))
    w = b.const(rng.uniform(-1, 1, (4, 3, 3, 3)).astype(npdt), "w")
    y = b.op("conv", x, w, b.const(rng.uniform(-1, 1, 4).astype(npdt), "b"), pads=[1, 1, 1, 1])
    y = b.op("sub", y, b.const(rng.uniform(-1, 1, (4, 1, 1)).astype(npdt), "mean"))
    y = b.op("div", y, b.const(rng.uniform(0.5, 2, (4, 1, 1)).astype(npdt), "std"))
    y = b.op("add", y, b.const(rng.uniform(-1, 1, (1, 4, 1, 1)).astype(npdt), "beta"))
    g = b.build([y])
    out = kt.check_pass(P, g, rtol=tol, atol=tol)
    assert _ops(out) == ["conv"]
    assert all(a.dtype == npdt for a in out.constants.values())
    # the folded weights are the float64 product, rounded once
    scale = 1.0 / g.constants["std"].astype(np.float64).reshape(4, 1, 1, 1)
    want = g.constants["w"].astype(np.float64) * scale
    np.testing.assert_array_equal(out.constants["w"], want.astype(npdt))


# --- property tests --------------------------------------------------------------------------------

@st.composite
def affine_graphs(draw):
    """A conv / conv_transpose / matmul on constant weights, then a chain of mul/div/add/sub by
    constants (mostly per output channel; now and then a shape that must not fold), with
    intermediate values sometimes used elsewhere or returned."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dt = draw(st.sampled_from(["f32", "f64"]))
    npdt = kiln.ir.dtype(dt).np
    kind = draw(st.sampled_from(["conv", "conv_transpose", "matmul"]))
    b = GraphBuilder("g")
    batch = draw(st.sampled_from([1, 2, "batch"]))

    def const(shape, lo=-2.0, hi=2.0, name="c"):
        return b.const(rng.uniform(lo, hi, shape).astype(npdt), name)

    if kind == "matmul":
        k, n = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        lead = draw(st.sampled_from([(), (batch,), (batch, 2)]))
        x = b.input("x", dt, (*lead, k))
        y = b.op("matmul", x, const((k, n), name="w"))
        channel_shapes = [(n,), (1, n), (), (1,), (1,) * len(lead) + (1, n)]  # the last: rank + 1
        other_shapes = [(2, 1)] if lead and lead[-1] == 2 else []  # varies along the rows
    else:
        c = draw(st.integers(1, 4))
        group = draw(st.sampled_from([g for g in (1, 2) if c % g == 0]))
        per = draw(st.integers(1, 2))
        m = group * per
        spatial = draw(st.integers(1, 2))
        size = [draw(st.integers(2, 4)) for _ in range(spatial)]
        x = b.input("x", dt, (batch, c, *size))
        kernel = [draw(st.integers(1, 2)) for _ in range(spatial)]
        wshape = (m, c // group, *kernel) if kind == "conv" else (c, per, *kernel)
        bias = const((m,), name="bias") if draw(st.booleans()) else None
        y = b.op(kind, x, const(wshape, name="w"), bias, group=group)
        out_shape = b.type_of(y).shape
        ones = (1,) * spatial
        channel_shapes = [(m, *ones), (1, m, *ones), (), (1,), (1, 1, *ones)]
        other_shapes = [(out_shape[-1],)] if out_shape[-1] > 1 else []
    outputs = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["mul", "div", "add", "sub"]))
        shapes = channel_shapes + (other_shapes if draw(st.integers(0, 5)) == 0 else [])
        shape = draw(st.sampled_from(shapes))
        kc = const(shape, 0.5, 2.0) if op == "div" else const(shape)
        if op == "div" and draw(st.integers(0, 9)) == 0:
            kc = b.const(np.zeros(shape, npdt), "zero")
        args = (y, kc) if op == "div" or draw(st.booleans()) else (kc, y)
        prev, y = y, b.op(op, *args)
        roll = draw(st.integers(0, 9))
        if roll == 0:
            outputs.append(prev)
        elif roll == 1:
            outputs.append(b.op("relu", prev))
    if draw(st.booleans()):
        y = b.op("relu", y)
    return b.build([y, *outputs])


@given(affine_graphs())
def test_folding_preserves_semantics(g):
    out = kt.check_pass(P, g, **TOL)
    assert len(out.nodes) <= len(g.nodes)
    assert P.run(out) is out  # a fixed point


@given(affine_graphs())
def test_per_channel_chains_fold_completely(g):
    # only per-channel mul/add/sub right after the producer, nothing shared: one node remains
    rest = [n for n in g.nodes if n.op not in ("conv", "conv_transpose", "matmul")]
    if len(g.outputs) != 1 or not all(n.op in ("mul", "add", "sub") and _per_channel(g, n) for n in rest):
        return
    out = kt.check_pass(P, g, **TOL)
    ops = _ops(out)
    # a matmul keeps one add (or a lone sub of it: c - xW is no cheaper as x(-W) + c)
    assert ops in (["conv"], ["conv_transpose"], ["matmul"], ["matmul", "add"]) or (
        ops[0] == "matmul" and len(rest) == 1 and len(ops) == 2), ops


def _per_channel(g, n):
    k = next(i for i in n.inputs if i in g.constants)
    shape = g.constants[k].shape
    producer = next(m for m in g.nodes if m.op in ("conv", "conv_transpose", "matmul"))
    out = g.types[producer.outputs[0]]
    axis = out.rank - 1 if producer.op == "matmul" else 1
    at = len(shape) - (out.rank - axis)
    return g.types[n.outputs[0]] == out and all(d == 1 or i == at for i, d in enumerate(shape))


@given(kt.graphs(ops=["conv", "conv_transpose", "matmul", "mul", "div", "add", "sub", "relu"],
                 dtypes=["f32", "f64", "i32"]))
def test_folding_preserves_semantics_on_random_graphs(g):
    out = kt.check_pass(P, g, **TOL)
    assert len(out.nodes) <= len(g.nodes)


# --- ONNX batch norm -------------------------------------------------------------------------------

def _conv_bn_model(onnx, with_bias: bool, opset: int):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    c, m = 3, 4
    inits = [numpy_helper.from_array(rng.standard_normal((m, c, 3, 3)).astype(np.float32), "W")]
    if with_bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(m).astype(np.float32), "B"))
    for name, lo, hi in (("scale", 0.5, 1.5), ("shift", -1, 1), ("mean", -1, 1), ("var", 0.5, 1.5)):
        inits.append(numpy_helper.from_array(rng.uniform(lo, hi, m).astype(np.float32), name))
    nodes = [helper.make_node("Conv", ["x", "W", "B"] if with_bias else ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"], epsilon=1e-3),
             helper.make_node("Relu", ["bn"], ["y"])]
    graph = helper.make_graph(nodes, "conv_bn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", m, 6, 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("opset", [9, 15])
def test_onnx_conv_batchnorm_becomes_one_conv(with_bias, opset):
    onnx = pytest.importorskip("onnx")
    from kiln.frontends.onnx import from_onnx

    g = from_onnx(_conv_bn_model(onnx, with_bias, opset))
    cleaned = PassManager(default_pipeline(), PassContext(debug=True)).run(g)
    assert {"mul", "add"} <= set(_ops(cleaned))  # the batch norm, as the importer leaves it
    out = PassManager([FoldBatchNorm()], PassContext(debug=True)).run(cleaned)
    assert _ops(out) == ["conv", "relu"]
    assert len(out.nodes[0].inputs) == 3  # the batch norm's shift became the bias
    kt.assert_equivalent(g, out, symbols={"N": 2}, **TOL)
    assert kiln.parse(str(out), constants=out.constants) == out


# --- a real network --------------------------------------------------------------------------------

def _light_resnet50():
    onnx = pytest.importorskip("onnx")
    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"
    if not path.exists():
        pytest.skip(f"{path.name} is not shipped with this onnx")
    helpers = Path(__file__).parents[1] / "e2e" / "test_light_zoo.py"
    spec = importlib.util.spec_from_file_location("_light_zoo_helpers_bn", helpers)
    if spec is None or not helpers.exists():
        pytest.skip("tests/e2e/test_light_zoo.py is not there")
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"light-zoo helpers unavailable: {e}")
    return mod.with_random_weights(onnx.load(path))


def test_resnet50_batchnorms_fold_into_its_convs():
    from kiln.frontends.onnx import from_onnx

    model = _light_resnet50()
    n_bn = sum(1 for n in model.graph.node if n.op_type == "BatchNormalization")
    n_conv = sum(1 for n in model.graph.node if n.op_type == "Conv")
    g = from_onnx(model)
    cleaned = PassManager(default_pipeline(), PassContext(debug=True)).run(g)
    out = PassManager([FoldBatchNorm()], PassContext(debug=True)).run(cleaned)
    assert _ops(out).count("conv") == n_conv
    before = _affine_after_conv(cleaned)
    assert before >= n_bn  # each batch norm left at least one affine op right after its conv
    assert _affine_after_conv(out) == 0
    removed = sum(1 for n in cleaned.nodes if n.op in AFFINE) - sum(1 for n in out.nodes if n.op in AFFINE)
    assert removed >= 2 * n_bn  # a scale and a shift per batch norm, at least
    kt.assert_equivalent(g, out, trials=1, rtol=1e-3, atol=1e-4)


def _affine_after_conv(g):
    """How many mul/div/add/sub take a conv's result and a constant."""
    producer = {o: n for n in g.nodes for o in n.outputs}
    count = 0
    for n in g.nodes:
        if n.op in AFFINE and any(i in g.constants for i in n.inputs):
            src = [producer.get(i) for i in n.inputs if i not in g.constants]
            if any(p is not None and p.op == "conv" for p in src):
                count += 1
    return count


# --- regions ---------------------------------------------------------------------------------------

def test_folds_inside_regions_with_names_unique_across_nesting():
    g = kiln.verify(kiln.parse("""
graph g(%c: bool[], %x: f32[2, 2]) {
  %w_folded: f32[2] = const [1.0, 2.0]
  %r: f32[2, 2] = if(%c, %x) {then_branch=graph then(%x: f32[2, 2]) {
    %w: f32[2, 2] = const [1.0, 2.0, 3.0, 4.0]
    %s: f32[2] = const [2.0, 0.5]
    %m: f32[2, 2] = matmul(%x, %w)
    %n: f32[2, 2] = matmul(%m, %w)
    %y: f32[2, 2] = mul(%n, %s)
    return %y
  }, else_branch=graph else(%x: f32[2, 2]) {
    return %x
  }}
  %o: f32[2, 2] = add(%r, %w_folded)
  return %o
}"""))
    out = kt.check_pass(P, g)
    then = out.nodes[0].attrs["then_branch"]
    assert _ops(then) == ["matmul", "matmul"]
    assert sorted(then.constants) == ["w", "w_folded_1"]
    np.testing.assert_array_equal(then.constants["w_folded_1"], [[2.0, 1.0], [6.0, 2.0]])
    assert kiln.parse(str(out), constants=out.all_constants()) == out
    for cond in (True, False):
        kt.assert_equivalent(g, out, inputs=[np.array(cond), np.eye(2, dtype=np.float32) + 1])
