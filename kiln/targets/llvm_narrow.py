"""The narrow dtypes in the LLVM code generator: the float8 / float4 formats and int4/uint4/int2/uint2.

Memory holds one byte per element, as numpy / ``ml_dtypes`` do. Registers hold float32 for the float
formats and i8 for the int ones; the semantics are those of :mod:`kiln.ir.ops._cast` (the interpreter).

* Loads of a float format index a 256-entry table of float32 bit patterns (one module-level constant
  per format, built here with ``ml_dtypes``): exact, NaN signs and all.
* Float -> float format (stores, casts, and the rounding after each operation) rounds ``|x|`` to
  nearest even on its float32 bits: normal results by adding the rounding bias below the kept mantissa
  bits and shifting (a carry moves into the exponent), results below the format's smallest normal by
  one float add of a power of two that leaves exactly the format's quantum as the ulp. Magnitude codes
  are monotone, so a code past the largest finite one is an overflow: the largest value with
  ``saturate``, else inf / NaN. The NaN codes, negative zero and the overflow codes come from
  ``ml_dtypes`` probes (:func:`fmt`, which also checks the layout assumed here). Every source rounds to
  float32 first, as the reference (and ``ml_dtypes``, even from float64) does. f8e8m0 (a power of
  two) follows ``to_e8m0``'s bit recipe with its ``round_mode``.
* int4 / int2 values are sign-extended in their i8 register, uint4 / uint2 zero-extended; results of
  arithmetic and conversions wrap to the width (two's complement), stores keep the low bits.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import llvmlite.ir as ir
import ml_dtypes
import numpy as np

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()


def is_narrow(dt) -> bool:
    return is_narrow_float(dt) or is_narrow_int(dt)


def is_narrow_float(dt) -> bool:
    return dt.kind == "float" and dt.bits <= 8


def is_narrow_int(dt) -> bool:
    return dt.kind in ("int", "uint") and dt.bits < 8


def reg_type(dt):
    return F32 if is_narrow_float(dt) else I8


# ------------------------------------------------------------------------------------ format tables
@dataclass(frozen=True)
class Format:
    """What the code generator needs to know of one float format (derived from ``ml_dtypes``)."""

    name: str
    mant: int  # mantissa bits
    emin: int  # exponent of the smallest normal value
    maxcode: int  # the code of the largest finite magnitude
    thr: tuple  # the rounding boundaries of |x| in float32 (a tie nudged up where it rounds down; tests)
    sign: int  # the sign bit of a code (0x80, or 0x08 for f4e2m1)
    nan: tuple  # codes of +NaN and -NaN
    neg_zero: int  # the code of -0.0 (0 where the format has no negative zero)
    ovf: float | None  # without saturation, |x| >= this gives an overflow code
    ovf_codes: tuple  # overflow codes for + and -


def _conv(values, npdt, src=np.float32) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(values, src).astype(npdt).view(np.uint8)


def _first_overflow(npdt, src, uint, hi: float):
    """The smallest ``src`` value whose conversion to ``npdt`` is not finite (None if none is)."""
    lo_bits, hi_bits = int(np.array(hi, src).view(uint)), int(np.array(np.inf, src).view(uint))

    def bad(b):
        return not np.isfinite(np.array(b, uint).view(src).astype(npdt).astype(np.float64))

    with np.errstate(all="ignore"):
        if not bad(hi_bits):
            return None
        while hi_bits - lo_bits > 1:  # invariant: lo converts to a finite value, hi does not
            mid = (lo_bits + hi_bits) // 2
            lo_bits, hi_bits = (lo_bits, mid) if bad(mid) else (mid, hi_bits)
    return float(np.array(hi_bits, uint).view(src))


@functools.lru_cache(maxsize=None)
def decode_table(dt) -> tuple:
    """The float32 bit pattern of every byte's value (ml_dtypes reads the low bits of a float4 byte)."""
    return tuple(int(b) for b in np.arange(256, dtype=np.uint8).view(dt.np).astype(np.float32).view(np.uint32))


@functools.lru_cache(maxsize=None)
def fmt(dt) -> Format:
    """The rounding tables of a sign-magnitude float format (every one but f8e8m0)."""
    npdt = dt.np
    decode = np.array(decode_table(dt), np.uint32).view(np.float32)
    sign = 0x08 if dt.bits == 4 else 0x80
    mags = []  # the finite magnitudes, in code order
    for c in range(sign):
        v = float(decode[c])
        if not math.isfinite(v) or (mags and v <= mags[-1]):
            break
        mags.append(v)

    thr = []  # |x| >= thr[i] rounds to a code above i
    for i in range(len(mags) - 1):
        mid = (mags[i] + mags[i + 1]) / 2  # exact in float32: at most 5 significant bits
        up = int(_conv([mid], npdt)[0]) == i + 1
        thr.append(float(mid if up else np.nextafter(np.float32(mid), np.float32(np.inf))))

    hi = float(ml_dtypes.finfo(npdt).max)
    nan = tuple(int(c) for c in _conv([np.nan, -np.nan], npdt))
    # the reference clips before converting when saturating, and f4e2m1 always saturates
    ovf = None if dt.bits == 4 else _first_overflow(npdt, np.float32, np.uint32, hi)
    fi = ml_dtypes.finfo(npdt)
    f = Format(dt.name, int(fi.nmant), int(fi.minexp), len(mags) - 1, tuple(thr),
               sign, nan, int(_conv([-0.0], npdt)[0]), ovf, tuple(int(c) for c in _conv([np.inf, -np.inf], npdt)))
    # the encoding this module assumes: magnitude i is code i, a negative one sets the sign bit
    assert all(int(_conv([m], npdt)[0]) == i for i, m in enumerate(mags)), dt
    assert all(int(_conv([-m], npdt)[0]) == (i | sign if i else f.neg_zero) for i, m in enumerate(mags)), dt
    probe = np.array(thr + [np.nextafter(np.float32(t), np.float32(0)) for t in thr] + ([ovf] if ovf else []), np.float32)
    assert np.array_equal(_encode_np(probe, f, False), _conv(probe, npdt)), dt
    return f


def encode_reference(x: np.ndarray, dt, saturate: bool = True) -> np.ndarray:
    """The algorithm :func:`encode` emits, in numpy (float32 input -> codes): for tests."""
    return _encode_np(np.asarray(x, np.float32), fmt(dt), saturate)


def _encode_np(x: np.ndarray, f: Format, saturate: bool) -> np.ndarray:
    a = np.abs(x)
    bits = a.view(np.int32).astype(np.int64)
    shift = 23 - f.mant
    normal = ((bits + (1 << (shift - 1)) - 1 + ((bits >> shift) & 1)) >> shift) - ((126 + f.emin) << f.mant)
    magic = np.float32(2.0 ** (f.emin - f.mant + 23))
    with np.errstate(all="ignore"):
        sub = (a + magic).view(np.int32).astype(np.int64) - int(magic.view(np.int32))
        idx = np.where(a < np.float32(2.0 ** f.emin), sub, normal)
    neg = np.signbit(x)
    over = idx > f.maxcode
    idx = np.minimum(idx, f.maxcode)
    code = np.where(neg, np.where(idx == 0, f.neg_zero, idx | f.sign), idx)
    if not saturate and f.ovf is not None:
        code = np.where(over, np.where(neg, f.ovf_codes[1], f.ovf_codes[0]), code)
    code = np.where(np.isnan(x), np.where(neg, f.nan[1], f.nan[0]), code)
    return code.astype(np.uint8)


# ------------------------------------------------------------------------------------- emission
def _vt(t, n):
    return ir.VectorType(t, n) if n else t


def _c(t, v):
    if isinstance(t, ir.VectorType):
        return ir.Constant(t, [_c(t.element, v)] * t.count)
    if isinstance(t, ir.IntType):
        return ir.Constant(t, int(v) & ((1 << t.width) - 1))
    return ir.Constant(t, float(v))


def _lanes(x) -> int:
    return x.type.count if isinstance(x.type, ir.VectorType) else 0


def _table(g, name: str, et, values):
    """A module-level constant array (internal), created once per module."""
    m = g.mg.module
    gv = m.globals.get(name)
    if gv is None:
        at = ir.ArrayType(et, len(values))
        gv = ir.GlobalVariable(m, at, name=name)
        gv.global_constant = True
        gv.linkage = "internal"
        gv.initializer = ir.Constant(at, [_c(et, v) for v in values])
        gv.align = 64
    return gv


def _lookup(g, gv, et, idx):
    """``table[idx]`` for an i32 index (or a vector of them: one gather)."""
    b = g.b
    n = _lanes(idx)
    at = gv.value_type
    if not n:
        return b.load(b.gep(gv, [I32(0), idx], inbounds=True, source_etype=at), typ=et)
    size = et.width // 8 if isinstance(et, ir.IntType) else {F32: 4, F64: 8}[et]
    vi = ir.VectorType(I64, n)
    base = b.ptrtoint(gv, I64)
    addr = b.add(_splat(b, base, n), b.mul(b.zext(idx, vi), _c(vi, size)))
    ptrs = b.inttoptr(addr, ir.VectorType(PTR, n))
    vt = ir.VectorType(et, n)
    sfx = f"v{n}{'i%d' % et.width if isinstance(et, ir.IntType) else {F32: 'f32', F64: 'f64'}[et]}"
    mask = ir.VectorType(I1, n)
    gather = g.mg.declare(f"llvm.masked.gather.{sfx}.v{n}p0", vt, [ir.VectorType(PTR, n), I32, mask, vt])
    return b.call(gather, [ptrs, I32(size), ir.Constant(mask, [1] * n), ir.Constant(vt, ir.Undefined)])


def _splat(b, x, n):
    vt = ir.VectorType(x.type, n)
    undef = ir.Constant(vt, ir.Undefined)
    v = b.insert_element(undef, x, I32(0))
    return b.shuffle_vector(v, undef, ir.Constant(ir.VectorType(I32, n), [0] * n))


def decode(g, byte, dt):
    """i8 (or vector) bytes -> float32 values of float format ``dt``."""
    n = _lanes(byte)
    b = g.b
    gv = _table(g, f"kiln.{dt.name}.decode", I32, decode_table(dt))
    idx = b.zext(byte, _vt(I32, n))
    r = b.bitcast(_lookup(g, gv, I32, idx), _vt(F32, n))
    _codes(g)[r] = byte  # a store of r writes this byte back (no search)
    return r


def _codes(g) -> dict:
    """Per function: decoded register value -> the byte it came from (the byte dominates the value)."""
    memo = getattr(g, "_narrow_codes", None)
    if memo is None:
        memo = g._narrow_codes = {}
    return memo


def encode(g, x, dt, saturate: bool = True, round_mode: str = "up"):
    """float32 / float64 values (or vectors) -> i8 codes of float format ``dt``."""
    b = g.b
    n = _lanes(x)
    if (x.type.element if n else x.type) != F32:
        x = b.fptrunc(x, _vt(F32, n))
    if dt.name == "f8e8m0":
        return _encode_e8m0(g, x, saturate, round_mode)
    f = fmt(dt)
    i32, i8 = _vt(I32, n), _vt(I8, n)
    a = b.call(g.mg.intrinsic("llvm.fabs", x.type), [x])
    bits = b.bitcast(a, i32)
    shift = 23 - f.mant
    # normal: round to nearest even at bit `shift` (ties: the kept lsb decides), rebias the exponent
    lsb = b.and_(b.lshr(bits, _c(i32, shift)), _c(i32, 1))
    normal = b.add(bits, b.add(lsb, _c(i32, (1 << (shift - 1)) - 1)))
    normal = b.sub(b.lshr(normal, _c(i32, shift)), _c(i32, (126 + f.emin) << f.mant))
    # below the smallest normal: a + 2**(emin - mant + 23) has the format's quantum as its ulp
    magic = _c(x.type, 2.0 ** (f.emin - f.mant + 23))
    sub = b.sub(b.bitcast(b.fadd(a, magic), i32), b.bitcast(magic, i32))
    idx = b.select(b.fcmp_ordered("<", a, _c(x.type, 2.0 ** f.emin)), sub, normal)  # NaN: handled below
    over = b.icmp_signed(">", idx, _c(i32, f.maxcode))  # inf and past the largest finite value
    code = b.trunc(b.select(over, _c(i32, f.maxcode), idx), i8)
    neg = b.icmp_signed("<", b.bitcast(x, i32), _c(i32, 0))
    negc = b.or_(code, _c(i8, f.sign))
    if f.neg_zero != f.sign:
        negc = b.select(b.icmp_unsigned("==", code, _c(i8, 0)), _c(i8, f.neg_zero), negc)
    r = b.select(neg, negc, code)
    if not saturate and f.ovf is not None:
        r = b.select(over, b.select(neg, _c(i8, f.ovf_codes[1]), _c(i8, f.ovf_codes[0])), r)
    isnan = b.fcmp_unordered("uno", x, x)
    return b.select(isnan, b.select(neg, _c(i8, f.nan[1]), _c(i8, f.nan[0])), r)


def _encode_e8m0(g, x, saturate, round_mode):
    """``kiln.ir.ops._cast.to_e8m0`` on float32 bits (the sign is dropped; 0xFF is NaN)."""
    b = g.b
    n = _lanes(x)
    i32 = _vt(I32, n)
    bits = b.bitcast(x, i32)
    exp = b.and_(b.lshr(bits, _c(i32, 23)), _c(i32, 0xFF))
    mant = b.and_(bits, _c(i32, 0x7FFFFF))
    nz = functools.partial(b.icmp_unsigned, "!=")
    special = b.icmp_unsigned("==", exp, _c(i32, 0xFF))
    if round_mode == "up":
        up = nz(mant, _c(i32, 0))
    elif round_mode == "down":
        up = _c(_vt(I1, n), 0)
    elif round_mode == "nearest":
        half = nz(b.and_(mant, _c(i32, 0x400000)), _c(i32, 0))
        rest = nz(b.and_(mant, _c(i32, 0x3FFFFF)), _c(i32, 0))
        up = b.and_(half, b.or_(rest, nz(exp, _c(i32, 0))))
    else:
        raise ValueError(f"unknown round_mode {round_mode!r}")
    if saturate:
        up = b.and_(up, nz(exp, _c(i32, 0xFE)))
        special = b.and_(special, nz(mant, _c(i32, 0)))
        exp = b.select(b.icmp_unsigned("==", exp, _c(i32, 0xFF)), _c(i32, 0xFE), exp)
    out = b.select(special, _c(i32, 0xFF), b.add(exp, b.zext(up, i32)))
    return b.trunc(out, _vt(I8, n))


def wrap(g, x, dt):
    """An i8 (vector) holding any value -> its low ``dt.bits`` bits, sign- or zero-extended."""
    b = g.b
    t = x.type
    if dt.kind == "int":
        s = _c(t, 8 - dt.bits)
        return b.ashr(b.shl(x, s), s)
    return b.and_(x, _c(t, (1 << dt.bits) - 1))


def from_mem(g, x, dt):
    return decode(g, x, dt) if is_narrow_float(dt) else wrap(g, x, dt)


def to_mem(g, x, dt):
    if is_narrow_float(dt):
        byte = _codes(g).get(x)
        if byte is not None:
            return byte
        # register values are representable: exact ("down" keeps f8e8m0's subnormal 2**-127)
        return encode(g, x, dt, saturate=False, round_mode="down")
    return g.b.and_(x, _c(x.type, (1 << dt.bits) - 1))


def round_to(g, x, dt):
    """A float32 result rounded to float format ``dt`` as ``ml_dtypes`` does (the reference computes in
    the format): to nearest even, overflow to inf or NaN; f8e8m0 gives NaN for zero and negatives."""
    code = encode(g, x, dt, saturate=False, round_mode="nearest")
    if dt.name == "f8e8m0":
        b = g.b
        bad = b.fcmp_unordered("<=", x, _c(x.type, 0.0))  # NaN, zeros, negatives
        code = b.select(bad, _c(code.type, 0xFF), code)
    return decode(g, code, dt)


def after_op(g, r, dt, op: str):
    """The result of an operation in a narrow dtype, brought back to the dtype's values."""
    if is_narrow_int(dt):
        return wrap(g, r, dt)
    if is_narrow_float(dt) and op not in ("min", "max", "isnan", "isinf"):
        return round_to(g, r, dt)
    return r


def const(value, dt):
    if is_narrow_float(dt):
        with np.errstate(all="ignore"):
            v = np.array(value, np.float64).astype(dt.np).astype(np.float32)
        return ir.Constant(F32, float(v))
    m = 1 << dt.bits
    v = int(value) % m
    if dt.kind == "int" and v >= m // 2:
        v -= m
    return ir.Constant(I8, v & 0xFF)


# ----------------------------------------------------------------------------------- conversions
def cast(g, v, src, dst, saturate: bool = True, round_mode: str = "up"):
    """Emit ``cast<dst>(v)`` when a narrow dtype needs code of its own; else None (the generic code)."""
    b = g.b
    n = _lanes(v)
    if is_narrow_float(dst):
        if src.kind == "bool":
            x = b.uitofp(v, _vt(F32, n))
        elif src.kind in ("int", "uint"):
            conv = b.sitofp if src.kind == "int" else b.uitofp
            if src.bits == 64:  # the reference goes int64 -> float64 -> float32
                x = b.fptrunc(conv(v, _vt(F64, n)), _vt(F32, n))
            else:
                x = conv(v, _vt(F32, n))
        elif src.name == "f16":
            x = b.fpext(v, _vt(F32, n))
        else:  # f32, bf16 and the narrow floats in a float32 register, or f64
            x = v
        return decode(g, encode(g, x, dst, saturate, round_mode), dst)
    if is_narrow_int(dst):
        if src.kind == "bool":
            return b.zext(v, _vt(I8, n))
        if src.is_float:
            # truncate toward zero, keep the low bits; NaN, inf and |x| >= 2**62 (whose low bits are
            # zero) give 0
            if (v.type.element if n else v.type) == F16:
                v = b.fpext(v, _vt(F32, n))
            ft = v.type
            i64 = _vt(I64, n)
            t = b.call(g.mg.declare(f"llvm.fptosi.sat.{_sfx(i64)}.{_sfx(ft)}", i64, [ft]), [v])
            ok = b.fcmp_ordered("<", b.call(g.mg.intrinsic("llvm.fabs", ft), [v]), _c(ft, 2.0 ** 62))
            return wrap(g, b.select(ok, b.trunc(t, _vt(I8, n)), _c(_vt(I8, n), 0)), dst)
        return wrap(g, _resize(b, v, src, _vt(I8, n)), dst)
    if is_narrow_int(src) and dst.kind in ("int", "uint"):
        return _resize(b, v, src, _vt(ir.IntType(dst.bits), n))
    return None


def _resize(b, v, src, t):
    sw = (v.type.element if isinstance(v.type, ir.VectorType) else v.type).width
    dw = (t.element if isinstance(t, ir.VectorType) else t).width
    if sw > dw:
        return b.trunc(v, t)
    if sw < dw:
        return b.sext(v, t) if src.kind == "int" else b.zext(v, t)
    return v


def _sfx(t):
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{_sfx(t.element)}"
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    return {F16: "f16", F32: "f32", F64: "f64"}[t]


def bits_of(g, v, dt):
    """The stored bits of a register value of a narrow dtype, as i8."""
    return to_mem(g, v, dt)


def bitcast(g, v, src, dst, reg_type):
    """``bitcast<dst>(v)`` where either side is narrow: through the stored byte."""
    b = g.b
    n = _lanes(v)
    if is_narrow(src):
        byte = to_mem(g, v, src)
    elif src.kind == "bool":
        byte = b.zext(v, _vt(I8, n))
    else:
        byte = b.bitcast(v, _vt(I8, n))  # an 8-bit int
    if is_narrow(dst):
        return from_mem(g, byte, dst)
    if dst.kind == "bool":
        return b.icmp_unsigned("!=", byte, _c(byte.type, 0))
    return b.bitcast(byte, _vt(reg_type(dst), n))
