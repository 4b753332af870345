"""Core op definitions. Importing this package registers every op in :data:`kiln.ir.registry.OPS`.

One module per family; each op is defined once, in one of them.
"""
from . import control, elementwise, image, indexing, linalg, movement, reduce, scan, detection  # noqa: F401
