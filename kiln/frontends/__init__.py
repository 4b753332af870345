"""Frontends: converters from source formats into kiln's tensor IR.

Each frontend imports its framework lazily, when its entry point runs:

- :mod:`kiln.frontends.onnx` — ``from_onnx(model_or_path, input_shapes)``
- :mod:`kiln.frontends.torch` — ``from_torch(module, example_inputs, dynamic_shapes)`` (torch.export)
- :mod:`kiln.frontends.jax` — ``from_jax(fn, example_inputs, input_shapes)`` (jaxpr)

:func:`frontend_for` picks the one that reads a given model; ``kiln.compile`` goes through it.
"""
from __future__ import annotations

import os
import sys

from . import onnx  # noqa: F401  (light: imports the onnx package only inside from_onnx)


def _is_torch(obj) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor | torch.nn.Module)


def _flat(example_inputs):
    if example_inputs is None:
        return []
    if isinstance(example_inputs, dict):
        return list(example_inputs.values())
    return list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]


def frontend_for(model, example_inputs=None):
    """The conversion function for ``model``: ``fn(model, *, example_inputs, input_shapes, dynamic_shapes)``.

    An ONNX ModelProto, bytes or path goes to the ONNX frontend; a ``torch.nn.Module`` (or a callable
    given torch tensors) to the PyTorch frontend; any other callable to the JAX frontend.
    """
    if isinstance(model, (str, os.PathLike, bytes, bytearray)) or type(model).__name__ == "ModelProto":
        return _onnx
    if _is_torch(model) or (callable(model) and any(_is_torch(a) for a in _flat(example_inputs))):
        return _torch
    if callable(model):
        return _jax
    raise TypeError(f"kiln.compile takes an ONNX ModelProto or .onnx path, a torch.nn.Module, a JAX function "
                    f"or a kiln Graph, got {type(model).__name__}")


def _onnx(model, *, example_inputs=None, input_shapes=None, dynamic_shapes=None):
    if dynamic_shapes is not None:
        raise ValueError("dynamic_shapes is the torch.export spec; for ONNX models name dims with input_shapes")
    if example_inputs is not None and input_shapes is None:
        input_shapes = _onnx_shapes_of(model, example_inputs)
    return onnx.from_onnx(model, input_shapes=input_shapes)


def _torch(model, *, example_inputs=None, input_shapes=None, dynamic_shapes=None):
    if input_shapes is not None:
        raise ValueError("input_shapes applies to ONNX and JAX models; for a torch module declare dynamic dims "
                         "with dynamic_shapes={...: {0: torch.export.Dim('batch')}}")
    from .torch import from_torch

    return from_torch(model, example_inputs, dynamic_shapes=dynamic_shapes)


def _jax(model, *, example_inputs=None, input_shapes=None, dynamic_shapes=None):
    if dynamic_shapes is not None:
        raise ValueError("dynamic_shapes is the torch.export spec; for JAX functions name dims with input_shapes")
    from .jax import from_jax

    return from_jax(model, example_inputs, input_shapes=input_shapes)


def _onnx_shapes_of(model, example_inputs) -> dict:
    import numpy as np

    from .onnx.importer import load_model

    proto = load_model(model)
    inits = {i.name for i in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in inits]
    if isinstance(example_inputs, dict):
        return {k: list(np.shape(v)) for k, v in example_inputs.items()}
    arrays = _flat(example_inputs)
    if len(arrays) != len(names):
        raise ValueError(f"example_inputs has {len(arrays)} arrays, the model takes {len(names)} inputs "
                         f"({', '.join(names)})")
    return {n: list(np.shape(a)) for n, a in zip(names, arrays)}
