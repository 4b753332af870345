"""PyTorch frontend: ``torch.export`` programs as kiln graphs, and a ``torch.compile`` backend.

- :func:`from_torch` — ``from_torch(module, example_inputs, dynamic_shapes=None) -> Graph``
  (exports the module, decomposes it to core ATen, converts the FX graph; :mod:`.convert`).
- :mod:`.backend` — ``torch.compile(model, backend="kiln")`` (registered as an entry point).

torch is imported when these run, not when kiln is imported.
"""
from __future__ import annotations


def from_torch(module, example_inputs, dynamic_shapes=None):
    """A kiln Graph of ``module`` traced with ``example_inputs`` (see :func:`.convert.from_torch`)."""
    from .convert import from_torch as _from_torch

    return _from_torch(module, example_inputs, dynamic_shapes=dynamic_shapes)


__all__ = ["from_torch"]
