"""ONNX converters, one module per family. Importing this package registers them all."""
from . import control, elementwise, nn, reduce, shape, training, signal  # noqa: F401
