"""``torch.compile(model, backend="kiln")``: each graph dynamo captures is compiled by kiln.

Registered through the ``torch_dynamo_backends`` entry point (``kiln = kiln.frontends.torch.backend:
kiln_backend``). Dynamo hands the backend one FX graph per piece of the model between graph breaks;
:func:`kiln_backend` returns a callable that compiles lazily, on the first call with real tensors
(the example inputs dynamo passes may be FakeTensors and SymInts), and caches what it compiled:

- the graph is wrapped in a module that holds the graph inputs dynamo marks as static (the model's
  parameters and buffers) as its buffers, so they become kiln constants; a weight changed in place
  (its version counter moves) makes the next call compile again;
- a static graph is compiled per input signature (shapes and dtypes). When dynamo makes a graph
  dynamic (its sizes become SymInts, after a call with a new shape), the graph is exported with those
  dims declared dynamic and compiled once with symbolic dims, so later sizes need no compile; the
  SymInt inputs are read off the tensors' shapes. Where that does not go through (a size kiln cannot
  express symbolically), it compiles per signature instead, with the sizes of the call baked in;
- the wrapper goes through ``torch.export`` and :func:`~.convert.convert_program`, then
  ``kiln.compile``; results come back as torch tensors in the structure the graph returns.

A graph kiln cannot convert or compile (an unsupported op, say) runs eagerly instead, with one
warning naming the ops and the user's lines; ``options={"fallback": False}`` raises instead. Other
options: ``target`` (default ``"cpu"``), ``opt_level``, ``num_threads``. kiln compiles inference:
results carry no autograd history.
"""
from __future__ import annotations

import warnings

from ...errors import KilnError, UnsupportedOperatorError

OPTIONS = ("target", "fallback", "opt_level", "num_threads")


def kiln_backend(gm, example_inputs, **kwargs):
    """The dynamo backend: returns the callable that runs ``gm`` through kiln."""
    options = dict(kwargs.pop("options", None) or {})
    unknown = sorted(set(options) - set(OPTIONS)) + sorted(kwargs)
    if unknown:
        raise ValueError(f"kiln backend: unknown option(s) {', '.join(unknown)}; it takes {', '.join(OPTIONS)}")
    return KilnGraphFunction(gm, example_inputs, options)


def _compile_graph(graph, options: dict):
    """kiln.compile with the backend's options (a seam tests count compilations through)."""
    from ...compiler.compile import compile as kiln_compile

    return kiln_compile(graph, options.get("target", "cpu"), opt_level=options.get("opt_level", 2),
                        num_threads=options.get("num_threads"))


class KilnGraphFunction:
    """Runs one dynamo graph: kiln models by input signature, or the graph itself where kiln cannot."""

    def __init__(self, gm, example_inputs, options: dict):
        self.gm = gm
        self.options = options
        self.fallback = bool(options.get("fallback", True))
        self.kinds = _input_kinds(gm, example_inputs)
        self.plan = _symbolic_plan(gm, self.kinds)  # None: compile per signature
        self.cache: dict = {}
        self.symbolic_error = None  # why the symbolic compile did not go through, if it did not
        self.eager_reason = None  # set when the graph has ops kiln lacks: every signature runs eagerly
        self.warned = False

    def __call__(self, *args):
        if self.eager_reason is not None:
            return self.gm(*args)
        runner = self.cache.get(self._key(args))
        if runner is None:
            runner = self._build(args)
            self.cache[self._key(args)] = runner  # (the key drops symbolic dims only while self.plan holds)
        return runner(args)

    def _key(self, args):
        import torch

        key = []
        for i, (kind, a) in enumerate(zip(self.kinds, args)):
            if isinstance(a, torch.Tensor):
                dynamic = self.plan["axes"].get(i, {}) if self.plan else {}
                shape = tuple(None if k in dynamic else d for k, d in enumerate(a.shape))
                key.append((kind, shape, a.dtype, a.device.type) + ((id(a), a._version) if kind == "weight" else ()))
            elif not self.plan:  # a size: part of the signature unless read off the tensors
                key.append((kind, a))
        return tuple(key)

    def _build(self, args):
        try:
            if self.plan is not None:
                try:
                    return _Compiled(self.gm, self.kinds, args, self.options, self.plan)
                except KilnError as err:  # not expressible with symbolic dims: one model per signature
                    self.symbolic_error = err
                    self.plan = None
                    self.cache.clear()
            return _Compiled(self.gm, self.kinds, args, self.options, None)
        except KilnError as err:
            if not self.fallback:
                raise
            if isinstance(err, UnsupportedOperatorError):
                self.eager_reason = err
            self._warn(err)
            gm = self.gm
            return lambda call_args: gm(*call_args)

    def _warn(self, err):
        if self.warned:
            return
        self.warned = True
        warnings.warn(f"kiln backend: running a graph eagerly (torch) because kiln cannot compile it: {err}",
                      RuntimeWarning, stacklevel=3)


def _input_kinds(gm, example_inputs) -> list:
    """Per placeholder of ``gm``: "weight" (a parameter or buffer dynamo passes as an input), "size"
    (a SymInt / int) or "tensor"."""
    import torch

    kinds = []
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for i, node in enumerate(placeholders):
        ex = example_inputs[i] if i < len(example_inputs) else node.meta.get("example_value")
        static = "_dynamo_static_input_type" in (node.meta.get("tensor_dict") or {})
        if isinstance(ex, torch.nn.Parameter) or (static and isinstance(ex, torch.Tensor)):
            kinds.append("weight")
        elif isinstance(ex, torch.Tensor):
            kinds.append("tensor")
        else:
            kinds.append("size")
    return kinds


def _symbolic_plan(gm, kinds):
    """For a graph dynamo made dynamic: ``{"axes": {input: {axis: symbol}}, "sizes": {input: (input, axis)}}``
    (which tensor dims are symbols, and where each SymInt input can be read off), or None."""
    axes: dict = {}
    where: dict = {}
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for i, (kind, node) in enumerate(zip(kinds, placeholders)):
        ex = node.meta.get("example_value")
        if kind != "tensor" or not hasattr(ex, "shape"):
            continue
        for k, d in enumerate(ex.shape):
            expr = getattr(getattr(d, "node", None), "expr", None)
            if expr is not None and expr.is_Symbol:
                axes.setdefault(i, {})[k] = expr.name
                where.setdefault(expr.name, (i, k))
    if not axes:
        return None
    sizes = {}
    for i, (kind, node) in enumerate(zip(kinds, placeholders)):
        if kind != "size":
            continue
        expr = getattr(getattr(node.meta.get("example_value"), "node", None), "expr", None)
        if expr is None or not expr.is_Symbol or expr.name not in where:
            return None  # a size that is not a dim of an input tensor: bake sizes in per signature
        sizes[i] = where[expr.name]
    return {"axes": axes, "sizes": sizes}


class _Compiled:
    """The kiln model of ``gm`` (for one input signature, or for every size of its symbolic dims)."""

    def __init__(self, gm, kinds, args, options, plan):
        import torch

        from .convert import convert_program, user_inputs
        from .export import _export_error, _quiet_torch, run_export
        from .symbolic import dim_names

        self.kinds = kinds
        wrapper = _Bound(gm, kinds, args, plan)
        feeds = tuple(a for k, a in zip(kinds, args) if k == "tensor")
        spec = _dynamic_shapes(kinds, plan) if plan else None
        with _quiet_torch():
            try:
                ep = run_export(torch.export.export, wrapper, feeds, dynamic_shapes={"xs": spec} if spec else None)
                ep = ep.run_decompositions()
            except Exception as e:  # noqa: BLE001 -- reported (and run eagerly) as a kiln error
                raise _export_error(f"the graph {type(gm).__name__}", "torch.export could not trace", e) from None
        names = dim_names(user_inputs(ep), spec) if spec else {}
        graph = convert_program(ep, "dynamo_graph", names, locate=_locator(gm))
        self.model = _compile_graph(graph, options)
        self.out_spec = ep.call_spec.out_spec
        self.device = next((a.device for a in feeds), None)
        self.scalars = _scalar_outputs(ep)  # sizes and numbers the graph returns: Python values, not tensors

    def __call__(self, args):
        from torch.utils import _pytree as pytree

        feeds = [_as_numpy(a) for k, a in zip(self.kinds, args) if k == "tensor"]
        outs = [_as_torch(o, self.device) for o in self.model(*feeds)]
        for i in self.scalars:
            outs[i] = outs[i].item()
        return pytree.tree_unflatten(outs, self.out_spec) if self.out_spec is not None else tuple(outs)


def _scalar_outputs(ep) -> list:
    """Positions of the program's user outputs that are Python numbers (a SymInt dynamo passes on, say)."""
    import torch
    from torch.export.graph_signature import OutputKind

    flat = list(next(n for n in ep.graph.nodes if n.op == "output").args[0])
    user = [a for spec, a in zip(ep.graph_signature.output_specs, flat) if spec.kind == OutputKind.USER_OUTPUT]
    return [i for i, a in enumerate(user)
            if not isinstance(a.meta.get("val") if isinstance(a, torch.fx.Node) else a, torch.Tensor)]


def _dynamic_shapes(kinds, plan):
    """The torch.export spec of the wrapper's tensor inputs: one Dim per dynamo symbol."""
    from torch.export import Dim

    from ...ir.dims import sanitize_symbol

    dims: dict = {}
    spec = []
    for i, k in enumerate(kinds):
        if k != "tensor":
            continue
        axes = plan["axes"].get(i, {})
        spec.append({a: dims.setdefault(s, Dim(sanitize_symbol(s))) for a, s in axes.items()} or None)
    return tuple(spec)


def _Bound(gm, kinds, args, plan):
    """A Module calling ``gm`` with the weights as its buffers; sizes read off the tensors (``plan``) or
    fixed to this call's values."""
    import torch

    positions = [i for i, k in enumerate(kinds) if k == "tensor"]
    slot = {i: n for n, i in enumerate(positions)}  # placeholder index -> position among the tensors

    class Bound(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gm = gm
            self.fixed = {}
            for i, (k, a) in enumerate(zip(kinds, args)):
                if k == "weight":
                    self.register_buffer(f"w{i}", a.detach())
                elif k == "size" and plan is None:
                    self.fixed[i] = int(a)

        def forward(self, *xs):
            full = []
            for i, k in enumerate(kinds):
                if k == "weight":
                    full.append(getattr(self, f"w{i}"))
                elif k == "tensor":
                    full.append(xs[slot[i]])
                elif plan is not None:
                    t, axis = plan["sizes"][i]
                    full.append(xs[slot[t]].shape[axis])
                else:
                    full.append(self.fixed[i])
            return self.gm(*full)

    return Bound()


def _locator(gm):
    """``locate(node)`` for the exported wrapper: the user's line of the dynamo node it came from."""
    from .location import location_of, stack_location

    by_name = {n.name: n for n in gm.graph.nodes}

    def locate(node):
        seen, todo, found = set(), list(node.meta.get("from_node") or []), None
        while todo:
            src = todo.pop(0)
            if id(src) in seen:
                continue
            seen.add(id(src))
            name = getattr(src, "name", None)
            if name in by_name and by_name[name].meta.get("stack_trace"):
                found = by_name[name]
            todo.extend(getattr(src, "from_node", None) or [])
        if found is not None:
            return location_of(found.meta["stack_trace"])
        return stack_location(node)

    return locate


def _as_numpy(t):
    import torch

    from .tensors import to_numpy

    if t.dtype == torch.bfloat16 or "float8" in str(t.dtype):  # numpy has no such dtype: through ml_dtypes
        return to_numpy(t)
    return t.detach().cpu().numpy()


def _as_torch(a, device):
    import numpy as np
    import torch

    from ...ir import dtypes as kd

    a = np.require(a, requirements="C")  # (not ascontiguousarray: that makes a 0-d result 1-d)
    if kd.dtype(a.dtype).name == "bf16":
        t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(a)
    return t if device is None or device.type == "cpu" else t.to(device)
