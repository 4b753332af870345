"""Small helpers shared by the ONNX converter modules.

``ctx`` is a :class:`~kiln.frontends.onnx.importer.NodeContext`, or anything that emits the same
way (``op``, ``const``, ``type_of``; e.g. the region emitter of ``signal.py``). A rank-0 constant
of a given dtype is ``ctx.const(value, dtype)``.
"""
from __future__ import annotations

from ....ir import dtypes as kd


def scalar_like(ctx, value, like):
    """A rank-0 constant ``value`` with the dtype of the value ``like``."""
    return ctx.const(value, ctx.type_of(like).dtype)


def cast(ctx, v, to):
    """Value ``v`` cast to kiln dtype ``to`` (a dtype or its name); ``v`` itself when it has it."""
    to = kd.dtype(to)
    return v if ctx.type_of(v).dtype == to else ctx.op("cast", v, to=to)


def slice_last(ctx, x, start, end, step=1):
    """``x[..., start:end:step]``."""
    return ctx.op("slice", x, starts=[start], ends=[end], axes=[-1], steps=[step])
