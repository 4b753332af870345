"""Building graphs op by op, with attribute checking and type inference at every step.

    b = GraphBuilder("mlp")
    x = b.input("x", "f32", ("batch", 64))
    w = b.const(np.ones((64, 10), np.float32), "w")
    y = b.op("relu", b.op("matmul", x, w))
    g = b.build([y])
"""
from __future__ import annotations

import numpy as np

from . import dims as _dims
from . import dtypes
from .graph import Graph, Node
from .registry import get as get_op
from .types import TensorType


class GraphBuilder:
    def __init__(self, name: str = "main", reserved=(), parent: "GraphBuilder | None" = None):
        """``parent``: build a region of that builder's graph, sharing its value namespace, so names
        are unique across nesting (``graph.all_constants()`` then holds every constant once)."""
        self.graph = Graph(name)
        self._used = parent._used if parent is not None else set()
        self._used.update(reserved)
        self._counter = 0

    # --- names -------------------------------------------------------------------------------
    def fresh(self, hint: str = "t") -> str:
        hint = hint or "t"
        if hint not in self._used and hint not in self.graph.types:
            self._used.add(hint)
            return hint
        while True:
            self._counter += 1
            name = f"{hint}_{self._counter}"
            if name not in self._used and name not in self.graph.types:
                self._used.add(name)
                return name

    def reserve(self, names):
        self._used.update(names)

    # --- definitions -------------------------------------------------------------------------
    def input(self, name: str, dtype, shape) -> str:
        if name in self.graph.types:
            raise ValueError(f"value '{name}' is already defined")
        self._used.add(name)
        self.graph.inputs.append(name)
        self.graph.types[name] = TensorType(dtype, shape)
        return name

    def const(self, array, name: str | None = None, exact: bool = False) -> str:
        """Add a constant; ``exact`` claims ``name`` itself (even if reserved) instead of a fresh variant."""
        arr = np.array(array, copy=True, order="C")
        arr.flags.writeable = False
        if exact:
            if name in self.graph.types:
                raise ValueError(f"value '{name}' is already defined")
            self._used.add(name)
        else:
            name = self.fresh(name or "c")
        self.graph.constants[name] = arr
        self.graph.types[name] = TensorType(dtypes.of(arr), arr.shape)
        return name

    def op(self, op_name: str, *inputs, name: str = "", out: str | list | None = None,
           num_outputs: int | None = None, **attrs):
        """Append a node; returns its output name (or a tuple of names for multi-output ops).

        ``None`` inputs are absent optional operands. ``out`` names the result(s).
        """
        opdef = get_op(op_name)
        ins = tuple("" if i is None else i for i in inputs)
        where = f"node '{name}' ({op_name})" if name else f"op '{op_name}'"
        opdef.check_arity(len(ins), where)
        for i, v in enumerate(ins):
            if v and v not in self.graph.types:
                raise ValueError(f"{where}: input {opdef.input_name(i)} '{v}' is not defined")
        attrs = opdef.normalize_attrs(attrs, where)
        types = infer_node(opdef, [self.graph.types[v] if v else None for v in ins], attrs, where)
        if isinstance(out, str):
            out = [out]
        if out is not None and len(out) != len(types):
            raise ValueError(f"{where}: produces {len(types)} output(s), {len(out)} name(s) given")
        names = []
        for k, t in enumerate(types):
            n = self.fresh(out[k]) if out else self.fresh(name or op_name)
            names.append(n)
            self.graph.types[n] = resolve_unknown_dims(t, n)
        self.graph.nodes.append(Node(op_name, ins, tuple(names), attrs, name or names[0]))
        if opdef.outputs == 1:
            return names[0]
        return tuple(names)

    def type_of(self, v: str) -> TensorType:
        return self.graph.types[v]

    def build(self, outputs) -> Graph:
        for o in outputs:
            if o not in self.graph.types:
                raise ValueError(f"graph output '{o}' is not defined")
        self.graph.outputs = list(outputs)
        return self.graph


def infer_node(opdef, input_types, attrs, where: str) -> list:
    """Run an op's type inference; always returns a list of TensorType."""
    try:
        res = opdef.infer(*input_types, **attrs)
    except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError) as e:
        raise ValueError(f"{where}: {e}") from e
    types = list(res) if isinstance(res, (tuple, list)) else [res]
    if opdef.outputs not in ("*",) and len(types) != opdef.outputs:
        raise ValueError(f"{where}: type inference gave {len(types)} outputs, op has {opdef.outputs}")
    for t in types:
        if not isinstance(t, TensorType):
            raise TypeError(f"{where}: type inference returned {t!r}, not a TensorType")
    return types


def resolve_unknown_dims(t: TensorType, value: str) -> TensorType:
    """Give every run-time-only dim ('?') a fresh symbol named after the value."""
    if _dims.UNKNOWN not in t.shape:
        return t
    base = _dims.sanitize_symbol(value)
    return t.with_shape([f"{base}_d{i}" if d == _dims.UNKNOWN else d for i, d in enumerate(t.shape)])
