"""Converters for ONNX elementwise ops: math, comparisons, logic, activations, casts."""
from __future__ import annotations

from ..registry import converter


@converter("Relu", since=6)
def relu(ctx):
    return ctx.op("relu", ctx.input(0))


@converter("Add", since=7)
def add(ctx):
    return ctx.op("add", ctx.input(0), ctx.input(1))


@converter("Cast", since=6)
def cast(ctx):
    from ..importer import onnx_dtype

    to = onnx_dtype(ctx.attr("to"), f"Cast node '{ctx.name}'")
    return ctx.op("cast", ctx.input(0), to=to, saturate=bool(ctx.attr("saturate", 1)))
