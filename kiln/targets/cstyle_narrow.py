"""The narrow dtypes in the C-style emitter: float8 / float4 formats and int4 / uint4 / int2 / uint2.

The same semantics as the CPU target (:mod:`kiln.targets.llvm_narrow`, whose format tables this module
reuses): memory holds one byte per element; registers hold float for the float formats (decoded
through a 256-entry table of float32 bit patterns) and a char (sign-extended) or uchar (zero-extended)
for the int formats. Results of float operations are rounded back to the format (to nearest even,
overflowing to inf / NaN), int results wrap to the width; casts into a format honour ``saturate`` and
f8e8m0's ``round_mode``. Each helper is C text generated once per format and flag combination.
"""
from __future__ import annotations

import numpy as np

from .llvm_narrow import decode_table, fmt, is_narrow, is_narrow_float, is_narrow_int  # noqa: F401


def reg_ctype(dt) -> str:
    if is_narrow_float(dt):
        return "float"
    return "char" if dt.kind == "int" else "uchar"


def _hex(v: float) -> str:
    return f"{float(v).hex()}f"


def table(dt, const: str) -> tuple:
    name = f"kiln_tab_{dt.name}"
    values = ", ".join(f"0x{v:08X}u" for v in decode_table(dt))
    return name, f"{const} uint {name}[256] = {{{values}}};"


def decode(dt, inline: str, const: str, as_float: str) -> list:
    """[(key, code)] of the helpers ``kiln_dec_<fmt>(uchar) -> float``."""
    tab, tcode = table(dt, const)
    fn = f"{inline} float kiln_dec_{dt.name}(uchar c) {{ return {as_float.format(x=f'{tab}[c]')}; }}"
    return [(("tab", dt.name), tcode), (("dec", dt.name), fn)]


def encode(dt, saturate: bool, round_mode: str, inline: str, as_uint: str, as_int: str) -> tuple:
    """(name, code) of ``uchar <name>(float x)``: float -> code of format ``dt``."""
    sat = "s" if saturate else "n"
    name = f"kiln_enc_{dt.name}_{sat}{round_mode[0] if dt.name == 'f8e8m0' else ''}"
    bits = as_uint.format(x="x")
    if dt.name == "f8e8m0":
        body = [f"uint b = {bits}; uint e = (b >> 23) & 0xFFu, m = b & 0x7FFFFFu;",
                "bool special = e == 0xFFu;"]
        if round_mode == "up":
            body.append("bool up = m != 0u;")
        elif round_mode == "down":
            body.append("bool up = false;")
        elif round_mode == "nearest":
            body.append("bool up = (m & 0x400000u) != 0u && ((m & 0x3FFFFFu) != 0u || e != 0u);")
        else:
            raise ValueError(f"unknown round_mode {round_mode!r}")
        if saturate:
            body += ["up = up && e != 0xFEu;", "special = special && m != 0u;", "if (e == 0xFFu) e = 0xFEu;"]
        body.append("return special ? (uchar)0xFF : (uchar)(e + (up ? 1u : 0u));")
        return name, f"{inline} uchar {name}(float x) {{ {' '.join(body)} }}"
    f = fmt(dt)
    shift = 23 - f.mant
    magic = 2.0 ** (f.emin - f.mant + 23)
    body = [f"float a = fabs(x); uint b = {as_uint.format(x='a')};",
            f"int normal = (int)((b + ((b >> {shift}) & 1u) + {(1 << (shift - 1)) - 1}u) >> {shift}) "
            f"- {(126 + f.emin) << f.mant};",
            f"int sub = (int)({as_uint.format(x=f'a + {_hex(magic)}')}) - {int(np.float32(magic).view(np.int32))};",
            f"int idx = a < {_hex(2.0 ** f.emin)} ? sub : normal;",
            f"bool over = idx > {f.maxcode};",
            f"uchar code = (uchar)(over ? {f.maxcode} : idx);",
            f"bool neg = {as_int.format(x='x')} < 0;",
            f"uchar negc = (uchar)(code | {f.sign}u);"]
    if f.neg_zero != f.sign:
        body.append(f"if (code == 0) negc = (uchar){f.neg_zero};")
    body.append("uchar r = neg ? negc : code;")
    if not saturate and f.ovf is not None:
        body.append(f"if (over) r = neg ? (uchar){f.ovf_codes[1]} : (uchar){f.ovf_codes[0]};")
    body.append(f"if (isnan(x)) r = neg ? (uchar){f.nan[1]} : (uchar){f.nan[0]};")
    body.append("return r;")
    return name, f"{inline} uchar {name}(float x) {{ {' '.join(body)} }}"


def round_to(dt, inline: str, enc: str) -> tuple:
    """(name, code) of ``float kiln_rt_<fmt>(float)``: an operation's result brought back to the format."""
    name = f"kiln_rt_{dt.name}"
    code = f"{enc}(x)"
    if dt.name == "f8e8m0":
        code = f"(isnan(x) || x <= 0.0f) ? (uchar)0xFF : {code}"
    return name, f"{inline} float {name}(float x) {{ return kiln_dec_{dt.name}({code}); }}"


def wrap(dt, inline: str) -> tuple:
    """(name, code) of the int wrap: any int -> the low ``bits`` bits, sign- or zero-extended."""
    name = f"kiln_wrap_{dt.name}"
    s = 8 - dt.bits
    if dt.kind == "int":
        body = f"return (char)(((char)(uchar)((uint)x << {s})) >> {s});"
        return name, f"{inline} char {name}(long x) {{ {body} }}"
    return name, f"{inline} uchar {name}(long x) {{ return (uchar)((ulong)x & {(1 << dt.bits) - 1}u); }}"


def const(value, dt) -> float | int:
    """A constant of a narrow dtype as its register value."""
    if is_narrow_float(dt):
        with np.errstate(all="ignore"):
            return float(np.array(value, np.float64).astype(dt.np).astype(np.float32))
    m = 1 << dt.bits
    v = int(value) % m
    return v - m if dt.kind == "int" and v >= m // 2 else v
