"""The launch table of the GPU-style targets (``opencl``, ``cuda``): the ``launch.json`` member.

It tells the runtime, per kernel, which entry points to launch with what geometry (work-groups as an
expression over the symbols, threads per group, the schedule's strategy), and per call which buffers
the kernel's parameters are (inputs and outputs by index, weights and workspace by offset). Integer
expressions over the symbols are JSON (see :func:`encode`); ``kiln.runtime.launch.evaluate`` reads them.
"""
from __future__ import annotations

import json

from ..ir import loops as L

LAUNCH_TABLE = "launch.json"
VERSION = 1

_OPS = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//", "mod": "%", "min": "min", "max": "max"}


def encode(e: L.Expr):
    """An int64 expression over symbols as JSON: an int, a symbol name, or ``[op, a, b]`` with op one
    of ``+ - * // % min max`` (floor division and modulo); the runtime evaluates it per call."""
    e = L.simplify(e)
    if isinstance(e, L.Const):
        return int(e.value)
    if isinstance(e, L.Var):
        return e.name
    if isinstance(e, L.Bin) and e.op in _OPS and e.dtype.is_int:
        return [_OPS[e.op], encode(e.a), encode(e.b)]
    raise ValueError(f"launch expression {L.fmt_expr(e)} is not integer arithmetic over the symbols")


def launch_table(program, kernels: dict, **extra) -> bytes:
    """The ``launch.json`` bytes of ``program`` whose kernels were scheduled into ``kernels``
    (name -> ``{"launches": [...], ...}``); ``extra`` keys go at the top level."""
    calls = []
    for c in program.calls:
        args = []
        for a in c.args:
            if a.kind in ("input", "output"):
                args.append({"kind": a.kind, "index": a.index})
            else:
                args.append({"kind": a.kind, "offset": encode(L.dim_expr(a.offset))})
        calls.append({"kernel": c.kernel, "args": args, "syms": list(c.syms)})
    table = {"version": VERSION, "symbols": list(program.symbols), "kernels": kernels, "calls": calls,
             "workspace": encode(L.dim_expr(program.workspace_size)), **extra}
    return json.dumps(table, indent=1).encode("utf-8")
