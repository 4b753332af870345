"""Converters for ONNX control flow: If, Loop, Scan (opset 9+), onto kiln's region ops.

Bodies are converted by :meth:`NodeContext.region`; values a body reads from enclosing graphs
become explicit captures (see :mod:`kiln.ir.ops.control`). Loop-carried and scan-state inputs
get fresh symbolic dims, since their shapes may change from one iteration to the next.
"""
from __future__ import annotations

from ....ir.types import TensorType
from ..registry import converter


def _varying(t: TensorType, hint: str) -> TensorType:
    """A body input whose shape may change per iteration: every dim becomes a body symbol."""
    from ....ir.dims import sanitize_symbol

    base = sanitize_symbol(hint)
    return t.with_shape([f"{base}_d{k}" for k in range(t.rank)])


def _align(ctx, graphs_and_caps):
    """Give every region the union of all captures, in one order; returns (graphs, captures)."""
    order = []
    for _, caps in graphs_and_caps:
        for c in caps:
            if c not in order:
                order.append(c)
    out = []
    for g, caps in graphs_and_caps:
        n_formal = len(g.inputs) - len(caps)
        by_outer = dict(zip(caps, g.inputs[n_formal:]))
        g = g.copy()
        cap_inputs = []
        for c in order:
            if c in by_outer:
                cap_inputs.append(by_outer[c])
            else:  # a value only the other branch reads: an unused input here
                name = c
                k = 0
                while name in g.types:
                    k += 1
                    name = f"{c}_{k}"
                g.types[name] = ctx.type_of(c)
                cap_inputs.append(name)
        g.inputs = g.inputs[:n_formal] + cap_inputs
        out.append(g)
    return out, order


@converter("If", since=1)
def if_(ctx):
    cond = ctx.const_value(0)
    if cond is not None:  # decided at compile time: only the taken branch remains
        g, caps = ctx.region("then_branch" if bool(cond.reshape(-1)[0]) else "else_branch")
        return ctx.inline(g, caps)
    (then_g, else_g), caps = _align(ctx, [ctx.region("then_branch"), ctx.region("else_branch")])
    res = ctx.op("if", ctx.input(0), *caps, then_branch=then_g, else_branch=else_g)
    return res if isinstance(res, tuple) else [res]


@converter("Loop", since=1)
def loop(ctx):
    carried = [ctx.input(i) for i in range(2, ctx.num_inputs)]
    types = [TensorType("i64", ()), TensorType("bool", ())]
    types += [_varying(ctx.type_of(v), f"{ctx.name}_v{k}") for k, v in enumerate(carried)]
    (body,), caps = _align(ctx, [ctx.region("body", types)])
    res = ctx.op("loop", ctx.input(0), ctx.input(1), *carried, *caps, body=body, num_carried=len(carried))
    return res if isinstance(res, tuple) else [res]


@converter("Scan", since=9)
def scan(ctx):
    m = ctx.attr("num_scan_inputs")
    n = ctx.num_inputs - m
    states = [ctx.input(i) for i in range(n)]
    xs = [ctx.input(i) for i in range(n, ctx.num_inputs)]
    in_axes = list(ctx.attr("scan_input_axes", [0] * m))
    types = [_varying(ctx.type_of(v), f"{ctx.name}_s{k}") for k, v in enumerate(states)]
    for x, a in zip(xs, in_axes):
        t = ctx.type_of(x)
        a %= t.rank
        types.append(t.with_shape(t.shape[:a] + t.shape[a + 1:]))
    (body,), caps = _align(ctx, [ctx.region("body", types)])
    res = ctx.op("scan", *states, *xs, *caps, body=body, num_states=n, num_scan_inputs=m,
                 scan_input_axes=in_axes, scan_input_directions=ctx.attr("scan_input_directions", []),
                 scan_output_axes=ctx.attr("scan_output_axes", []),
                 scan_output_directions=ctx.attr("scan_output_directions", []))
    return res if isinstance(res, tuple) else [res]
