"""Every elementwise op, compiled for the CPU, agrees with the interpreter on every LLVM dtype.

For each op of ``kiln.ir.ops.elementwise`` (the UNARY and BINARY tables, ``where``, ``cast``,
``bitcast``, ``isinf``) and each dtype it accepts among f16, bf16, f32, f64, i8..i64, u8..u64 and
bool, one graph is compiled and compared with the reference interpreter on inputs full of the
nasty values: 0, -0.0, +-inf, NaN, denormals, the largest finite values, INT_MIN / INT_MAX, -1,
shift amounts below zero and at or past the width, division by zero and INT_MIN / -1, float->int
casts of NaN and out-of-range values. 37 elements run the vectorised main loop (up to 16 lanes)
and the scalar remainder; binary ops also run [37, 1] x [1, 37] (every pair of the interesting
values, one operand uniform across the vector) and a 0-d operand on either side.

Tolerances: ints and bools exactly; +, -, *, /, min, max, mod, floor/ceil/round, abs/neg/... are
exact for f16/bf16 (both sides round one f32-or-better result) and within 1e-6 (f32) / 1e-12 (f64);
transcendental ops (and pow) within a few ulps: 2e-6 f32, 1e-12 f64, 1e-3 f16, 1e-2 bf16, with an
absolute slack of two of the dtype's smallest denormals. NaN equals NaN; zeros must agree in sign.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

pytest.importorskip("llvmlite")

import kiln.testing as kt  # noqa: E402
from kiln.compiler.compile import compile as kiln_compile  # noqa: E402
from kiln.ir import GraphBuilder  # noqa: E402
from kiln.ir import dtypes as kd  # noqa: E402
from kiln.ir.interpreter import interpret  # noqa: E402
from kiln.ir.ops._cast import cast_array  # noqa: E402
from kiln.ir.ops.elementwise import _CLASSES, BINARY, UNARY  # noqa: E402
from kiln.testing.equivalence import compare_outputs  # noqa: E402

DTYPES = ["f16", "bf16", "f32", "f64", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "bool"]
N = 37  # > one 16-lane vector, not a multiple of any lane count
# ops whose float results the reference rounds once from float64 and the target computes in its own
# precision (libm / LLVM intrinsics): a few ulps apart
INEXACT = {"exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
           "cosh", "tanh", "asinh", "acosh", "atanh", "sigmoid", "erf", "pow"}
ULPS_TOL = {"f16": 1e-3, "bf16": 1e-2, "f32": 2e-6, "f64": 1e-12}
ARITH_TOL = {"f16": 0.0, "bf16": 0.0, "f32": 1e-6, "f64": 1e-12}


def accepts(cls: str, dt: str) -> bool:
    return _CLASSES[cls](kd.dtype(dt))


def tolerance(op: str, dt: str) -> dict:
    d = kd.dtype(dt)
    if not d.is_float:
        return dict(rtol=0.0, atol=0.0)
    rtol = (ULPS_TOL if op in INEXACT else ARITH_TOL)[dt]
    atol = 2 * float(ml_dtypes.finfo(d.np).smallest_subnormal) if op in INEXACT else 0.0
    return dict(rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------------------- values
def special_values(dt: str) -> np.ndarray:
    """The values that break code generators, as ``dt``."""
    d = kd.dtype(dt)
    if d.kind == "bool":
        return np.array([False, True, True, False, True], bool)
    if d.is_float:
        fi = ml_dtypes.finfo(d.np)
        sub, tiny, big = float(fi.smallest_subnormal), float(fi.tiny), float(fi.max)
        v = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -2.5, 2.5, 2.0, 3.0, np.inf, -np.inf, np.nan,
             sub, -sub, tiny, -tiny, big, -big, 1e4, -1e4, 88.5, -88.5, 100.0, -0.999, 1e-3, np.pi,
             710.0, -745.5, 3e9, -3e9, 1e20, -1e20, 2.0**31, -2.0**63, 1.0000001]
        with np.errstate(over="ignore"):
            return np.array(v, np.float64).astype(d.np)
    info = np.iinfo(d.np)
    w = d.bits
    v = [0, 1, -1, 2, -2, 3, -3, 7, -7, info.min, info.max, info.min + 1, info.max - 1, w - 1, w, w + 1, -w,
         5, 100, -100, 64, 31, 63, 8, -9, 2**15, 2**31, -(2**31)]
    return np.array([x for x in v if info.min <= x <= info.max], dtype=object).astype(d.np)


def values(dt: str, n: int = N, seed: int = 0, scale: float = 5.0) -> np.ndarray:
    """``n`` values of ``dt``: the special ones first (rotated by ``seed``), random ones after."""
    d = kd.dtype(dt)
    rng = np.random.default_rng(seed)
    v = special_values(dt)
    v = np.roll(v, seed)[:n]
    k = n - len(v)
    if k > 0:
        if d.kind == "bool":
            extra = rng.random(k) < 0.5
        elif d.is_float:
            extra = rng.uniform(-scale, scale, k).astype(d.np)
        else:
            info = np.iinfo(d.np)
            extra = rng.integers(max(info.min, -50), min(info.max, 50), k, endpoint=True).astype(d.np)
        v = np.concatenate([v, extra])
    return v


def unit_values(dt: str, n: int = N, seed: int = 0) -> np.ndarray:
    """Values around the domains of asin/acos/atanh/acosh: [-1.2, 1.2] and 1 + [0, 3]."""
    rng = np.random.default_rng(seed)
    d = kd.dtype(dt)
    v = np.concatenate([[1.0, -1.0, 0.999, -0.999, 1.001, -1.001, 0.0, -0.0],
                        rng.uniform(-1.2, 1.2, n // 2), 1 + rng.uniform(0, 3, n)])[:n]
    return v.astype(d.np)


# ------------------------------------------------------------------------------------------ checking
def check(graph, input_sets, rtol=0.0, atol=0.0):
    """Compile ``graph`` once and compare it with the interpreter on each input set: values with
    ``compare_outputs`` (NaN == NaN), and zeros by sign as well."""
    model = kiln_compile(graph, "cpu", progress=False)
    for k, ins in enumerate(input_sets):
        ref = interpret(graph, ins)
        got = model(*ins)
        diffs = []
        for j, name in enumerate(graph.outputs):
            r, g = np.asarray(ref[name]), np.asarray(got[j])
            d = compare_outputs(f"output {j} '{name}' ({graph.types[name]})", r, g, rtol, atol)
            if d is None and (r.dtype.kind == "f" or r.dtype == ml_dtypes.bfloat16):
                with np.errstate(invalid="ignore"):
                    rf, gf = r.astype(np.float64), g.astype(np.float64)
                sign = (rf == 0) & (gf == 0) & (np.signbit(rf) != np.signbit(gf))
                if sign.any():
                    i = tuple(int(t) for t in np.argwhere(sign)[0])
                    d = f"output {j} '{name}': zero of the other sign at {i}: {rf[i]} vs {gf[i]}"
            if d:
                diffs.append(d)
        if diffs:
            shown = "\n".join(f"  {n} = {np.asarray(a).ravel()[:N].tolist()}" for n, a in zip(graph.inputs, ins))
            raise AssertionError(f"compiled '{graph.name}' differs from the interpreter on input set {k}:\n"
                                 + "\n".join(diffs) + f"\ninputs:\n{shown}")
    return model


# ------------------------------------------------------------------------------------------- unary
UNARY_CASES = [(op, dt) for op, row in UNARY.items() for dt in DTYPES if accepts(row[0], dt)]


@pytest.mark.parametrize("op,dt", UNARY_CASES, ids=[f"{o}-{d}" for o, d in UNARY_CASES])
def test_unary(op, dt):
    b = GraphBuilder(op)
    x = b.input("x", dt, (N,))
    g = b.build([b.op(op, x)])
    sets = [[values(dt)], [values(dt, seed=11, scale=20.0)]]
    if kd.dtype(dt).is_float:
        sets.append([unit_values(dt)])
    check(g, sets, **tolerance(op, dt))


# ------------------------------------------------------------------------------------------ binary
BINARY_CASES = [(op, dt, attrs) for op, row in BINARY.items() for dt in DTYPES if accepts(row[0], dt)
                for attrs in ([{}, {"fmod": True}] if op == "mod" else [{}])]


def _binary_graph(op, dt, attrs):
    """Three layouts: [37] op [37]; [37, 1] op [1, 37]; [37] op scalar and scalar op [37]."""
    b = GraphBuilder(op)
    x, y = b.input("x", dt, (N,)), b.input("y", dt, (N,))
    col, row = b.input("col", dt, (N, 1)), b.input("row", dt, (1, N))
    s = b.input("s", dt, ())
    outs = [b.op(op, x, y, **attrs), b.op(op, col, row, **attrs), b.op(op, x, s, **attrs), b.op(op, s, y, **attrs)]
    return b.build(outs)


def _binary_inputs(dt, seed):
    a, c = values(dt, seed=seed), values(dt, seed=seed + 3)
    return [a, c, a.reshape(N, 1), c.reshape(1, N), a[seed % N].reshape(())]


@pytest.mark.parametrize("op,dt,attrs", BINARY_CASES,
                         ids=[f"{o}-{d}" + ("-fmod" if a else "") for o, d, a in BINARY_CASES])
def test_binary(op, dt, attrs):
    g = _binary_graph(op, dt, attrs)
    check(g, [_binary_inputs(dt, s) for s in (0, 9, 13)], **tolerance(op, dt))


def test_integer_division_edges_are_the_documented_ones():
    """x / 0 == 0 and x mod 0 == 0 for every sign of x; INT_MIN / -1 wraps to INT_MIN."""
    from kiln.ir.registry import get

    div, mod = get("div").reference, get("mod").reference
    a = np.array([-7, -1, 0, 5, -128, -128], np.int8)
    b = np.array([0, 0, 0, 0, -1, 0], np.int8)
    assert div(a, b).tolist() == [0, 0, 0, 0, -128, 0]
    assert mod(a, b, fmod=False).tolist() == [0, 0, 0, 0, 0, 0]
    assert mod(a, b, fmod=True).tolist() == [0, 0, 0, 0, 0, 0]


def test_unsigned_pow_takes_huge_exponents_as_unsigned():
    from kiln.ir.registry import get

    got = get("pow").reference(np.uint64([3, 1, 0, 2]), np.uint64([2**64 - 1, 2**63, 2**63 + 5, 70]))
    assert got.tolist() == [pow(3, 2**64 - 1, 2**64), 1, 0, 0]


# ------------------------------------------------------------------------- where / isinf / cast
@pytest.mark.parametrize("dt", DTYPES)
def test_where(dt):
    b = GraphBuilder("where")
    c, x, y = b.input("c", "bool", (N,)), b.input("x", dt, (N,)), b.input("y", dt, (N,))
    cc, row, s = b.input("cc", "bool", (4, 1)), b.input("row", dt, (1, N)), b.input("s", dt, ())
    g = b.build([b.op("where", c, x, y), b.op("where", cc, s, row), b.op("where", c, row, s),
                 b.op("where", cc, row, x)])
    a = values(dt)
    cond = np.random.default_rng(1).random(N) < 0.5
    check(g, [[cond, a, np.roll(a, 3), np.array([[True], [False], [False], [True]]), a.reshape(1, N),
               a[1].reshape(())]])


@pytest.mark.parametrize("dt", ["f16", "bf16", "f32", "f64"])
def test_isinf(dt):
    b = GraphBuilder("isinf")
    x = b.input("x", dt, (N,))
    g = b.build([b.op("isinf", x, detect_positive=p, detect_negative=n) for p in (True, False) for n in (True, False)])
    check(g, [[values(dt)], [values(dt, seed=5)]])


@pytest.mark.parametrize("src", DTYPES)
def test_cast_to_every_dtype(src):
    """One graph per source dtype, one output per destination (as [37] and as [3, 37])."""
    b = GraphBuilder("cast")
    x, m = b.input("x", src, (N,)), b.input("m", src, (3, N))
    outs = []
    for dst in DTYPES:
        outs += [b.op("cast", x, to=dst), b.op("cast", m, to=dst)]
    g = b.build(outs)
    a = values(src)
    neg = ~a if src == "bool" else (-a if kd.dtype(src).kind != "uint" else a // 3)
    sets = [[a, np.stack([a, np.roll(a, 1), neg])]]
    if kd.dtype(src).is_float:  # values just inside / outside every int range
        edges = np.array([127.9, 128.0, -128.9, -129.0, 255.9, 256.0, 32767.9, 32768.0, -32769.0, 65535.9,
                          65536.0, 2.0**31 - 1, 2.0**31, -(2.0**31) - 1, 2.0**32 - 1, 2.0**32, 2.0**63,
                          -(2.0**63), -(2.0**63) * 1.0000001, 2.0**64, 2.0**64 * 1.01, -0.9, 0.9, -1.0],
                         np.float64)
        e = np.resize(edges, N)
        with np.errstate(over="ignore"):
            sets.append([e.astype(kd.dtype(src).np), np.stack([e, -e, e * 0.5]).astype(kd.dtype(src).np)])
    check(g, sets)


def test_float_to_int_saturates_in_the_reference():
    x = np.array([np.nan, np.inf, -np.inf, 1e20, -1e20, 300.7, -300.7, -0.9, 2.0**63, -(2.0**63)], np.float64)
    assert cast_array(x, kd.dtype("i8")).tolist() == [0, 127, -128, 127, -128, 127, -128, 0, 127, -128]
    assert cast_array(x, kd.dtype("u8")).tolist() == [0, 255, 0, 255, 0, 255, 0, 0, 255, 0]
    i64 = cast_array(x, kd.dtype("i64")).tolist()
    assert i64 == [0, 2**63 - 1, -(2**63), 2**63 - 1, -(2**63), 300, -300, 0, 2**63 - 1, -(2**63)]
    assert cast_array(x, kd.dtype("u64")).tolist() == [0, 2**64 - 1, 0, 2**64 - 1, 0, 300, 0, 0, 2**63, 0]
    assert cast_array(np.float32([np.nan, 3e9]), kd.dtype("i32")).tolist() == [0, 2**31 - 1]


BITCAST_SOURCES = [d for d in DTYPES if d != "bool"]


@pytest.mark.parametrize("src", BITCAST_SOURCES)
def test_bitcast(src):
    bits = kd.dtype(src).bits
    b = GraphBuilder("bitcast")
    x = b.input("x", src, (N,))
    g = b.build([b.op("bitcast", x, to=dst) for dst in BITCAST_SOURCES if kd.dtype(dst).bits == bits])
    check(g, [[values(src)], [values(src, seed=7)]])


def test_bitcast_keeps_nan_payloads():
    """NaN bit patterns survive a bitcast round trip through a float type (no canonicalisation)."""
    b = GraphBuilder("nanbits")
    x = b.input("x", "u32", (N,))
    y = b.input("y", "u16", (N,))
    g = b.build([b.op("bitcast", b.op("bitcast", x, to="f32"), to="u32"),
                 b.op("bitcast", b.op("bitcast", y, to="f16"), to="u16"),
                 b.op("bitcast", b.op("bitcast", y, to="bf16"), to="u16")])
    rng = np.random.default_rng(0)
    xs = np.concatenate([[0x7FC00000, 0x7F800001, 0xFFC00001, 0x7FBFFFFF], rng.integers(0, 2**32, N - 4)])
    ys = np.concatenate([[0x7E00, 0x7C01, 0xFE01, 0x7F81, 0xFF80, 0x7FC1], rng.integers(0, 2**16, N - 6)])
    check(g, [[xs.astype(np.uint32), ys.astype(np.uint16)]])


# ------------------------------------------------------------------------ large: parallel + vector
def test_large_chain_runs_parallel_and_vectorised():
    b = GraphBuilder("big")
    x = b.input("x", "f32", (300, 257))
    y = b.input("y", "i32", (300, 1))
    z = b.op("add", b.op("exp", b.op("neg", x)), b.op("cast", y, to="f32"))
    w = b.op("where", b.op("less", x, b.op("cast", y, to="f32")), z, b.op("sigmoid", x))
    g = b.build([w, b.op("cast", b.op("mul", x, x), to="i16")])
    rng = np.random.default_rng(0)
    xs = rng.uniform(-50, 50, (300, 257)).astype(np.float32)
    xs.ravel()[:40] = special_values("f32")[:37].tolist() + [0.0, 1.0, 2.0]
    check(g, [[xs, rng.integers(-3, 3, (300, 1)).astype(np.int32)]], rtol=2e-6, atol=1e-44)


# -------------------------------------------------------------------------------- property test
ELEMENTWISE_OPS = sorted(set(UNARY) | set(BINARY) | {"where", "cast", "isinf"})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(kt.graphs(ops=ELEMENTWISE_OPS, dtypes=DTYPES, max_nodes=8, max_dim=24, max_rank=3))  # dims past 16: vector loops
def test_random_elementwise_graphs_compile_like_the_interpreter(g):
    loose = any(t.dtype.name in ("f16", "bf16") for t in g.types.values())
    tol = dict(rtol=2e-2, atol=2e-2) if loose else dict(rtol=1e-5, atol=1e-6)
    kt.check_compiled(g, **tol)
