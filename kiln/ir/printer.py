"""The IR's text form. :func:`kiln.ir.parse` reads it back exactly.

    graph mlp(%x: f32[batch, 64]) {
      %w: f32[64, 10] = const
      %two: f32[] = const [2.0]
      %t: f32[batch, 10] = matmul(%x, %w)
      %y: f32[batch, 10] = mul(%t, %two) @scale
      return %y
    }

Constants with at most :data:`INLINE_LIMIT` elements carry their data inline; larger ones are
named with their type only, their data kept alongside (``parse(text, constants=g.constants)``).
Attributes equal to their default are omitted; ``@name`` follows a node whose name differs from
its first output. An absent optional operand prints as ``none``.
"""
from __future__ import annotations

import json
import re

import numpy as np

from .registry import get as get_op

INLINE_LIMIT = 16
_BARE = re.compile(r"[A-Za-z0-9_./\-]+")


def fmt_name(name: str) -> str:
    return name if _BARE.fullmatch(name) and name != "none" else json.dumps(name)


def fmt_scalar(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if f != f and np.signbit(f):
            return "-nan"  # the sign of a NaN (numpy's default NaN has it) survives a round trip
        return repr(f)
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)  # DType, dims


def fmt_attr(v, kind: str = "", indent: str = "") -> str:
    if v is None:
        return "none"
    if kind == "graph":  # a region, printed as a nested graph at the node's indentation
        return print_graph(v, indent)
    if kind == "dims":  # symbolic dims print bare: [batch, 12*seq]
        return "[" + ", ".join(str(x) for x in v) + "]"
    if isinstance(v, tuple):
        return "[" + ", ".join(fmt_scalar(x) for x in v) + "]"
    return fmt_scalar(v)


def fmt_const_data(arr: np.ndarray) -> str:
    flat = np.asarray(arr).reshape(-1)
    if flat.dtype.kind not in "biuf":  # narrow float formats: exact through float64
        flat = flat.astype(np.float64)
    return "[" + ", ".join(fmt_scalar(x.item() if hasattr(x, "item") else x) for x in flat) + "]"


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def fmt_graph_name(name: str) -> str:
    """A graph's name is read back as an identifier (no dots or dashes) or a quoted string."""
    return name if _IDENT.fullmatch(name) else json.dumps(name)


def print_graph(g, indent: str = "") -> str:
    """The text form of ``g``; nested graphs (control-flow regions) are indented by two spaces."""
    ind = indent + "  "
    sig = ", ".join(f"%{fmt_name(i)}: {g.types[i]}" for i in g.inputs)
    lines = [f"graph {fmt_graph_name(g.name)}({sig}) {{"]
    for c, arr in g.constants.items():
        line = f"{ind}%{fmt_name(c)}: {g.types[c]} = const"
        if arr.size <= INLINE_LIMIT:
            line += " " + fmt_const_data(arr)
        lines.append(line)
    for n in g.nodes:
        outs = ", ".join(f"%{fmt_name(o)}: {g.types[o]}" for o in n.outputs)
        ins = ", ".join(f"%{fmt_name(i)}" if i else "none" for i in n.inputs)
        line = f"{ind}{outs} = {n.op}({ins})"
        try:
            schema = get_op(n.op).attrs
        except KeyError:
            schema = {}
        shown = [(k, v) for k, v in n.attrs.items() if k not in schema or v != schema[k].default]
        if shown:
            line += " {" + ", ".join(f"{k}={fmt_attr(v, schema[k].kind if k in schema else '', ind)}"
                                    for k, v in shown) + "}"
        if n.name and n.name != n.outputs[0]:
            line += f" @{fmt_name(n.name)}"
        lines.append(line)
    lines.append(f"{ind}return " + ", ".join(f"%{fmt_name(o)}" for o in g.outputs))
    lines.append(indent + "}")
    return "\n".join(lines)
