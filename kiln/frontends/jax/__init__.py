"""The JAX frontend: a JAX function, traced to a jaxpr at example inputs, as a kiln Graph.

    graph = from_jax(fn, (x, params), input_shapes={"x": ["batch", 784]})

jax is imported only when :func:`from_jax` runs. ``trace.py`` traces and walks the jaxpr; the
primitive converters live in ``elementwise.py``, ``shape.py``, ``reduce.py``, ``nn.py`` and
``indexing.py`` (registered by name in ``registry.py``).
"""
from .trace import convert, from_jax

__all__ = ["from_jax", "convert"]
