"""The GPU schedule (kiln/passes/gpu_schedule.py) and the OpenCL source, without an OpenCL device.

Kernels lowered with the opencl target's capabilities are scheduled and checked for the strategy and
launch geometry each shape should get; the schedules without barriers are run by the loop-IR
evaluator (GPU loops run serially there) against the unscheduled kernel; fused loops split back into
their digits; the emitted source declares work-group memory at kernel scope and names what it refuses.
"""
from __future__ import annotations

import numpy as np
import pytest

from kiln.compiler.lower import lower_graph
from kiln.ir import GraphBuilder
from kiln.ir import loops as L
from kiln.ir.loops_eval import evaluate
from kiln.passes.gpu_schedule import launch_geometry, schedule_kernel, unfuse
from kiln.targets.cstyle import OPENCL, CodegenError, Emitter
from kiln.targets.opencl import OpenCLTarget

TARGET = OpenCLTarget()


def kernels(g):
    return list(lower_graph(g, TARGET).kernels.values())


def schedule(k):
    return schedule_kernel(k, TARGET.caps)


def _arrays(k, syms, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for b in k.params:
        n = 1
        for d in b.shape:
            n *= int(evaluate_dim(d, syms))
        a = rng.uniform(-2, 2, n) if b.dtype.is_float else rng.integers(0, 3, n)
        out[b.name] = np.ascontiguousarray(a.astype(b.dtype.np))
    return out


def evaluate_dim(e, syms):
    return int(L.simplify(L.substitute(e, {s: L.Const(v) for s, v in syms.items()})).value)


def same_result(k, launches, syms):
    """The scheduled launches, run in order by the evaluator, compute what the kernel does."""
    want = _arrays(k, syms)
    got = {n: a.copy() for n, a in want.items()}
    evaluate(k, want, syms)
    for ln in launches:
        evaluate(ln.kernel, got, syms)
    for n in want:
        np.testing.assert_array_equal(got[n], want[n], err_msg=n)


def test_elementwise_chain_is_one_work_item_per_element():
    b = GraphBuilder("ew")
    x = b.input("x", "f32", ("batch", 7, 33))
    (k,) = kernels(b.build([b.op("relu", b.op("exp", x))]))
    (ln,) = schedule(k)
    assert ln.strategy == "elementwise" and ln.threads == 256
    groups, threads = launch_geometry(ln.kernel)
    assert threads == 256 and L.fmt_expr(groups) == L.fmt_expr(ln.groups)
    assert "batch" in L.fmt_expr(groups)
    same_result(k, [ln], {"batch": 3})


def test_row_reductions_become_work_group_reductions():
    b = GraphBuilder("sm")
    x = b.input("x", "f32", (5, 300))
    m = b.op("reduce_max", x, axes=(1,), keepdims=True)
    e = b.op("exp", b.op("sub", x, m))
    out = b.op("div", e, b.op("reduce_sum", e, axes=(1,), keepdims=True))
    ks = kernels(b.build([out]))
    launches = [ln for k in ks for ln in schedule(k)]
    assert {ln.strategy for ln in launches} == {"rows"}
    for ln in launches:
        text = str(ln.kernel)
        assert "barrier" in text and "alloc shared" in text
        assert L.fmt_expr(ln.groups) == "5" and ln.threads == 256


def test_short_reductions_stay_in_one_work_item():
    b = GraphBuilder("short")
    x = b.input("x", "f32", (4000, 3))
    (k,) = kernels(b.build([b.op("reduce_sum", x, axes=(1,), keepdims=False)]))
    (ln,) = schedule(k)
    assert ln.strategy == "elementwise" and "barrier" not in str(ln.kernel)
    same_result(k, [ln], {})


def test_matmul_is_tiled_through_shared_memory():
    b = GraphBuilder("mm")
    x = b.input("x", "f32", ("batch", 100, 48))
    w = b.const(np.ones((48, 70), np.float32), "w")
    (k,) = kernels(b.build([b.op("relu", b.op("matmul", x, w))]))
    (ln,) = schedule(k)
    assert ln.strategy == "gemm" and ln.threads in (16, 32, 64, 128, 256)
    text = str(ln.kernel)
    assert text.count("alloc shared") == 2 and text.count("barrier") == 2
    src = Emitter(OPENCL).module([(ln.kernel, "gemm")])
    assert src.count("__local float") == 2 and "barrier(CLK_LOCAL_MEM_FENCE);" in src


def test_extern_rows_run_one_per_work_item_and_colliding_writes_run_alone():
    b = GraphBuilder("ext")
    x = b.input("x", "f32", ("batch", 20))
    i = b.input("i", "i64", (5, 1))
    u = b.input("u", "f32", (5, 20))
    ks = kernels(b.build([b.op("cumsum", x, axis=1, exclusive=False, reverse=False),
                          b.op("scatter_nd", b.op("neg", u), i, u, reduction="add")]))
    strategies = {}
    for k in ks:
        launches = schedule(k)
        strategies[k.name] = [ln.strategy for ln in launches]
        if all(ln.strategy != "rows" and ln.strategy != "gemm" for ln in launches):
            same_result(k, launches, {"batch": 3})
    assert ["loops"] in strategies.values(), strategies
    assert any("serial" in s for s in strategies.values()), strategies


def test_fused_loops_split_into_digits():
    f, v = L.Var("f"), L.Var("v")
    out = L.Buffer("out", "f32", (2, 64, 5))
    src = L.Buffer("src", "f32", (2, 64, 5))
    body = L.For(f, L.Const(128), L.For(v, L.Const(5), L.Store(out, (f // 64, f % 64, v), src[f // 64, f % 64, v])))
    split = unfuse(body)
    assert [x.var.name for x in L.walk_stmts(split) if isinstance(x, L.For)] == ["f_0", "f_1", "v"]
    assert "//" not in str(split) and "%" not in str(split)
    a = np.arange(640, dtype=np.float32)
    r1 = evaluate(body, {"out": np.zeros(640, np.float32), "src": a})["out"]
    r2 = evaluate(split, {"out": np.zeros(640, np.float32), "src": a})["out"]
    np.testing.assert_array_equal(r1, r2)


def test_emitter_refuses_what_it_cannot_spell():
    p0 = L.Buffer("p0", "f32", (4,))
    unbound = L.Kernel("k", [p0], L.Store(p0, (L.Var("nowhere"),), L.const(1.0, "f32")))
    with pytest.raises(CodegenError, match=r"kernel bad: unbound variable nowhere"):
        Emitter(OPENCL).module([(unbound, "bad")])
    n = L.Var("n")
    local = L.Buffer("tmp", "f32", (n,), scope="local")
    dynamic = L.Kernel("k", [p0], L.Alloc(local, L.Store(p0, (L.Const(0),), local[L.Const(0)])), ["n"])
    with pytest.raises(CodegenError, match=r"kernel dyn: local buffer tmp needs a static size"):
        Emitter(OPENCL).module([(dynamic, "dyn")])
