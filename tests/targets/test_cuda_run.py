"""Graphs compiled for CUDA and run on a real NVIDIA GPU agree with the interpreter: every elementwise
op on every dtype (the CPU test's nasty values and tolerances), casts between every pair, every
reduction and argmax/argmin over short rows, long rows and everything at once (symbolic extents at
two sizes), softmax and layer norm, the tiled GEMM at ragged edges, convolutions and pooling; plus
device selection by ``device=`` and ``KILN_CUDA_DEVICE`` and the errors for a device that is not
there. Skipped as a whole when the CUDA driver cannot open a device (``pytest.skip("no CUDA device")``).

Float64 sin/cos/tan run on arguments below 2^90 here: beyond that the target's libdevice-free
reduction gives NaN (see kiln/targets/nvptx_math.py).
"""
from __future__ import annotations

import numpy as np
import pytest

import kiln  # noqa: E402
import kiln.testing as kt  # noqa: E402
from kiln.ir import GraphBuilder  # noqa: E402
from kiln.ir import dtypes as kd  # noqa: E402
from kiln.ir.interpreter import interpret  # noqa: E402
from kiln.ir.ops.elementwise import BINARY, UNARY  # noqa: E402
from kiln.ir.ops.reduce import REDUCTIONS  # noqa: E402
from kiln.testing.equivalence import compare_outputs  # noqa: E402

import test_codegen_elementwise as cpu  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _device():
    try:
        from kiln.runtime import cuda

        if cuda.device_count() == 0:
            pytest.skip("no CUDA device")
    except Exception:
        pytest.skip("no CUDA device")


N = cpu.N
TRIG = {"sin", "cos", "tan"}


def run_against_interpreter(graph, input_sets, tols):
    model = kiln.compile(graph, target="cuda", progress=False)
    for n, ins in enumerate(input_sets):
        ref = interpret(graph, ins)
        got = model(*ins)
        diffs = []
        for j, name in enumerate(graph.outputs):
            label, tol = tols[j]
            r, g = np.asarray(ref[name]), np.asarray(got[j])
            d = compare_outputs(label, r, g, **tol)
            if d is None and r.dtype.kind == "f":
                with np.errstate(invalid="ignore"):
                    sign = (r == 0) & (g == 0) & (np.signbit(r) != np.signbit(g))
                if sign.any():
                    d = f"{label}: zero of the other sign at {np.argwhere(sign)[0]}"
            if d:
                diffs.append(d)
        assert not diffs, f"'{graph.name}' on CUDA differs on input set {n}:\n" + "\n".join(diffs[:20])
    return model


@pytest.mark.parametrize("dt", cpu.DTYPES)
def test_elementwise_ops(dt):
    b = GraphBuilder(f"ops_{dt}")
    x, u, y = b.input("x", dt, (N,)), b.input("u", dt, (N,)), b.input("y", dt, (N,))
    col, row, s = b.input("col", dt, (N, 1)), b.input("row", dt, (1, N)), b.input("s", dt, ())
    outs, tols = [], []
    unit_ops = {"asin", "acos", "atanh", "acosh"} | (TRIG if dt == "f64" else set())
    for op, r in UNARY.items():
        if cpu.accepts(r[0], dt):
            outs.append(b.op(op, u if op in unit_ops else x))
            tols.append((f"{op}({dt})", cpu.tolerance(op, dt)))
    for op, r in BINARY.items():
        if cpu.accepts(r[0], dt):
            for attrs in ([{}, {"fmod": True}] if op == "mod" else [{}]):
                for what, p, q in (("x,y", x, y), ("col,row", col, row), ("s,y", s, y)):
                    outs.append(b.op(op, p, q, **attrs))
                    tols.append((f"{op}{attrs or ''}({what}: {dt})", cpu.tolerance(op, dt)))
    sets = []
    for seed in (0, 9):
        a, c = cpu.values(dt, seed=seed), cpu.values(dt, seed=seed + 3)
        unit = cpu.unit_values(dt, seed=seed) if kd.dtype(dt).is_float else a
        sets.append([a, unit, c, a.reshape(N, 1), c.reshape(1, N), a[seed % N].reshape(())])
    run_against_interpreter(b.build(outs), sets, tols)


def test_casts_between_every_pair():
    b = GraphBuilder("casts")
    outs, tols, arrays = [], [], []
    for src in cpu.DTYPES:
        x = b.input(f"x_{src}", src, (N,))
        arrays.append(cpu.values(src))
        for dst in cpu.DTYPES:
            outs.append(b.op("cast", x, to=dst))
            tols.append((f"cast {src} -> {dst}", dict(rtol=0.0, atol=0.0)))
    run_against_interpreter(b.build(outs), [arrays], tols)


@pytest.mark.parametrize("dt", ["f32", "f16", "f64", "i32", "i64"])
def test_reductions(dt):
    b = GraphBuilder(f"reduce_{dt}")
    short, long_ = b.input("short", dt, ("batch", 7)), b.input("long", dt, (3, "n", 1000))
    outs = []
    for kind in sorted(REDUCTIONS):
        op = f"reduce_{kind}"
        outs += [b.op(op, short, axes=(-1,), keepdims=False), b.op(op, long_, axes=(-1,), keepdims=True),
                 b.op(op, long_, axes=(0, 1, 2), keepdims=False)]
    for op in ("argmax", "argmin"):
        outs += [b.op(op, long_, axis=-1, keepdims=False, select_last_index=False),
                 b.op(op, short, axis=-1, keepdims=True, select_last_index=True)]
    loose = dict(rtol=1e-2, atol=1e-2) if dt == "f16" else dict(rtol=1e-4, atol=1e-4)
    g = b.build(outs)
    rng = np.random.default_rng(0)
    d = kd.dtype(dt)
    mk = (lambda s: rng.integers(-3, 4, s).astype(d.np)) if not d.is_float else \
        (lambda s: rng.uniform(0.5, 1.5, s).astype(d.np))
    sets = [[mk((bt, 7)), mk((3, n, 1000))] for bt, n in ((1, 1), (4, 3))]
    kt.check_compiled(g, sets, target="cuda", **loose)


def test_softmax_layer_norm_gemm_conv_pool():
    from test_cuda_ptx import _layer_norm, _softmax

    rng = np.random.default_rng(0)
    b = GraphBuilder("mix")
    x = b.input("x", "f32", ("batch", 384))
    h = b.input("h", "f32", ("batch", 70, 96))
    w = b.const(rng.standard_normal((96, 81)).astype(np.float32), "w")
    img = b.input("img", "f32", ("batch", 16, 19, 19))
    k1 = b.const(rng.standard_normal((32, 16, 3, 3)).astype(np.float32), "k1")
    kg = b.const(rng.standard_normal((32, 4, 3, 3)).astype(np.float32), "kg")
    outs = [_softmax(b, x), _layer_norm(b, x, 384), b.op("relu", b.op("matmul", h, w)),
            b.op("conv", img, k1, strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1),
            b.op("conv", img, kg, strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1], group=4),
            b.op("max_pool", img, kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1],
                 ceil_mode=True)[0]]
    g = b.build(outs)
    sets = [[rng.standard_normal(s).astype(np.float32) for s in ((n, 384), (n, 70, 96), (n, 16, 19, 19))]
            for n in (1, 3)]
    kt.check_compiled(g, sets, target="cuda", rtol=1e-4, atol=1e-4)


def test_device_selection(tmp_path, monkeypatch):
    b = GraphBuilder("add")
    x = b.input("x", "f32", ("n",))
    model = kiln.compile(b.build([b.op("add", x, x)]), target="cuda", progress=False)
    path = tmp_path / "m.kiln"
    model.save(path)
    a = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(kiln.load(path, device="cuda:0")(a)[0], a + a)
    monkeypatch.setenv("KILN_CUDA_DEVICE", "cuda:0")
    np.testing.assert_array_equal(kiln.load(path)(a)[0], a + a)
    with pytest.raises(ValueError, match="no CUDA device 'cuda:99'"):
        kiln.load(path, device="cuda:99")
    with pytest.raises(ValueError, match="must be 'cuda:N'"):
        kiln.load(path, device="opencl:0")
    # an empty input runs no kernel and gives an empty output
    assert kiln.load(path, device="cuda:0")(np.zeros(0, np.float32))[0].shape == (0,)
