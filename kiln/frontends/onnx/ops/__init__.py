"""ONNX converters, one module per family. Importing this package registers them all."""
from . import attention, control, detection, elementwise, image, nn, recurrent, reduce, shape, signal, training  # noqa: F401
