"""The narrow dtypes compiled for the CPU (kiln/targets/llvm_narrow.py) agree bit for bit with the interpreter.

float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e8m0), float4 e2m1 and int4 / uint4 / int2 / uint2: every cast
between them and f32, f16, bf16, f64, i32 and bool (with and without ``saturate``, every f8e8m0
``round_mode``), on every value of each narrow source and, for the wide sources, on every magnitude of
every format, every tie between two of them and the float32 values one ulp either side, the overflow
thresholds, NaN, +-inf and -0.0. Outputs are compared as bytes (NaN signs, -0.0 and the codes of the
formats without a negative zero included). Plus arithmetic in int4 (wrap-around inside a fused kernel),
float8 arithmetic (rounded after each operation), bitcasts, and a dense sweep of float32 bit patterns
through the rounding.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

pytest.importorskip("llvmlite")

from kiln.compiler.compile import compile as kiln_compile  # noqa: E402
from kiln.ir import GraphBuilder  # noqa: E402
from kiln.ir import dtypes as kd  # noqa: E402
from kiln.ir.interpreter import interpret  # noqa: E402
from kiln.ir.ops._cast import cast_array  # noqa: E402
from kiln.targets import llvm_narrow  # noqa: E402

NARROW_FLOATS = ["f8e4m3fn", "f8e4m3fnuz", "f8e5m2", "f8e5m2fnuz", "f8e8m0", "f4e2m1"]
NARROW_INTS = ["i4", "u4", "i2", "u2"]
WIDE = ["f32", "f16", "bf16", "f64", "i32", "bool"]
ALL = WIDE + NARROW_FLOATS + NARROW_INTS
SIGN_MAGNITUDE = [d for d in NARROW_FLOATS if d != "f8e8m0"]


def _bytes(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(np.uint8).reshape(a.shape + (-1,)) if a.dtype.itemsize > 1 else a.view(np.uint8)


def check(graph, inputs, any_nan=False):
    """Compile ``graph`` and compare every output with the interpreter's, byte for byte; NaN matches any
    NaN in bf16 outputs (the bf16 code keeps one quiet NaN) and, with ``any_nan``, in every float output
    (the sign of a NaN that arithmetic makes is the machine's, not a format's)."""
    model = kiln_compile(graph, "cpu", progress=False)
    ref = interpret(graph, inputs)
    got = model(*inputs)
    diffs = []
    for j, name in enumerate(graph.outputs):
        r, g = np.asarray(ref[name]), np.asarray(got[j])
        assert r.dtype == g.dtype and r.shape == g.shape, (name, r.dtype, g.dtype, r.shape, g.shape)
        differ = (_bytes(r) != _bytes(g)).reshape(r.shape + (-1,)).any(-1)
        if graph.types[name].dtype.is_float and (any_nan or graph.types[name].dtype.name == "bf16"):
            with np.errstate(invalid="ignore"):
                differ &= ~(np.isnan(r.astype(np.float32)) & np.isnan(g.astype(np.float32)))
        bad = np.nonzero(differ.ravel())[0]
        if len(bad):
            x = next((np.asarray(i) for i in inputs if np.shape(i) == r.shape), np.asarray(inputs[0])).ravel()
            bad = bad[bad < x.size]
            show = [(x[i].item() if x.dtype.kind != "V" else float(x[i].astype(np.float64)),
                     _bytes(r.ravel()[i:i + 1]).tolist(), _bytes(g.ravel()[i:i + 1]).tolist()) for i in bad[:6]]
            diffs.append(f"output {j} ({graph.types[name]}): {len(bad)} of {r.size} differ, e.g. "
                         f"(input, expected bytes, got bytes) {show}")
    assert not diffs, f"compiled '{graph.name}' differs from the interpreter:\n" + "\n".join(diffs)


# ------------------------------------------------------------------------------------------- values
def _float_probe() -> np.ndarray:
    """float64 values every rounding decision hinges on: each format's magnitudes, the midpoints
    between them and one float32 ulp either side, overflow thresholds, the int4 range, specials."""
    v = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, 1e-39, 3e38, 1e30, 2.0**62, 2.0**63, 1e20,
         7.5, 7.9, 8.0, 8.5, -8.5, -8.9, 15.5, 16.0, 1.5, 2.5, -2.5, 0.5, 0.49, 0.51, 3.0, 65504.0, 2.0**-127]
    for name in SIGN_MAGNITUDE:
        f = llvm_narrow.fmt(kd.dtype(name))
        dec = np.array(llvm_narrow.decode_table(kd.dtype(name)), np.uint32).view(np.float32)
        mags = dec[:f.sign][np.isfinite(dec[:f.sign])].astype(np.float64)
        thr = np.array(f.thr, np.float32)
        near = np.concatenate([thr, np.nextafter(thr, np.float32(np.inf)), np.nextafter(thr, np.float32(0))])
        extra = [] if f.ovf is None else [f.ovf, np.nextafter(np.float32(f.ovf), np.float32(0)), 2 * f.ovf]
        v += list(mags) + list(near.astype(np.float64)) + [float(x) for x in extra]
    for e in (-127, -126, -1, 0, 1, 126, 127):  # f8e8m0 neighbourhoods (powers of two and the midpoints)
        p = 2.0**e
        v += [p, p * 1.5, p * 1.25, p * 1.75, float(np.nextafter(np.float32(p), np.float32(np.inf)))]
    v = np.array(v, np.float64)
    return np.concatenate([v, -v])


def source_values(src: str) -> np.ndarray:
    d = kd.dtype(src)
    if src in NARROW_FLOATS:  # every code of the format (float4: every value, in the low bits)
        n = 16 if d.bits == 4 else 256
        return np.arange(n, dtype=np.uint8).view(d.np)
    if src in NARROW_INTS:
        info = ml_dtypes.iinfo(d.np)
        return np.arange(int(info.min), int(info.max) + 1).astype(d.np)
    if src == "bool":
        return np.array([False, True, True, False])
    if src == "i32":
        v = list(range(-300, 301)) + [2**31 - 1, -(2**31), 2**24 + 1, 448, 449, 464, 465, 57344, 61440, 61441,
                                       65536, 2**30 + 2**6, -(2**30) - 2**6, 123456789]
        return np.array(v, np.int32)
    with np.errstate(over="ignore", invalid="ignore"):
        return _float_probe().astype(d.np)


CAST_VARIANTS = [{}]


def _variants(dst: str):
    if dst == "f8e8m0":
        return [dict(saturate=s, round_mode=m) for s in (True, False) for m in ("up", "down", "nearest")]
    if dst in NARROW_FLOATS:
        return [dict(saturate=True), dict(saturate=False)]
    return [{}]


# ------------------------------------------------------------------------------------------- casts
@pytest.mark.parametrize("src", ALL)
def test_cast_every_pair(src):
    """One graph per source: an output per destination and flag setting, on a 1-D input (the vector
    loop and its remainder) and a 2-D one."""
    x = source_values(src)
    b = GraphBuilder(f"cast_{src}")
    xi = b.input("x", src, x.shape)
    m = np.stack([x, np.roll(x, 1), np.roll(x, 7)])
    mi = b.input("m", src, m.shape)
    outs = []
    for dst in ALL:
        if dst == src:
            continue
        for kw in _variants(dst):
            outs += [b.op("cast", xi, to=dst, **kw), b.op("cast", mi, to=dst, **kw)]
    check(b.build(outs), [x, m])


@pytest.mark.parametrize("dst", SIGN_MAGNITUDE)
def test_dense_float32_sweep(dst):
    """Every float32 whose low 16 bits are 0, 1, 0x7fff, 0x8000, 0x8001 or 0xffff (all rounding
    boundaries of these formats and their neighbours), both signs, NaNs and infinities included."""
    top = np.arange(1 << 16, dtype=np.uint32) << 16
    lows = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF], np.uint32)
    x = (top[:, None] | lows[None, :]).ravel().view(np.float32)
    for sat in (True, False):
        assert np.array_equal(llvm_narrow.encode_reference(x, kd.dtype(dst), sat),
                              cast_array(x, kd.dtype(dst), saturate=sat).view(np.uint8))
    b = GraphBuilder("sweep")
    xi = b.input("x", "f32", x.shape)
    check(b.build([b.op("cast", xi, to=dst, saturate=True), b.op("cast", xi, to=dst, saturate=False)]), [x])


def test_f8e8m0_round_modes_dense():
    top = np.arange(1 << 16, dtype=np.uint32) << 16
    lows = np.array([0, 1, 0x3FFF, 0x4000, 0x4001, 0xFFFF], np.uint32)
    x = (top[:, None] | lows[None, :]).ravel().view(np.float32)
    b = GraphBuilder("e8m0")
    xi = b.input("x", "f32", x.shape)
    outs = [b.op("cast", xi, to="f8e8m0", saturate=s, round_mode=m) for s in (True, False)
            for m in ("up", "down", "nearest")]
    check(b.build(outs), [x])


# ------------------------------------------------------------------------------------ arithmetic
@pytest.mark.parametrize("dt", NARROW_INTS)
def test_int_arithmetic_wraps(dt):
    """add / sub / mul / max and a fused add -> cast to i32 (the wrap must happen in registers)."""
    info = ml_dtypes.iinfo(kd.dtype(dt).np)
    vals = np.arange(int(info.min), int(info.max) + 1)
    a = np.repeat(vals, len(vals)).astype(kd.dtype(dt).np)
    c = np.tile(vals, len(vals)).astype(kd.dtype(dt).np)
    b = GraphBuilder("intarith")
    x, y = b.input("x", dt, a.shape), b.input("y", dt, c.shape)
    s = b.op("add", x, y)
    outs = [s, b.op("sub", x, y), b.op("mul", x, y), b.op("max", x, y), b.op("cast", s, to="i32"),
            b.op("cast", b.op("mul", s, y), to="f32")]
    check(b.build(outs), [a, c])


def test_int4_add_wraps_around():
    i4 = ml_dtypes.int4
    b = GraphBuilder("wrap")
    x, y = b.input("x", "i4", (4,)), b.input("y", "i4", (4,))
    g = b.build([b.op("cast", b.op("add", x, y), to="i32")])
    model = kiln_compile(g, "cpu", progress=False)
    got = model(np.array([7, -8, 7, 3], i4), np.array([1, -1, 7, 4], i4))
    assert np.asarray(got[0] if isinstance(got, (list, tuple)) else got).tolist() == [-8, 7, -2, 7]


@pytest.mark.parametrize("dt", ["f8e4m3fn", "f8e5m2", "f8e4m3fnuz", "f4e2m1"])
def test_float8_arithmetic_rounds_each_result(dt):
    """x + y and x * y stored, and (x + y) * y fused and cast to f32: each result rounds to the format."""
    d = kd.dtype(dt)
    n = 16 if d.bits == 4 else 256
    codes = np.arange(n, dtype=np.uint8)
    rng = np.random.default_rng(0)
    a = np.concatenate([codes, rng.integers(0, n, 2000).astype(np.uint8)]).view(d.np)
    c = np.concatenate([np.roll(codes, 5), rng.integers(0, n, 2000).astype(np.uint8)]).view(d.np)
    b = GraphBuilder("f8arith")
    x, y = b.input("x", dt, a.shape), b.input("y", dt, c.shape)
    s = b.op("add", x, y)
    check(b.build([s, b.op("mul", x, y), b.op("cast", b.op("mul", s, y), to="f32")]), [a, c], any_nan=True)


# --------------------------------------------------------------------------------------- bitcasts
@pytest.mark.parametrize("src,dst", [("f8e4m3fn", "u8"), ("u8", "f8e4m3fn"), ("i8", "f8e5m2fnuz"),
                                     ("f8e4m3fnuz", "i8"), ("f8e8m0", "u8"), ("u8", "f8e8m0"),
                                     ("f8e5m2", "f8e4m3fn"), ("f4e2m1", "u4"), ("u4", "f4e2m1"),
                                     ("i4", "f4e2m1"), ("f4e2m1", "i4"), ("i4", "u4"), ("u4", "i4"),
                                     ("i2", "u2"), ("u2", "i2")])
def test_bitcast(src, dst):
    d = kd.dtype(src)
    if d.bits == 8:
        x = np.arange(256, dtype=np.uint8).view(d.np)
        if src == "f8e5m2":  # NaN payloads are not kept in registers: the 4 NaN codes other than 0x7e/0xfe
            x = x[~np.isin(np.arange(256), [0x7D, 0x7F, 0xFD, 0xFF])]
    elif d.is_float:
        x = np.arange(16, dtype=np.uint8).view(d.np)
    else:
        info = ml_dtypes.iinfo(d.np)
        x = np.arange(int(info.min), int(info.max) + 1).astype(d.np)
    b = GraphBuilder("bitcast")
    xi = b.input("x", src, x.shape)
    check(b.build([b.op("bitcast", xi, to=dst)]), [x])


def test_constants_round_to_the_format():
    from kiln.ir import loops as L
    from kiln.targets.llvm_codegen import _const

    assert float(_const(0.3, kd.dtype("f8e4m3fn")).constant) == float(np.float32(0.3).astype(ml_dtypes.float8_e4m3fn))
    assert _const(-1, kd.dtype("i4")).constant == -1 & 0xFF
    assert _const(15, kd.dtype("u4")).constant == 15
    assert _const(9, kd.dtype("i4")).constant == -7 & 0xFF
    assert L.cast(L.Const(1.0, kd.float32), "f8e4m3fn", saturate=False).saturate is False
    assert L.cast(L.Const(1.0, kd.float32), "i32", saturate=False).saturate is True  # meaningless there
