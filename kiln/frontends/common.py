"""What every frontend needs to emit a kiln graph: an :class:`Emitter` that folds constants.

A frontend walks its source graph (an ONNX graph, a torch.export FX graph, a jaxpr) and turns each
source node into core ops through an ``Emitter``. Like the ONNX importer's ``NodeContext``, it has
``op``, ``const`` and ``type_of``, so decomposition helpers written against that protocol work with
either. A core op whose operands are all constants is evaluated at conversion time (its reference
implementation), so shape arithmetic and weight transforms fold away and the ops that consume them
see attributes.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConversionError
from ..ir import dims as _dims
from ..ir import dtypes as kd
from ..ir.builder import GraphBuilder, infer_node
from ..ir.registry import get as get_op
from ..ir.types import TensorType


#: a folded result may exceed its operands' size by at most this many elements
FOLD_GROWTH_LIMIT = 1 << 16


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


class Emitter:
    """Emits core ops into a :class:`GraphBuilder`; ``where`` names the source node in errors."""

    def __init__(self, name: str = "main", reserved=()):
        self.b = GraphBuilder(name, reserved=reserved)
        self.where = name  # the source node being converted (set by the frontend's walk)
        self.hint = ""     # name hint for the values it emits (e.g. the FX node's name)

    @property
    def graph(self):
        return self.b.graph

    # --- reading ---------------------------------------------------------------------------------
    def type_of(self, v: str) -> TensorType:
        return self.b.type_of(v)

    def shape(self, v: str) -> tuple:
        return self.b.type_of(v).shape

    def rank(self, v: str) -> int:
        return self.b.type_of(v).rank

    def dtype(self, v: str):
        return self.b.type_of(v).dtype

    def const_of(self, v: str):
        """The array of a value known at conversion time (a constant), else None."""
        return self.b.graph.constants.get(v)

    # --- emitting --------------------------------------------------------------------------------
    def input(self, name: str, dtype, shape) -> str:
        return self.b.input(name, dtype, shape)

    def const(self, array, dtype=None, name: str | None = None) -> str:
        """A constant; ``dtype`` (a kiln dtype or its name) converts the value first."""
        arr = np.asarray(array)
        if dtype is not None:
            arr = arr.astype(kd.dtype(dtype).np)
        return self.b.const(arr, name or self.hint or "c")

    def scalar_like(self, value, like: str) -> str:
        """A rank-0 constant ``value`` with the dtype of the value ``like``."""
        return self.const(value, self.dtype(like))

    def cast(self, v: str, to) -> str:
        """``v`` cast to kiln dtype ``to``; ``v`` itself when it already has it."""
        to = kd.dtype(to)
        return v if self.dtype(v) == to else self.op("cast", v, to=to)

    def op(self, op_name: str, *inputs, **attrs):
        """Emit a core op, folded to a constant when every operand is a constant."""
        b = self.b
        opdef = get_op(op_name)
        ins = tuple("" if i is None else i for i in inputs)
        where = f"{self.where} ({op_name})"
        if ins and any(ins) and all((not i) or i in b.graph.constants for i in ins) \
                and "random" not in opdef.traits and opdef.outputs == 1:
            opdef.check_arity(len(ins), where)
            nattrs = opdef.normalize_attrs(attrs, where)
            (t,) = infer_node(opdef, [b.type_of(i) if i else None for i in ins], nattrs, where)
            # a symbolic result has no value here; and folding must not blow a broadcast scalar up into
            # a large constant of the artifact (transposes and casts of weights still fold)
            if not any(isinstance(d, str) for d in t.shape) and \
                    _size(t.shape) <= max(FOLD_GROWTH_LIMIT, sum(b.graph.constants[i].size for i in ins if i)):
                val = np.asarray(opdef.reference(*[b.graph.constants[i] if i else None for i in ins], **nattrs))
                if val.dtype != t.dtype.np:
                    raise ConversionError(f"{where}: folding gave {val.dtype}, type says {t.dtype}")
                return b.const(val, self.hint or op_name)
        return b.op(op_name, *inputs, name=self.hint or "", **attrs)

    def build(self, outputs, output_names=None):
        """The graph with ``outputs`` (renamed to ``output_names`` where given and free)."""
        outs = []
        for i, v in enumerate(outputs):
            want = output_names[i] if output_names else None
            if v in self.b.graph.inputs or v in self.b.graph.constants or v in outs or (
                    want and want != v and want not in self.b.graph.types):
                # a graph output must be a node's result of its own: an identity gives it one
                v = self.b.op("identity", v, out=want or f"output_{i}", name=want or f"output_{i}")
            outs.append(v)
        graph = self.b.build(outs)
        graph.prune_constants()
        return graph


def symbol_dim(d) -> _dims.Dim:
    """A frontend's dim (an int, or a symbolic expression's text) as a kiln dim."""
    if isinstance(d, (int, np.integer)):
        return int(d)
    return _dims.canonical(str(d).replace(" ", ""))
