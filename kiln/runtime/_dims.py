"""Binding a compiled model's symbolic dims from the shapes of the arrays it is called with.

Plain-symbol dims (``batch``) bind their symbol; every other dim is checked afterwards: ints exactly,
polynomials (``2*n``, ``n-1``, ``batch*seq``) by evaluation. A symbol that appears only inside
polynomials is solved from one that is linear in it (``2*n`` = 6 gives ``n`` = 3).
"""
from __future__ import annotations

import re

from ..ir import dims as _dims

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _where(name: str, axis: int) -> str:
    return f"input '{name}' dim {axis}"


def bind(specs, shapes, symbols) -> dict:
    """Symbol values from the input ``shapes`` (tuples, in ``specs`` order); ValueError names the input.

    ``specs`` are the manifest's input entries (name, shape); the returned dict holds every symbol of
    ``symbols``.
    """
    env: dict = {}
    source: dict = {}
    deferred = []
    for spec, shape in zip(specs, shapes):
        name, want = spec["name"], spec["shape"]
        for axis, (d, got) in enumerate(zip(want, shape)):
            if isinstance(d, int):
                if d != got:
                    raise ValueError(f"{_where(name, axis)}: expected {d}, got {got}")
            elif _PLAIN.fullmatch(d):
                if d in env:
                    if env[d] != got:
                        raise ValueError(f"{_where(name, axis)} is '{d}' = {env[d]} from {source[d]}, got {got}")
                else:
                    env[d] = got
                    source[d] = f"input '{name}'"
            else:
                deferred.append((name, axis, d, got))
    # solve symbols that only appear inside expressions, one linear unknown at a time
    progress = True
    while progress:
        progress = False
        for name, axis, d, got in deferred:
            unbound = _dims.symbols(d) - env.keys()
            if len(unbound) != 1:
                continue
            (s,) = unbound
            value = _solve_linear(d, s, env, got)
            if value is None:
                continue
            env[s] = value
            source[s] = f"input '{name}' dim {axis} ({d})"
            progress = True
    for name, axis, d, got in deferred:
        value = _dims.evaluate(d, env)
        if value is None:
            missing = ", ".join(sorted(_dims.symbols(d) - env.keys()))
            raise ValueError(f"{_where(name, axis)} is '{d}': cannot determine {missing} from a size of {got}")
        if value != got:
            bound = ", ".join(f"{s} = {env[s]}" for s in sorted(_dims.symbols(d)))
            raise ValueError(f"{_where(name, axis)} is '{d}' = {value} (with {bound}), got {got}")
    missing = [s for s in symbols if s not in env]
    if missing:  # the manifest check makes this unreachable; keep the message honest anyway
        raise ValueError(f"the inputs do not determine symbol(s) {', '.join(missing)}")
    return env


def _solve_linear(d, s: str, env: dict, got: int):
    """The non-negative int value of ``s`` that makes ``d`` equal ``got``, when ``d`` is linear in ``s``."""
    # d = a*s + b with a, b evaluated under env
    b = _dims.evaluate(d, {**env, s: 0})
    a_plus_b = _dims.evaluate(d, {**env, s: 1})
    two = _dims.evaluate(d, {**env, s: 2})
    if b is None or a_plus_b is None or two is None:
        return None
    a = a_plus_b - b
    if a == 0 or two - a_plus_b != a:  # not linear in s (s*s, say)
        return None
    if (got - b) % a:
        return None
    value = (got - b) // a
    if value < 0 or _dims.evaluate(d, {**env, s: value}) != got:
        return None
    return value


def shape(dims, env: dict) -> tuple:
    """The concrete shape of manifest ``dims`` under ``env``."""
    return tuple(_dims.evaluate(d, env) for d in dims)
