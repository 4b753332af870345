"""The FX walk: a core-ATen ExportedProgram as a kiln Graph.

The program's placeholders are, in order, parameters / buffers / lifted constants (kiln constants)
and the user's inputs (kiln graph inputs, named after forward's arguments, their dynamic dims named
after the user's ``torch.export.Dim``\\ s). Each ``call_function`` node goes through the converter
registered for its ATen overload (:mod:`.registry`); what a node is worth is kept in a value map:

- a tensor is a kiln value name (``str``);
- a SymInt is compile-time dim arithmetic, never a tensor: its value is read off the node's own
  sympy expression (``sym_size``, ``operator.mul`` / ``floordiv`` on sizes all land here) as a
  :class:`~.symbolic.SymDim`;
- a multi-result op (``native_layer_norm``, ``max_pool2d_with_indices``, ``split``) is a tuple or
  list, read by ``operator.getitem``; its converter emits only the results that are used.

Every unsupported operator of the program is found before anything is emitted and reported at
once, each with its ATen overload, node and the line of the user's code it came from. After each
node, the kiln type is checked against the dtype and shape torch computed for it, so a converter
that disagrees with torch is caught at conversion time, never as a wrong number.
"""
from __future__ import annotations

import operator

import numpy as np

from ...errors import ConversionError, UnsupportedOperatorError
from ...ir import dims as _dims
from ...ir import dtypes as kd
from ..common import Emitter
from .location import stack_location
from .registry import ASSERTS, CONVERTERS, load_all, op_key
from .symbolic import SymDim, dim_names, to_dim
from .tensors import to_numpy, torch_dtype


class _Invalid:
    """A node value that could not be computed (a non-polynomial size, say); an error only if used."""

    def __init__(self, error: Exception):
        self.error = error


class NodeCtx:
    """What a converter sees of its node: the Emitter, the node, torch's view of its result."""

    def __init__(self, conv: "Converter", node):
        self.conv = conv
        self.node = node
        self.e: Emitter = conv.e
        self.val = node.meta.get("val")

    # --- torch's view of the result ------------------------------------------------------------------
    def _first(self):
        v = self.val
        while isinstance(v, (list, tuple)) and v:
            v = v[0]
        return v

    @property
    def out_dtype(self):
        return torch_dtype(self._first().dtype)

    @property
    def out_shape(self) -> list:
        return self.shape_of(self._first())

    def shape_of(self, fake) -> list:
        return [self.conv.dim(d, f"dim {i} of {self.node.name}") for i, d in enumerate(fake.shape)]

    def used(self, i: int) -> bool:
        """Whether result ``i`` of a multi-result node is read by anything."""
        for u in self.node.users:
            if u.target is operator.getitem and u.args[1] == i and u.users:
                return True
            if u.target is not operator.getitem:
                return True
        return False

    # --- values ------------------------------------------------------------------------------------
    def tensor(self, a, dtype=None) -> str:
        """A kiln value for ``a`` (a value name, a Python number or a size), cast to ``dtype`` if given."""
        if isinstance(a, str):
            return self.e.cast(a, dtype) if dtype is not None else a
        if isinstance(a, SymDim):
            a = a.dim
        if isinstance(a, str):  # a symbolic size used as a number
            return self.conv.sym_tensor(a, dtype or kd.int64)
        if isinstance(a, (bool, int, float, np.number, np.bool_)):
            if dtype is None:
                dtype = kd.bool_ if isinstance(a, (bool, np.bool_)) else kd.int64 if isinstance(a, int) else kd.float32
            dtype = kd.dtype(dtype)
            if dtype.is_int and isinstance(a, float):
                if not float(a).is_integer():
                    raise ConversionError(f"the scalar {a} has no exact value in {dtype}")
                a = int(a)
            return self.e.const(np.array(a).astype(dtype.np))
        raise ConversionError(f"expected a tensor or a number, got {type(a).__name__}")

    def dim(self, a):
        """A size argument (int or SymDim) as a kiln dim."""
        if isinstance(a, SymDim):
            return a.dim
        if isinstance(a, (int, np.integer)) and not isinstance(a, bool):
            return int(a)
        raise ConversionError(f"expected a size, got {a!r}")

    def promoted(self, *raw):
        """torch's type promotion of the node's raw FX arguments ``raw`` (nodes or Python scalars)."""
        import torch

        def stand_in(a):
            if isinstance(a, torch.fx.Node):
                v = a.meta.get("val")
                if isinstance(v, torch.Tensor):
                    return torch.empty(() if v.dim() == 0 else (1,), dtype=v.dtype)
                if isinstance(v, (torch.SymBool, bool)):
                    return True
                if isinstance(v, (torch.SymInt, int)):
                    return 1
                return 1.0
            return a

        args = [stand_in(a) for a in raw]
        if len(args) == 1:
            return torch_dtype(args[0].dtype if isinstance(args[0], torch.Tensor) else
                               torch.tensor(args[0]).dtype)
        dt = torch.result_type(args[0], args[1])
        for a in args[2:]:
            dt = torch.result_type(torch.empty((1,), dtype=dt), a)
        return torch_dtype(dt)


class Converter:
    """Walks one ExportedProgram and builds its kiln Graph (:func:`convert_program`)."""

    def __init__(self, ep, name: str, names: dict, locate=None):
        self.ep = ep
        self.e = Emitter(name)
        self.names = dict(names)  # sympy symbol name -> kiln symbol
        self.env: dict = {}
        self.locate = locate or stack_location
        self.sym_sources: dict = {}  # kiln symbol -> (input value, axis)
        self._sym_cache: dict = {}

    # --- sizes -----------------------------------------------------------------------------------
    def dim(self, d, what="a size"):
        return to_dim(d, self.names, what)

    def sym_tensor(self, dim, dtype) -> str:
        """The run-time value of the symbolic size ``dim`` as a rank-0 tensor of ``dtype``."""
        dtype = kd.dtype(dtype)
        key = (dim, dtype)
        if key in self._sym_cache:
            return self._sym_cache[key]
        e = self.e
        total = None
        for mono, coeff in _dims._poly(dim).items():
            term = e.const(np.array(coeff, np.int64))
            for s in mono:
                if s not in self.sym_sources:
                    raise ConversionError(f"the size {dim} is used as a number, but no input has the dim {s}")
                x, axis = self.sym_sources[s]
                v = e.op("reshape", e.op("shape", x, start=axis, end=axis + 1), shape=[])
                term = e.op("mul", term, v)
            total = term if total is None else e.op("add", total, term)
        out = e.cast(total if total is not None else e.const(np.array(0, np.int64)), dtype)
        self._sym_cache[key] = out
        return out

    # --- the walk --------------------------------------------------------------------------------
    def run(self):
        load_all()
        graph = self.ep.graph
        self._check_supported(graph)
        self._placeholders()
        for node in graph.nodes:
            if node.op == "call_function":
                self._call(node)
            elif node.op == "get_attr":
                self.env[node.name] = _Invalid(ConversionError(f"get_attr node {node.name} (a submodule) "
                                                               f"is not supported"))
        return self._outputs()

    def _is_scalar_node(self, node) -> bool:
        import torch

        return isinstance(node.meta.get("val"), (torch.SymInt, torch.SymFloat, torch.SymBool, int, float, bool))

    def _check_supported(self, graph):
        missing: dict = {}
        for node in graph.nodes:
            if node.op != "call_function":
                continue
            key = op_key(node.target)
            if key in CONVERTERS or key in ASSERTS or key == "_operator.getitem" or self._is_scalar_node(node):
                continue
            if key == "higher_order.with_effects" and len(node.args) > 1:  # (token, op, *args)
                key = op_key(node.args[1])
                if key in ASSERTS:
                    continue
            if key not in missing:
                missing[key] = (key, None, node.name, self.locate(node))
        if missing:
            raise UnsupportedOperatorError(list(missing.values()), source=f"torch module {self.e.graph.name}")

    def _placeholders(self):
        from torch.export.graph_signature import InputKind

        ep, e = self.ep, self.e
        specs = {s.arg.name: s for s in ep.graph_signature.input_specs if hasattr(s.arg, "name")}
        nodes = [n for n in ep.graph.nodes if n.op == "placeholder"]
        user = [(n.name, n.meta.get("val")) for n in nodes if specs[n.name].kind == InputKind.USER_INPUT]
        # kiln symbols: declared Dim names first, then torch's own names for the other plain symbols
        for name, val in user:
            for axis, d in enumerate(getattr(val, "shape", ())):
                node = getattr(d, "node", None)
                if node is not None and node.expr.is_Symbol:
                    sym = self.names.setdefault(node.expr.name, _dims.sanitize_symbol(node.expr.name))
                    self.sym_sources.setdefault(sym, (name, axis))
        for n in nodes:
            spec = specs[n.name]
            val = n.meta.get("val")
            if spec.kind == InputKind.USER_INPUT:
                if hasattr(val, "shape"):
                    e.hint = n.name
                    shape = [self.dim(d, f"dim {i} of input {n.name}") for i, d in enumerate(val.shape)]
                    self.env[n.name] = e.input(n.name, torch_dtype(val.dtype), shape)
                else:
                    self.env[n.name] = self._scalar_value(val, n.name)
            elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
                t = ep.state_dict.get(spec.target) if spec.target in ep.state_dict else ep.constants.get(spec.target)
                if t is None:
                    raise ConversionError(f"the {spec.kind.name.lower()} {spec.target} of the exported program "
                                          f"has no value")
                self.env[n.name] = e.const(to_numpy(t), name=_dims.sanitize_symbol(n.name))
            elif spec.kind == InputKind.TOKEN:
                self.env[n.name] = None
            else:
                raise ConversionError(f"input {n.name} is a {spec.kind.name} (a TorchScript object or similar), "
                                      f"which kiln cannot take")

    def _scalar_value(self, val, what):
        import torch

        try:
            if isinstance(val, (torch.SymBool, bool)):
                node = getattr(val, "node", None)
                if node is not None:
                    b = node.maybe_as_bool() if hasattr(node, "maybe_as_bool") else None
                    if b is None:
                        raise ConversionError(f"{what} is a condition on sizes ({node.expr}) decided only at run time")
                    return bool(b)
                return val
            if isinstance(val, (torch.SymFloat, float)):
                node = getattr(val, "node", None)
                if node is None:
                    return val
                if node.expr.is_number:
                    return float(node.expr)
                raise ConversionError(f"{what} is a float computed from sizes ({node.expr}); kiln sizes are integers")
            d = to_dim(val, self.names, what)
            return d if isinstance(d, int) else SymDim(d)
        except ConversionError as err:
            return _Invalid(err)

    def _value(self, a):
        """An FX argument with every FX node replaced by its value."""
        import torch

        if isinstance(a, torch.fx.Node):
            v = self.env[a.name]
            if isinstance(v, _Invalid):
                raise v.error
            return v
        if isinstance(a, (list, tuple)):
            return type(a)(self._value(x) for x in a)
        if isinstance(a, dict):
            return {k: self._value(x) for k, x in a.items()}
        return a

    def _call(self, node):
        key = op_key(node.target)
        e = self.e
        e.where = f"node '{node.name}'"
        e.hint = node.name
        if key in ASSERTS or key == "higher_order.with_effects":
            self.env[node.name] = (None, None) if key == "higher_order.with_effects" else None
            return
        if self._is_scalar_node(node):
            self.env[node.name] = self._scalar_value(node.meta["val"], f"the size {node.name}")
            return
        try:
            if key == "_operator.getitem":
                base, idx = self._value(node.args[0]), node.args[1]
                value = base[idx]
            else:
                cx = NodeCtx(self, node)
                args = self._value(node.args)
                kwargs = self._value(node.kwargs)
                value = CONVERTERS[key](cx, *args, **kwargs)
            self._check(node, value)
        except UnsupportedOperatorError:
            raise
        except Exception as err:  # noqa: BLE001 -- every failure names the node and the user's line
            loc = self.locate(node)
            msg = str(err)
            raise ConversionError(f"{key} at node '{node.name}'{f' ({loc})' if loc else ''}: {msg}") from err
        self.env[node.name] = value

    def _check(self, node, value):
        """The value's kiln type must be the dtype and shape torch computed for the node."""
        import torch

        val = node.meta.get("val")
        if isinstance(value, str) and isinstance(val, torch.Tensor):
            self._check_one(value, val)
        elif isinstance(value, (list, tuple)) and isinstance(val, (list, tuple)) and len(value) == len(val):
            for v, t in zip(value, val):
                if isinstance(v, str) and isinstance(t, torch.Tensor):
                    self._check_one(v, t)

    def _check_one(self, v, fake):
        t = self.e.type_of(v)
        want = torch_dtype(fake.dtype)
        if t.dtype != want:
            raise ConversionError(f"internal: the converter gave {t.dtype}, torch computes {want}")
        if t.rank != fake.dim():
            raise ConversionError(f"internal: the converter gave shape {list(t.shape)}, torch computes "
                                  f"{list(fake.shape)}")
        known = set(self.sym_sources)
        for got, d in zip(t.shape, fake.shape):
            try:
                exp = self.dim(d)
            except ConversionError:
                continue
            if _dims.canonical(got) == _dims.canonical(exp):
                continue
            if isinstance(got, str) and not _dims.symbols(got) <= known:
                continue  # a run-time dim kiln named itself: nothing to compare
            raise ConversionError(f"internal: the converter gave shape {list(t.shape)}, torch computes "
                                  f"{[self.dim(x) for x in fake.shape]}")

    def _outputs(self):
        import torch
        from torch.export.graph_signature import OutputKind

        out_node = next(n for n in self.ep.graph.nodes if n.op == "output")
        flat = list(out_node.args[0])
        specs = self.ep.graph_signature.output_specs
        outs = []
        self.e.where, self.e.hint = "output", "output"
        for i, (spec, a) in enumerate(zip(specs, flat)):
            if spec.kind != OutputKind.USER_OUTPUT:
                continue
            if isinstance(a, torch.fx.Node):
                v = self._value(a)
                if isinstance(v, SymDim):
                    v = self.e.op("identity", self.conv_sym(v))
                elif isinstance(v, (int, float, bool)):
                    v = self.e.const(np.array(v))
            elif isinstance(a, (int, float, bool)):
                v = self.e.const(np.array(a))
            else:
                raise ConversionError(f"output {len(outs)} of the model is {a!r}; kiln graphs return tensors")
            if not isinstance(v, str):
                raise ConversionError(f"output {len(outs)} of the model is a {type(v).__name__}; kiln graphs "
                                      f"return tensors")
            outs.append(v)
        return self.e.build(outs, output_names=output_names(self.ep, len(outs)))

    def conv_sym(self, s: SymDim) -> str:
        return self.sym_tensor(s.dim, kd.int64)


def output_names(ep, n: int) -> list:
    """Names of the ``n`` flat outputs: dict keys / attribute names where the output has them, else output_<i>."""
    try:
        from torch.utils import _pytree as pytree

        tree = pytree.tree_unflatten(list(range(n)), ep.call_spec.out_spec)
        leaves, _ = pytree.tree_flatten_with_path(tree)
    except Exception:  # noqa: BLE001 -- an output type pytree cannot rebuild: positional names
        return [f"output_{i}" for i in range(n)]
    names = []
    for i, (path, _) in enumerate(leaves):
        parts = []
        for k in path:
            if hasattr(k, "key"):
                parts.append(str(k.key))
            elif hasattr(k, "name"):
                parts.append(str(k.name))
            else:
                parts.append(str(getattr(k, "idx", i)))
        named = any(hasattr(k, "key") or hasattr(k, "name") for k in path)
        names.append(_dims.sanitize_symbol("_".join(parts)) if named else f"output_{i}")
    if len(set(names)) != len(names):
        return [f"output_{i}" for i in range(n)]
    return names


def convert_program(ep, name: str = "main", names: dict | None = None, locate=None):
    """The kiln Graph of the core-ATen ExportedProgram ``ep``.

    ``names`` maps sympy symbol names to kiln dim names (see :func:`.symbolic.dim_names`);
    ``locate(node)`` gives a node's source location for error messages.
    """
    return Converter(ep, _dims.sanitize_symbol(name), names or {}, locate).run()


def user_inputs(ep) -> list:
    """``(placeholder name, fake value)`` of the program's user inputs, in order."""
    from torch.export.graph_signature import InputKind

    specs = {s.arg.name: s for s in ep.graph_signature.input_specs if hasattr(s.arg, "name")}
    return [(n.name, n.meta.get("val")) for n in ep.graph.nodes
            if n.op == "placeholder" and specs[n.name].kind == InputKind.USER_INPUT]


def from_torch(module, example_inputs, dynamic_shapes=None):
    """A kiln Graph of ``module`` (a ``torch.nn.Module`` or a callable of tensors) traced with ``example_inputs``.

    ``example_inputs``: torch tensors or numpy arrays, one per forward argument (a tuple, a list or
    a dict by argument name). ``dynamic_shapes``: the ``torch.export`` spec, e.g.
    ``{"x": {0: torch.export.Dim("batch")}}``; each declared Dim becomes a kiln symbol of that name.
    The module is traced in inference mode (``eval()``: batch norm uses its running statistics,
    dropout is the identity); its own training flag is left as it was.
    """
    from . import export as _export

    module = _export.as_module(module)
    args, kwargs = _export.as_args(example_inputs)
    _export.check_arity(module, args, kwargs)
    ep = _export.export(module, args, kwargs, dynamic_shapes)
    return convert_program(ep, type(module).__name__, dim_names(user_inputs(ep), dynamic_shapes))
