"""Element conversion semantics shared by ``cast`` and quantization ops."""
from __future__ import annotations

import ml_dtypes
import numpy as np


def cast_array(x: np.ndarray, to, saturate: bool = True) -> np.ndarray:
    """Convert ``x`` to kiln dtype ``to``.

    float -> int truncates toward zero; float -> bool is ``x != 0``; into the 8-bit and 4-bit float
    formats, ``saturate`` clamps finite out-of-range values (and infinities, for formats without
    them) to the largest finite value instead of producing inf/NaN.
    """
    target = to.np
    x = np.asarray(x)
    if target == x.dtype:
        return x.copy()
    if target == np.bool_:
        return x.astype(np.float64 if x.dtype.kind == "V" or _is_ml(x.dtype) else x.dtype) != 0
    if to.kind == "float" and to.bits <= 8:
        wide = x.astype(np.float32) if x.dtype != np.float64 else x
        if saturate and to.name != "f8e8m0":
            info = ml_dtypes.finfo(target)
            hi = float(info.max)
            finite = np.isfinite(wide)
            has_inf = to.name in ("f8e5m2",)
            clipped = np.clip(wide, -hi, hi)
            wide = np.where(finite | (~has_inf & ~np.isnan(wide)), clipped, wide)
        return wide.astype(target)
    if _is_ml(x.dtype) and to.kind in ("int", "uint"):
        return x.astype(np.float64).astype(target)
    if x.dtype.kind == "f" and to.kind in ("int", "uint") and to.bits < 8:
        return np.trunc(x).astype(np.int64).astype(target)
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(target)


def _is_ml(dt) -> bool:
    return dt.type.__module__.startswith("ml_dtypes")
