"""Getting an ExportedProgram: the module and its example inputs through ``torch.export`` and core ATen.

Everything torch can fail with here (data-dependent control flow, a dim the spec calls dynamic
that the model fixes, wrong inputs) comes back as one :class:`kiln.ConversionError` paragraph
that names the module, the line of the user's code where tracing stopped and torch's own first
line; the torch traceback is not chained on (``err.torch_error`` keeps it for debugging).
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import traceback

from ...errors import ConversionError, KilnError
from .location import user_frame


def as_module(fn):
    """``fn`` itself when it is a ``torch.nn.Module``, else a Module whose forward calls it."""
    import torch

    if isinstance(fn, torch.nn.Module):
        return fn
    if not callable(fn):
        raise TypeError(f"from_torch takes a torch.nn.Module or a callable, got {type(fn).__name__}")

    class Function(torch.nn.Module):
        def __init__(self, f):
            super().__init__()
            self.f = f

        def forward(self, *args, **kwargs):
            return self.f(*args, **kwargs)

    Function.__name__ = getattr(fn, "__name__", "Function")
    Function.__qualname__ = Function.__name__
    m = Function(_named_forward(fn))
    try:  # forward takes the function's argument names, so the graph inputs do too
        sig = inspect.signature(fn)
        if all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in sig.parameters.values()):
            params = list(sig.parameters)
            src = f"def forward(self, {', '.join(params)}):\n    return self.f({', '.join(params)})\n"
            scope: dict = {}
            exec(compile(src, f"<kiln wrapper of {Function.__name__}>", "exec"), scope)  # noqa: S102
            Function.forward = scope["forward"]
    except (TypeError, ValueError, SyntaxError):  # builtins without a signature, odd names: keep *args
        pass
    return m


def _named_forward(fn):
    """``fn`` with its code named ``forward``: torch.export records the source lines of frames named
    forward only, so this keeps the user's lines in the nodes' stack traces (for error messages)."""
    import types

    if not isinstance(fn, types.FunctionType):
        return fn
    code = fn.__code__.replace(co_name="forward")
    if hasattr(code, "co_qualname"):
        code = code.replace(co_qualname=f"{fn.__qualname__} (forward)")
    g = types.FunctionType(code, fn.__globals__, "forward", fn.__defaults__, fn.__closure__)
    g.__kwdefaults__ = fn.__kwdefaults__
    return g


def as_args(example_inputs):
    """``(args, kwargs)`` of torch tensors from a tuple/list/single array or a dict of them."""
    import numpy as np
    import torch

    def conv(a):
        if isinstance(a, np.ndarray) or isinstance(a, np.generic):
            return torch.from_numpy(np.ascontiguousarray(a))
        return a

    if example_inputs is None:
        raise ValueError("from_torch needs example_inputs (a tuple of tensors or arrays, one per forward argument)")
    if isinstance(example_inputs, dict):
        return (), {k: conv(v) for k, v in example_inputs.items()}
    if isinstance(example_inputs, (list, tuple)):
        return tuple(conv(a) for a in example_inputs), {}
    return (conv(example_inputs),), {}


def check_arity(module, args, kwargs) -> None:
    """A clear error when forward cannot take the example inputs (before torch.export tries)."""
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        n = len(args) + len(kwargs)
        raise ValueError(f"example_inputs has {n} input(s) but {type(module).__name__}.forward{sig} cannot take "
                         f"them: {e}") from None


def export(module, args, kwargs, dynamic_shapes):
    """``torch.export.export(module.eval(), ...).run_decompositions()``; module's training flag is restored."""
    import torch

    name = type(module).__name__
    was_training = module.training
    module.eval()
    args, kwargs = widen_unit_dims(module, args, kwargs, dynamic_shapes)
    try:
        with _quiet_torch():
            try:
                ep = run_export(torch.export.export, module, args, kwargs=kwargs or None,
                                dynamic_shapes=dynamic_shapes)
            except KilnError:
                raise
            except Exception as e:  # noqa: BLE001 -- every torch failure becomes one clear message
                raise _export_error(name, "torch.export could not trace", e) from None
            try:
                return ep.run_decompositions()
            except Exception as e:  # noqa: BLE001
                raise _export_error(name, "torch could not decompose the exported program of", e) from None
    finally:
        module.train(was_training)


def widen_unit_dims(module, args, kwargs, dynamic_shapes):
    """The example inputs with every dim of size 1 that ``dynamic_shapes`` declares dynamic doubled.

    torch.export specializes sizes 0 and 1 (a batch of one example would pin ``Dim("batch")`` to 1 and
    fail); the same example repeated along that dim traces the general graph, which is what the spec
    asks for. Dims of size 0 and dims declared ``Dim.STATIC`` are left alone.
    """
    import torch

    if not dynamic_shapes:
        return args, kwargs
    try:
        bound = inspect.signature(module.forward).bind(*args, **kwargs).arguments
    except (TypeError, ValueError):
        return args, kwargs
    if isinstance(dynamic_shapes, dict):
        specs = dynamic_shapes
    else:
        specs = dict(zip(bound, dynamic_shapes))
    widened = {}
    for arg, spec in specs.items():
        t = bound.get(arg)
        if not isinstance(t, torch.Tensor) or spec is None:
            continue
        items = spec.items() if isinstance(spec, dict) else enumerate(spec)
        for axis, dim in items:
            if dim is None or isinstance(dim, int) or dim is torch.export.Dim.STATIC:
                continue
            if getattr(dim, "max", 2) is not None and getattr(dim, "max", 2) < 2:
                continue
            if -t.dim() <= axis < t.dim() and t.shape[axis] == 1:
                t = torch.cat([t, t], dim=axis)
        if t is not bound.get(arg):
            widened[arg] = t
    if not widened:
        return args, kwargs
    names = list(bound)
    args = tuple(widened.get(names[i], a) for i, a in enumerate(args))
    kwargs = {k: widened.get(k, v) for k, v in kwargs.items()}
    return args, kwargs


def run_export(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` (torch.export.export) without the partial graph torch prints to stderr when
    it fails; anything else written to stderr meanwhile (the model's own warnings) still gets there."""
    import io
    import sys

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return fn(*args, **kwargs)
    except Exception as e:
        partial = getattr(e, "partial_fx_graph", None)
        text = captured.getvalue()
        captured = io.StringIO(text.replace(str(partial), "").strip("\n") if partial is not None else text)
        raise
    finally:
        text = captured.getvalue()
        if text.strip():
            sys.stderr.write(text if text.endswith("\n") else text + "\n")


def _export_error(name, what, e) -> ConversionError:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    first = lines[0] if lines else type(e).__name__
    details = [ln[2:] for ln in lines[1:] if ln.startswith("- ")][:3]  # torch's list of violated constraints
    if details:
        first = first.split("! For more information")[0] + ": " + "; ".join(details)
    first = first.rstrip(".")
    if len(first) > 400:
        first = first[:397] + "..."
    where = user_frame(traceback.extract_tb(e.__traceback__))
    hint = ""
    text = f"{type(e).__name__} {str(e)}"
    if "data-dependent" in text or "DataDependent" in text or "GuardOnDataDependent" in text:
        hint = (" The model's control flow or a size depends on the values in a tensor (.item(), nonzero(), a "
                "Python if on a tensor); kiln compiles graphs whose shapes follow from the input shapes: use "
                "torch.where, or move the branch out of forward.")
    elif "Constraints violated" in text or "specialized" in text:
        hint = (" A dim declared dynamic in dynamic_shapes is fixed by the model (or related to another dim); "
                "declare it static, or as the derived Dim torch suggests.")
    err = ConversionError(f"{what} {name}{f' at {where}' if where else ''}: {type(e).__name__}: {first}.{hint}")
    err.torch_error = e
    return err


@contextlib.contextmanager
def _quiet_torch():
    """Silence the tracebacks torch logs on its own while tracing (its error is reported instead)."""
    import warnings

    loggers = [logging.getLogger(n) for n in ("torch._subclasses.fake_tensor", "torch.fx.experimental.symbolic_shapes",
                                             "torch._dynamo", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            # torch's own deprecation notice from inside run_decompositions, not about the user's code
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)
