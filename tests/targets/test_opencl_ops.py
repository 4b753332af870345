"""Movement, indexing, image and scan ops compiled for OpenCL and run on a real device (PoCL in CI)
agree with the interpreter, and the GPU schedule maps what it cannot spread over elements correctly:
extern ops (cumsum, topk, scatter) run one row per work-item when their rows are independent, one
work-item when not. Random graphs over every op close the file.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings

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


def rand(shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(np.float32)


def strategies(model) -> dict:
    table = json.loads(bytes(model._members["launch.json"]))
    return {name: [ln["strategy"] for ln in k["launches"]] for name, k in table["kernels"].items()}


def test_movement_ops():
    b = GraphBuilder("movement")
    x = b.input("x", "f32", ("batch", 6, 10))
    y = b.input("y", "f32", (4, 10))
    outs = [b.op("transpose", x, perm=(2, 0, 1)),
            b.op("slice", x, starts=[1, 9], ends=[5, 0], axes=[1, 2], steps=[2, -3]),
            b.op("concat", b.op("exp", y), y, b.op("neg", y), axis=0),
            b.op("pad", y, pads=[1, 2, 0, 3], mode="reflect"),
            b.op("pad", y, pads=[2, 0, 1, 1], mode="edge"),
            b.op("broadcast", y, shape=(3, 4, 10)),
            b.op("reshape", b.op("transpose", x, perm=(0, 2, 1)), shape=("batch", 60))]
    g = b.build(outs)
    kt.check_compiled(g, [[rand((n, 6, 10), n), rand((4, 10), 9)] for n in (1, 3)], target="opencl")


def test_indexing_ops():
    b = GraphBuilder("indexing")
    x = b.input("x", "f32", (7, 9))
    i = b.input("i", "i64", (5,))
    j = b.input("j", "i64", (7, 4))
    k = b.input("k", "i64", (3, 2))
    g = b.build([b.op("gather", x, i, axis=1), b.op("gather", x, i, axis=0),
                 b.op("gather_elements", x, j, axis=1), b.op("gather_nd", x, k, batch_dims=0)])
    rng = np.random.default_rng(0)
    ins = [rand((7, 9), 1), rng.integers(-7, 7, 5), rng.integers(-9, 9, (7, 4)),
           np.stack([rng.integers(0, 7, 3), rng.integers(-9, 9, 3)], 1)]
    kt.check_compiled(g, [[a.astype(np.int64) if a.dtype.kind == "i" else a for a in ins]], target="opencl")


def test_resize_modes():
    b = GraphBuilder("resize")
    x = b.input("x", "f32", (1, 2, 5, 7))
    outs = [b.op("resize", x, sizes=(1, 2, 9, 4), scales=(1.0, 1.0, 9 / 5, 4 / 7), mode=mode,
                 coordinate_transformation_mode=ctm)
            for mode, ctm in (("nearest", "asymmetric"), ("linear", "half_pixel"), ("cubic", "align_corners"))]
    kt.check_compiled(b.build(outs), [[rand((1, 2, 5, 7), 3)]], target="opencl", rtol=1e-5, atol=1e-5)


def test_extern_ops_run_a_row_per_work_item():
    """cumsum along rows and down columns, topk per row, scatter_elements with duplicates (add)."""
    b = GraphBuilder("externs")
    x = b.input("x", "f32", ("batch", 50))
    idx = b.input("idx", "i64", ("batch", 7))
    upd = b.input("upd", "f32", ("batch", 7))
    values, indices = b.op("topk", x, k=5, axis=1, largest=True, sorted=True)
    smallest, _ = b.op("topk", x, k=3, axis=0, largest=False, sorted=True)
    g = b.build([b.op("cumsum", x, axis=1, exclusive=False, reverse=False),
                 b.op("cumsum", x, axis=0, exclusive=True, reverse=True),
                 values, indices, smallest,
                 b.op("scatter_elements", x, idx, upd, axis=1, reduction="add")])
    rng = np.random.default_rng(4)
    sets = [[rand((n, 50), n).round(1), rng.integers(-50, 50, (n, 7)).astype(np.int64), rand((n, 7), n + 1)]
            for n in (3, 8)]
    model = kt.check_compiled(g, sets, target="opencl", rtol=1e-5, atol=1e-5)
    s = strategies(model)
    assert s[next(k for k in s if "cumsum" in k)] == ["loops"], s
    assert any(v[-1] == "loops" for k, v in s.items() if "scatter" in k), s


def test_scatter_nd_and_an_accumulation_along_its_loop():
    """scatter_nd writes rows chosen by data: one work-item runs it (iterations may collide)."""
    b = GraphBuilder("scatter_nd")
    x = b.input("x", "f32", (6, 4))
    i = b.input("i", "i64", (5, 1))
    u = b.input("u", "f32", (5, 4))
    g = b.build([b.op("scatter_nd", x, i, u, reduction="add")])
    model = kt.check_compiled(g, [[rand((6, 4), 1), np.array([[0], [3], [0], [5], [3]], np.int64), rand((5, 4), 2)]],
                              target="opencl", rtol=1e-6, atol=1e-6)
    assert "serial" in sum(strategies(model).values(), []), strategies(model)


@settings(max_examples=12, deadline=None)
@given(kt.graphs(max_nodes=6))
def test_random_graphs_over_every_op(g):
    from kiln.compiler.lower import CompileError
    from kiln.errors import KilnError

    try:
        kt.check_compiled(g, target="opencl", rtol=1e-4, atol=1e-5)
    except (CompileError, KilnError) as e:  # refused (data-dependent shapes, ...): as on the CPU
        with pytest.raises(type(e)):
            kt.check_compiled(g, target="cpu")
