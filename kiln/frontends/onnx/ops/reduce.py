"""Converters for ONNX reductions, softmax family, normalizations and losses."""
from __future__ import annotations

from ..registry import converter  # noqa: F401
