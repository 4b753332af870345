"""ONNX ModelProto -> kiln Graph.

The importer walks the ONNX graph in order and hands each node to its converter (see
:mod:`.registry`) through a :class:`NodeContext`. A core op whose operands are all constants is
evaluated at import time, so static shape subgraphs (Shape -> Gather -> Concat -> Reshape) fold
into constants and the ops that consume them see attributes. Values keep their ONNX names where
they can, so the IR reads like the model.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import ConversionError, ModelLoadError, UnsupportedOperatorError
from ...ir import dims as _dims
from ...ir import dtypes as kd
from ...ir.builder import GraphBuilder, infer_node
from ...ir.registry import get as get_op
from ...ir.types import TensorType
from .registry import lookup

MIN_OPSET = 7

# TensorProto.DataType -> kiln dtype
ONNX_DTYPES = {
    1: kd.float32, 2: kd.uint8, 3: kd.int8, 4: kd.uint16, 5: kd.int16, 6: kd.int32, 7: kd.int64,
    9: kd.bool_, 10: kd.float16, 11: kd.float64, 12: kd.uint32, 13: kd.uint64, 16: kd.bfloat16,
    17: kd.float8e4m3fn, 18: kd.float8e4m3fnuz, 19: kd.float8e5m2, 20: kd.float8e5m2fnuz,
    21: kd.uint4, 22: kd.int4, 23: kd.float4e2m1, 24: kd.float8e8m0, 25: kd.uint2, 26: kd.int2,
}
_ONNX_DTYPE_NAMES = {8: "string", 14: "complex64", 15: "complex128"}


def onnx_dtype(code: int, what: str):
    try:
        return ONNX_DTYPES[code]
    except KeyError:
        name = _ONNX_DTYPE_NAMES.get(code, f"type code {code}")
        raise ConversionError(f"{what}: element type {name} is not supported") from None


def load_model(model_or_path):
    """Load an ONNX model from a path, bytes or a ModelProto; raises ModelLoadError on any damage."""
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(model_or_path, onnx.ModelProto):
        model = model_or_path
        where = "the given ModelProto"
    elif isinstance(model_or_path, (bytes, bytearray)):
        where = "the given bytes"
        try:
            model = onnx.load_model_from_string(bytes(model_or_path))
        except (DecodeError, RuntimeError, ValueError) as e:
            raise ModelLoadError(f"{where} are not a valid ONNX model (damaged or truncated protobuf: {e})") from None
    elif isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        where = f"'{path}'"
        if not path.exists():
            raise ModelLoadError(f"no such model file: '{path}'")
        if path.is_dir():
            raise ModelLoadError(f"'{path}' is a directory, not an ONNX model file")
        try:
            model = onnx.load(str(path))
        except DecodeError as e:
            raise ModelLoadError(
                f"{where} is not a valid ONNX model: the protobuf is damaged or truncated ({e})") from None
        except (OSError, ValueError, RuntimeError) as e:
            raise ModelLoadError(f"{where} could not be loaded: {e}") from None
    else:
        raise ModelLoadError(
            f"from_onnx takes a path, bytes or an onnx.ModelProto, got {type(model_or_path).__name__}")
    if not model.HasField("graph") or (not model.opset_import and not model.graph.node and not model.graph.output):
        raise ModelLoadError(f"{where} holds no ONNX graph (empty or not a model file)")
    if not model.graph.output:
        raise ModelLoadError(f"{where}: the graph declares no outputs")
    return model


class NodeContext:
    """What a converter sees of one ONNX node, and how it emits kiln ops."""

    def __init__(self, importer: "Importer", node, opset: int):
        self._imp = importer
        self.node = node
        self.opset = opset
        self.name = node.name or (node.output[0] if node.output else node.op_type)
        self._attrs = {a.name: a for a in node.attribute}

    # --- inputs --------------------------------------------------------------------------------
    @property
    def num_inputs(self) -> int:
        return len(self.node.input)

    @property
    def num_outputs(self) -> int:
        return len(self.node.output)

    def has_input(self, i: int) -> bool:
        return i < len(self.node.input) and self.node.input[i] != ""

    def has_output(self, i: int) -> bool:
        return i < len(self.node.output) and self.node.output[i] != ""

    def input(self, i: int):
        """kiln value name of input ``i``, or None when absent."""
        if not self.has_input(i):
            return None
        return self._imp.value_of(self.node.input[i], self)

    def inputs(self) -> list:
        return [self.input(i) for i in range(self.num_inputs)]

    def type(self, i: int) -> TensorType:
        return self._imp.b.type_of(self.input(i))

    @property
    def graph(self):
        """The kiln graph built so far (read it; emit through :meth:`op` and :meth:`const`)."""
        return self._imp.b.graph

    def type_of(self, value: str) -> TensorType:
        """Type of any kiln value, e.g. an intermediate the converter just emitted."""
        return self._imp.b.type_of(value)

    def shape(self, i: int) -> tuple:
        return self.type(i).shape

    def rank(self, i: int) -> int:
        return self.type(i).rank

    def dtype(self, i: int):
        return self.type(i).dtype

    def const_of(self, value: str):
        """The array of any kiln value known at import time (a constant), else None."""
        return self._imp.b.graph.constants.get(value)

    def const_value(self, i: int):
        """The input's value if it is known at import time, else None."""
        v = self.input(i)
        return None if v is None else self._imp.b.graph.constants.get(v)

    def require_const(self, i: int, what: str) -> np.ndarray:
        val = self.const_value(i)
        if val is None:
            self.fail(f"{what} (input {i}, '{self.node.input[i]}') must be known at compile time")
        return val

    # --- attributes ----------------------------------------------------------------------------
    def has_attr(self, name: str) -> bool:
        return name in self._attrs

    def attr(self, name: str, default=None):
        a = self._attrs.get(name)
        if a is None:
            return default
        from onnx import helper, numpy_helper

        if a.ref_attr_name:
            self.fail(f"attribute '{name}' refers to a function attribute; only model graphs are supported")
        v = helper.get_attribute_value(a)
        if a.type == a.TENSOR:
            return numpy_helper.to_array(v)
        if isinstance(v, bytes):
            return v.decode()
        if isinstance(v, list):
            return [x.decode() if isinstance(x, bytes) else x for x in v]
        return v

    def region(self, attr_name: str, input_types=()):
        """Convert the graph attribute ``attr_name`` into a kiln graph.

        ``input_types`` gives the body's formal input types (None: as the body declares them).
        Returns ``(graph, captures)``: the body graph takes its formal inputs, then one input per
        captured enclosing value; ``captures`` are those values' names here.
        """
        a = self._attrs.get(attr_name)
        if a is None or not a.HasField("g"):
            self.fail(f"missing graph attribute '{attr_name}'")
        return RegionImporter(self._imp, a.g, input_types).run()

    def inline(self, graph, operands) -> list:
        """Emit a kiln graph's nodes here, its inputs bound to ``operands``; returns its outputs."""
        env = dict(zip(graph.inputs, operands))
        for name, arr in graph.constants.items():
            env[name] = self.const(arr)
        for n in graph.nodes:
            res = self.op(n.op, *[env[i] if i else None for i in n.inputs], **dict(n.attrs))
            env.update(zip(n.outputs, res if isinstance(res, tuple) else (res,)))
        return [env[o] for o in graph.outputs]

    def inline_region(self, attr_name: str, operands) -> list:
        """Convert the graph attribute ``attr_name`` and emit it here, its inputs bound to ``operands``."""
        g, caps = self.region(attr_name, [self.type_of(v) for v in operands])
        return self.inline(g, list(operands) + caps)

    # --- emitting ------------------------------------------------------------------------------
    def op(self, op_name: str, *inputs, **attrs):
        """Emit a core op (folded to a constant when every operand is a constant)."""
        return self._imp.emit(op_name, inputs, attrs, self)

    def const(self, array, dtype=None):
        arr = np.asarray(array)
        if dtype is not None:
            arr = arr.astype(kd.dtype(dtype).np)
        return self._imp.b.const(arr, self._imp.hint(self))

    def fail(self, msg: str):
        raise ConversionError(f"{self.node.op_type} node '{self.name}' (opset {self.opset}): {msg}")


class Importer:
    def __init__(self, model, input_shapes=None):
        self.model = model
        self.g = model.graph
        self.opsets = {("" if o.domain in ("", "ai.onnx") else o.domain): o.version for o in model.opset_import}
        if "" not in self.opsets:
            self.opsets[""] = 1 if not model.opset_import else MIN_OPSET
        self.input_shapes = dict(input_shapes or {})
        self.b = GraphBuilder(_safe_graph_name(self.g.name))
        self.alias: dict = {}  # onnx value name -> kiln value name
        self.pinned: set = set()  # values that keep their name (region captures and copied constants)
        reserved = {v for n in self.g.node for v in list(n.input) + list(n.output)}
        reserved |= {i.name for i in self.g.input} | {i.name for i in self.g.initializer}
        self.b.reserve(reserved)

    def hint(self, ctx: NodeContext) -> str:
        return (ctx.node.output[0] if ctx.node.output and ctx.node.output[0] else ctx.name) + "_k"

    def value_of(self, onnx_name: str, ctx=None) -> str:
        try:
            return self.alias[onnx_name]
        except KeyError:
            where = f"{ctx.node.op_type} node '{ctx.name}'" if ctx else "graph"
            raise ConversionError(f"{where}: input '{onnx_name}' is not defined by any earlier node, "
                                  f"initializer or graph input") from None

    # --- the walk ------------------------------------------------------------------------------
    def run(self):
        self._check_supported()
        self._initializers()
        self._inputs()
        return self._walk()

    def _walk(self):
        for node in self.g.node:
            self._convert(node)
        outs = []
        for o in self.g.output:
            v = self._output_value(o.name)
            if v != o.name:
                v = self._name_output(v, o.name)
            outs.append(v)
        graph = self.b.build(outs)
        graph.prune_constants()
        return graph

    def _output_value(self, name: str) -> str:
        if name not in self.alias:
            raise ConversionError(f"graph output '{name}' is not produced by any node")
        return self.alias[name]

    def _check_supported(self):
        seen, missing = set(), []

        for n in iter_nodes(self.g):
            dom = "" if n.domain in ("", "ai.onnx") else n.domain
            opset = self.opsets.get(dom, 1)
            if lookup(dom, n.op_type, opset) is None:
                key = (qualified_op(n), opset)
                if key not in seen:
                    seen.add(key)
                    missing.append((key[0], opset, n.name or (n.output[0] if n.output else "")))
        if missing:
            source = f"ONNX graph '{self.g.name or 'main'}'"
            if self.opsets[""] < MIN_OPSET:
                source += (f" (default-domain opset {self.opsets['']}; kiln converts opset {MIN_OPSET} and newer:"
                           f" onnx.version_converter can upgrade the model)")
            raise UnsupportedOperatorError(missing, source=source)

    def _initializers(self):
        from onnx import numpy_helper

        for t in self.g.initializer:
            try:
                arr = numpy_helper.to_array(t)
            except Exception as e:  # noqa: BLE001 - onnx raises many types for bad tensors
                raise ModelLoadError(f"initializer '{t.name}' could not be read: {e}") from None
            onnx_dtype(t.data_type, f"initializer '{t.name}'")
            self.alias[t.name] = self.b.const(arr, t.name, exact=True)
        for t in self.g.sparse_initializer:
            raise ConversionError(f"sparse initializer '{t.values.name}' is not supported")

    def _inputs(self):
        unknown_names = set(self.input_shapes) - {i.name for i in self.g.input}
        if unknown_names:
            raise ConversionError(f"input_shapes names unknown input(s) {', '.join(sorted(unknown_names))}; "
                                  f"the model's inputs are {', '.join(i.name for i in self.g.input)}")
        for vi in self.g.input:
            if vi.name in self.alias:  # an initializer listed as input (IR < 4): a constant
                if vi.name not in self.input_shapes:
                    continue
                del self.b.graph.constants[vi.name]
                del self.b.graph.types[vi.name]
            if vi.name in self.input_shapes:
                dt = value_info_type(vi, "graph input", need_shape=False).dtype
                shape = [_dims.sanitize_symbol(d) if isinstance(d, str) else int(d) for d in self.input_shapes[vi.name]]
            else:
                t = value_info_type(vi, "graph input")
                dt, shape = t.dtype, t.shape
            self.alias[vi.name] = self.b.input(vi.name, dt, shape)

    def _convert(self, node):
        dom = "" if node.domain in ("", "ai.onnx") else node.domain
        opset = self.opsets.get(dom, 1)
        fn = lookup(dom, node.op_type, opset)
        ctx = NodeContext(self, node, opset)
        start = len(self.b.graph.nodes)
        consts_before = set(self.b.graph.constants)
        try:
            result = fn(ctx)
        except (ConversionError, ModelLoadError):
            raise
        except (ValueError, TypeError, KeyError, IndexError, NotImplementedError) as e:
            raise ConversionError(f"{node.op_type} node '{ctx.name}' (opset {opset}): {e}") from e
        except Exception as e:  # noqa: BLE001 - a converter bug still names the node, never a bare traceback
            raise ConversionError(f"{node.op_type} node '{ctx.name}' (opset {opset}): "
                                  f"internal error {type(e).__name__}: {e}") from e
        if result is None:
            result = []
        elif isinstance(result, str):
            result = [result]
        result = list(result)
        outs = list(node.output)
        if len(result) < len([o for o in outs if o]):
            raise ConversionError(f"{node.op_type} node '{ctx.name}': converter gave {len(result)} results "
                                  f"for {len(outs)} outputs")
        new_values = {o for n in self.b.graph.nodes[start:] for o in n.outputs}
        new_values |= set(self.b.graph.constants) - consts_before
        new_values -= self.pinned
        renames = {}
        for o, v in zip(outs, result):
            if not o or v is None:
                continue
            if v in new_values and v not in renames and o not in self.b.graph.types:
                renames[v] = o
                self.alias[o] = o
            else:
                self.alias[o] = v
        if renames:
            self._rename_recent(start, renames)

    def _rename_recent(self, start, renames):
        g = self.b.graph
        for k in range(start, len(g.nodes)):
            n = g.nodes[k]
            g.nodes[k] = n.with_(inputs=tuple(renames.get(i, i) for i in n.inputs),
                                 outputs=tuple(renames.get(o, o) for o in n.outputs),
                                 name=renames.get(n.name, n.name))
        for old, new in renames.items():
            g.types[new] = g.types.pop(old)
            if old in g.constants:
                g.constants[new] = g.constants.pop(old)

    def _name_output(self, v: str, name: str) -> str:
        """Give a graph output its ONNX name when the value it aliases has another name."""
        if name in self.b.graph.types:
            return v
        return self.b.op("identity", v, out=name, name=name)

    def emit(self, op_name, inputs, attrs, ctx):
        b = self.b
        opdef = get_op(op_name)
        ins = tuple("" if i is None else i for i in inputs)
        if ins and all((not i) or i in b.graph.constants for i in ins) and any(ins) \
                and "random" not in opdef.traits and opdef.outputs == 1:
            where = f"{ctx.node.op_type} node '{ctx.name}' ({op_name})"
            opdef.check_arity(len(ins), where)
            nattrs = opdef.normalize_attrs(attrs, where)
            (t,) = infer_node(opdef, [b.type_of(i) if i else None for i in ins], nattrs, where)
            if any(isinstance(d, str) and d != _dims.UNKNOWN for d in t.shape):
                # e.g. broadcasting a constant to a symbolic shape: its value is not known here
                return b.op(op_name, *inputs, name=ctx.name, **attrs)
            val = np.asarray(opdef.reference(*[b.graph.constants[i] if i else None for i in ins], **nattrs))
            if val.dtype != t.dtype.np:
                raise ConversionError(f"{where}: folding gave {val.dtype}, type says {t.dtype}")
            return b.const(val, self.hint(ctx))
        return b.op(op_name, *inputs, name=ctx.name, **attrs)


def iter_nodes(graph_proto):
    """Every node of an ONNX graph, those of nested bodies (If/Loop/Scan) included, in order."""
    for n in graph_proto.node:
        yield n
        for a in n.attribute:
            if a.HasField("g"):
                yield from iter_nodes(a.g)
            for sg in a.graphs:
                yield from iter_nodes(sg)


def qualified_op(node) -> str:
    """``OpType`` for the default domain, ``domain.OpType`` otherwise."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def value_info_type(vi, what: str, need_shape: bool = True) -> TensorType:
    """The TensorType an ONNX ValueInfo declares; unnamed unknown dims get a symbol named after it."""
    tt = vi.type
    if not tt.HasField("tensor_type"):
        raise ConversionError(f"{what} '{vi.name}' is not a tensor ({tt.WhichOneof('value')}); "
                              f"sequences, maps and optionals are not supported")
    dt = onnx_dtype(tt.tensor_type.elem_type, f"{what} '{vi.name}'")
    if not tt.tensor_type.HasField("shape"):
        if need_shape:
            raise ConversionError(f"{what} '{vi.name}' has no shape; pass input_shapes={{'{vi.name}': [...]}}")
        return TensorType(dt, ())
    shape = []
    for k, d in enumerate(tt.tensor_type.shape.dim):
        if d.HasField("dim_value"):
            shape.append(int(d.dim_value))
        elif d.dim_param:
            shape.append(_dims.sanitize_symbol(d.dim_param))
        else:
            shape.append(_dims.sanitize_symbol(f"{vi.name}_{k}"))
    return TensorType(dt, shape)


class RegionImporter(Importer):
    """Converts the body of a control-flow node (If branch, Loop or Scan body) into its own graph.

    ONNX bodies read values of the enclosing graphs directly; kiln regions are isolated, so each
    such value becomes an extra body input (a *capture*) and the node passes it as an operand.
    Constants of the enclosing graph are copied in instead, so they keep folding inside the body.
    """

    def __init__(self, parent: Importer, graph_proto, input_types):
        self.model, self.g, self.opsets, self.input_shapes = parent.model, graph_proto, parent.opsets, {}
        self.parent = parent
        self.formal_types = list(input_types)
        self.b = GraphBuilder(_safe_graph_name(graph_proto.name), parent=parent.b)
        self.alias, self.pinned = {}, set()
        self.captures: list = []  # enclosing-graph values, in the order of the capture inputs
        self.b.reserve({v for n in graph_proto.node for v in list(n.input) + list(n.output)}
                       | {i.name for i in graph_proto.input} | {i.name for i in graph_proto.initializer})

    def run(self):
        self._initializers()
        for vi, t in zip(self.g.input, self.formal_types + [None] * len(self.g.input)):
            if t is None:
                t = value_info_type(vi, f"input of region '{self.g.name}'")
            self.alias[vi.name] = self.b.input(vi.name, t.dtype, t.shape)
        return self._walk(), self.captures

    def value_of(self, onnx_name: str, ctx=None) -> str:
        if onnx_name in self.alias:
            return self.alias[onnx_name]
        outer = self.parent.value_of(onnx_name, ctx)
        pg = self.parent.b.graph
        if outer in pg.constants:
            v = self.b.const(pg.constants[outer], onnx_name)
        else:
            t = pg.types[outer]
            v = self.b.input(self.b.fresh(onnx_name), t.dtype, t.shape)
            self.captures.append(outer)
        self.alias[onnx_name] = v
        self.pinned.add(v)
        return v

    def _output_value(self, name: str) -> str:
        return self.value_of(name)


def _safe_graph_name(name: str) -> str:
    return name or "main"


def from_onnx(model_or_path, input_shapes=None):
    """Convert an ONNX model (path, bytes or ModelProto) into a kiln :class:`~kiln.ir.Graph`.

    ``input_shapes`` (name -> list of ints or symbol names) overrides the shapes the model
    declares, e.g. to fix a batch size or name a dynamic dim.
    """
    model = load_model(model_or_path)
    return Importer(model, input_shapes).run()
