"""Schedule primitives (kiln.ir.schedule): text before/after, equivalence through the reference
evaluator (kiln.ir.loops_eval), property tests over random schedules, errors, and LLVM."""
import ctypes

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.ir import loops as L
from kiln.ir import schedule as S
from kiln.ir.loops_eval import evaluate

C = L.Const
F32 = "f32"
i, j, k, N = L.Var("i"), L.Var("j"), L.Var("k"), L.Var("N")


def f32(v):
    return L.const(v, F32)


def run(stmt, arrays, syms=None):
    arrays = {n: a.copy() for n, a in arrays.items()}
    evaluate(stmt, arrays, syms or {})
    return arrays


def assert_same(before, after, arrays, syms=None):
    want, got = run(before, arrays, syms), run(after, arrays, syms)
    for n in want:
        np.testing.assert_array_equal(got[n], want[n], err_msg=f"buffer {n}\n{after}")


def rand(shape, dtype=np.float32, seed=0):
    r = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return r.standard_normal(shape).astype(dtype)
    return r.integers(-50, 50, shape).astype(dtype)


# a 1-d map, a 2-d transpose-and-add, a reduction written as an expression and one written as an
# accumulation loop
x10, y10 = L.Buffer("x", F32, [10]), L.Buffer("y", F32, [10])
MAP = L.For(i, C(10), L.Store(y10, (i,), x10[i] * f32(2.0)))
A, B = L.Buffer("A", F32, [6, 8]), L.Buffer("B", F32, [8, 6])
TRANSPOSE = L.For(i, C(6), L.For(j, C(8), L.Store(B, (j, i), A[i, j] + A[i, 7 - j])))
X, Y = L.Buffer("X", "i32", [4, 6]), L.Buffer("Y", "i32", [4])
ROWSUM = L.For(i, C(4), L.Store(Y, (i,), L.Reduce("sum", L.const(0, "i32"), ((k, C(6)),), X[i, k])))
ACCUM = L.For(i, C(4), L.seq(L.Store(Y, (i,), L.const(0, "i32")),
                             L.For(k, C(6), L.Store(Y, (i,), Y[i] + X[i, k]))))


# ------------------------------------------------------------------------------------------------ split
def test_split_exact():
    s, o, n = S.split(TRANSPOSE, "j", 4)
    assert (o, n) == ("j_o", "j_i")
    assert str(s) == """\
for i in range(6):
  for j_o in range(2):
    for j_i in range(4):
      B[(j_i + (j_o * 4)), i] = add(A[i, (j_i + (j_o * 4))], A[i, (((j_i * -1) + (j_o * -4)) + 7)])"""
    assert_same(TRANSPOSE, s, {"A": rand((6, 8)), "B": np.zeros((8, 6), np.float32)})


def test_split_remainder_loop():
    s, _, _ = S.split(MAP, "i", 4)
    assert str(s) == """\
for i_o in range(2):
  for i_i in range(4):
    y[(i_i + (i_o * 4))] = mul(x[(i_i + (i_o * 4))], 2.0:f32)
for i in range(8, 10):
  y[i] = mul(x[i], 2.0:f32)"""
    assert_same(MAP, s, {"x": rand(10), "y": np.zeros(10, np.float32)})


def test_split_guard():
    s, _, _ = S.split(MAP, "i", 4, tail="guard")
    assert str(s) == """\
for i_o in range(3):
  for i_i in range(4):
    if lt((i_i + (i_o * 4)), 10):
      y[(i_i + (i_o * 4))] = mul(x[(i_i + (i_o * 4))], 2.0:f32)"""
    assert_same(MAP, s, {"x": rand(10), "y": np.zeros(10, np.float32)})


def test_split_symbolic_extent():
    x, y = L.Buffer("x", F32, [N]), L.Buffer("y", F32, [N])
    s0 = L.For(i, N, L.Store(y, (i,), x[i] + f32(1)))
    s, _, _ = S.split(s0, "i", 4)
    assert str(s) == """\
for i_o in range((N // 4)):
  for i_i in range(4):
    y[(i_i + (i_o * 4))] = add(x[(i_i + (i_o * 4))], 1.0:f32)
for i in range(((N // 4) * 4), N):
  y[i] = add(x[i], 1.0:f32)"""
    for n in (0, 3, 4, 9):
        assert_same(s0, s, {"x": rand(n), "y": np.zeros(n, np.float32)}, {"N": n})
    g, _, _ = S.split(s0, "i", 4, tail="guard")
    for n in (0, 3, 9):
        assert_same(s0, g, {"x": rand(n), "y": np.zeros(n, np.float32)}, {"N": n})


def test_split_keeps_start_and_kinds():
    s0 = L.For(i, C(6), L.Store(y10, (i,), x10[i]), "parallel", start=C(3))
    s, _, _ = S.split(s0, "i", 4)
    assert str(s) == """\
parallel for i_o in range(1):
  for i_i in range(4):
    y[(i_i + (i_o * 4) + 3)] = x[(i_i + (i_o * 4) + 3)]
for i in range(7, 9):
  y[i] = x[i]""".replace("(i_i + (i_o * 4) + 3)", "((i_i + (i_o * 4)) + 3)")
    assert_same(s0, s, {"x": rand(10), "y": np.zeros(10, np.float32)})


def test_split_does_not_mutate_its_input():
    before = str(TRANSPOSE)
    S.split(TRANSPOSE, "i", 4)
    S.fuse(TRANSPOSE, "i", "j")
    S.cache_read(TRANSPOSE, "A", "j")
    assert str(TRANSPOSE) == before


def test_split_a_kernel():
    kern = L.Kernel("k", [x10, y10], MAP)
    out, _, _ = S.split(kern, "i", 5)
    assert isinstance(out, L.Kernel) and out.params == [x10, y10] and kern.body is MAP
    assert str(out).splitlines()[0] == "kernel k(x: f32[10], y: f32[10]) {"
    assert S.loop_names(out) == ["i_o", "i_i"]


# ---------------------------------------------------------------------------------------------- reorder
def test_reorder():
    s = S.reorder(TRANSPOSE, "i", "j")
    assert str(s) == """\
for j in range(8):
  for i in range(6):
    B[j, i] = add(A[i, j], A[i, ((j * -1) + 7)])"""
    assert_same(TRANSPOSE, s, {"A": rand((6, 8)), "B": np.zeros((8, 6), np.float32)})


def test_reorder_across_a_middle_loop():
    Z = L.Buffer("Z", F32, [2, 3, 4])
    value = L.Cast(i * 100 + j * 10 + k, L._dtype(F32))
    s0 = L.For(i, C(2), L.For(j, C(3), L.For(k, C(4), L.Store(Z, (i, j, k), value))))
    s = S.reorder(s0, "i", "k")
    assert S.loop_names(s) == ["k", "j", "i"]
    assert_same(s0, s, {"Z": np.zeros((2, 3, 4), np.float32)})


def test_reorder_accumulation():
    s = S.reorder(S.split(ACCUM, "k", 2)[0], "k_o", "k_i")
    assert_same(ACCUM, s, {"X": rand((4, 6), np.int32), "Y": np.zeros(4, np.int32)})


# ------------------------------------------------------------------------------------------------- fuse
def test_fuse():
    s, name = S.fuse(TRANSPOSE, "i", "j")
    assert name == "i_j"
    assert str(s) == """\
for i_j in range(48):
  B[(i_j % 8), (i_j // 8)] = add(A[(i_j // 8), (i_j % 8)], A[(i_j // 8), (((i_j % 8) * -1) + 7)])"""
    assert_same(TRANSPOSE, s, {"A": rand((6, 8)), "B": np.zeros((8, 6), np.float32)})


def test_split_then_fuse_gives_the_index_back():
    s, o, n = S.split(MAP, "i", 5)
    f, name = S.fuse(s, o, n)
    assert str(f) == """\
for i_o_i_i in range(10):
  y[i_o_i_i] = mul(x[i_o_i_i], 2.0:f32)"""


def test_fuse_chain_matches_lowering_fuse_loops():
    from kiln.ir.lowering import KernelBuilder, fuse_loops

    chain = [TRANSPOSE, TRANSPOSE.body]
    a = S.fuse_chain(chain, "f")
    b = fuse_loops(chain, KernelBuilder())
    assert str(a) == str(b).replace(b.var.name, "f")
    assert_same(TRANSPOSE, a, {"A": rand((6, 8)), "B": np.zeros((8, 6), np.float32)})


# ------------------------------------------------------------------------------ vectorize/unroll/parallel
def test_vectorize_with_lanes_splits():
    s = S.vectorize(MAP, "i", lanes=4)
    assert str(s) == """\
for i_o in range(2):
  vectorized for i_i in range(4):
    y[(i_i + (i_o * 4))] = mul(x[(i_i + (i_o * 4))], 2.0:f32)
for i in range(8, 10):
  y[i] = mul(x[i], 2.0:f32)"""
    assert_same(MAP, s, {"x": rand(10), "y": np.zeros(10, np.float32)})
    assert str(S.vectorize(MAP, "i", lanes=10)).startswith("vectorized for i in range(10):")
    assert str(S.vectorize(MAP, "i")).startswith("vectorized for i in range(10):")
    assert str(S.vectorize(MAP, "i", lanes=16)).startswith("vectorized for i in range(10):")


def test_unroll_and_parallelize():
    s = S.parallelize(S.unroll(TRANSPOSE, "j"), "i")
    assert str(s) == """\
parallel for i in range(6):
  unrolled for j in range(8):
    B[j, i] = add(A[i, j], A[i, (7 - j)])"""
    assert_same(TRANSPOSE, s, {"A": rand((6, 8)), "B": np.zeros((8, 6), np.float32)})


def test_vectorize_over_unrolled_inner_loop():
    s = S.vectorize(S.unroll(S.reorder(TRANSPOSE, "i", "j"), "i"), "j")
    assert S.loop_names(s) == ["j", "i"]
    assert str(s).splitlines()[:2] == ["vectorized for j in range(8):", "  unrolled for i in range(6):"]


# ---------------------------------------------------------------------------------------- cache / pack
def test_cache_read():
    s = S.cache_read(TRANSPOSE, "A", "j")
    assert str(s) == """\
for i in range(6):
  alloc A_local: f32[1, 8]
  for A_local_c0 in range(1):
    for A_local_c1 in range(8):
      A_local[A_local_c0, A_local_c1] = A[(A_local_c0 + i), A_local_c1]
  for j in range(8):
    B[j, i] = add(A_local[0, j], A_local[0, ((j * -1) + 7)])"""
    assert_same(TRANSPOSE, s, {"A": rand((6, 8)), "B": np.zeros((8, 6), np.float32)})


def test_pack_transposes_the_copy():
    s = S.pack(TRANSPOSE, "A", "i", (1, 0))
    assert str(s) == """\
alloc A_local: f32[8, 6]
for A_local_c1 in range(8):
  for A_local_c0 in range(6):
    A_local[A_local_c1, A_local_c0] = A[A_local_c0, A_local_c1]
for i in range(6):
  for j in range(8):
    B[j, i] = add(A_local[j, i], A_local[((j * -1) + 7), i])"""
    assert_same(TRANSPOSE, s, {"A": rand((6, 8)), "B": np.zeros((8, 6), np.float32)})


def test_cache_read_of_a_tile_inside_reductions():
    """A 1-d convolution tile: the window box comes from the loop and the reduction axis."""
    x = L.Buffer("x", F32, [20])
    w = L.Buffer("w", F32, [3])
    y = L.Buffer("y", F32, [18])
    conv = L.For(i, C(18), L.Store(y, (i,), L.Reduce("sum", f32(0), ((k, C(3)),), x[i + k] * w[k])))
    s, o, n = S.split(conv, "i", 6)
    s = S.cache_read(s, "x", n)
    text = str(s)
    assert "alloc x_local: f32[8]" in text and "x_local[(i_i + k)]" in text
    assert_same(conv, s, {"x": rand(20), "w": rand(3, seed=1), "y": np.zeros(18, np.float32)})


def test_cache_read_guards_padded_reads():
    x = L.Buffer("x", F32, [8])
    y = L.Buffer("y", F32, [8])
    ok = L.Bin("and", L.binary("ge", i - 1, 0), L.binary("lt", i + 1, 8), L.BOOL)
    # y[i] = x[i-1] + x[i+1] where in range, reads guarded by an if
    s0 = L.For(i, C(8), L.If(ok, L.Store(y, (i,), x[i - 1] + x[i + 1]), L.Store(y, (i,), f32(0))))
    s = S.cache_read(s0, "x", "i")
    assert "alloc x_local: f32[10]" in str(s)
    assert "if and(ge((x_local_c0 - 1), 0), lt((x_local_c0 - 1), 8)):" in str(s)
    assert_same(s0, s, {"x": rand(8), "y": np.zeros(8, np.float32)})


# ------------------------------------------------------------------------------------ compute_at / inline
def _producer_consumer():
    t = L.Buffer("t", F32, [10, 4])
    x = L.Buffer("x", F32, [10, 4])
    y = L.Buffer("y", F32, [9, 4])
    p, q = L.Var("p"), L.Var("q")
    prod = L.For(p, C(10), L.For(q, C(4), L.Store(t, (p, q), L.unary("exp", x[p, q]))))
    cons = L.For(i, C(9), L.For(j, C(4), L.Store(y, (i, j), t[i, j] + t[i + 1, 3 - j])))
    return prod, cons


def test_compute_at_restricts_to_the_region():
    prod, cons = _producer_consumer()
    s = S.compute_at(prod, cons, "i")
    assert str(s) == """\
for i in range(9):
  for p in range(i, (i + 2)):
    for q in range(4):
      t[p, q] = exp(x[p, q])
  for j in range(4):
    y[i, j] = add(t[i, j], t[(i + 1), ((j * -1) + 3)])"""
    arrays = {"x": rand((10, 4)), "t": np.zeros((10, 4), np.float32), "y": np.zeros((9, 4), np.float32)}
    want, got = run(L.seq(prod, cons), arrays), run(s, arrays)
    np.testing.assert_array_equal(got["y"], want["y"])


def test_compute_at_inner_loop():
    prod, cons = _producer_consumer()
    s = S.compute_at(prod, cons, "j")
    assert str(s).splitlines()[:5] == [
        "for i in range(9):",
        "  for j in range(4):",
        "    for p in range(i, (i + 2)):",
        "      for q in range(min(j, ((j * -1) + 3)), (max(j, ((j * -1) + 3)) + 1)):",
        "        t[p, q] = exp(x[p, q])"]
    arrays = {"x": rand((10, 4)), "t": np.zeros((10, 4), np.float32), "y": np.zeros((9, 4), np.float32)}
    want, got = run(L.seq(prod, cons), arrays), run(s, arrays)
    np.testing.assert_array_equal(got["y"], want["y"])


def test_compute_at_clips_to_the_producer_range():
    """A guarded stencil reads one row past the producer's range: the box is clipped."""
    prod, _ = _producer_consumer()
    t = prod.body.body.buf
    y = L.Buffer("y", F32, [10])
    cons = L.For(i, C(10), L.If(L.binary("lt", i + 1, 10), L.Store(y, (i,), t[i, C(0)] + t[i + 1, C(0)]),
                                L.Store(y, (i,), t[i, C(0)])))
    s = S.compute_at(prod, cons, "i")
    assert str(s).splitlines()[1] == "  for p in range(i, min((i + 2), 10)):"
    assert str(s).splitlines()[2] == "    for q in range(1):"
    arrays = {"x": rand((10, 4)), "t": np.zeros((10, 4), np.float32), "y": np.zeros(10, np.float32)}
    want, got = run(L.seq(prod, cons), arrays), run(s, arrays)
    np.testing.assert_array_equal(got["y"], want["y"])


def test_inline_a_local_buffer():
    t = L.Buffer("t", F32, [10], scope="local")
    p = L.Var("p")
    s0 = L.Alloc(t, L.seq(L.For(p, C(10), L.Store(t, (p,), x10[p] * x10[p])),
                          L.For(i, C(9), L.Store(y10, (i,), t[i] + t[i + 1]))))
    s = S.inline(s0, "t")
    assert str(s) == """\
for i in range(9):
  y[i] = add(mul(x[i], x[i]), mul(x[(i + 1)], x[(i + 1)]))"""
    assert_same(s0, s, {"x": rand(10), "y": np.zeros(10, np.float32)})


def test_inline_a_global_buffer_keeps_its_producer():
    prod, cons = _producer_consumer()
    s0 = L.seq(prod, cons)
    s = S.inline(s0, "t")
    assert str(s).splitlines()[-1] == "    y[i, j] = add(exp(x[i, j]), exp(x[(i + 1), ((j * -1) + 3)]))"
    assert_same(s0, s, {"x": rand((10, 4)), "t": np.zeros((10, 4), np.float32), "y": np.zeros((9, 4), np.float32)})


# ------------------------------------------------------------------------------------------------ errors
def test_errors_name_the_loop():
    with pytest.raises(ValueError, match=r"split: no loop 'z' \(loops: i, j\)"):
        S.split(TRANSPOSE, "z", 2)
    with pytest.raises(ValueError, match="split: loop 'i' runs 6 times, fewer than the factor 8"):
        S.split(TRANSPOSE, "i", 8)
    with pytest.raises(ValueError, match="split: the factor for loop 'i' must be a positive int, got 0"):
        S.split(TRANSPOSE, "i", 0)
    with pytest.raises(ValueError, match="reorder: loop 'i' is not inside loop 'j'"):
        S.reorder(TRANSPOSE, "j", "i")
    with pytest.raises(ValueError, match="reorder: loops 'i' and 'k' are not perfectly nested"):
        S.reorder(ACCUM, "i", "k")
    tri = L.For(i, C(4), L.For(j, i + 1, L.Store(B, (j, i), f32(1))))
    with pytest.raises(ValueError, match="reorder: the range of loop 'j' depends on loop 'i'"):
        S.reorder(tri, "i", "j")
    with pytest.raises(ValueError, match="fuse: the range of loop 'j' depends on loop 'i'"):
        S.fuse(tri, "i", "j")
    with pytest.raises(ValueError, match="unroll: loop 'i' has a non-constant extent N"):
        S.unroll(L.For(i, N, L.Store(y10, (i,), f32(0))), "i")
    with pytest.raises(ValueError, match="vectorize: the body of loop 'i' has a loop or an if"):
        S.vectorize(TRANSPOSE, "i")
    with pytest.raises(ValueError, match="vectorize: loop 'i' has a non-constant extent N; give lanes"):
        S.vectorize(L.For(i, N, L.Store(y10, (i,), f32(0))), "i")
    with pytest.raises(ValueError, match=r"parallelize: loop 'k': the store to Y\[i\] does not depend on 'k'"):
        S.parallelize(ACCUM, "k")
    with pytest.raises(ValueError, match="parallelize: loop 'j' is inside the vectorized loop 'i'"):
        S.parallelize(L.For(i, C(4), L.For(j, C(2), L.Store(B, (j, i), f32(0))), "vectorized"), "j")
    dup = L.seq(MAP, L.For(i, C(3), L.Store(y10, (i,), f32(0))))
    with pytest.raises(ValueError, match="split: loop name 'i' is ambiguous"):
        S.split(dup, "i", 2)


def test_cache_and_compute_errors():
    with pytest.raises(ValueError, match="cache_read: loop 'i' does not read w"):
        S.cache_read(MAP, L.Buffer("w", F32, [10]), "i")
    with pytest.raises(ValueError, match="cache_read: y is written inside loop 'i'"):
        S.cache_read(L.For(i, C(9), L.Store(y10, (i,), y10[i + 1])), "y", "i")
    with pytest.raises(ValueError, match="cache_read: no buffer 'w'"):
        S.cache_read(MAP, "w", "i")
    x = L.Buffer("x", F32, [N])
    with pytest.raises(ValueError, match="pack: the region of x that loop 'i' reads has a non-constant extent N"):
        S.pack(L.For(i, N, L.Store(y10, (i,), x[i])), "x", "i", (0,))
    with pytest.raises(ValueError, match=r"pack: \(1, 1\) is not a permutation of the 2 dims of A"):
        S.pack(TRANSPOSE, "A", "i", (1, 1))
    gather = L.Buffer("g", "i64", [10])
    with pytest.raises(ValueError, match=r"cache_read: index g\[i\] is not affine"):
        S.cache_read(L.For(i, C(10), L.Store(y10, (i,), x10[gather[i]])), "x", "i")
    prod, cons = _producer_consumer()
    with pytest.raises(ValueError, match="compute_at: the producer must be a perfect loop nest around one store"):
        S.compute_at(ACCUM, cons, "i")
    with pytest.raises(ValueError, match="compute_at: loop 'i' does not read X"):
        S.compute_at(L.For(i, C(4), L.For(j, C(6), L.Store(X, (i, j), L.const(1, "i32")))), cons, "i")
    t = prod.body.body.buf
    y = L.Buffer("y", F32, [9])
    cons2 = L.seq(L.Store(y, (C(0),), t[C(0), C(0)]), L.For(i, C(9), L.Store(y, (i,), t[i, C(0)])))
    with pytest.raises(ValueError, match="compute_at: the consumer reads t outside loop 'i'"):
        S.compute_at(prod, cons2, "i")


def test_inline_errors():
    with pytest.raises(ValueError, match="inline: Y is stored 2 times"):
        S.inline(ACCUM, "Y")
    t = L.Buffer("t", F32, [10], scope="local")
    part = L.Alloc(t, L.seq(L.For(i, C(5), L.Store(t, (i,), f32(1))), L.For(j, C(10), L.Store(y10, (j,), t[j]))))
    with pytest.raises(ValueError, match="inline: the loop 'i' storing t does not cover dim 0"):
        S.inline(part, "t")
    shifted = L.Alloc(t, L.seq(L.For(i, C(10), L.Store(t, (L.simplify(9 - i),), f32(1))),
                               L.For(j, C(10), L.Store(y10, (j,), t[j]))))
    with pytest.raises(ValueError, match=r"inline: the store t\[\(\(i \* -1\) \+ 9\)\] must index t by its loop"):
        S.inline(shifted, "t")


# -------------------------------------------------------------------------------------- property tests
@st.composite
def nests(draw):
    """A random 1-3 deep nest: elementwise (reads a permuted neighbour) or a reduction written as a
    Reduce expression or as an accumulation loop; the outer extent may be the symbol N."""
    kind = draw(st.sampled_from(["map", "reduce", "accum"]))
    rank = draw(st.integers(1, 3 if kind == "map" else 2))
    exts = [draw(st.integers(1, 7)) for _ in range(rank)]
    sym = draw(st.booleans())
    dims = [N if (d == 0 and sym) else C(e) for d, e in enumerate(exts)]
    vs = [L.Var(f"v{d}") for d in range(rank)]
    if kind == "map":
        x = L.Buffer("x", "i32", dims)
        y = L.Buffer("y", "i32", dims)
        rev = tuple(L.simplify(dims[d] - 1 - vs[d]) if d == rank - 1 else vs[d] for d in range(rank))
        body: L.Stmt = L.Store(y, tuple(vs), x[tuple(vs)] * L.const(3, "i32") + x[rev])
        arrays = {"x": (exts, "x"), "y": (exts, None)}
    else:
        r = draw(st.integers(1, 6))
        kv = L.Var("r")
        x = L.Buffer("x", "i32", [*dims, C(r)])
        y = L.Buffer("y", "i32", dims)
        if kind == "reduce":
            body = L.Store(y, tuple(vs), L.Reduce("sum", L.const(0, "i32"), ((kv, C(r)),), x[(*vs, kv)]))
        else:
            body = L.seq(L.Store(y, tuple(vs), L.const(0, "i32")),
                         L.For(kv, C(r), L.Store(y, tuple(vs), y[tuple(vs)] + x[(*vs, kv)])))
        arrays = {"x": ([*exts, r], "x"), "y": (exts, None)}
    for v, n in reversed(list(zip(vs, dims))):
        body = L.For(v, n, body)
    return body, arrays, exts[0]


OPS = ["split", "split_guard", "reorder", "fuse", "unroll", "vectorize", "parallelize", "cache_read", "pack"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nests(), st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 99), st.integers(0, 99),
                                   st.integers(1, 5)), max_size=6))
def test_random_schedules_preserve_results(nest, steps):
    stmt, spec, n0 = nest
    r = np.random.default_rng(n0)
    arrays = {name: (r.integers(-20, 20, shape).astype(np.int32) if fill else np.zeros(shape, np.int32))
              for name, (shape, fill) in spec.items()}
    syms = {"N": n0}
    s = stmt
    for op, a, b, f in steps:
        names = S.loop_names(s)
        if not names:
            break
        u = names[a % len(names)]
        later = names[names.index(u) + 1:] or names  # reorder/fuse want a loop inside u
        w = later[b % len(later)]
        try:
            if op == "split":
                s = S.split(s, u, f)[0]
            elif op == "split_guard":
                s = S.split(s, u, f, tail="guard")[0]
            elif op == "reorder":
                s = S.reorder(s, u, w)
            elif op == "fuse":
                s = S.fuse(s, u, w)[0]
            elif op == "unroll":
                s = S.unroll(s, u)
            elif op == "vectorize":
                s = S.vectorize(s, u, f if f > 1 else None)
            elif op == "parallelize":
                s = S.parallelize(s, u)
            elif op == "cache_read":
                s = S.cache_read(s, "x", u)
            else:
                s = S.pack(s, "x", u, tuple(reversed(range(len(spec["x"][0])))))
        except ValueError:
            continue  # a transformation that does not apply says so; the tree is unchanged
    assert_same(stmt, s, arrays, syms)


# ------------------------------------------------------------------------------------------------- LLVM
def _jit(kernel):
    from kiln.targets.llvm_codegen import ModuleGen
    from kiln.targets.llvm_cpu import _llvm

    llvm = _llvm()
    mg = ModuleGen(triple=llvm.get_process_triple())
    fn = mg.kernel(kernel)
    fn.linkage = "external"
    mod = llvm.parse_assembly(str(mg.module))
    mod.verify()
    return llvm, mod


def _scheduled_kernel():
    x = L.Buffer("x", F32, [16, 37])
    y = L.Buffer("y", F32, [16, 37])
    v0, v1 = L.Var("a"), L.Var("b")
    body = L.For(v0, C(16), L.For(v1, C(37), L.Store(
        y, (v0, v1), x[v0, v1] * f32(2.0) + x[v0, L.simplify(36 - v1)])))
    kern = L.Kernel("sched", [x, y], body)
    s, ao, ai = S.split(kern, "a", 4)
    s = S.unroll(s, ai)
    s = S.cache_read(s, "x", ai)
    s = S.vectorize(s, "b", lanes=8)
    return s


def test_scheduled_kernel_compiles_and_runs_through_llvm():
    pytest.importorskip("llvmlite")
    kern = _scheduled_kernel()
    text = str(kern)
    assert "vectorized for b_i in range(8):" in text and "unrolled for a_i in range(4):" in text
    llvm, mod = _jit(kern)
    target = llvm.Target.from_default_triple().create_target_machine()
    engine = llvm.create_mcjit_compiler(mod, target)
    engine.finalize_object()
    f = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(engine.get_function_address("sched"))
    xa = rand((16, 37))
    ya = np.zeros((16, 37), np.float32)
    f(xa.ctypes.data, ya.ctypes.data)
    want = run(kern, {"x": xa, "y": np.zeros((16, 37), np.float32)})["y"]
    np.testing.assert_array_equal(ya, want)
    np.testing.assert_array_equal(ya, xa * 2 + xa[:, ::-1])


def test_parallel_scheduled_kernel_verifies():
    pytest.importorskip("llvmlite")
    kern = S.parallelize(_scheduled_kernel(), "a_o")
    assert str(kern).splitlines()[1].startswith("  parallel for a_o in range(4):")
    _jit(kern)


def test_split_remainder_renames_its_inner_loops():
    s0 = S.reorder(TRANSPOSE, "i", "j")  # for j < 8: for i < 6
    s, _, _ = S.split(s0, "j", 3)
    assert S.loop_names(s) == ["j_o", "j_i", "i", "j", "i_r"]
    s = S.vectorize(s, "i", lanes=6)  # the main part's i only
    assert_same(TRANSPOSE, s, {"A": rand((6, 8)), "B": np.zeros((8, 6), np.float32)})


def test_compute_at_renames_clashing_producer_vars():
    t = L.Buffer("t", F32, [10])
    prod = L.For(i, C(10), L.Store(t, (i,), x10[i] + f32(1)))
    cons = L.For(i, C(5), L.Store(y10, (i,), t[i * 2] * t[i * 2 + 1]))
    s = S.compute_at(prod, cons, "i")
    assert str(s) == """\
for i in range(5):
  for i1 in range((i * 2), ((i * 2) + 2)):
    t[i1] = add(x[i1], 1.0:f32)
  y[i] = mul(t[(i * 2)], t[((i * 2) + 1)])"""
    arrays = {"x": rand(10), "t": np.zeros(10, np.float32), "y": np.zeros(10, np.float32)}
    np.testing.assert_array_equal(run(s, arrays)["y"], run(L.seq(prod, cons), arrays)["y"])


def test_tiled_gemm_kernel_evaluates_and_packs():
    """The tiling pass's micro-kernel under the reference evaluator, then its k loop's B panel packed."""
    from kiln.ir.lowering import GemmSpec, KernelBuilder
    from kiln.passes.tiling import gemm_kernel
    from kiln.targets.base import Caps

    M, Nn, K = 7, 19, 5
    a, b = L.Buffer("a", F32, [M, K]), L.Buffer("b", F32, [K, Nn])
    c = L.Buffer("c", F32, [M, Nn])
    kb = KernelBuilder()
    spec = GemmSpec((), C(M), C(Nn), C(K), lambda bi, m, kk: a[m, kk], lambda bi, kk, n: b[kk, n],
                    lambda bi, m, n: (m, n), F32)
    t = kb.gemm((M, Nn), spec, lambda idx: ((), idx[0], idx[1]))
    body = gemm_kernel(t, c, kb, Caps(vector_bits=256))
    arrays = {"a": rand((M, K)), "b": rand((K, Nn), seed=1), "c": np.zeros((M, Nn), np.float32)}
    got = run(body, arrays)["c"]
    np.testing.assert_allclose(got, arrays["a"] @ arrays["b"], rtol=1e-5, atol=1e-5)
    kloop = next(n for n in S.loop_names(body) if n.startswith("kk"))
    packed = S.pack(body, "b", kloop, (1, 0))
    assert "alloc b_local: f32[16, 5]" in str(packed)
    np.testing.assert_array_equal(run(packed, arrays)["c"], got)
    _jit(L.Kernel("gemm", [a, b, c], packed))  # LLVM parses and verifies it
