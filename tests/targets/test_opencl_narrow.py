"""The narrow dtypes (float8, float4, int4/uint4/int2/uint2) compiled for OpenCL agree byte for byte with
the interpreter: the CPU target's tests (``test_codegen_narrow.py``: its values, its byte-exact check,
its dense float32 sweeps through the rounding, int wrap-around, float8 arithmetic, bitcasts) run with
``kiln.compile`` pointed at the opencl target. Casts between every pair of dtypes share one graph, the
results of one destination stacked into one kernel (a cold PoCL build costs ~0.1 s per kernel).
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyopencl")

from kiln.compiler.compile import compile as kiln_compile  # noqa: E402

import test_codegen_narrow as narrow  # noqa: E402  (the CPU test: one home for values and the check)
from test_opencl_elementwise import Mux, _have_device  # noqa: E402

pytestmark = pytest.mark.skipif(not _have_device(), reason="no OpenCL device")


@pytest.fixture(autouse=True)
def on_opencl(monkeypatch):
    """Every compile of the CPU test's helpers goes to the opencl target."""
    monkeypatch.setattr(narrow, "kiln_compile", lambda graph, target, **kw: kiln_compile(graph, "opencl", **kw))


def test_cast_every_pair():
    sources = {src: narrow.source_values(src) for src in narrow.ALL}
    n = max(len(v) for v in sources.values())
    m = Mux("narrow_casts")
    arrays = []
    for src, vals in sources.items():
        x = m.input(f"x_{src}", src, (n,))
        arrays.append(np.resize(vals, n))
        for dst in narrow.ALL:
            if dst != src:
                for kw in narrow._variants(dst):
                    m.add(f"cast {src} -> {dst} {kw}", m.b.op("cast", x, to=dst, **kw), {})
    graph = m.build()
    narrow.check(graph, arrays + m.sels)


@pytest.mark.parametrize("dst", narrow.SIGN_MAGNITUDE)
def test_dense_float32_sweep(dst):
    narrow.test_dense_float32_sweep(dst)


def test_f8e8m0_round_modes_dense():
    narrow.test_f8e8m0_round_modes_dense()


@pytest.mark.parametrize("dt", narrow.NARROW_INTS)
def test_int_arithmetic_wraps(dt):
    narrow.test_int_arithmetic_wraps(dt)


@pytest.mark.parametrize("dt", ["f8e4m3fn", "f8e5m2", "f8e4m3fnuz", "f4e2m1"])
def test_float8_arithmetic_rounds_each_result(dt):
    narrow.test_float8_arithmetic_rounds_each_result(dt)


@pytest.mark.parametrize("src,dst", [("f8e4m3fn", "u8"), ("u8", "f8e4m3fn"), ("i8", "f8e5m2fnuz"),
                                     ("f8e8m0", "u8"), ("u8", "f8e8m0"), ("f8e5m2", "f8e4m3fn"),
                                     ("f4e2m1", "u4"), ("i4", "f4e2m1"), ("i4", "u4"), ("u2", "i2")])
def test_bitcast(src, dst):
    narrow.test_bitcast(src, dst)
