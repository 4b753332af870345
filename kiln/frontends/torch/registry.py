"""The ATen converter registry: one function per ATen overload (``"aten.add.Tensor"``).

A converter is ``fn(cx, *args, **kwargs)``: ``cx`` is the node's :class:`~.convert.NodeCtx`
(the Emitter, the FX node, the result's dtype and shape as torch computed them), and the
arguments are the FX node's, with every FX node replaced by its value so far: a kiln value
name (``str``) for a tensor, an int or :class:`~.symbolic.SymDim` for a size, a tuple or list
of those for multi-result ops. It returns the node's value in the same terms.
"""
from __future__ import annotations

import operator

CONVERTERS: dict = {}

#: Nodes that only check things torch already checked at export time: they have no value.
ASSERTS = frozenset({
    "aten._assert_scalar.default", "aten._assert_tensor_metadata.default", "aten.sym_constrain_range.default",
    "aten.sym_constrain_range_for_size.default", "aten._assert_async.default", "aten._assert_async.msg",
    "aten._functional_assert_async.msg", "aten._functional_sym_constrain_range.default",
    "aten._functional_sym_constrain_range_for_size.default", "aten._print.default",
    "aten._linalg_check_errors.default",
})


def converts(*names):
    """Register the decorated function as the converter of each ATen overload in ``names``."""
    def deco(fn):
        for n in names:
            if n in CONVERTERS:
                raise ValueError(f"two converters for {n}")
            CONVERTERS[n] = fn
        return fn
    return deco


def op_key(target) -> str:
    """The registry key of an FX call target: ``aten.add.Tensor``, ``_operator.getitem``, ``higher_order.cond``."""
    if target is operator.getitem:
        return "_operator.getitem"
    if hasattr(target, "_overloadname"):  # an OpOverload prints as "aten.add.Tensor"
        return str(target)
    if type(target).__name__.endswith("Op") or hasattr(target, "_ns") and callable(getattr(target, "name", None)):
        try:
            return f"higher_order.{target.name()}"
        except TypeError:
            pass
    mod = getattr(target, "__module__", None) or ""
    qual = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)
    return f"{mod}.{qual}" if mod else qual


def load_all() -> dict:
    """Import every converter module (they register themselves) and return the registry."""
    from . import ops_create, ops_elementwise, ops_index, ops_nn, ops_reduce, ops_shape  # noqa: F401

    return CONVERTERS
