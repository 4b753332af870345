"""Parse the IR text form written by :mod:`kiln.ir.printer`.

``parse(text, constants=None)``: large constants are printed by name and type only; their data
comes from ``constants`` (name -> array). Types in the text are taken as written and checked
against each op's inference by :func:`kiln.ir.verify`.
"""
from __future__ import annotations

import json
import re

import numpy as np

from ..errors import ParseError
from . import dims as _dims
from .dtypes import dtype as _dtype
from .graph import Graph, Node
from .registry import get as get_op
from .types import TensorType

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<num>-?(?:(?:inf|nan)\b|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?))
    | (?P<ref>[%@](?:"(?:[^"\\]|\\.)*"|[A-Za-z0-9_./\-]+))
    | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<arrow>->)
    | (?P<p>[()\[\]{},=:*+\-?])
    )""",
    re.VERBOSE,
)


class _Lexer:
    def __init__(self, text: str):
        self.toks = []  # (kind, text, line)
        for lineno, line in enumerate(text.splitlines(), 1):
            pos = 0
            while pos < len(line):
                if line[pos:].strip() == "":
                    break
                m = _TOKEN.match(line, pos)
                if not m or m.end() == pos:
                    raise ParseError(f"line {lineno}: cannot read {line[pos:].strip()[:30]!r}")
                kind = m.lastgroup
                self.toks.append((kind, m.group(kind), lineno))
                pos = m.end()
            self.toks.append(("nl", "\n", lineno))
        self.i = 0

    def peek(self, skip_nl=True):
        j = self.i
        while skip_nl and j < len(self.toks) and self.toks[j][0] == "nl":
            j += 1
        return self.toks[j] if j < len(self.toks) else ("eof", "", -1)

    def next(self, skip_nl=True):
        while skip_nl and self.i < len(self.toks) and self.toks[self.i][0] == "nl":
            self.i += 1
        if self.i >= len(self.toks):
            raise ParseError("unexpected end of text")
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, text, skip_nl=True):
        k, t, line = self.next(skip_nl)
        if t != text:
            raise ParseError(f"line {line}: expected {text!r}, got {t!r}")
        return t

    def accept(self, text, skip_nl=True) -> bool:
        if self.peek(skip_nl)[1] == text:
            self.next(skip_nl)
            return True
        return False


def _unref(tok: str) -> str:
    body = tok[1:]
    return json.loads(body) if body.startswith('"') else body


def _name(tok: str) -> str:
    return json.loads(tok) if tok.startswith('"') else tok


def _parse_type(lx: _Lexer) -> TensorType:
    k, dt, line = lx.next()
    try:
        d = _dtype(dt)
    except ValueError as e:
        raise ParseError(f"line {line}: {e}") from None
    lx.expect("[")
    shape, cur = [], []
    while True:
        k, t, line = lx.next()
        if t in (",", "]"):
            if cur:
                try:
                    shape.append(_dims.parse("".join(cur)))
                except ValueError as e:
                    raise ParseError(f"line {line}: {e}") from None
            elif t == ",":
                raise ParseError(f"line {line}: empty dim")
            cur = []
            if t == "]":
                break
        else:
            cur.append(t)
    return TensorType(d, shape)


def _continues(lx: _Lexer) -> bool:
    k, t, _ = lx.peek(False)
    return t in ("*", "+", "-") or (k == "num" and t.startswith("-"))


def _parse_literal(lx: _Lexer, constants=None):
    if lx.peek()[1] == "graph":
        return _parse_graph(lx, constants or {})
    k, t, line = lx.next()
    if t == "[":
        items = []
        if lx.accept("]"):
            return items
        while True:
            items.append(_parse_literal(lx))
            if lx.accept("]"):
                return items
            lx.expect(",")
    if k == "str":
        return json.loads(t)
    if k == "num" and not _continues(lx):
        return float(t) if any(c in t for c in ".enai") else int(t)
    if k == "id" and t in ("true", "false", "none") and not _continues(lx):
        return None if t == "none" else t == "true"
    if k in ("id", "num"):
        # a dtype name or a symbolic dim expression such as 30*batch or n-1
        parts = [t]
        while _continues(lx):
            parts.append(lx.next(False)[1])
            if parts[-1] in ("*", "+", "-"):
                parts.append(lx.next(False)[1])
        return "".join(parts)
    if k == "p" and t == "-":
        raise ParseError(f"line {line}: unexpected '-'")
    raise ParseError(f"line {line}: unexpected {t!r}")


def parse(text: str, constants=None) -> Graph:
    """Parse IR text into a :class:`Graph` (see :mod:`kiln.ir.printer` for the format).

    ``constants`` supplies the data of constants printed without it, nested graphs included:
    ``parse(str(g), constants=g.all_constants())`` reads ``g`` back.
    """
    lx = _Lexer(text)
    g = _parse_graph(lx, constants or {})
    k, t, line = lx.peek()
    if k != "eof":
        raise ParseError(f"line {line}: unexpected {t!r} after the graph")
    return g


def _parse_graph(lx: _Lexer, constants) -> Graph:
    lx.expect("graph")
    k, name, line = lx.next()
    g = Graph(_name(name))
    lx.expect("(")
    if not lx.accept(")"):
        while True:
            k, ref, line = lx.next()
            if k != "ref":
                raise ParseError(f"line {line}: expected an input like %x, got {ref!r}")
            lx.expect(":")
            v = _unref(ref)
            g.inputs.append(v)
            g.types[v] = _parse_type(lx)
            if lx.accept(")"):
                break
            lx.expect(",")
    lx.expect("{")
    while True:
        k, t, line = lx.peek()
        if t == "return":
            lx.next()
            outs = []
            while lx.peek(False)[0] == "ref":
                outs.append(_unref(lx.next(False)[1]))
                if not lx.accept(",", False):
                    break
            g.outputs = outs
            lx.expect("}")
            break
        outs = []
        while True:
            k, ref, line = lx.next()
            if k != "ref" or not ref.startswith("%"):
                raise ParseError(f"line {line}: expected a value like %x, got {ref!r}")
            lx.expect(":")
            v = _unref(ref)
            if v in g.types:
                raise ParseError(f"line {line}: value %{v} is defined twice")
            g.types[v] = _parse_type(lx)
            outs.append(v)
            if not lx.accept(","):
                break
        lx.expect("=")
        k, opname, line = lx.next()
        if opname == "const":
            if len(outs) != 1:
                raise ParseError(f"line {line}: a const defines one value")
            v = outs[0]
            t = g.types[v]
            if lx.peek(False)[1] == "[":
                data = _parse_literal(lx)
                try:
                    arr = np.array(data, dtype=np.float64 if t.dtype.np.kind not in "biuf" else t.dtype.np)
                    arr = arr.astype(t.dtype.np).reshape(t.shape)
                except (ValueError, TypeError) as e:
                    raise ParseError(f"line {line}: constant %{v}: {e}") from None
            elif v in constants:
                arr = np.asarray(constants[v])
            else:
                raise ParseError(f"line {line}: constant %{v} ({t}) has no inline data and was not given in constants=")
            if arr.dtype != t.dtype.np or tuple(arr.shape) != tuple(t.shape):
                raise ParseError(f"line {line}: constant %{v} data is {arr.dtype}{list(arr.shape)}, text says {t}")
            arr = np.array(arr, order="C")
            arr.flags.writeable = False
            g.constants[v] = arr
            continue
        try:
            opdef = get_op(opname)
        except KeyError:
            raise ParseError(f"line {line}: unknown op {opname!r}") from None
        lx.expect("(")
        ins = []
        if not lx.accept(")"):
            while True:
                k, ref, line2 = lx.next()
                if ref == "none":
                    ins.append("")
                elif k == "ref" and ref.startswith("%"):
                    ins.append(_unref(ref))
                else:
                    raise ParseError(f"line {line2}: expected an operand like %x, got {ref!r}")
                if lx.accept(")"):
                    break
                lx.expect(",")
        attrs = {}
        if lx.peek(False)[1] == "{":
            lx.next(False)
            while True:
                k, key, line2 = lx.next()
                lx.expect("=")
                attrs[key] = _parse_literal(lx, constants)
                if lx.accept("}"):
                    break
                lx.expect(",")
        node_name = outs[0]
        if lx.peek(False)[0] == "ref" and lx.peek(False)[1].startswith("@"):
            node_name = _unref(lx.next(False)[1])
        try:
            attrs = opdef.normalize_attrs(attrs, f"line {line}: {opname}")
        except ValueError as e:
            raise ParseError(str(e)) from None
        g.nodes.append(Node(opname, ins, outs, attrs, node_name))
    return g
