"""Loop IR (kiln.ir.loops): simplifier rules, bounds, affine forms, text form; the reference
evaluator (kiln.ir.loops_eval)."""
import numpy as np
import pytest

from kiln.ir import loops as L
from kiln.ir.loops_eval import EvalError, evaluate

i, j, k, N = L.Var("i"), L.Var("j"), L.Var("k"), L.Var("N")
C = L.Const
F32 = "f32"


# ------------------------------------------------------------------------------------------ simplify
def test_floordiv_mod_of_split_index_under_ranges():
    r = {"i": (0, 99), "j": (0, 7)}
    assert L.simplify((i * 8 + j) // 8, r) == i
    assert L.simplify((i * 8 + j) % 8, r) == j
    assert L.simplify((i * 8 + j + 16) // 8, r) == L.simplify(i + 2)
    # without the range of j nothing can be dropped
    assert str(L.simplify((i * 8 + j) // 8)) == "(((i * 8) + j) // 8)"
    # j may reach 8: kept
    assert str(L.simplify((i * 8 + j) // 8, {"i": (0, 9), "j": (0, 8)})) == "(((i * 8) + j) // 8)"


def test_unflatten_then_flatten_recombines():
    assert L.simplify((i // 8) * 8 + i % 8) == i
    assert L.simplify(i % 8 + 8 * (i // 8)) == i
    assert L.simplify(((i // 8) * 8 + i % 8) * 3) == L.simplify(i * 3)
    assert L.simplify(((i + j) // 4) * 4 + (i + j) % 4) == L.simplify(i + j)
    # different divisors: not the identity
    assert L.simplify((i // 8) * 4 + i % 8) != i


def test_mod_and_div_of_small_values_vanish():
    r = {"j": (0, 7)}
    assert L.simplify(j % 8, r) == j
    assert L.simplify(j // 8, r) == L.Const(0)
    assert L.simplify(L.Const(17) // 5) == L.Const(3)
    assert L.simplify(L.Const(-7) % 3) == L.Const(2)  # floor semantics
    assert L.simplify(L.Const(-7) // 2) == L.Const(-4)


def test_affine_normal_form():
    e = L.simplify((i + 2) * 3 - i + j * 0 + 4)
    assert L.affine(e) == {L.Var("i"): 2, None: 10}
    assert str(e) == "((i * 2) + 10)"
    assert L.simplify(i - i) == L.Const(0)
    assert str(L.simplify(j + i - 3)) == "((i + j) - 3)"  # vars sorted by name, constant last
    assert L.affine(L.Const(1.5, L._dtype("f64"))) is None
    # a non-affine part is an atom
    t = L.affine(i * j + i)
    assert t[L.Var("i")] == 1 and t[None] == 0 and len(t) == 3


def test_identities_fold():
    assert L.simplify(i * 1 + 0) == i
    assert L.simplify(i * 0) == L.Const(0)
    assert L.simplify(i // 1) == i
    assert L.simplify(i % 1) == L.Const(0)
    assert L.simplify(L.minimum(i, j), {"i": (0, 3), "j": (4, 9)}) == i
    assert L.simplify(L.maximum(i, j), {"i": (0, 3), "j": (4, 9)}) == j
    assert L.simplify(L.minimum(i, j), {"i": (0, 5), "j": (4, 9)}) == L.minimum(i, j)


def test_comparisons_decided_by_ranges():
    r = {"i": (0, 9)}
    assert L.simplify(L.binary("lt", i, 10), r) == L.Const(True, L.BOOL)
    assert L.simplify(L.binary("ge", i, 10), r) == L.Const(False, L.BOOL)
    assert L.simplify(L.binary("lt", i, 5), r) == L.binary("lt", i, 5)
    assert L.simplify(L.binary("eq", i, -1), r) == L.Const(False, L.BOOL)
    sel = L.select(L.binary("lt", i, 10), i, j)
    assert L.simplify(sel, r) == i


def test_bounds():
    r = {"i": (0, 9), "j": (0, 7)}
    assert L.bounds(i * 8 + j, r) == (0, 79)
    assert L.bounds(i - j, r) == (-7, 9)
    assert L.bounds(i * -2, r) == (-18, 0)
    assert L.bounds((i * 8 + j) // 8, r) == (0, 9)
    assert L.bounds(i % 4, r) == (0, 3)
    assert L.bounds(j % 8, r) == (0, 7)
    assert L.bounds(N % 4, r) == (0, 3)  # unknown dividend, known divisor
    assert L.bounds(N + 1, r) is None
    assert L.bounds(L.minimum(i, 3), r) == (0, 3)
    assert L.bounds(L.maximum(i, j + 5), r) == (5, 12)


def test_simplify_stmt_uses_loop_ranges_and_drops_dead_ifs():
    x = L.Buffer("x", F32, [64])
    y = L.Buffer("y", F32, [8, 8])
    io, ii = L.Var("io"), L.Var("ii")
    s = L.For(io, L.Const(8), L.For(ii, L.Const(8), L.If(
        L.binary("lt", io * 8 + ii, 64),
        L.Store(y, ((io * 8 + ii) // 8, (io * 8 + ii) % 8), x[io * 8 + ii]))))
    assert str(L.simplify_stmt(s)) == (
        "for io in range(8):\n"
        "  for ii in range(8):\n"
        "    y[io, ii] = x[(ii + (io * 8))]")


# --------------------------------------------------------------------------------------- text form
def test_printer():
    x = L.Buffer("x", F32, [N, 4])
    acc = L.Buffer("acc", F32, [4], scope="local")
    t = L.Var("t", L._dtype(F32))
    body = L.Alloc(acc, L.seq(
        L.For(j, L.Const(4), L.Store(acc, (j,), L.const(0, F32)), "vectorized"),
        L.For(i, N, L.For(j, L.Const(4), L.Let(t, x[i, j], L.Store(acc, (j,), acc[j] + t)), "unrolled"),
              "parallel"),
        L.If(L.binary("gt", N, 0), L.Store(x, (C(0), C(0)), L.Cast(L.Const(1), L._dtype(F32))),
             L.Store(x, (C(0), C(0)), L.unary("exp", acc[0]))),
        L.For(k, L.Const(3), L.Seq([]), start=L.Const(5)),
    ))
    kern = L.Kernel("demo", [x], body, syms=["N"], ops=["sum"])
    assert str(kern) == """\
kernel demo(x: f32[N, 4]) syms(N) {  # sum
  alloc acc: f32[4]
  vectorized for j in range(4):
    acc[j] = 0.0:f32
  parallel for i in range(N):
    unrolled for j in range(4):
      let t: f32 = x[i, j]
      acc[j] = add(acc[j], t)
  if gt(N, 0):
    x[0, 0] = cast<f32>(1)
  else:
    x[0, 0] = exp(acc[0])
  for k in range(5, 8):
    pass
}"""


def test_printer_expressions():
    b = L.Buffer("b", "i32", [4])
    red = L.Reduce("sum", L.const(0, "i32"), ((k, L.Const(4)),), b[k])
    assert str(red) == "sum(k < 4; init=0:i32; b[k])"
    am = L.Reduce("argmax", L.Const(0), ((k, L.Const(4)),), b[k], select_last=True)
    assert str(am) == "argmax(k < 4; init=0; last; b[k])"
    assert str(L.select(L.binary("lt", i, j), i, j)) == "select(lt(i, j), i, j)"
    assert str(L.Bitcast(b[0], L._dtype("f32"))) == "bitcast<f32>(b[0])"
    assert str(L.Const(True, L.BOOL)) == "true"
    assert str(i * 2 - j) == "((i * 2) - j)"


def test_printer_start_is_python_range():
    y = L.Buffer("y", F32, [N])
    s = L.For(i, N % 4, L.Store(y, (i,), L.const(1, F32)), start=(N // 4) * 4)
    assert str(s).splitlines()[0] == "for i in range(((N // 4) * 4), N):"


# --------------------------------------------------------------------------------------- evaluator
def _run(stmt, **arrays):
    evaluate(stmt, arrays, {})
    return arrays


def test_evaluate_elementwise_and_reduce():
    x = L.Buffer("x", F32, [N, 5])
    y = L.Buffer("y", F32, [N])
    red = L.Reduce("sum", L.const(0, F32), ((k, L.Const(5)),), x[i, k] * x[i, k])
    kern = L.Kernel("k", [x, y], L.For(i, N, L.Store(y, (i,), L.unary("sqrt", red))), syms=["N"])
    xa = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    ya = np.zeros(3, np.float32)
    evaluate(kern, {"x": xa, "y": ya}, {"N": 3})
    np.testing.assert_allclose(ya, np.sqrt((xa * xa).sum(1)), rtol=1e-6)


def test_evaluate_loop_start_and_kinds_run_serially():
    y = L.Buffer("y", "i64", [10])
    s = L.seq(L.For(i, L.Const(4), L.Store(y, (i,), i * 10), "vectorized"),
              L.For(i, L.Const(6), L.Store(y, (i,), i), "parallel", start=L.Const(4)))
    out = _run(s, y=np.zeros(10, np.int64))["y"]
    assert out.tolist() == [0, 10, 20, 30, 4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize("op,a,b,want", [
    ("div", -7, 2, -3), ("floordiv", -7, 2, -4), ("mod", -7, 2, 1), ("rem", -7, 2, -1),
    ("div", 5, 0, 0), ("mod", 5, 0, 0), ("mod", 7, -3, -2), ("shl", 1, 40, 0), ("shr", -8, 1, -4),
    ("shr", -8, 99, -1), ("pow", 3, 3, 27), ("pow", 2, -1, 0), ("add", 2**31 - 1, 1, -2**31),
    ("min", -1, 3, -1), ("max", -1, 3, 3),
])
def test_evaluate_int_semantics(op, a, b, want):
    y = L.Buffer("y", "i32", [1])
    s = L.Store(y, (C(0),), L.Bin(op, L.const(a, "i32"), L.const(b, "i32"), L._dtype("i32")))
    assert _run(s, y=np.zeros(1, np.int32))["y"][0] == want


def test_evaluate_float_semantics():
    y = L.Buffer("y", F32, [6])
    z = L.Buffer("z", "i32", [3])
    nan, f = L.const(float("nan"), F32), lambda v: L.const(v, F32)
    s = L.seq(
        L.Store(y, (C(0),), L.Bin("max", nan, f(1), L._dtype(F32))),
        L.Store(y, (C(1),), L.Bin("mod", f(-7), f(2), L._dtype(F32))),
        L.Store(y, (C(2),), L.unary("round", f(2.5))),
        L.Store(y, (C(3),), L.select(L.binary("ne", nan, nan), f(1), f(0))),
        L.Store(y, (C(4),), L.unary("sigmoid", f(0))),
        L.Store(y, (C(5),), L.unary("erf", f(0.5))),
        L.Store(z, (C(0),), L.Cast(f(1e20), L._dtype("i32"))),
        L.Store(z, (C(1),), L.Cast(nan, L._dtype("i32"))),
        L.Store(z, (C(2),), L.Cast(f(-2.7), L._dtype("i32"))),
    )
    out = _run(s, y=np.zeros(6, np.float32), z=np.zeros(3, np.int32))
    y_, z_ = out["y"], out["z"]
    assert np.isnan(y_[0]) and y_[1] == 1.0 and y_[2] == 2.0 and y_[3] == 1.0 and y_[4] == 0.5
    assert abs(y_[5] - 0.5204999) < 1e-6
    assert z_.tolist() == [2**31 - 1, 0, -2]


def test_evaluate_argmax_nan_and_last():
    x = L.Buffer("x", F32, [5])
    y = L.Buffer("y", "i64", [2])
    xa = np.array([1, 3, 3, np.nan, 2], np.float32)
    s = L.seq(
        L.Store(y, (C(0),), L.Reduce("argmax", L.Const(0), ((k, L.Const(3)),), x[k])),
        L.Store(y, (C(1),), L.Reduce("argmax", L.Const(0), ((k, L.Const(3)),), x[k], select_last=True)),
    )
    assert _run(s, x=xa, y=np.zeros(2, np.int64))["y"].tolist() == [1, 2]
    s = L.Store(y, (C(0),), L.Reduce("argmin", L.Const(0), ((k, L.Const(5)),), x[k]))
    assert _run(s, x=xa, y=np.zeros(2, np.int64))["y"][0] == 3  # NaN is the extreme


def test_evaluate_local_buffers_start_as_garbage():
    y = L.Buffer("y", F32, [2])
    t = L.Buffer("t", F32, [2], scope="local")
    s = L.Alloc(t, L.seq(L.Store(t, (C(0),), L.const(1, F32)), L.For(i, L.Const(2), L.Store(y, (i,), t[i]))))
    out = _run(s, y=np.zeros(2, np.float32))["y"]
    assert out[0] == 1 and np.isnan(out[1])


def test_evaluate_errors_name_the_buffer():
    x = L.Buffer("x", F32, [4])
    y = L.Buffer("y", F32, [4])
    s = L.For(i, L.Const(5), L.Store(y, (i,), x[i]))
    with pytest.raises(EvalError, match=r"index 4 out of bounds for dim 0 of x \(size 4\)"):
        _run(s, x=np.zeros(4, np.float32), y=np.zeros(4, np.float32))
    with pytest.raises(EvalError, match="no array given for buffer x"):
        _run(s, y=np.zeros(4, np.float32))
    with pytest.raises(EvalError, match="buffer x is f32 but the array is float64"):
        _run(s, x=np.zeros(4), y=np.zeros(4, np.float32))
    with pytest.raises(EvalError, match="unbound variable N"):
        _run(L.For(i, N, L.Store(y, (i,), x[i])), x=np.zeros(4, np.float32), y=np.zeros(4, np.float32))


def test_evaluate_matches_lowered_kernels():
    """A second oracle: kernels lowered from a graph agree with the graph interpreter."""
    pytest.importorskip("llvmlite")
    from kiln.ir.lowering import KernelBuilder, materialize, placeholder

    a = L.Buffer("a", F32, [3, 7])
    out = L.Buffer("out", F32, [3])
    b = KernelBuilder()
    ta = placeholder(a)
    t = b.reduce((3,), (7,), lambda idx, r: ta[idx[0], r[0]], "max")
    body = materialize(t, out, b, vector_lanes=lambda dt: 4)
    xa = np.random.default_rng(1).standard_normal((3, 7)).astype(np.float32)
    got = _run(body, a=xa, out=np.zeros(3, np.float32))["out"]
    np.testing.assert_array_equal(got, xa.max(1))
