"""Binding a compiled model's symbolic dims from the shapes of the arrays it is called with.

Plain-symbol dims (``batch``) bind their symbol; every other dim is checked afterwards: ints exactly,
polynomials (``2*n``, ``n-1``, ``batch*seq``) by evaluation. A symbol that appears only inside
polynomials is solved from a dim that is linear in it (``2*n`` = 6 gives ``n`` = 3).

A :class:`ShapePlan` is built once per model, so that a call does no string parsing.
"""
from __future__ import annotations

import re

from ..ir import dims as _dims

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TERM = re.compile(r"([+-]?)([^+-]+)")


class Poly:
    """A dim expression compiled to ``[(coefficient, (symbol, ...)), ...]`` for quick evaluation."""

    __slots__ = ("text", "terms", "symbols")

    def __init__(self, text: str):
        self.text = text
        canonical = str(_dims.canonical(text)).replace(" ", "")
        self.terms = []
        for sign, body in _TERM.findall(canonical):
            coeff, syms = -1 if sign == "-" else 1, []
            for factor in body.split("*"):
                if factor.isdigit():
                    coeff *= int(factor)
                else:
                    syms.append(factor)
            self.terms.append((coeff, tuple(syms)))
        self.symbols = frozenset(s for _, syms in self.terms for s in syms)

    def __call__(self, env: dict):
        total = 0
        for coeff, syms in self.terms:
            for s in syms:
                if s not in env:
                    return None
                coeff *= env[s]
            total += coeff
        return total


def _compile(d):
    """An int, a plain symbol name, or a :class:`Poly`."""
    if isinstance(d, int) or _PLAIN.fullmatch(d):
        return d
    return Poly(d)


class ShapePlan:
    """The input and output shapes of a model's manifest, compiled for :meth:`bind` and :meth:`outputs`."""

    def __init__(self, inputs, outputs, symbols):
        self.input_names = [spec["name"] for spec in inputs]
        self.input_shapes = [[_compile(d) for d in spec["shape"]] for spec in inputs]
        self.output_names = [spec["name"] for spec in outputs]
        self.output_shapes = [[_compile(d) for d in spec["shape"]] for spec in outputs]
        self.symbols = list(symbols)
        self.static_outputs = all(isinstance(d, int) for shape in self.output_shapes for d in shape)

    def bind(self, shapes) -> dict:
        """Symbol values from the input ``shapes`` (rank already checked); ValueError names the input."""
        env: dict = {}
        source: dict = {}
        deferred = []
        for name, want, shape in zip(self.input_names, self.input_shapes, shapes):
            for axis, d in enumerate(want):
                got = shape[axis]
                if d.__class__ is int:
                    if d != got:
                        raise ValueError(f"input '{name}' dim {axis}: expected {d}, got {got}")
                elif d.__class__ is str:
                    bound = env.get(d)
                    if bound is None:
                        env[d] = got
                        source[d] = name
                    elif bound != got:
                        raise ValueError(f"input '{name}' dim {axis} is '{d}' = {bound} from input "
                                         f"'{source[d]}', got {got}")
                else:
                    deferred.append((name, axis, d, got))
        if deferred:
            _check_deferred(deferred, env)
        return env

    def output_shapes_for(self, env: dict) -> list:
        """Concrete output shapes; ValueError when an expression comes out negative."""
        if self.static_outputs:
            return [tuple(shape) for shape in self.output_shapes]
        out = []
        for name, dims in zip(self.output_names, self.output_shapes):
            shape = []
            for axis, d in enumerate(dims):
                v = d if d.__class__ is int else env[d] if d.__class__ is str else d(env)
                if v < 0:
                    values = ", ".join(f"{k} = {env[k]}" for k in self.symbols)
                    raise ValueError(f"output '{name}' dim {axis} is '{getattr(d, 'text', d)}' = {v} for these "
                                     f"inputs ({values}): a negative size")
                shape.append(v)
            out.append(tuple(shape))
        return out


def _check_deferred(deferred, env: dict) -> None:
    # solve symbols that only appear inside expressions, one linear unknown at a time
    progress = True
    while progress:
        progress = False
        for name, axis, poly, got in deferred:
            unbound = poly.symbols - env.keys()
            if len(unbound) != 1:
                continue
            (s,) = unbound
            value = _solve_linear(poly, s, env, got)
            if value is not None:
                env[s] = value
                progress = True
    for name, axis, poly, got in deferred:
        value = poly(env)
        if value is None:
            missing = ", ".join(sorted(poly.symbols - env.keys()))
            raise ValueError(f"input '{name}' dim {axis} is '{poly.text}': cannot determine {missing} "
                             f"from a size of {got}")
        if value != got:
            bound = ", ".join(f"{s} = {env[s]}" for s in sorted(poly.symbols))
            raise ValueError(f"input '{name}' dim {axis} is '{poly.text}' = {value} (with {bound}), got {got}")


def _solve_linear(poly: Poly, s: str, env: dict, got: int):
    """The non-negative int value of ``s`` that makes ``poly`` equal ``got``, when there is one."""
    b = poly({**env, s: 0})
    a = poly({**env, s: 1}) - b
    if a == 0 or (got - b) % a:
        return None
    value = (got - b) // a
    # checked: a dim that is not linear in s (s*s, say) gets no value from the line through 0 and 1
    if value < 0 or poly({**env, s: value}) != got:
        return None
    return value
