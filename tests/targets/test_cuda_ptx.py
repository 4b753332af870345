"""The CUDA target's PTX, checked by NVIDIA's assembler: for each op family (every elementwise op on
every dtype the target computes, casts and bitcasts between every pair, every reduction, argmax /
argmin, softmax and layer norm on short and long rows, matmul and convolution through the tiled
GEMM, transposed convolution and pooling) a graph is compiled for ``sm_80`` and for ``sm_90`` and
``ptxas -arch=<sm>`` must accept its ``model.ptx``; the launch table must name the strategies the
GPU schedule chose. No GPU is needed (skipped only when ptxas is missing); running the same graphs
on a GPU is ``test_cuda_run.py``.

The libdevice-free math (:mod:`kiln.targets.nvptx_math`) is plain LLVM IR, so it is also compiled
for the host here and compared with numpy on the nasty values of the CPU elementwise test.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import kiln  # noqa: E402
from kiln.ir import GraphBuilder  # noqa: E402
from kiln.ir import dtypes as kd  # noqa: E402
from kiln.ir.ops.elementwise import BINARY, UNARY  # noqa: E402
from kiln.ir.ops.reduce import REDUCTIONS  # noqa: E402
from kiln.targets import ptxas  # noqa: E402

import test_codegen_elementwise as cpu  # noqa: E402  (one home for dtypes and values)

needs_ptxas = pytest.mark.skipif(ptxas.find() is None, reason="ptxas not found (nvidia-cuda-nvcc-cu12 wheel or PATH)")
SMS = ("sm_80", "sm_90")
DTYPES = cpu.DTYPES
N = cpu.N


def compile_and_assemble(graph, sms=SMS):
    """Compile ``graph`` for each sm; ptxas must accept each PTX for its sm. Returns the last model."""
    model = None
    for sm in sms:
        model = kiln.compile(graph, target=f"cuda -sm={sm}", progress=False)
        assert model.manifest["binary"] == "model.ptx" and model.target["options"]["sm"] == sm
        ptx = bytes(model._members["model.ptx"]).decode()
        assert f".target {sm}" in ptx
        ptxas.validate(ptx, sm, name=f"{graph.name}.ptx")
    return model


def strategies(model) -> list:
    table = json.loads(bytes(model._members["launch.json"]))
    return [ln["strategy"] for c in table["calls"] for ln in table["kernels"][c["kernel"]]["launches"]]


# ------------------------------------------------------------------------------------- elementwise
@needs_ptxas
@pytest.mark.parametrize("dt", DTYPES)
def test_every_elementwise_op_assembles(dt):
    """All unary ops and all binary ops (same shape and broadcast against a row and a scalar)."""
    b = GraphBuilder(f"ops_{dt}")
    x, y = b.input("x", dt, (N,)), b.input("y", dt, (N,))
    col, row, s = b.input("col", dt, (N, 1)), b.input("row", dt, (1, N)), b.input("s", dt, ())
    outs = []
    for op, r in UNARY.items():
        if cpu.accepts(r[0], dt):
            outs.append(b.op(op, x))
    for op, r in BINARY.items():
        if cpu.accepts(r[0], dt):
            for attrs in ([{}, {"fmod": True}] if op == "mod" else [{}]):
                outs += [b.op(op, x, y, **attrs), b.op(op, col, row, **attrs), b.op(op, s, y, **attrs)]
    if kd.dtype(dt).is_float:
        outs.append(b.op("isinf", x, detect_positive=True, detect_negative=False))
    outs.append(b.op("where", b.op("equal", x, y), x, row))
    assert len(outs) > 5
    compile_and_assemble(b.build(outs))


@needs_ptxas
def test_casts_and_bitcasts_between_every_pair_assemble():
    b = GraphBuilder("casts")
    outs = []
    for src in DTYPES:
        x = b.input(f"x_{src}", src, (N,))
        outs += [b.op("cast", x, to=dst) for dst in DTYPES if dst != src]
        if src != "bool":
            outs += [b.op("bitcast", x, to=dst) for dst in DTYPES
                     if dst not in ("bool", src) and kd.dtype(dst).bits == kd.dtype(src).bits]
    compile_and_assemble(b.build(outs))


# -------------------------------------------------------------------------------------- reductions
def _softmax(b, x):
    m = b.op("reduce_max", x, axes=(-1,), keepdims=True)
    e = b.op("exp", b.op("sub", x, m))
    return b.op("div", e, b.op("reduce_sum", e, axes=(-1,), keepdims=True))


def _layer_norm(b, x, n):
    rng = np.random.default_rng(11)
    gamma = b.const(rng.uniform(0.5, 1.5, n).astype(np.float32), "gamma")
    beta = b.const(rng.uniform(-1, 1, n).astype(np.float32), "beta")
    mean = b.op("reduce_mean", x, axes=(-1,), keepdims=True)
    d = b.op("sub", x, mean)
    var = b.op("reduce_mean", b.op("mul", d, d), axes=(-1,), keepdims=True)
    eps = b.const(np.array(1e-5, np.float32), "eps")
    return b.op("add", b.op("mul", b.op("div", d, b.op("sqrt", b.op("add", var, eps))), gamma), beta)


@needs_ptxas
@pytest.mark.parametrize("dt", ["f32", "f16", "bf16", "f64", "i32", "i64", "u8"])
def test_reductions_assemble(dt):
    """Every reduce_* (short rows: serial per thread; long rows and everything-into-one: work-group
    trees in shared memory with barriers) and argmax / argmin (value + index pairs)."""
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
    model = compile_and_assemble(b.build(outs))
    assert "rows" in strategies(model)


@needs_ptxas
def test_softmax_and_layer_norm_assemble():
    b = GraphBuilder("norms")
    x, y, z = b.input("x", "f32", ("batch", 384)), b.input("y", "f32", ("batch", 3, 1000)), b.input("z", "f32", ("batch", 7))
    model = compile_and_assemble(b.build([_softmax(b, x), _layer_norm(b, x, 384), _softmax(b, y), _layer_norm(b, z, 7)]))
    assert "rows" in strategies(model)


# ------------------------------------------------------------------------------------------ linalg
@needs_ptxas
def test_matmul_and_convolution_assemble():
    """Tiled GEMMs (shared-memory tiles, barriers, register blocks, epilogues) for matmul with
    symbolic rows, batched matmul, matrix-vector, and convolutions (grouped, depthwise, strided),
    plus transposed convolution and pooling."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("linalg")
    x = b.input("x", "f32", ("m", 96))
    w = b.const(rng.standard_normal((96, 80)).astype(np.float32), "w")
    bias = b.const(rng.standard_normal(80).astype(np.float32), "bias")
    a3, b3 = b.input("a3", "f32", (4, 33, 40)), b.input("b3", "f32", (4, 40, 65))
    v = b.input("v", "f32", (96,))
    img = b.input("img", "f32", ("batch", 16, 20, 20))
    k1 = b.const(rng.standard_normal((32, 16, 3, 3)).astype(np.float32), "k1")
    kg = b.const(rng.standard_normal((32, 4, 3, 3)).astype(np.float32), "kg")
    kd_ = b.const(rng.standard_normal((16, 1, 3, 3)).astype(np.float32), "kd")
    kt = b.const(rng.standard_normal((16, 8, 4, 4)).astype(np.float32), "kt")
    conv = lambda inp, k, group=1, strides=(1, 1): b.op(  # noqa: E731
        "conv", inp, k, strides=list(strides), pads=[1, 1, 1, 1], dilations=[1, 1], group=group)
    outs = [b.op("relu", b.op("add", b.op("matmul", x, w), bias)), b.op("matmul", a3, b3), b.op("matmul", v, w),
            b.op("relu", conv(img, k1)), conv(img, kg, group=4, strides=(2, 2)), conv(img, kd_, group=16),
            b.op("conv_transpose", img, kt, strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1], group=1,
                 output_padding=[0, 0]),
            b.op("max_pool", img, kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1], ceil_mode=False)[0],
            b.op("avg_pool", img, kernel=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], dilations=[1, 1], ceil_mode=False,
                 count_include_pad=False)]
    model = compile_and_assemble(b.build(outs))
    assert "gemm" in strategies(model)


# -------------------------------------------------------------------------------------- the target
def test_options_and_registration():
    t = kiln.targets.get("cuda -sm=90")
    assert t.options.sm == "sm_90" and t.executor == "cuda" and "cuda" in kiln.targets.available()
    assert kiln.targets.get("cuda").options.sm == "sm_80"
    with pytest.raises(ValueError, match="sm_12"):
        kiln.targets.get("cuda -sm=sm_12")


def test_ptxas_error_names_the_problem():
    if ptxas.find() is None:
        pytest.skip("ptxas not found")
    with pytest.raises(ptxas.PtxasError, match="sm_80"):
        ptxas.validate(".version 7.0\n.target sm_80\n.address_size 64\n.visible .entry k() { bogus; }\n", "sm_80")


# --------------------------------------------------------------------------------- math on the host
MATH_REF = {"exp": np.exp, "log": np.log, "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin,
            "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
            "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh, "expm1": np.expm1, "log1p": np.log1p}


def _math_inputs():
    rng = np.random.default_rng(0)
    return np.concatenate([cpu.special_values("f64"), cpu.unit_values("f64"), rng.uniform(-5, 5, 300),
                           np.exp(rng.uniform(-700, 700, 300)) * rng.choice([-1, 1], 300)])


def _assert_close(op, got, want, xs, rtol=1e-12):
    with np.errstate(all="ignore"):
        ok = (np.isnan(got) & np.isnan(want)) | (got == want) | (np.abs(got - want) <= rtol * np.abs(want) + 1e-323)
        ok &= ~((got == 0) & (want == 0) & (np.signbit(got) != np.signbit(want)))
    bad = np.flatnonzero(~ok)
    assert not bad.size, f"{op}: {bad.size} values differ, e.g. " + ", ".join(
        f"{op}{tuple(float(np.ravel(a)[i]) for a in xs)} = {got[i]!r}, numpy {want[i]!r}" for i in bad[:5])


@pytest.mark.parametrize("op", sorted(MATH_REF) + ["erf"])
def test_nvptx_math_matches_numpy_on_the_host(op):
    """Within 1e-12 relative on the special values, [-5, 5], the unit domains and magnitudes up to
    1e304 -- trig arguments at or past 2^90 excepted (NaN: no Payne-Hanek reduction)."""
    from kiln.targets.nvptx_math import host_eval

    x = _math_inputs()
    if op == "erf":
        from math import erf

        want = np.array([erf(v) if not np.isnan(v) else np.nan for v in x])
    else:
        with np.errstate(all="ignore"):
            want = MATH_REF[op](x)
    got = host_eval(op, x)
    if op in ("sin", "cos", "tan"):
        far = np.abs(x) >= 2.0 ** 90
        assert np.isnan(got[far]).all()
        x, got, want = x[~far], got[~far], want[~far]
    _assert_close(op, got, want, [x])


@pytest.mark.parametrize("op", ["pow", "atan2", "fmod"])
def test_nvptx_binary_math_matches_numpy_on_the_host(op):
    from kiln.targets.nvptx_math import host_eval

    rng = np.random.default_rng(1)
    v = np.concatenate([cpu.special_values("f64"), rng.uniform(-5, 5, 40)])
    X, Y = (a.ravel() for a in np.meshgrid(v, v))
    with np.errstate(all="ignore"):
        want = {"pow": np.power, "atan2": np.arctan2, "fmod": np.fmod}[op](X, Y)
    _assert_close(op, host_eval(op, X, Y), want, [X, Y])
