"""The tiled GEMM micro-kernel (kiln.passes.tiling): matmul and convolution against the interpreter, with
tails in m and n, swapped roles, packed weights, batch broadcasting and fused epilogues."""
import numpy as np
import pytest

import kiln.testing as kt
from kiln.compiler.compile import compile as kcompile
from kiln.ir.builder import GraphBuilder

rng = np.random.default_rng(0)


def _matmul_graph(sa, sb, const_b, epilogue=True):
    gb = GraphBuilder()
    x = gb.input("x", "f32", sa)
    y = gb.const(rng.standard_normal(sb).astype(np.float32)) if const_b else gb.input("y", "f32", sb)
    z = gb.op("matmul", x, y)
    if epilogue:
        z = gb.op("relu", z)
    return gb.build([z])


@pytest.mark.parametrize("sa,sb,const_b", [
    ([5, 7], [7, 3], False), ([2, 5, 7], [7, 9], True), ([7], [7, 4], False), ([3, 7], [7], False),
    (["batch", 4, 6], [6, 5], True), ([20, 33], [33, 100], True), ([2, 3, 20, 33], [2, 3, 33, 64], False),
    ([128, 64], [64, 96], True), ([16, 40], [40, 36], True), ([3, 1, 16, 8], [1, 4, 8, 48], False),
])
def test_matmul(sa, sb, const_b):
    kt.check_compiled(_matmul_graph(sa, sb, const_b), rtol=1e-4, atol=1e-4, trials=1,
                      symbols={"batch": 3})


def _conv_graph(C, H, O, k, s, p, group=1, relu=True, residual=False, pool=False):
    gb = GraphBuilder()
    x = gb.input("x", "f32", [2, C, H, H])
    w = gb.const(rng.standard_normal((O, C // group, k, k)).astype(np.float32))
    bias = gb.const(rng.standard_normal((O,)).astype(np.float32))
    y = gb.op("conv", x, w, bias, strides=[s, s], pads=[p] * 4, group=group)
    if residual:
        y = gb.op("add", y, gb.op("conv", x, w, strides=[s, s], pads=[p] * 4, group=group))
    if relu:
        y = gb.op("relu", y)
    if pool:
        y = gb.op("max_pool", y, kernel=[2, 2], strides=[2, 2], ceil_mode=True)[0]
    return gb.build([y])


@pytest.mark.parametrize("args,kw", [
    ((3, 20, 16, 7, 2, 3), {}), ((16, 14, 64, 1, 1, 0), {}), ((16, 14, 64, 3, 1, 1), {}),
    ((64, 14, 32, 1, 2, 0), {}), ((64, 7, 130, 3, 1, 1), {}), ((32, 7, 64, 3, 1, 1), {"residual": True}),
    ((8, 9, 16, 3, 1, 1), {"group": 2, "pool": True}), ((16, 12, 16, 3, 1, 1), {"group": 16}),
])
def test_conv(args, kw):
    kt.check_compiled(_conv_graph(*args, **kw), rtol=1e-3, atol=1e-3, trials=1)


def _kernels_text(g):
    return "\n".join(str(k) for k in kcompile(g).program.kernels.values())


def test_matmul_is_tiled_with_packed_weights_and_fused_epilogue():
    text = _kernels_text(_matmul_graph([64, 32], [32, 96], True))
    assert "alloc" in text and "unrolled for" in text and "vectorized for" in text
    assert "max(" in text  # relu stored from the accumulators
    k = kcompile(_matmul_graph([64, 32], [32, 96], True)).program.kernels
    assert len(k) == 1


def test_small_spatial_conv_swaps_roles():
    # 7x7 outputs (49 positions) but 64 channels: the vector side runs along the channels
    g = _conv_graph(32, 7, 64, 3, 1, 1)
    text = _kernels_text(g)
    assert "alloc" in text
    kt.check_compiled(g, rtol=1e-3, atol=1e-3, trials=1)


def test_two_convs_pack_their_own_weights():
    # two swapped-role convs (55x55 outputs fill no vector) in one model: each reads its own packed copy
    gb = GraphBuilder()
    x = gb.input("x", "f32", [1, 16, 55, 55])
    w1 = gb.const(rng.standard_normal((64, 16, 1, 1)).astype(np.float32))
    w2 = gb.const(rng.standard_normal((64, 16, 3, 3)).astype(np.float32))
    a = gb.op("relu", gb.op("conv", x, w1))
    c = gb.op("relu", gb.op("conv", x, w2, pads=[1, 1, 1, 1]))
    y = gb.op("max_pool", gb.op("concat", a, c, axis=1), kernel=[3, 3], strides=[2, 2], ceil_mode=True)[0]
    kt.check_compiled(gb.build([y]), rtol=1e-4, atol=1e-4, trials=1)
