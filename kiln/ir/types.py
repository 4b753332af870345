"""Tensor types: a dtype and a shape whose dims are ints or symbolic expressions."""
from __future__ import annotations

from dataclasses import dataclass

from . import dims as _dims
from .dtypes import DType, dtype as _dtype


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: tuple

    def __init__(self, dtype, shape=()):
        object.__setattr__(self, "dtype", _dtype(dtype))
        object.__setattr__(self, "shape", tuple(_dims.canonical(d) for d in shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return _dims.all_static(self.shape)

    @property
    def size(self):
        """Number of elements: an int, or a symbolic expression."""
        return _dims.prod(self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, shape)

    def with_dtype(self, dt) -> "TensorType":
        return TensorType(dt, self.shape)

    def __str__(self) -> str:
        return f"{self.dtype.name}[{', '.join(_dims.fmt(d) for d in self.shape)}]"

    __repr__ = __str__


def tensor(dtype, *shape) -> TensorType:
    """Shorthand: ``tensor('f32', 'batch', 3)``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return TensorType(dtype, shape)
