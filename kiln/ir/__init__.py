"""kiln's tensor IR: dtypes, types, the typed SSA :class:`Graph`, the op registry, the text
form (``str(graph)`` / :func:`parse`), the verifier and the reference interpreter.

Imports numpy (and the numpy-only ``ml_dtypes``) and nothing else.
"""
from . import dims, dtypes
from .builder import GraphBuilder
from .dtypes import DType, dtype
from .graph import Graph, Node
from .interpreter import interpret
from .parser import parse
from .registry import OPS, REQUIRED, Attr, OpDef, all_ops, get as get_op, op, register
from .types import TensorType, tensor
from .verify import verify
from . import ops  # noqa: F401  (registers the core ops)

__all__ = [
    "dims", "dtypes", "GraphBuilder", "DType", "dtype", "Graph", "Node", "interpret", "parse",
    "OPS", "REQUIRED", "Attr", "OpDef", "all_ops", "get_op", "op", "register", "TensorType", "tensor", "verify",
]
