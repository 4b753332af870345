"""Data-movement ops compiled for the CPU agree with the interpreter: identity, reshape, transpose,
broadcast, slice, concat, shape, pad (every mode) and their ``*_dynamic`` twins.

Each test builds a graph, compiles it with ``kiln.compile`` (``kiln.testing.check_compiled``) and
compares every output with the reference interpreter, exactly (these ops only move elements). A
reshape of a buffer is a free alias in the compiler, so most graphs put an elementwise op in front
to make the lowering itself run. Several attribute variants share one graph (one output each) to
keep the number of compilations down. Graphs with a symbolic ``batch`` dim are compiled once and run
at two batch sizes.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, reject, settings

pytest.importorskip("llvmlite")

import kiln.testing as kt  # noqa: E402
from kiln.compiler.lower import CompileError  # noqa: E402
from kiln.ir import GraphBuilder  # noqa: E402
from kiln.ir import dtypes as kd  # noqa: E402
from kiln.testing import check_compiled  # noqa: E402

END = 2**63 - 1  # "to the end of the axis", as frontends write it
DTYPES = ["f32", "f64", "f16", "bf16", "i8", "u8", "i32", "i64", "bool"]


def values(dt: str, shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = kd.dtype(dt)
    if d.kind == "bool":
        return rng.random(shape) < 0.5
    if d.is_float:
        return rng.uniform(-3, 3, shape).astype(d.np)
    return rng.integers(0 if d.kind == "uint" else -9, 10, shape).astype(d.np)


def at_batch(dt, shape, sizes=(1, 3), seed=0):
    """Input sets for one input with a leading symbolic dim, at each batch size."""
    return [[values(dt, (n,) + tuple(shape[1:]), seed=seed + n)] for n in sizes]


def graph(name, dt, shape, build):
    """A graph over one input ``x``; ``build(b, x)`` returns the outputs."""
    b = GraphBuilder(name)
    x = b.input("x", dt, shape)
    outs = build(b, x)
    return b.build(list(outs) if isinstance(outs, (list, tuple)) else [outs])


def kernels(model) -> str:
    return "\n\n".join(map(str, model.program.kernels.values()))


# ------------------------------------------------------------------------------- every dtype
@pytest.mark.parametrize("dt", DTYPES)
def test_movement_ops_in_every_dtype(dt):
    def build(b, x):
        y = b.op("transpose", x, perm=[1, 0, 2])  # a computed tensor: reshape lowers instead of aliasing
        return [b.op("identity", x), y, b.op("reshape", y, shape=[3, 8]),
                b.op("broadcast", b.op("slice", x, starts=[0], ends=[1], axes=[1], steps=[1]), shape=[2, 2, 3, 4]),
                b.op("slice", x, starts=[3, 1], ends=[0, END], axes=[2, 0], steps=[-2, 1]),
                b.op("concat", x, x, axis=2),
                b.op("pad", x, pads=[1, 0, 2, 0, 1, 1], mode="constant"),
                b.op("pad", x, pads=[0, 2, 1, 1, 0, 3], mode="reflect")]

    g = graph("every_dtype", dt, (2, 3, 4), build)
    check_compiled(g, [[values(dt, (2, 3, 4), seed=s)] for s in (1, 2)])


# ----------------------------------------------------------------------------------- reshape
@pytest.mark.parametrize("target", [[6, 4], [2, 12], [24], [4, 3, 2], [2, 3, 2, 2], [1, 2, 1, 3, 4, 1], [3, 2, 4],
                                    [4, 6], [2, 2, 6]])
def test_reshape_of_a_computed_tensor(target):
    g = graph("reshape", "f32", (2, 3, 4), lambda b, x: b.op("reshape", b.op("neg", x), shape=target))
    check_compiled(g)


def test_reshape_splits_and_merges_keep_plain_indices():
    """A split is affine (no division); merging or keeping dims divides nothing either."""
    g = graph("split", "f32", (6, 8), lambda b, x: b.op("reshape", b.op("neg", x), shape=[2, 3, 2, 4]))
    model = check_compiled(g)
    text = kernels(model)
    assert "//" not in text and "%" not in text, text
    g = graph("keep", "f32", (1, 6, 8), lambda b, x: b.op("reshape", b.op("neg", x), shape=[6, 1, 8]))
    text = kernels(check_compiled(g))
    assert "//" not in text and "%" not in text, text


def test_reshape_with_symbolic_dims_at_two_batch_sizes():
    def build(b, x):
        y = b.op("neg", x)
        return [b.op("reshape", y, shape=["batch", 12]), b.op("reshape", y, shape=["3*batch", 4]),
                b.op("reshape", y, shape=["batch", 2, 2, 3]), b.op("reshape", y, shape=[12, "batch"]),
                b.op("reshape", y, shape=["12*batch"]), b.op("reshape", x, shape=["batch", 12])]

    g = graph("reshape_sym", "f32", ("batch", 3, 4), build)
    check_compiled(g, at_batch("f32", ("batch", 3, 4)))


def test_reshape_of_an_input_is_an_alias():
    g = graph("alias", "i32", ("batch", 6), lambda b, x: b.op("reshape", x, shape=["batch", 2, 3]))
    check_compiled(g, at_batch("i32", ("batch", 6)))


def test_reshape_dynamic_with_dims_lowers():
    b = GraphBuilder("reshape_dynamic")
    x = b.input("x", "f32", ("batch", 3, 4))
    s = b.input("s", "i64", (2,))
    y = b.op("reshape_dynamic", b.op("neg", x), s, dims=["batch", 12])
    z = b.op("reshape_dynamic", x, s, dims=["batch", 12])
    g = b.build([y, z])
    check_compiled(g, [[values("f32", (n, 3, 4)), np.array([n, -1])] for n in (2, 5)])


def test_reshape_dynamic_without_dims_is_refused():
    for computed in (False, True):
        b = GraphBuilder("reshape_dynamic")
        x = b.input("x", "f32", (2, 3))
        y = b.op("reshape_dynamic", b.op("neg", x) if computed else x, b.input("s", "i64", (2,)))
        g = b.build([b.op("relu", y)])
        with pytest.raises(CompileError, match=r"reshape_dynamic.*data-dependent"):
            check_compiled(g)


# --------------------------------------------------------------------------------- transpose
@pytest.mark.parametrize("shape,perm", [((3, 5), [1, 0]), ((2, 3, 4), [2, 0, 1]), ((2, 3, 4), [0, 2, 1]),
                                        ((2, 3, 4, 5), [3, 1, 0, 2]), ((2, 3, 4, 5), [0, 1, 2, 3]), ((7,), [0]),
                                        ((2, 16, 9), [0, 2, 1])])
def test_transpose(shape, perm):
    check_compiled(graph("transpose", "f32", shape, lambda b, x: b.op("transpose", x, perm=perm)))


def test_transpose_with_symbolic_batch():
    g = graph("transpose_sym", "i64", ("batch", 3, 4),
              lambda b, x: [b.op("transpose", x, perm=[2, 0, 1]), b.op("transpose", x, perm=[0, 2, 1])])
    check_compiled(g, at_batch("i64", ("batch", 3, 4)))


# --------------------------------------------------------------------------------- broadcast
def test_broadcast():
    def build(b, x):
        return [b.op("broadcast", x, shape=[3, 4]), b.op("broadcast", x, shape=[2, 3, 4]),
                b.op("broadcast", b.op("slice", x, starts=[0], ends=[1], axes=[0], steps=[1]), shape=[5, 4]),
                b.op("broadcast", b.op("reshape", x, shape=[3, 1, 4]), shape=[2, 3, 6, 4])]

    check_compiled(graph("broadcast", "f32", (3, 4), build))


def test_broadcast_with_symbolic_batch():
    def build(b, x):
        return [b.op("broadcast", x, shape=["batch", 2, 3]), b.op("broadcast", x, shape=[4, "batch", 5, 3]),
                b.op("broadcast", b.op("slice", x, starts=[0], ends=[1], axes=[2], steps=[1]), shape=["batch", 5, 3])]

    g = graph("broadcast_sym", "f32", ("batch", 1, 3), build)
    check_compiled(g, at_batch("f32", ("batch", 1, 3)))


def test_broadcast_dynamic():
    b = GraphBuilder("broadcast_dynamic")
    x = b.input("x", "f32", ("batch", 1, 3))
    s = b.input("s", "i64", (3,))
    full = b.op("broadcast_dynamic", x, s, dims=["batch", 4, 3])
    wider = b.op("broadcast_dynamic", b.op("neg", x), b.input("t", "i64", (4,)), dims=[2, "batch", 4, 3])
    same = b.op("broadcast_dynamic", full, s)  # no 1 in the operand: its own shape, no dims needed
    g = b.build([full, wider, same])
    check_compiled(g, [[values("f32", (n, 1, 3)), np.array([n, 4, 1]), np.array([2, 1, 4, 1])] for n in (1, 3)])


def test_broadcast_of_a_symbolic_dim_that_may_be_one_decides_at_run_time():
    """x's dim ``batch`` against a result dim of 5: batch is 1 (broadcast) or 5 (kept) at run time."""
    b = GraphBuilder("broadcast_runtime")
    x = b.input("x", "f32", ("batch", 3))
    g = b.build([b.op("broadcast_dynamic", b.op("neg", x), b.input("s", "i64", (2,)), dims=[5, 3])])
    check_compiled(g, [[values("f32", (n, 3), seed=n), np.array([5, 3])] for n in (1, 5)])


def test_broadcast_dynamic_of_a_size_one_dim_without_dims_is_refused():
    b = GraphBuilder("broadcast_dynamic")
    x = b.input("x", "f32", (3, 1))
    g = b.build([b.op("broadcast_dynamic", x, b.input("s", "i64", (2,)))])
    with pytest.raises(CompileError, match=r"broadcast_dynamic.*data-dependent"):
        check_compiled(g)


# ------------------------------------------------------------------------------------- slice
SLICES = [  # (starts, ends, axes, steps)
    ([1], [3], [0], [1]),
    ([0, 1], [END, -1], [1, 2], [1, 1]),
    ([-3], [END], [-1], [1]),
    ([4], [-100], [2], [-1]),          # reversed, through index 0
    ([-1, 3], [-100, 0], [0, 2], [-1, -2]),
    ([0], [5], [2], [2]),
    ([-100], [100], [1], [3]),         # bounds beyond the axis clamp
    ([2], [1], [1], [1]),              # empty
]


def test_slice():
    def build(b, x):
        return [b.op("slice", x, starts=s, ends=e, axes=a, steps=st) for s, e, a, st in SLICES] + \
               [b.op("slice", b.op("neg", x), starts=[1, 1], ends=[END, -1], axes=[0, 2], steps=[1, 2])]

    check_compiled(graph("slice", "f32", (3, 4, 6), build))


def test_slice_of_symbolic_dims_at_two_batch_sizes():
    def build(b, x):
        return [b.op("slice", x, starts=[1], ends=[END], axes=[0], steps=[1]),     # batch - 1
                b.op("slice", x, starts=[0], ends=[-1], axes=[0], steps=[1]),      # batch - 1
                b.op("slice", x, starts=[-2], ends=[END], axes=[0], steps=[1]),    # 2
                b.op("slice", x, starts=[-3, 1], ends=[-1, 3], axes=[0, 1], steps=[1, 1]),
                b.op("slice", x, starts=[0], ends=[END], axes=[0], steps=[1])]

    g = graph("slice_sym", "i32", ("batch", 4), build)
    check_compiled(g, at_batch("i32", ("batch", 4), sizes=(3, 6)))


def test_slice_of_a_symbolic_dim_with_a_run_time_length_is_refused():
    g = graph("slice_sym", "f32", ("batch", 4),
              lambda b, x: b.op("neg", b.op("slice", x, starts=[0], ends=[END], axes=[0], steps=[2])))
    with pytest.raises(CompileError, match=r"slice.*batch.*run time"):
        check_compiled(g)


def test_slice_dynamic():
    b = GraphBuilder("slice_dynamic")
    x = b.input("x", "f32", (3, 4))
    none = b.const(np.zeros((0,), np.int64), "none")
    g = b.build([b.op("slice_dynamic", x, none, none)])  # nothing sliced: the shape is known
    check_compiled(g)
    b = GraphBuilder("slice_dynamic")
    x = b.input("x", "f32", (3, 4))
    s = b.input("s", "i64", (1,))
    g = b.build([b.op("slice_dynamic", x, s, s, axes=[1])])
    with pytest.raises(CompileError, match=r"slice_dynamic.*data-dependent"):
        check_compiled(g)


# ------------------------------------------------------------------------------------ concat
def test_concat():
    b = GraphBuilder("concat")
    x = b.input("x", "f32", (2, 3, 4))
    y = b.input("y", "f32", (2, 5, 4))
    z = b.input("z", "f32", (2, 3, 1))
    e = b.input("e", "f32", (2, 0, 4))
    outs = [b.op("concat", x, y, x, axis=1), b.op("concat", x, x, axis=0), b.op("concat", x, z, x, z, axis=-1),
            b.op("concat", x, e, y, e, axis=1), b.op("concat", x, axis=2), b.op("concat", e, e, axis=1),
            b.op("concat", b.op("neg", x), b.op("transpose", b.op("reshape", y, shape=[2, 4, 5]), perm=[0, 2, 1]),
                 axis=1)]
    check_compiled(b.build(outs))


def test_concat_keeps_loads_contiguous_off_the_concat_axis():
    b = GraphBuilder("concat")
    x = b.input("x", "f32", (4, 32))
    y = b.input("y", "f32", (2, 32))
    model = check_compiled(b.build([b.op("concat", x, y, axis=0)]))
    assert "vectorized" in kernels(model)


def test_concat_computes_costly_operands_once():
    """A select evaluates every side: operands that are more than a load get buffers of their own first,
    so the concat kernel itself only loads (no exp per operand per element)."""
    b = GraphBuilder("concat_costly")
    x = b.input("x", "f32", (2, 3, 8))
    parts = [b.op("exp", b.op("mul", x, b.const(np.float32(k + 1)))) for k in range(3)]
    model = check_compiled(b.build([b.op("concat", *parts, axis=1)]))
    concat = [str(k) for name, k in model.program.kernels.items() if "concat" in name and "operand" not in name]
    assert concat and "exp" not in concat[0], kernels(model)


def test_concat_along_a_symbolic_dim():
    b = GraphBuilder("concat_sym")
    x = b.input("x", "i64", ("batch", 3))
    c = b.const(np.arange(6, dtype=np.int64).reshape(2, 3), "c")
    g = b.build([b.op("concat", x, c, x, axis=0), b.op("concat", x, b.op("neg", x), axis=1)])
    check_compiled(g, at_batch("i64", ("batch", 3)))


# ------------------------------------------------------------------------------------- shape
def test_shape():
    def build(b, x):
        return [b.op("shape", x), b.op("shape", x, start=1), b.op("shape", x, start=-2, end=-1),
                b.op("shape", x, start=2, end=1), b.op("add", b.op("shape", x, start=0, end=1),
                                                       b.const(np.array([10], np.int64)))]

    g = graph("shape", "f32", ("batch", 3, 4), build)
    sets = at_batch("f32", ("batch", 3, 4), sizes=(1, 5))
    model = check_compiled(g, sets)
    for n, ins in zip((1, 5), sets):
        assert np.asarray(model(*ins)[0]).tolist() == [n, 3, 4]


# --------------------------------------------------------------------------------------- pad
PADS = [[1, 0, 2, 0, 1, 1], [0, 0, 0, 0, 0, 0], [2, 3, 1, 4, 5, 3], [-1, 1, 0, 1, -1, 2], [0, -2, 1, 0, 2, -1]]


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_every_mode(mode):
    def build(b, x):
        return [b.op("pad", x, pads=p, mode=mode) for p in PADS] + \
               [b.op("pad", b.op("neg", x), pads=[0, 1, 1, 0, 2, 2], mode=mode)]

    check_compiled(graph(f"pad_{mode}", "f32", (3, 4, 5), build))


def test_pad_beyond_the_axis_reflects_and_wraps_repeatedly():
    def build(b, x):
        return [b.op("pad", x, pads=[7, 9], mode="reflect"), b.op("pad", x, pads=[11, 8], mode="wrap"),
                b.op("pad", x, pads=[6, 6], mode="edge"), b.op("pad", x, pads=[-1, 7], mode="reflect"),
                b.op("pad", b.op("slice", x, starts=[0], ends=[1], axes=[0], steps=[1]), pads=[3, 2], mode="reflect")]

    check_compiled(graph("pad_far", "i32", (3,), build))


def test_pad_constant_value_operand():
    b = GraphBuilder("pad_value")
    x = b.input("x", "i32", (2, 3))
    v = b.input("v", "i32", ())
    c = b.const(np.array([7], np.int32), "seven")
    g = b.build([b.op("pad", x, v, pads=[1, 1, 1, 1]), b.op("pad", x, c, pads=[0, 2, 1, 0])])
    check_compiled(g, [[values("i32", (2, 3)), np.array(-5, np.int32)]])


def test_pad_of_bools_and_a_pad_of_nothing():
    b = GraphBuilder("pad_bool")
    x = b.input("x", "bool", (2, 3))
    g = b.build([b.op("pad", x, pads=[1, 2, 0, 1]), b.op("pad", x, b.const(np.array(True)), pads=[0, 1, 1, 0]),
                 b.op("pad", x, pads=[0, 0, 0, 0], mode="edge")])
    check_compiled(g)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_of_a_symbolic_dim_at_two_batch_sizes(mode):
    def build(b, x):
        return [b.op("pad", x, pads=[2, 1, 1, 3], mode=mode), b.op("pad", x, pads=[0, 1, 0, 0], mode=mode)]

    g = graph(f"pad_sym_{mode}", "f32", ("batch", 4), build)
    check_compiled(g, at_batch("f32", ("batch", 4), sizes=(1, 3)))


def test_pad_dynamic_is_refused():
    b = GraphBuilder("pad_dynamic")
    x = b.input("x", "f32", (3, 4))
    g = b.build([b.op("pad_dynamic", x, b.input("p", "i64", (4,)))])
    with pytest.raises(CompileError, match=r"pad_dynamic.*data-dependent"):
        check_compiled(g)


# ---------------------------------------------------------------------------------- properties
MOVEMENT = ["identity", "reshape", "transpose", "broadcast", "slice", "concat", "pad", "shape"]


def compiled_or_refused(g, **kw):
    """check_compiled, except a graph whose shapes are only known at run time (a slice of a symbolic
    dim that the strategies draw with a run-time length) is not an example."""
    try:
        check_compiled(g, **kw)
    except CompileError as e:
        if "run time" in str(e) or "data-dependent" in str(e):
            reject()
        raise


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=MOVEMENT, min_nodes=2, max_nodes=6))
def test_property_movement_compiles_like_the_interpreter(g):
    compiled_or_refused(g)


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=MOVEMENT + ["neg", "add", "mul"], min_nodes=3, max_nodes=8))
def test_property_movement_of_computed_tensors(g):
    compiled_or_refused(g, rtol=1e-5, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(kt.graphs(ops=MOVEMENT, dtypes=["f16", "bf16", "i8", "u8", "bool"], min_nodes=2, max_nodes=5))
def test_property_movement_narrow_dtypes(g):
    compiled_or_refused(g)
