"""Indexing ops compiled for the CPU agree with the interpreter: gather, gather_elements, gather_nd,
scatter_elements and scatter_nd (every reduction, repeated indices included), range; nonzero and
unique (data-dependent result shapes) are refused with the reason.

Indices may be negative (counted from the end, as in the reference); graphs whose indices come in
as inputs are also run with indices out of range, where the compiled code must clamp rather than
crash (the interpreter refuses those, so only the compiled side runs). Graphs with a symbolic
``batch`` dim are compiled once and run at two batch sizes.
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
from kiln.ir.ops.indexing import REDUCTIONS  # noqa: E402
from kiln.testing import check_compiled  # noqa: E402

DTYPES = ["f32", "f64", "f16", "bf16", "i8", "u8", "i32", "i64", "bool"]


def values(dt: str, shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = kd.dtype(dt)
    if d.kind == "bool":
        return rng.random(shape) < 0.5
    if d.is_float:
        return rng.uniform(-3, 3, shape).astype(d.np)
    return rng.integers(0 if d.kind == "uint" else -9, 10, shape).astype(d.np)


def indices(shape, n, seed=0, dt=np.int64) -> np.ndarray:
    """Valid indices for an axis of size n, negatives included."""
    return np.random.default_rng(seed).integers(-n, n, shape).astype(dt)


# ------------------------------------------------------------------------------------ gather
@pytest.mark.parametrize("dt", DTYPES)
def test_gather_every_dtype(dt):
    b = GraphBuilder("gather")
    x = b.input("x", dt, (3, 4, 5))
    outs = [b.op("gather", x, b.const(indices((2, 3), 3, seed=1)), axis=0),
            b.op("gather", x, b.const(indices((4,), 4, seed=2, dt=np.int32)), axis=1),
            b.op("gather", x, b.const(indices((2, 2), 5, seed=3)), axis=-1),
            b.op("gather", x, b.const(np.array(-1, np.int64)), axis=2),  # a scalar index drops the axis
            b.op("gather", x, b.const(np.array([2, -3, 0], np.int32)), axis=1)]
    check_compiled(b.build(outs), [[values(dt, (3, 4, 5), seed=s)] for s in (1, 2)])


def test_gather_indices_from_an_input_and_out_of_range_clamps():
    b = GraphBuilder("gather_in")
    x = b.input("x", "f32", (5, 3))
    i = b.input("i", "i64", (2, 4))
    j = b.input("j", "i32", (3,))
    g = b.build([b.op("gather", x, i, axis=0), b.op("gather", x, j, axis=1)])
    ins = [values("f32", (5, 3)), indices((2, 4), 5, seed=4), indices((3,), 3, seed=5, dt=np.int32)]
    model = check_compiled(g, [ins])
    bad = np.array([[7, -9, 100, -100], [5, -6, 4, -5]], np.int64)
    got = np.asarray(model(ins[0], bad, np.array([3, -4, 2**31 - 1], np.int32))[0])
    np.testing.assert_array_equal(got, ins[0][np.clip(np.where(bad < 0, bad + 5, bad), 0, 4)])


def test_gather_of_a_constant_index_is_a_plain_load():
    b = GraphBuilder("gather_const")
    x = b.input("x", "f32", (4, 16))
    model = check_compiled(b.build([b.op("gather", x, b.const(np.array(-2, np.int64)), axis=0)]))
    text = "\n".join(map(str, model.program.kernels.values()))
    assert "select" not in text and "vectorized" in text, text


def test_gather_with_symbolic_batch():
    b = GraphBuilder("gather_sym")
    x = b.input("x", "f32", ("batch", 6))
    emb = b.const(values("f32", (10, 4), seed=9), "emb")
    tok = b.input("tok", "i64", ("batch", 3))
    g = b.build([b.op("gather", x, b.const(np.array([0, -1, 3], np.int64)), axis=1),
                 b.op("gather", x, b.const(np.array([0], np.int64)), axis=0),
                 b.op("gather", emb, tok, axis=0)])  # an embedding lookup
    check_compiled(g, [[values("f32", (n, 6), seed=n), indices((n, 3), 10, seed=n)] for n in (1, 4)])


def test_gather_of_a_computed_tensor():
    b = GraphBuilder("gather_computed")
    x = b.input("x", "f32", (3, 4))
    y = b.op("transpose", b.op("mul", x, x), perm=[1, 0])
    g = b.build([b.op("gather", y, b.const(indices((2, 2), 4, seed=7)), axis=0)])
    check_compiled(g)


# --------------------------------------------------------------------------- gather_elements
@pytest.mark.parametrize("dt", ["f32", "i64", "bool", "f16"])
def test_gather_elements(dt):
    b = GraphBuilder("gather_elements")
    x = b.input("x", dt, (3, 4, 5))
    outs = [b.op("gather_elements", x, b.const(indices((3, 4, 5), 3, seed=1)), axis=0),
            b.op("gather_elements", x, b.const(indices((3, 7, 5), 4, seed=2, dt=np.int32)), axis=1),
            b.op("gather_elements", x, b.const(indices((2, 3, 2), 5, seed=3)), axis=-1)]  # smaller than x
    check_compiled(b.build(outs), [[values(dt, (3, 4, 5), seed=s)] for s in (1, 2)])


def test_gather_elements_with_symbolic_batch():
    b = GraphBuilder("gather_elements_sym")
    x = b.input("x", "f32", ("batch", 5))
    i = b.input("i", "i64", ("batch", 3))
    g = b.build([b.op("gather_elements", x, i, axis=1)])
    check_compiled(g, [[values("f32", (n, 5), seed=n), indices((n, 3), 5, seed=n)] for n in (1, 3)])


def test_gather_elements_and_gather_nd_clamp_out_of_range_indices():
    b = GraphBuilder("clamp")
    x = b.input("x", "f32", (3, 4))
    i = b.input("i", "i64", (3, 2))
    j = b.input("j", "i64", (2, 2))
    g = b.build([b.op("gather_elements", x, i, axis=1), b.op("gather_nd", x, j)])
    xs = values("f32", (3, 4))
    model = check_compiled(g, [[xs, indices((3, 2), 4, seed=1), indices((2, 2), 3, seed=2)]])
    ge, gn = model(xs, np.array([[4, -5], [99, -99], [3, -4]]), np.array([[3, 4], [-4, -5]]))
    np.testing.assert_array_equal(np.asarray(ge), xs[np.arange(3)[:, None], [[3, 0], [3, 0], [3, 0]]])
    np.testing.assert_array_equal(np.asarray(gn), [xs[2, 3], xs[0, 0]])


# -------------------------------------------------------------------------------- gather_nd
@pytest.mark.parametrize("batch_dims,xshape,ishape", [
    (0, (3, 4, 5), (2, 1)), (0, (3, 4, 5), (2, 2)), (0, (3, 4, 5), (2, 3, 3)), (0, (3, 4), (2,)),
    (1, (2, 4, 5), (2, 3, 1)), (1, (2, 4, 5), (2, 2)), (2, (2, 3, 4, 5), (2, 3, 2, 2)),
])
def test_gather_nd(batch_dims, xshape, ishape):
    k = ishape[-1]
    idx = np.stack([indices(ishape[:-1], xshape[batch_dims + d], seed=d) for d in range(k)], axis=-1)
    b = GraphBuilder("gather_nd")
    x = b.input("x", "f32", xshape)
    g = b.build([b.op("gather_nd", x, b.const(idx), batch_dims=batch_dims),
                 b.op("gather_nd", x, b.const(idx.astype(np.int32)), batch_dims=batch_dims)])
    check_compiled(g)


def test_gather_nd_with_symbolic_batch():
    b = GraphBuilder("gather_nd_sym")
    x = b.input("x", "i32", ("batch", 4, 5))
    i = b.input("i", "i64", ("batch", 3, 1))
    g = b.build([b.op("gather_nd", x, i, batch_dims=1)])
    check_compiled(g, [[values("i32", (n, 4, 5), seed=n), indices((n, 3, 1), 4, seed=n)] for n in (1, 3)])


# ------------------------------------------------------------------------------- scatters
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_scatter_elements_every_reduction(reduction):
    """Repeated indices: the last update wins (none) or they all combine, in index order."""
    b = GraphBuilder("scatter_elements")
    x = b.input("x", "f32", (3, 4))
    outs = []
    for axis, shape, n in ((0, (2, 4), 3), (1, (3, 6), 4), (-1, (2, 2), 4)):
        idx = b.const(indices(shape, n, seed=axis + 5))
        upd = b.const(values("f32", shape, seed=axis + 7))
        outs.append(b.op("scatter_elements", x, idx, upd, axis=axis, reduction=reduction))
    dup = b.const(np.array([[1, 1, -3, 1]], np.int64))  # all to row 1
    outs.append(b.op("scatter_elements", x, dup, b.const(values("f32", (1, 4), seed=3)), axis=1,
                     reduction=reduction))
    check_compiled(b.build(outs), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dt", ["i32", "i64", "f64", "u8", "bool", "f16"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_scatter_dtypes(reduction, dt):
    b = GraphBuilder("scatter_dtypes")
    x = b.input("x", dt, (4, 3))
    u = b.input("u", dt, (3, 3))
    i = b.input("i", "i64", (3, 3))
    j = b.input("j", "i32", (3, 1))
    g = b.build([b.op("scatter_elements", x, i, u, axis=0, reduction=reduction),
                 b.op("scatter_nd", x, j, u, reduction=reduction)])
    tol = {"rtol": 1e-2, "atol": 1e-2} if dt == "f16" else {}
    check_compiled(g, [[values(dt, (4, 3), seed=s), values(dt, (3, 3), seed=s + 1), indices((3, 3), 4, seed=s),
                        np.array([[1], [-3], [2]], np.int32)] for s in (1, 2)], **tol)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_scatter_nd(reduction):
    b = GraphBuilder("scatter_nd")
    x = b.input("x", "f32", (4, 5, 3))
    outs = [
        b.op("scatter_nd", x, b.const(np.array([[0], [2], [0], [-1]])), b.const(values("f32", (4, 5, 3), seed=1)),
             reduction=reduction),  # whole slices, one repeated
        b.op("scatter_nd", x, b.const(np.array([[[1, 2], [1, 2]], [[3, -1], [0, 0]]])),
             b.const(values("f32", (2, 2, 3), seed=2)), reduction=reduction),
        b.op("scatter_nd", x, b.const(np.array([[1, 2, 0], [1, 2, 0], [-4, -5, -3]])),
             b.const(values("f32", (3,), seed=3)), reduction=reduction),  # single elements
    ]
    check_compiled(b.build(outs), rtol=1e-5, atol=1e-5)


def test_scatter_with_symbolic_batch_and_out_of_range_indices():
    b = GraphBuilder("scatter_sym")
    x = b.input("x", "f32", ("batch", 4))
    i = b.input("i", "i64", ("batch", 2))
    u = b.input("u", "f32", ("batch", 2))
    g = b.build([b.op("scatter_elements", x, i, u, axis=1, reduction="add")])
    sets = [[values("f32", (n, 4), seed=n), indices((n, 2), 4, seed=n), values("f32", (n, 2), seed=n + 1)]
            for n in (1, 3)]
    model = check_compiled(g, sets)
    x0, u0 = sets[1][0], sets[1][2]
    got = np.asarray(model(x0, np.array([[9, -9]] * 3), u0)[0])
    want = x0.copy()
    want[:, 3] += u0[:, 0]
    want[:, 0] += u0[:, 1]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_scatter_of_computed_operands_and_a_consumer():
    b = GraphBuilder("scatter_chain")
    x = b.input("x", "f32", (3, 4))
    s = b.op("scatter_elements", b.op("neg", x), b.const(indices((3, 2), 4, seed=1)),
             b.op("slice", x, starts=[0], ends=[2], axes=[1], steps=[1]), axis=1, reduction="max")
    g = b.build([b.op("mul", s, s), b.op("scatter_nd", s, b.const(np.array([[2]])), b.op("neg", b.op(
        "slice", x, starts=[1], ends=[2], axes=[0], steps=[1])))])
    check_compiled(g)


# -------------------------------------------------------------------------------------- range
@pytest.mark.parametrize("dt,start,limit,delta", [("i64", 2, 11, 3), ("i32", 10, -3, -4), ("f32", 0.5, 3.0, 0.25),
                                                  ("f64", -1.0, 1.0, 0.3), ("i8", 0, 5, 1), ("f16", 1.0, 4.0, 0.5)])
def test_range_with_known_length(dt, start, limit, delta):
    npdt = kd.dtype(dt).np
    n = max(int(np.ceil((limit - start) / delta)), 0)
    b = GraphBuilder("range")
    s, d = b.input("s", dt, ()), b.input("d", dt, ())
    g = b.build([b.op("range", s, b.const(np.array(limit, npdt)), d, dims=[n])])
    check_compiled(g, [[np.array(start, npdt), np.array(delta, npdt)]])


def test_range_of_a_symbolic_length():
    """Position ids: range(0, seq) with dims [seq], the limit read from the input's shape."""
    b = GraphBuilder("positions")
    x = b.input("x", "f32", ("seq", 4))
    n = b.op("reshape", b.op("shape", x, start=0, end=1), shape=[])
    g = b.build([b.op("range", b.const(np.array(0, np.int64)), n, b.const(np.array(1, np.int64)), dims=["seq"])])
    check_compiled(g, [[values("f32", (k, 4))] for k in (1, 6)])


def test_range_without_dims_is_refused():
    b = GraphBuilder("range")
    s = b.input("s", "i64", ())
    g = b.build([b.op("range", s, s, s)])
    with pytest.raises(CompileError, match=r"range.*data-dependent"):
        check_compiled(g)


# ------------------------------------------------------------------------ data-dependent shapes
@pytest.mark.parametrize("op", ["nonzero", "unique"])
def test_data_dependent_shapes_are_refused(op):
    b = GraphBuilder(op)
    x = b.input("x", "f32", (3, 4))
    out = b.op(op, x)
    g = b.build([out[0] if isinstance(out, tuple) else out])
    with pytest.raises(CompileError, match=rf"{op}.*data-dependent"):
        check_compiled(g)


# ---------------------------------------------------------------------------------- properties
INDEXING = ["gather", "gather_elements", "scatter_elements"]


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=INDEXING, min_nodes=1, max_nodes=5))
def test_property_indexing_compiles_like_the_interpreter(g):
    check_compiled(g, rtol=1e-5, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=INDEXING + ["transpose", "reshape", "neg", "add"], min_nodes=2, max_nodes=7))
def test_property_indexing_of_computed_tensors(g):
    check_compiled(g, rtol=1e-5, atol=1e-5)
