"""The verifier: checks a graph's invariants and names the offending node.

- every value is defined exactly once (input, constant or node output), before it is used;
- every node's op exists, its arity and attributes match the op's schema;
- every node's recorded output types equal its op's type inference on its input types
  (a dim inferred as run-time-only may be any symbol);
- constants' arrays match their types; graph outputs are defined.
"""
from __future__ import annotations

import numpy as np

from ..errors import VerificationError
from . import dims as _dims
from .builder import infer_node
from .graph import Graph
from .registry import get as get_op


def verify(g: Graph) -> Graph:
    """Raise :class:`kiln.VerificationError` on the first broken invariant; returns ``g``."""
    defined = set()
    for i in g.inputs:
        if i in defined:
            raise VerificationError(f"graph '{g.name}': input '{i}' is listed twice")
        if i not in g.types:
            raise VerificationError(f"graph '{g.name}': input '{i}' has no type")
        defined.add(i)
    for c, arr in g.constants.items():
        if c in defined:
            raise VerificationError(f"graph '{g.name}': constant '{c}' is also a graph input")
        t = g.types.get(c)
        if t is None:
            raise VerificationError(f"graph '{g.name}': constant '{c}' has no type")
        a = np.asarray(arr)
        if a.dtype != t.dtype.np or tuple(a.shape) != tuple(t.shape):
            raise VerificationError(f"graph '{g.name}': constant '{c}' holds {a.dtype}{list(a.shape)} but is typed {t}")
        defined.add(c)
    for n in g.nodes:
        try:
            opdef = get_op(n.op)
        except KeyError:
            raise VerificationError(f"{n.label}: unknown op '{n.op}'") from None
        try:
            opdef.check_arity(len(n.inputs), n.label)
        except ValueError as e:
            raise VerificationError(str(e)) from None
        for k, v in enumerate(n.inputs):
            if v and v not in defined:
                raise VerificationError(f"{n.label}: input {opdef.input_name(k)} '{v}' is not defined before use")
        try:
            attrs = opdef.normalize_attrs(n.attrs, n.label)
        except ValueError as e:
            raise VerificationError(str(e)) from None
        if attrs != dict(n.attrs):
            raise VerificationError(f"{n.label}: attributes {dict(n.attrs)} are not in canonical form {attrs}")
        for key, schema in opdef.attrs.items():
            if schema.kind == "graph" and attrs[key] is not None:
                try:
                    verify(attrs[key])
                except VerificationError as e:
                    raise VerificationError(f"{n.label}, region '{key}': {e}") from None
        try:
            types = infer_node(opdef, [g.types[v] if v else None for v in n.inputs], attrs, n.label)
        except (ValueError, TypeError) as e:
            raise VerificationError(str(e)) from None
        if len(types) != len(n.outputs):
            raise VerificationError(f"{n.label}: has {len(n.outputs)} outputs, its op gives {len(types)}")
        for o, t in zip(n.outputs, types):
            if o in defined:
                raise VerificationError(f"{n.label}: output '{o}' is defined twice")
            rec = g.types.get(o)
            if rec is None:
                raise VerificationError(f"{n.label}: output '{o}' has no type")
            if not _matches(rec, t):
                raise VerificationError(f"{n.label}: output '{o}' is typed {rec} but the op infers {t}")
            defined.add(o)
    for o in g.outputs:
        if o not in defined:
            raise VerificationError(f"graph '{g.name}': output '{o}' is not defined")
    return g


def _matches(rec, inferred) -> bool:
    if rec.dtype != inferred.dtype or rec.rank != inferred.rank:
        return False
    for a, b in zip(rec.shape, inferred.shape):
        if b == _dims.UNKNOWN:
            continue  # known only at run time: any symbol (or a size a pass proved) will do
        if a != b:
            return False
    return True
