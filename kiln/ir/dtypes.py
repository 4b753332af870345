"""Element types of kiln tensors.

A :class:`DType` has a short name used in the IR text (``f32``), a long name (``float32``) and the
numpy dtype that holds its values. The narrow float and int formats (bfloat16, float8, int4) are
held by ``ml_dtypes``, a numpy-only package.
"""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class DType:
    name: str  # short name, used in the IR text
    long_name: str
    np: np.dtype
    kind: str  # 'float', 'int', 'uint', 'bool'
    bits: int

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_int(self) -> bool:
        return self.kind in ("int", "uint")

    @property
    def is_signed(self) -> bool:
        return self.kind in ("int", "float")


def _d(name, long_name, npdt, kind, bits):
    return DType(name, long_name, np.dtype(npdt), kind, bits)


float32 = _d("f32", "float32", np.float32, "float", 32)
float16 = _d("f16", "float16", np.float16, "float", 16)
bfloat16 = _d("bf16", "bfloat16", ml_dtypes.bfloat16, "float", 16)
float64 = _d("f64", "float64", np.float64, "float", 64)
float8e4m3fn = _d("f8e4m3fn", "float8e4m3fn", ml_dtypes.float8_e4m3fn, "float", 8)
float8e4m3fnuz = _d("f8e4m3fnuz", "float8e4m3fnuz", ml_dtypes.float8_e4m3fnuz, "float", 8)
float8e5m2 = _d("f8e5m2", "float8e5m2", ml_dtypes.float8_e5m2, "float", 8)
float8e5m2fnuz = _d("f8e5m2fnuz", "float8e5m2fnuz", ml_dtypes.float8_e5m2fnuz, "float", 8)
float8e8m0 = _d("f8e8m0", "float8e8m0", ml_dtypes.float8_e8m0fnu, "float", 8)
float4e2m1 = _d("f4e2m1", "float4e2m1", ml_dtypes.float4_e2m1fn, "float", 4)
int4 = _d("i4", "int4", ml_dtypes.int4, "int", 4)
uint4 = _d("u4", "uint4", ml_dtypes.uint4, "uint", 4)
int2 = _d("i2", "int2", ml_dtypes.int2, "int", 2)
uint2 = _d("u2", "uint2", ml_dtypes.uint2, "uint", 2)
int8 = _d("i8", "int8", np.int8, "int", 8)
uint8 = _d("u8", "uint8", np.uint8, "uint", 8)
int16 = _d("i16", "int16", np.int16, "int", 16)
uint16 = _d("u16", "uint16", np.uint16, "uint", 16)
int32 = _d("i32", "int32", np.int32, "int", 32)
uint32 = _d("u32", "uint32", np.uint32, "uint", 32)
int64 = _d("i64", "int64", np.int64, "int", 64)
uint64 = _d("u64", "uint64", np.uint64, "uint", 64)
bool_ = _d("bool", "bool", np.bool_, "bool", 8)

ALL: tuple[DType, ...] = (
    float32, float16, bfloat16, float64,
    float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz, float8e8m0, float4e2m1,
    int4, uint4, int2, uint2,
    int8, uint8, int16, uint16, int32, uint32, int64, uint64, bool_,
)
#: The types every target is expected to handle; the narrow formats are for casts and quantization.
COMMON: tuple[DType, ...] = (float32, float16, bfloat16, float64, int8, uint8, int16, int32, int64, bool_)
FLOATS = tuple(d for d in ALL if d.is_float)
INTS = tuple(d for d in ALL if d.is_int)

_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({d.long_name: d for d in ALL})
_BY_NAME["float"] = float32
_BY_NAME["double"] = float64
_BY_NP = {d.np: d for d in ALL}


def dtype(x) -> DType:
    """Return the :class:`DType` for a DType, a name (``'f32'`` or ``'float32'``), or a numpy dtype."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str):
        try:
            return _BY_NAME[x]
        except KeyError:
            raise ValueError(f"unknown dtype {x!r}; known: {', '.join(d.name for d in ALL)}") from None
    try:
        npdt = np.dtype(x)
    except TypeError:
        raise ValueError(f"cannot interpret {x!r} as a dtype") from None
    try:
        return _BY_NP[npdt]
    except KeyError:
        raise ValueError(f"numpy dtype {npdt} has no kiln equivalent") from None


def of(array: np.ndarray) -> DType:
    """The kiln dtype of a numpy array."""
    return dtype(np.asarray(array).dtype)
