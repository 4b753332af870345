"""Matmul, convolution and pooling compiled for OpenCL and run on a real device (PoCL in CI) agree with
the interpreter. Contractions large enough go through the tiled GEMM schedule (work-group tiles staged
in shared memory, register blocks per work-item, zero-filled edges, the epilogue fused into the guarded
store); the shapes here cut tiles at every edge (M, N, K not multiples of the tile), broadcast batch
dims, leave dims symbolic, and hand the GEMM a convolution in its im2col form. The launch table tells
which schedule each kernel got.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pyopencl")

import kiln.testing as kt  # noqa: E402
from kiln.ir import GraphBuilder  # noqa: E402


def _have_device() -> bool:
    from kiln.runtime import opencl

    try:
        return bool(opencl.devices())
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _have_device(), reason="no OpenCL device")
TOL = dict(rtol=2e-5, atol=2e-5)


def rand(shape, seed=0, dt=np.float32):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(dt)


def strategies(model) -> dict:
    """kernel name -> its launches' schedules."""
    table = json.loads(bytes(model._members["launch.json"]))
    return {name: [ln["strategy"] for ln in k["launches"]] for name, k in table["kernels"].items()}


def gemm_count(model) -> int:
    return sum(s.count("gemm") for s in strategies(model).values())


# --------------------------------------------------------------------------------------- matmul
def test_matmul_shapes_and_epilogues():
    """Constant weights with bias + relu; both operands inputs, batched, edges cut everywhere;
    broadcast batch; vector x matrix and matrix x vector; a long K; a classifier row (M = 1)."""
    b = GraphBuilder("matmul")
    x = b.input("x", "f32", (2, 64, 48))
    a3, b3 = b.input("a3", "f32", (3, 70, 33)), b.input("b3", "f32", (3, 33, 65))
    a4, b4 = b.input("a4", "f32", (2, 1, 17, 20)), b.input("b4", "f32", (3, 20, 19))
    v = b.input("v", "f32", (48,))
    k1, k2 = b.input("k1", "f32", (40, 1000)), b.input("k2", "f32", (1000, 36))
    row = b.input("row", "f32", (1, 512))
    w = b.const(rand((48, 40), 1), "w")
    bias = b.const(rand((40,), 2), "bias")
    wc = b.const(rand((512, 100), 3), "wc")
    outs = [b.op("relu", b.op("add", b.op("matmul", x, w), bias)),
            b.op("matmul", a3, b3),
            b.op("matmul", a4, b4),
            b.op("matmul", v, w),
            b.op("matmul", b.op("transpose", w, perm=(1, 0)), v),
            b.op("matmul", k1, k2),
            b.op("matmul", row, wc)]
    g = b.build(outs)
    ins = [rand((2, 64, 48), 4), rand((3, 70, 33), 5), rand((3, 33, 65), 6), rand((2, 1, 17, 20), 7),
           rand((3, 20, 19), 8), rand((48,), 9), rand((40, 1000), 10), rand((1000, 36), 11), rand((1, 512), 12)]
    model = kt.check_compiled(g, [ins], target="opencl", rtol=1e-4, atol=1e-4)
    assert gemm_count(model) >= 4, strategies(model)


def test_matmul_with_symbolic_dims_at_two_sizes():
    """A projection over (batch, seq) and attention scores q k^T over a symbolic sequence."""
    b = GraphBuilder("attn")
    h = b.input("h", "f32", ("batch", "seq", 64))
    q = b.input("q", "f32", ("batch", 4, "seq", 16))
    k = b.input("k", "f32", ("batch", 4, 16, "seq"))
    w = b.const(rand((64, 96), 1), "w")
    g = b.build([b.op("matmul", h, w), b.op("matmul", q, k)])
    sets = [[rand((n, s, 64), n), rand((n, 4, s, 16), n + 1), rand((n, 4, 16, s), n + 2)]
            for n, s in ((1, 37), (3, 80), (2, 1))]
    model = kt.check_compiled(g, sets, target="opencl", **TOL)
    assert gemm_count(model) == 2, strategies(model)


def test_matmul_of_other_dtypes():
    """f64 through the GEMM, f16 (f32 accumulation) and integers (wrapping) through the others."""
    b = GraphBuilder("dtypes")
    d = b.input("d", "f64", (40, 30))
    h = b.input("h", "f16", (20, 33))
    i = b.input("i", "i32", (20, 33))
    g = b.build([b.op("matmul", d, b.op("transpose", d, perm=(1, 0))),
                 b.op("matmul", h, b.op("transpose", h, perm=(1, 0))),
                 b.op("matmul", i, b.op("transpose", i, perm=(1, 0)))])
    ints = np.random.default_rng(3).integers(-2**15, 2**15, (20, 33)).astype(np.int32)
    kt.check_compiled(g, [[rand((40, 30), 1, np.float64), rand((20, 33), 2, np.float16), ints]],
                      target="opencl", rtol=2e-3, atol=2e-3)


# ----------------------------------------------------------------------------------------- conv
def _conv(b, x, w, bias=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1):
    ins = [x, w] + ([bias] if bias is not None else [])
    return b.op("conv", *ins, strides=list(strides), pads=list(pads), dilations=list(dilations), group=group)


def test_convolutions():
    """3x3 with bias and relu, stride 2, 1x1, a 7x7 stem, dilation, groups, depthwise, and a residual
    add of two convolutions (one epilogue carries the other's result)."""
    b = GraphBuilder("conv")
    x = b.input("x", "f32", (2, 16, 15, 15))
    c = lambda shape, s: b.const(rand(shape, s) * np.float32(0.3), f"w{s}")  # noqa: E731
    outs = [b.op("relu", _conv(b, x, c((24, 16, 3, 3), 1), c((24,), 2), pads=(1, 1, 1, 1))),
            _conv(b, x, c((8, 16, 3, 3), 3), strides=(2, 2)),
            _conv(b, x, c((32, 16, 1, 1), 4)),
            _conv(b, x, c((8, 16, 7, 7), 5), strides=(2, 2), pads=(3, 3, 3, 3)),
            _conv(b, x, c((8, 16, 3, 3), 6), dilations=(2, 2), pads=(2, 1, 2, 1)),
            _conv(b, x, c((24, 8, 3, 3), 7), pads=(1, 1, 1, 1), group=2),
            _conv(b, x, c((16, 1, 3, 3), 8), c((16,), 9), pads=(1, 1, 1, 1), group=16)]
    y = _conv(b, x, c((16, 16, 3, 3), 10), pads=(1, 1, 1, 1))
    outs.append(b.op("relu", b.op("add", _conv(b, y, c((16, 16, 3, 3), 11), pads=(1, 1, 1, 1)), x)))
    g = b.build(outs)
    model = kt.check_compiled(g, [[rand((2, 16, 15, 15), 20)]], target="opencl", **TOL)
    assert gemm_count(model) >= 6, strategies(model)


def test_convolution_with_symbolic_batch_and_1d_3d():
    b = GraphBuilder("conv_sym")
    x = b.input("x", "f32", ("batch", 8, 12, 12))
    s = b.input("s", "f32", ("batch", 4, 30))
    v = b.input("v", "f32", (1, 2, 5, 6, 7))
    w = b.const(rand((16, 8, 3, 3), 1), "w")
    w1 = b.const(rand((6, 4, 5), 2), "w1")
    w3 = b.const(rand((3, 2, 2, 3, 3), 3), "w3")
    g = b.build([b.op("relu", _conv(b, x, w, pads=(1, 1, 1, 1))),
                 b.op("conv", s, w1, strides=[2], pads=[2, 2], dilations=[1], group=1),
                 b.op("conv", v, w3, strides=[1, 1, 1], pads=[0, 1, 1, 0, 1, 1], dilations=[1, 1, 1], group=1)])
    sets = [[rand((n, 8, 12, 12), n), rand((n, 4, 30), n + 1), rand((1, 2, 5, 6, 7), n + 2)] for n in (1, 3)]
    kt.check_compiled(g, sets, target="opencl", **TOL)


def test_conv_transpose_and_pooling():
    b = GraphBuilder("pool")
    x = b.input("x", "f32", (2, 6, 11, 11))
    wt = b.const(rand((6, 4, 3, 3), 1), "wt")
    outs = [b.op("conv_transpose", x, wt, strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1],
                 output_padding=[1, 1], group=1),
            b.op("max_pool", x, kernel=[3, 3], strides=[2, 2], pads=[], dilations=[], ceil_mode=True)[0],
            b.op("avg_pool", x, kernel=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[], ceil_mode=False,
                 count_include_pad=False),
            b.op("avg_pool", x, kernel=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1], dilations=[], ceil_mode=False,
                 count_include_pad=True),
            b.op("reduce_mean", x, axes=(2, 3), keepdims=True)]
    g = b.build(outs)
    kt.check_compiled(g, [[rand((2, 6, 11, 11), 2)]], target="opencl", **TOL)
