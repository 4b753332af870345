"""Converters for ONNX contractions and neural-network ops: MatMul, Gemm, Conv, pooling, attention."""
from __future__ import annotations

from ..registry import converter


@converter("MatMul", since=1)
def matmul(ctx):
    return ctx.op("matmul", ctx.input(0), ctx.input(1))
