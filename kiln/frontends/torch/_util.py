"""Small helpers shared by the ATen converter modules (``cx`` is a :class:`~.convert.NodeCtx`)."""
from __future__ import annotations

import numpy as np

from ...errors import ConversionError
from ...ir import dims as _dims
from ...ir import dtypes as kd

#: The ``end`` torch gives a slice that runs to the end of its dim.
BIG = 2**63 - 1


def axis(a: int, rank: int) -> int:
    """A torch dim argument (possibly negative) as an axis in ``range(rank)`` (rank 0 takes 0 and -1)."""
    n = max(rank, 1)
    if not -n <= a < n:
        raise ConversionError(f"dim {a} is out of range for a tensor of rank {rank}")
    return a % n


def axes(dims, rank: int) -> list:
    """A torch dim list (None or [] for all dims) as sorted axes."""
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return list(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    return sorted({axis(d, rank) for d in dims})


def binary(cx, op: str, a, b, dtype=None) -> str:
    """``op(a, b)`` computed in ``dtype`` (default: the node's result dtype)."""
    dt = dtype or cx.out_dtype
    return cx.e.op(op, cx.tensor(a, dt), cx.tensor(b, dt))


def scalar(cx, value, like: str) -> str:
    """A rank-0 constant ``value`` with the dtype of ``like``."""
    return cx.tensor(value, cx.e.dtype(like))


def reshape(cx, x: str, shape) -> str:
    """``x`` reshaped to ``shape`` (kiln dims); ``x`` itself when the shape is already that."""
    shape = [_dims.canonical(d) for d in shape]
    if list(cx.e.shape(x)) == shape:
        return x
    return cx.e.op("reshape", x, shape=shape)


def numel(shape):
    return _dims.prod(shape)


def static_int(cx, a, what: str) -> int:
    """A size argument that must be known at conversion time."""
    d = cx.dim(a)
    if not isinstance(d, int):
        raise ConversionError(f"{what} must be static, got the symbolic size {d}")
    return d


def lowest(dtype):
    """The smallest value of a kiln dtype (-inf for floats)."""
    dtype = kd.dtype(dtype)
    if dtype.is_float:
        return -np.inf
    if dtype.kind == "bool":
        return False
    return np.iinfo(dtype.np).min


def highest(dtype):
    dtype = kd.dtype(dtype)
    if dtype.is_float:
        return np.inf
    if dtype.kind == "bool":
        return True
    return np.iinfo(dtype.np).max


def dim_tensor(cx, d, dtype) -> str:
    """A (possibly symbolic) size as a rank-0 tensor of ``dtype``."""
    if isinstance(d, int):
        return cx.tensor(d, dtype)
    return cx.conv.sym_tensor(d, dtype)
