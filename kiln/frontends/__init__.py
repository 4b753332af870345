"""Frontends: converters from source formats into kiln's tensor IR.

Each frontend imports its framework lazily, when its entry point runs.
"""
from . import onnx  # noqa: F401  (light: imports the onnx package only inside from_onnx)
