"""Every elementwise op, compiled for OpenCL and run on a real OpenCL device (PoCL in CI), agrees with
the interpreter on every dtype the C-style emitter computes.

The values and tolerances are those of ``test_codegen_elementwise.py`` (the CPU target's test: the
nasty values -- signed zeros, infinities, NaN, denormals, the integer extremes, out-of-range shift
amounts, division by zero and INT_MIN / -1, float -> int casts past every range). A PoCL build takes
about a second, so each test builds one graph holding many ops (one output per op and layout) instead
of one graph per op. Skipped when pyopencl or an OpenCL device is missing.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

cl = pytest.importorskip("pyopencl")

import kiln  # noqa: E402
import kiln.testing as kt  # noqa: E402
from kiln.ir import GraphBuilder  # noqa: E402
from kiln.ir import dtypes as kd  # noqa: E402
from kiln.ir.ops.elementwise import BINARY, UNARY  # noqa: E402

import test_codegen_elementwise as cpu  # noqa: E402  (the CPU test: one home for values and tolerances)


def _have_device() -> bool:
    from kiln.runtime import opencl

    try:
        return bool(opencl.devices())
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _have_device(), reason="no OpenCL device")

N = cpu.N
DTYPES = cpu.DTYPES
EXACT = {"rtol": 0.0, "atol": 0.0}


class Mux:
    """Many op results in few kernels: the results of one dtype and shape are stacked by a chain of
    ``where(sel == k, result_k, ...)`` over a selector input, so one kernel computes every op on every
    element (a cold PoCL build costs ~0.1 s per kernel). Row k of a stacked output is result k."""

    def __init__(self, name):
        self.b = GraphBuilder(name)
        self.groups: dict = {}   # (dtype, shape) -> [(label, value, tolerance)]

    def input(self, name, dt, shape):
        return self.b.input(name, dt, shape)

    def add(self, label, value, tol):
        t = self.b.type_of(value)
        self.groups.setdefault((t.dtype.name, tuple(t.shape)), []).append((label, value, tol))

    def build(self):
        b = self.b
        outs, self.rows = [], []
        sels = []
        for (dt, shape), items in self.groups.items():
            k = len(items)
            sel = b.input(f"sel{len(sels)}", "i32", (k,) + (1,) * len(shape))
            sels.append(np.arange(k, dtype=np.int32).reshape((k,) + (1,) * len(shape)))
            out = items[-1][1]
            for i in range(k - 2, -1, -1):
                hit = b.op("equal", sel, b.const(np.array(i, np.int32)))
                out = b.op("where", hit, items[i][1], out)
            if k == 1:
                out = b.op("where", b.op("equal", sel, b.const(np.array(0, np.int32))), out, out)
            outs.append(out)
            self.rows.append(items)
        self.sels = sels
        return b.build(outs)

    def check(self, input_sets):
        """Compile for opencl once; compare every row with the interpreter (zeros by sign too)."""
        from kiln.compiler.compile import compile as kiln_compile
        from kiln.ir.interpreter import interpret
        from kiln.testing.equivalence import compare_outputs

        graph = self.build()
        model = kiln_compile(graph, "opencl", progress=False)
        for n, ins in enumerate(input_sets):
            ins = list(ins) + self.sels
            ref = interpret(graph, ins)
            got = model(*ins)
            diffs = []
            for j, name in enumerate(graph.outputs):
                for k, (label, _, tol) in enumerate(self.rows[j]):
                    r, g = np.asarray(ref[name])[k], np.asarray(got[j])[k]
                    d = compare_outputs(label, r, g, **tol)
                    if d is None and (r.dtype.kind == "f" or r.dtype == kd.dtype("bf16").np):
                        with np.errstate(invalid="ignore"):
                            rf, gf = r.astype(np.float64), g.astype(np.float64)
                        sign = (rf == 0) & (gf == 0) & (np.signbit(rf) != np.signbit(gf))
                        if sign.any():
                            i = tuple(int(t) for t in np.argwhere(sign)[0])
                            d = f"{label}: zero of the other sign at {i}: {rf[i]} vs {gf[i]}"
                    if d:
                        diffs.append(d)
            if diffs:
                raise AssertionError(f"'{graph.name}' on OpenCL differs from the interpreter on input set {n}:\n"
                                     + "\n".join(diffs[:20]))
        return model


# ---------------------------------------------------------------------------- unary and binary
@pytest.mark.parametrize("dt", DTYPES)
def test_unary_and_binary_ops(dt):
    """All unary ops, then all binary ops in four layouts ([37] op [37], [37, 1] op [1, 37], [37] op
    scalar, scalar op [37]), of one dtype."""
    m = Mux(f"ops_{dt}")
    x, u, y = m.input("x", dt, (N,)), m.input("u", dt, (N,)), m.input("y", dt, (N,))
    col, row = m.input("col", dt, (N, 1)), m.input("row", dt, (1, N))
    s = m.input("s", dt, ())
    b = m.b
    unit_ops = {"asin", "acos", "atanh", "acosh"}
    for op, r in UNARY.items():
        if cpu.accepts(r[0], dt):
            m.add(f"{op}({dt})", b.op(op, u if op in unit_ops else x), cpu.tolerance(op, dt))
    for op, r in BINARY.items():
        if not cpu.accepts(r[0], dt):
            continue
        for attrs in ([{}, {"fmod": True}] if op == "mod" else [{}]):
            tol = cpu.tolerance(op, dt)
            for what, p, q in (("x,y", x, y), ("col,row", col, row), ("x,s", x, s), ("s,y", s, y)):
                m.add(f"{op}{attrs or ''}({what}: {dt})", b.op(op, p, q, **attrs), tol)
    sets = []
    for seed in (0, 9):
        a, c = cpu.values(dt, seed=seed), cpu.values(dt, seed=seed + 3)
        unit = cpu.unit_values(dt, seed=seed) if kd.dtype(dt).is_float else a
        sets.append([a, unit, c, a.reshape(N, 1), c.reshape(1, N), a[seed % N].reshape(())])
    m.check(sets)


# ------------------------------------------------------------------------- where / isinf / cast
def test_where_and_isinf():
    m = Mux("where")
    c, cc = m.input("c", "bool", (N,)), m.input("cc", "bool", (4, 1))
    b = m.b
    cond = np.random.default_rng(1).random(N) < 0.5
    arrays = [cond, np.array([[True], [False], [False], [True]])]
    for dt in DTYPES:
        x, row, s = m.input(f"x_{dt}", dt, (N,)), m.input(f"row_{dt}", dt, (1, N)), m.input(f"s_{dt}", dt, ())
        m.add(f"where(c, x, x: {dt})", b.op("where", c, x, x), EXACT)
        m.add(f"where(cc, s, row: {dt})", b.op("where", cc, s, row), EXACT)
        m.add(f"where(c, row, s: {dt})", b.op("where", c, row, s), EXACT)
        m.add(f"where(cc, row, x: {dt})", b.op("where", cc, row, x), EXACT)
        if kd.dtype(dt).is_float:
            for p in (True, False):
                for n in (True, False):
                    m.add(f"isinf({dt}, {p}, {n})", b.op("isinf", x, detect_positive=p, detect_negative=n), EXACT)
        a = cpu.values(dt)
        arrays += [a, a.reshape(1, N), a[1].reshape(())]
    m.check([arrays])


def test_cast_between_every_pair():
    """Every source dtype to every destination, on the special values and on float values just
    inside / outside every integer range."""
    m = Mux("cast")
    b = m.b
    arrays = []
    edges = np.array([127.9, 128.0, -128.9, -129.0, 255.9, 256.0, 32767.9, 32768.0, -32769.0, 65535.9,
                      65536.0, 2.0**31 - 1, 2.0**31, -(2.0**31) - 1, 2.0**32 - 1, 2.0**32, 2.0**63,
                      -(2.0**63), -(2.0**63) * 1.0000001, 2.0**64, 2.0**64 * 1.01, -0.9, 0.9, -1.0], np.float64)
    for src in DTYPES:
        x = m.input(f"x_{src}", src, (N,))
        for dst in DTYPES:
            m.add(f"cast {src} -> {dst}", b.op("cast", x, to=dst), EXACT)
        arrays.append(cpu.values(src))
        if kd.dtype(src).is_float:
            e = m.input(f"e_{src}", src, (N,))
            for dst in DTYPES:
                m.add(f"cast {src} -> {dst} (range edges)", b.op("cast", e, to=dst), EXACT)
            with np.errstate(over="ignore"):
                arrays.append(np.resize(edges, N).astype(kd.dtype(src).np))
    m.check([arrays])


def test_bitcast_between_same_widths():
    srcs = [d for d in DTYPES if d != "bool"]
    m = Mux("bitcast")
    b = m.b
    arrays = []
    for src in srcs:
        x = m.input(f"x_{src}", src, (N,))
        for dst in srcs:
            if kd.dtype(dst).bits == kd.dtype(src).bits:
                m.add(f"bitcast {src} -> {dst}", b.op("bitcast", x, to=dst), EXACT)
        arrays.append(cpu.values(src, seed=7))
    y, z = m.input("y", "u16", (N,)), m.input("z", "u32", (N,))
    m.add("u16 -> f16 -> u16", b.op("bitcast", b.op("bitcast", y, to="f16"), to="u16"), EXACT)
    m.add("u16 -> bf16 -> u16", b.op("bitcast", b.op("bitcast", y, to="bf16"), to="u16"), EXACT)
    m.add("u32 -> f32 -> u32", b.op("bitcast", b.op("bitcast", z, to="f32"), to="u32"), EXACT)
    rng = np.random.default_rng(0)
    ys = np.concatenate([[0x7E00, 0x7C01, 0xFE01, 0x7F81, 0xFF80, 0x7FC1, 0x0001, 0x8001, 0x03FF],
                         rng.integers(0, 2**16, N - 9)]).astype(np.uint16)
    zs = np.concatenate([[0x7FC00000, 0x7F800001, 0xFFC00001, 0x7FBFFFFF], rng.integers(0, 2**32, N - 4)])
    m.check([arrays + [ys, zs.astype(np.uint32)]])


# ------------------------------------------------------------------------------- large + symbolic
def test_large_chain_and_symbolic_batch():
    """Enough elements for many work-groups and a partial last group, a symbolic leading dim run at
    two sizes (one of them zero: no launch at all)."""
    b = GraphBuilder("big")
    x = b.input("x", "f32", ("n", 257))
    y = b.input("y", "i32", ("n", 1))
    z = b.op("add", b.op("exp", b.op("neg", x)), b.op("cast", y, to="f32"))
    w = b.op("where", b.op("less", x, b.op("cast", y, to="f32")), z, b.op("sigmoid", x))
    g = b.build([w, b.op("cast", b.op("mul", x, x), to="i16")])
    model = kt.check_compiled(g, target="opencl", rtol=2e-6, atol=1e-44, symbols={"n": 300})
    rng = np.random.default_rng(0)
    for n in (1, 0):
        ins = [rng.uniform(-50, 50, (n, 257)).astype(np.float32), rng.integers(-3, 3, (n, 1)).astype(np.int32)]
        ref = kiln.interpret(g, ins)
        for want, got in zip(ref.values(), model(*ins)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-44)


# -------------------------------------------------------------------------------- property test
ELEMENTWISE_OPS = sorted(set(UNARY) | set(BINARY) | {"where", "cast", "isinf"})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(kt.graphs(ops=ELEMENTWISE_OPS, dtypes=DTYPES, max_nodes=8, max_dim=24, max_rank=3))
def test_random_elementwise_graphs_run_like_the_interpreter(g):
    loose = any(t.dtype.name in ("f16", "bf16") for t in g.types.values())
    tol = dict(rtol=2e-2, atol=2e-2) if loose else dict(rtol=1e-5, atol=1e-6)
    kt.check_compiled(g, target="opencl", **tol)
