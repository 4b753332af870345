"""Convolutions whose input is still an expression when the conv lowers (an inlined pad, transpose or
slice in front of it) compile to the same results as the interpreter.

The im2col panels read a flat window-offset table only when the input is a materialised buffer: an
inlined producer clamps each index to its own dim, so a flat offset in the last index would read the
wrong row (found through the PyTorch frontend: ``padding_mode="reflect"`` exports as pad -> conv).
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llvmlite")

from kiln.ir import GraphBuilder  # noqa: E402
from kiln.testing import check_compiled  # noqa: E402


def _weights(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.3


def _graph(producer: str, strides, group):
    b = GraphBuilder(f"{producer}_conv")
    if producer == "transpose":  # NHWC in, the conv reads it through a transpose
        x = b.input("x", "f32", (2, 12, 12, 4))
        xc = b.op("transpose", x, perm=[0, 3, 1, 2])
    else:
        x = b.input("x", "f32", (2, 4, 12, 12))
        if producer == "pad":
            xc = b.op("pad", x, mode="reflect", pads=[0, 0, 1, 2, 0, 0, 1, 2])
        else:  # slice: a window of a larger image
            xc = b.op("slice", x, starts=[1, 2], ends=[11, 12], axes=[2, 3], steps=[1, 1])
    w = b.const(_weights((16, 4 // group, 3, 3), 1), "w")
    bias = b.const(_weights((16,), 2), "bias")
    # no pads of its own: the conv reads its operand's expression directly
    y = b.op("conv", xc, w, bias, strides=strides, dilations=[1, 1], pads=[0, 0, 0, 0], group=group)
    return b.build([b.op("relu", y)])


@pytest.mark.parametrize("producer", ["pad", "transpose", "slice"])
@pytest.mark.parametrize("strides,group", [([1, 1], 1), ([2, 2], 1), ([1, 1], 2)])
def test_conv_of_an_inlined_producer_matches_interpreter(producer, strides, group):
    check_compiled(_graph(producer, strides, group), rtol=1e-4, atol=1e-5)


def test_one_image_through_a_constant_pad():
    """The case the PyTorch frontend met: one image, ``F.pad`` then an unpadded conv."""
    b = GraphBuilder("pad_conv")
    x = b.input("x", "f32", (1, 3, 12, 12))
    xp = b.op("pad", x, mode="constant", pads=[0, 0, 1, 1, 0, 0, 1, 1])
    w = b.const(_weights((16, 3, 3, 3), 3), "w")
    y = b.op("conv", xp, w, strides=[1, 1], dilations=[1, 1], pads=[0, 0, 0, 0], group=1)
    check_compiled(b.build([y]), rtol=1e-4, atol=1e-5)
