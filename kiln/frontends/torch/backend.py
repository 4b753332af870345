"""``torch.compile(model, backend="kiln")``: each graph dynamo captures is compiled by kiln.

Registered through the ``torch_dynamo_backends`` entry point (``kiln = kiln.frontends.torch.backend:
kiln_backend``). Dynamo hands the backend one FX graph per piece of the model between graph breaks;
:func:`kiln_backend` returns a callable that, on each call, looks up the kiln model compiled for
the shapes and dtypes of the tensors it is given, compiling it the first time it sees them:

- the graph is wrapped in a module whose parameters and buffers (the graph inputs dynamo marks as
  static: the model's weights) are held as buffers, so they become kiln constants; a weight that
  changes in place (its version counter moves) makes the next call compile again;
- the sizes dynamo passes as SymInt inputs (when it makes a graph dynamic) are taken from the call
  and baked in, so the example inputs may be FakeTensors or SymInts: only the real call is traced;
- the wrapper goes through ``torch.export`` and :func:`~.convert.convert_program`, then
  ``kiln.compile``; results come back as torch tensors in the structure the graph returns.

A graph kiln cannot convert or compile (an unsupported op, say) runs eagerly instead, with one
warning naming the ops and the user's lines; ``options={"fallback": False}`` raises instead.
Other options: ``target`` (default ``"cpu"``), ``opt_level``, ``num_threads``. kiln compiles
inference: results carry no autograd history.
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
    """Runs one dynamo graph: a kiln model per input signature, or the graph itself where kiln cannot."""

    def __init__(self, gm, example_inputs, options: dict):
        self.gm = gm
        self.options = options
        self.fallback = bool(options.get("fallback", True))
        self.kinds = _input_kinds(gm, example_inputs)
        self.cache: dict = {}
        self.eager_reason = None  # set when the graph has ops kiln lacks: every signature runs eagerly
        self.warned = False

    def __call__(self, *args):
        if self.eager_reason is not None:
            return self.gm(*args)
        key = self._key(args)
        runner = self.cache.get(key)
        if runner is None:
            runner = self.cache[key] = self._build(args)
        return runner(args)

    def _key(self, args):
        import torch

        key = []
        for kind, a in zip(self.kinds, args):
            if isinstance(a, torch.Tensor):
                key.append((kind, tuple(a.shape), a.dtype, a.device.type) +
                           ((id(a), a._version) if kind == "weight" else ()))
            else:
                key.append((kind, a))
        return tuple(key)

    def _build(self, args):
        try:
            return _Compiled(self.gm, self.kinds, args, self.options)
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


class _Compiled:
    """The kiln model of ``gm`` for one input signature, and how to call it with torch tensors."""

    def __init__(self, gm, kinds, args, options):
        import torch

        from .convert import convert_program
        from .export import _export_error, _quiet_torch

        self.kinds = kinds
        wrapper = _Bound(gm, kinds, args)
        feeds = tuple(a for k, a in zip(kinds, args) if k == "tensor")
        with _quiet_torch():
            try:
                ep = torch.export.export(wrapper, feeds).run_decompositions()
            except Exception as e:  # noqa: BLE001 -- reported (and run eagerly) as a kiln error
                raise _export_error(f"the graph {type(gm).__name__}", "torch.export could not trace", e) from None
        graph = convert_program(ep, "dynamo_graph", {}, locate=_locator(gm))
        self.model = _compile_graph(graph, options)
        self.out_spec = ep.call_spec.out_spec
        self.device = next((a.device for a in feeds if isinstance(a, torch.Tensor)), None)

    def __call__(self, args):
        from torch.utils import _pytree as pytree

        feeds = [_as_numpy(a) for k, a in zip(self.kinds, args) if k == "tensor"]
        outs = [_as_torch(o, self.device) for o in self.model(*feeds)]
        return pytree.tree_unflatten(outs, self.out_spec) if self.out_spec is not None else tuple(outs)


def _Bound(gm, kinds, args):
    """A Module calling ``gm`` with the weights as its buffers and the sizes fixed to this call's values."""
    import torch

    class Bound(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gm = gm
            self.fixed = {}
            for i, (k, a) in enumerate(zip(kinds, args)):
                if k == "weight":
                    self.register_buffer(f"w{i}", a.detach())
                elif k == "size":
                    self.fixed[i] = int(a)

        def forward(self, *xs):
            it = iter(xs)
            full = [getattr(self, f"w{i}") if k == "weight" else self.fixed[i] if k == "size" else next(it)
                    for i, k in enumerate(kinds)]
            return self.gm(*full)

    return Bound()


def _locator(gm):
    """``locate(node)`` for the exported wrapper: the user's line of the dynamo node it came from."""
    from .convert import location_of, stack_location

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

    from .convert import to_numpy

    if t.dtype == torch.bfloat16 or "float8" in str(t.dtype):  # numpy has no such dtype: through ml_dtypes
        return to_numpy(t)
    return t.detach().cpu().numpy()


def _as_torch(a, device):
    import numpy as np
    import torch

    from ...ir import dtypes as kd

    kdt = kd.dtype(a.dtype)
    if kdt.name == "bf16":
        t = torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(np.ascontiguousarray(a))
    return t if device is None or device.type == "cpu" else t.to(device)
