"""ONNX frontend: :func:`from_onnx` turns an ONNX model into a kiln graph.

The ``onnx`` package is imported only when :func:`from_onnx` runs.
"""
from __future__ import annotations


def from_onnx(model_or_path, input_shapes=None):
    """Convert an ONNX model (path, bytes or ``onnx.ModelProto``) into a :class:`kiln.ir.Graph`.

    ``input_shapes`` maps input names to shapes (ints or symbol names) that override the model's.
    Raises :class:`kiln.UnsupportedOperatorError` listing every unsupported op at once, and
    :class:`kiln.ModelLoadError` for a missing, truncated or malformed file.
    """
    from .importer import from_onnx as _from_onnx

    return _from_onnx(model_or_path, input_shapes)


__all__ = ["from_onnx"]
