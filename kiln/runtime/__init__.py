"""kiln.runtime: load and run compiled artifacts. Imports numpy, the standard library and ``kiln.ir`` only.

    model = kiln.load("model.kiln")      # or kiln.runtime.load
    (y,) = model(x)                      # arrays in, tuple of arrays out, in manifest order
    out = model.run({"x": x})            # dict in, dict out

Executors (``cpu`` built in; ``opencl`` and ``cuda`` imported only when an artifact needs them) are
found by the name in the manifest's target; :func:`register_executor` adds more.
"""
from .artifact import FORMAT, FORMAT_VERSION, read_artifact, write_artifact
from .module import CompiledModel, TensorSpec, load, register_executor

__all__ = ["load", "CompiledModel", "TensorSpec", "register_executor", "read_artifact", "write_artifact",
           "FORMAT", "FORMAT_VERSION"]
