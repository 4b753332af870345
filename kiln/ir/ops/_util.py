"""Shared helpers for op definitions: broadcasting, axes, and type-check messages."""
from __future__ import annotations

import numpy as np

from .. import dims
from ..types import TensorType


def broadcast_shapes(*shapes) -> tuple:
    """Numpy broadcasting over shapes with symbolic dims."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        ds = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        non1 = [d for d in ds if d != 1]
        if not non1:
            out.append(1)
            continue
        first = non1[0]
        for d in non1[1:]:
            if d != first:
                if isinstance(d, int) and isinstance(first, int):
                    raise ValueError(f"shapes {' and '.join(map(str, shapes))} do not broadcast")
                if isinstance(first, str) and isinstance(d, int):
                    first = d  # a symbol broadcast against a known size takes the size
        out.append(first)
    return tuple(out)


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def norm_axes(axes, rank: int) -> tuple:
    out = tuple(sorted({norm_axis(a, rank) for a in axes}))
    if len(out) != len(axes):
        raise ValueError(f"axes {tuple(axes)} repeat an axis")
    return out


def same_dtype(where: str, *types):
    ts = [t for t in types if t is not None]
    if not ts:
        return
    d0 = ts[0].dtype
    for t in ts[1:]:
        if t.dtype != d0:
            raise ValueError(f"{where}: operand dtypes differ ({', '.join(str(t.dtype) for t in ts)})")


def require(cond, msg: str):
    if not cond:
        raise ValueError(msg)


def as_np(x, dt) -> np.ndarray:
    """Cast a numpy result to the exact numpy dtype of a kiln dtype."""
    return np.asarray(x).astype(dt.np, copy=False)


def tt(dtype, shape) -> TensorType:
    return TensorType(dtype, shape)


__all__ = ["contiguous", "broadcast_shapes", "norm_axis", "norm_axes", "same_dtype", "require", "as_np", "tt", "dims"]


def contiguous(a) -> np.ndarray:
    """A C-contiguous array (0-d arrays stay 0-d, unlike numpy.ascontiguousarray)."""
    return np.asarray(a, order="C")
