"""Element conversion semantics shared by ``cast`` and quantization ops.

The rules (those of ONNX Cast):

* float -> int truncates toward zero; int -> narrower int (including int4/int2) keeps the low bits
  (two's complement wrap-around), and so does float -> int4/int2 after truncation.
* float -> int of 8 to 64 bits saturates: values beyond the int's range, infinities included,
  become its smallest or largest value, and NaN becomes 0 (ONNX leaves these undefined; numpy's
  answer depends on the machine; this is LLVM's ``fptosi.sat`` / ``fptoui.sat``, Rust's ``as``,
  and what compiled code gives cheaply on every target).
* anything -> bool is ``x != 0``; bool -> number is 0 or 1.
* float -> 8-bit float rounds to nearest even. With ``saturate`` (the default) values beyond the
  format's range, infinities included, become its largest finite value of that sign; without
  it they become inf (e5m2) or NaN (the formats without infinities).
* float -> f8e8m0 (a power of two, exponent only; the sign is dropped) rounds by ``round_mode``
  ('up', 'down', 'nearest'); with ``saturate`` results beyond the range, infinities included,
  stay at the largest value, else they become NaN.
* float -> f4e2m1 rounds to nearest even and always saturates (the format has no inf or NaN).
"""
from __future__ import annotations

import ml_dtypes
import numpy as np


def cast_array(x: np.ndarray, to, saturate: bool = True, round_mode: str = "up") -> np.ndarray:
    """Convert ``x`` to kiln dtype ``to`` (see the module docstring for the rules)."""
    target = to.np
    x = np.asarray(x)
    if target == x.dtype:
        return x.copy()
    if _is_ml(x.dtype):  # narrow formats convert exactly to float32 (floats) or int64 (ints)
        x = x.astype(np.float32 if _ml_is_float(x.dtype) else np.int64)
    if target == np.bool_:
        return x != 0
    if to.name == "f8e8m0":
        return to_e8m0(x, saturate, round_mode)
    if to.kind == "float" and to.bits <= 8:
        wide = x.astype(np.float64) if x.dtype != np.float64 else x
        if saturate or to.bits == 4:
            hi = float(ml_dtypes.finfo(target).max)
            wide = np.clip(wide, -hi, hi)  # NaN stays NaN
        with np.errstate(invalid="ignore", over="ignore"):
            return wide.astype(np.float32).astype(target) if x.dtype != np.float64 else wide.astype(target)
    if to.kind in ("int", "uint") and to.bits < 8:
        if x.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                x = np.trunc(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.int64)
        return _wrap(x.astype(np.int64), to).astype(target)
    if x.dtype.kind == "f" and to.kind in ("int", "uint"):
        return _float_to_int(x, to)
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(target)


def _float_to_int(x: np.ndarray, to) -> np.ndarray:
    """Truncate toward zero, saturating at the int's range; NaN gives 0."""
    info = np.iinfo(to.np)
    w = x.astype(np.float64)  # exact for every float format
    hi = w >= 2.0 ** (to.bits - (1 if to.kind == "int" else 0))  # the first value past the max
    lo = w < float(info.min)  # info.min is exact in float64 (0 or -2**(bits-1))
    bad = hi | lo | np.isnan(w)
    with np.errstate(invalid="ignore"):
        r = np.trunc(np.where(bad, 0.0, w)).astype(to.np)
    return np.where(hi, info.max, np.where(lo, info.min, r)).astype(to.np)


def _wrap(x: np.ndarray, to) -> np.ndarray:
    """Keep the low ``to.bits`` bits of int64 values, read as ``to`` (two's complement if signed)."""
    m = 1 << to.bits
    r = np.mod(x, m)
    return r - m * (r >= m // 2) if to.kind == "int" else r


def to_e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """Round float values to f8e8m0 (2**e for e in [-127, 127]; 0xFF is NaN).

    Works on the float32 bit pattern: the result is the float32 exponent field, bumped by one
    when the mantissa rounds up.
    """
    bits = np.asarray(x, dtype=np.float32).view(np.uint32)
    exp = ((bits >> 23) & 0xFF).astype(np.int64)
    mant = bits & 0x7FFFFF
    special = exp == 0xFF
    if round_mode == "up":
        up = mant > 0
    elif round_mode == "down":
        up = np.zeros(exp.shape, bool)
    elif round_mode == "nearest":
        half, rest = (mant & 0x400000) > 0, (mant & 0x3FFFFF) > 0
        up = half & (rest | (exp > 0))
    else:
        raise ValueError(f"unknown round_mode {round_mode!r}")
    if saturate:
        up &= exp != 0xFE
        special &= mant != 0  # saturating: +-inf become the largest value, only NaN stays NaN
        exp = np.where(exp == 0xFF, 0xFE, exp)
    out = np.where(special, 0xFF, exp + up).astype(np.uint8)
    return out.view(ml_dtypes.float8_e8m0fnu)


def _is_ml(dt) -> bool:
    return dt.type.__module__.startswith("ml_dtypes")


def _ml_is_float(dt) -> bool:
    try:
        ml_dtypes.finfo(dt)
        return True
    except (ValueError, TypeError):
        return False
