"""Contractions and windowed ops: matmul, convolution, pooling."""
from __future__ import annotations

import numpy as np

from ..registry import Attr, op
from ..types import TensorType
from ._util import broadcast_shapes, require


@op("matmul", inputs=("a", "b"), traits=("contraction",))
class MatMul:
    """numpy.matmul semantics: batch dims broadcast; 1-D operands are promoted and squeezed."""

    def infer(a: TensorType, b: TensorType):
        require(a.dtype == b.dtype, f"matmul: operand dtypes differ ({a.dtype}, {b.dtype})")
        require(a.rank >= 1 and b.rank >= 1, "matmul: operands must have rank >= 1")
        sa = a.shape if a.rank > 1 else (1,) + a.shape
        sb = b.shape if b.rank > 1 else b.shape + (1,)
        k1, k2 = sa[-1], sb[-2]
        require(k1 == k2 or not (isinstance(k1, int) and isinstance(k2, int)),
                f"matmul: inner dims differ ({a} @ {b})")
        batch = broadcast_shapes(sa[:-2], sb[:-2])
        out = list(batch) + [sa[-2], sb[-1]]
        if a.rank == 1:
            out.pop(-2)
        if b.rank == 1:
            out.pop(-1)
        return TensorType(a.dtype, out)

    def reference(a, b):
        if a.dtype.kind == "f" and a.dtype.itemsize < 4:
            return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype)
        return np.matmul(a, b)
