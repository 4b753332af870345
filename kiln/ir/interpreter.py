"""The reference interpreter: runs a graph with each op's own numpy ``reference``.

It is the oracle every pass and every compiled kernel is compared with, so it also checks each
result against the node's inferred type (dtype, rank, static dims, and symbolic dims bound
consistently across the graph); a disagreement is a bug in an op definition and is reported as
such, naming the node.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..errors import InterpreterError
from . import dims as _dims
from .graph import Graph
from .registry import get as get_op


def bind_inputs(graph: Graph, inputs) -> dict:
    """Check user inputs against the graph's input types; returns name -> array and binds symbols."""
    if isinstance(inputs, Mapping):
        missing = [n for n in graph.inputs if n not in inputs]
        extra = [n for n in inputs if n not in graph.inputs]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing input(s) {', '.join(repr(m) for m in missing)}")
            if extra:
                parts.append(f"unknown input(s) {', '.join(repr(e) for e in extra)}")
            raise InterpreterError(f"graph '{graph.name}': {'; '.join(parts)} (expects {', '.join(graph.inputs)})")
        items = [(n, inputs[n]) for n in graph.inputs]
    else:
        seq = list(inputs) if isinstance(inputs, Sequence) or hasattr(inputs, "__iter__") else [inputs]
        if len(seq) != len(graph.inputs):
            raise InterpreterError(
                f"graph '{graph.name}' takes {len(graph.inputs)} input(s) ({', '.join(graph.inputs)}), got {len(seq)}")
        items = list(zip(graph.inputs, seq))
    env, syms = {}, {}
    for name, arr in items:
        t = graph.types[name]
        a = np.asarray(arr)
        if a.dtype != t.dtype.np:
            raise InterpreterError(f"input '{name}': expected dtype {t.dtype.long_name}, got {a.dtype}")
        _check_shape(a.shape, t.shape, syms, f"input '{name}'", t)
        env[name] = a
    return env, syms


def _check_shape(shape, expected, syms, what, t):
    if len(shape) != len(expected):
        raise InterpreterError(f"{what}: expected shape {list(expected)} (rank {len(expected)}), got {list(shape)}")
    for d, e in zip(shape, expected):
        if isinstance(e, int):
            if d != e:
                raise InterpreterError(f"{what}: expected shape {list(expected)}, got {list(shape)}")
        else:
            v = _dims.evaluate(e, syms)
            if v is None:
                if len(_dims.symbols(e)) == 1 and e in _dims.symbols(e):
                    syms[e] = d
                    continue
                continue  # an expression over unbound symbols: nothing to check yet
            if v != d:
                raise InterpreterError(
                    f"{what}: expected shape {list(expected)} with "
                    f"{', '.join(f'{k}={syms[k]}' for k in sorted(_dims.symbols(e)) if k in syms)}, got {list(shape)}")


def _bound_attrs(opdef, attrs, syms) -> dict:
    """Attributes with symbolic dims (``dims`` kind) evaluated under the run's symbol bindings,
    so a reference sees ints wherever the symbols are bound."""
    out = dict(attrs)
    for k, schema in opdef.attrs.items():
        if schema.kind == "dims" and out.get(k) is not None:
            vals = []
            for d in out[k]:
                v = _dims.evaluate(d, syms) if isinstance(d, str) and d != _dims.UNKNOWN else None
                vals.append(d if v is None else v)
            out[k] = tuple(vals)
    return out


def interpret(graph: Graph, inputs, *, check_types: bool = True) -> dict:
    """Run ``graph`` on ``inputs`` (a list in graph-input order, or a dict by name).

    Returns a dict output name -> numpy array, in graph output order.
    """
    return dict(zip(graph.outputs, run_graph(graph, inputs, check_types=check_types)))


def run_graph(graph: Graph, inputs, *, check_types: bool = True) -> list:
    """Like :func:`interpret`, but returns the outputs as a list (a value may be output twice)."""
    env, syms = bind_inputs(graph, inputs)
    env.update(graph.constants)
    for node in graph.nodes:
        opdef = get_op(node.op)
        args = [env[i] if i else None for i in node.inputs]
        try:
            res = opdef.reference(*args, **_bound_attrs(opdef, node.attrs, syms))
        except InterpreterError:
            raise
        except Exception as e:  # an op's reference failing is reported against the node
            raise InterpreterError(f"{node.label}: {type(e).__name__}: {e}") from e
        results = list(res) if isinstance(res, (tuple, list)) else [res]
        if len(results) != len(node.outputs):
            raise InterpreterError(f"{node.label}: produced {len(results)} results, expected {len(node.outputs)}")
        for name, r in zip(node.outputs, results):
            r = np.asarray(r)
            t = graph.types[name]
            if check_types:
                if r.dtype != t.dtype.np:
                    raise InterpreterError(
                        f"{node.label}: output '{name}' has dtype {r.dtype}, its type says {t.dtype.long_name}")
                _check_shape(r.shape, t.shape, syms, f"{node.label}: output '{name}'", t)
            env[name] = r
    return [env[o] for o in graph.outputs]
