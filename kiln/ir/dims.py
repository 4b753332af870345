"""Dimensions: an ``int`` or a symbolic expression held as a canonical string.

A symbolic dim is a polynomial with integer coefficients over named symbols, written canonically
(``batch``, ``12*batch``, ``batch+seq``, ``batch*seq``, ``n-1``), so that two equal expressions are
equal strings and a dim can be used as a dict key. Arithmetic on dims folds ints and keeps
symbols; :func:`evaluate` binds symbols to ints at run time.
"""
from __future__ import annotations

import re
from typing import Mapping, Union

Dim = Union[int, str]

#: Returned by type inference for a dim known only at run time; the graph builder replaces it
#: with a fresh symbol named after the value.
UNKNOWN = "?"

_SYM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TERM = re.compile(r"\s*([+-])?\s*([^+-]+)")


def is_static(d: Dim) -> bool:
    return isinstance(d, int)


def all_static(shape) -> bool:
    return all(isinstance(d, int) for d in shape)


def sanitize_symbol(name: str) -> str:
    """Turn any string (an ONNX dim_param, say) into a valid symbol name."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", str(name)) or "d"
    if not (s[0].isalpha() or s[0] == "_"):
        s = "_" + s
    return s


# A polynomial: {tuple of sorted symbol names: coefficient}; () is the constant term.
def _poly(d: Dim) -> dict:
    if isinstance(d, int):
        return {(): d} if d else {}
    out: dict = {}
    text = d.replace(" ", "")
    pos = 0
    for m in _TERM.finditer(text):
        if m.start() != pos:
            raise ValueError(f"bad dim expression {d!r}")
        pos = m.end()
        sign = -1 if m.group(1) == "-" else 1
        coeff, syms = sign, []
        for f in m.group(2).split("*"):
            if f.isdigit():
                coeff *= int(f)
            elif _SYM.fullmatch(f):
                syms.append(f)
            else:
                raise ValueError(f"bad dim expression {d!r}")
        key = tuple(sorted(syms))
        out[key] = out.get(key, 0) + coeff
    if pos != len(text):
        raise ValueError(f"bad dim expression {d!r}")
    return {k: v for k, v in out.items() if v}


def _from_poly(p: dict) -> Dim:
    p = {k: v for k, v in p.items() if v}
    if not p:
        return 0
    if set(p) == {()}:
        return p[()]
    parts = []
    for key in sorted(p, key=lambda k: (k == (), k)):
        c = p[key]
        if key == ():
            body = str(abs(c))
        elif abs(c) == 1:
            body = "*".join(key)
        else:
            body = f"{abs(c)}*" + "*".join(key)
        parts.append(("-" if c < 0 else "+") + body)
    s = "".join(parts)
    return s[1:] if s.startswith("+") else s


def canonical(d: Dim) -> Dim:
    """The canonical form of a dim: ints stay ints, expressions are normalised."""
    if isinstance(d, bool):
        raise TypeError("a dim cannot be a bool")
    if isinstance(d, int):
        return d
    try:
        import numpy as np

        if isinstance(d, np.integer):
            return int(d)
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(d, str):
        raise TypeError(f"a dim must be an int or a symbol string, got {d!r}")
    if d == UNKNOWN:
        return d
    return _from_poly(_poly(d))


def add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    p = _poly(a)
    for k, v in _poly(b).items():
        p[k] = p.get(k, 0) + v
    return _from_poly(p)


def sub(a: Dim, b: Dim) -> Dim:
    return add(a, mul(b, -1))


def mul(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    pa, pb = _poly(a), _poly(b)
    out: dict = {}
    for ka, va in pa.items():
        for kb, vb in pb.items():
            k = tuple(sorted(ka + kb))
            out[k] = out.get(k, 0) + va * vb
    return _from_poly(out)


def prod(dims) -> Dim:
    r: Dim = 1
    for d in dims:
        r = mul(r, d)
    return r


def div_exact(a: Dim, b: Dim):
    """a / b when it is known to divide exactly, else None."""
    if isinstance(a, int) and isinstance(b, int):
        if b != 0 and a % b == 0:
            return a // b
        return None
    if a == b:
        return 1
    pa = _poly(a)
    if isinstance(b, int):
        if b != 0 and all(v % b == 0 for v in pa.values()):
            return _from_poly({k: v // b for k, v in pa.items()})
        return None
    pb = _poly(b)
    if len(pb) == 1:  # divide by a monomial
        (kb, vb), = pb.items()
        out = {}
        for k, v in pa.items():
            rest = list(k)
            for s in kb:
                if s not in rest:
                    return None
                rest.remove(s)
            if v % vb:
                return None
            out[tuple(rest)] = v // vb
        return _from_poly(out)
    return None


def upper_bound_max(a: Dim, b: Dim) -> Dim:
    """A dim that is at least ``max(a, b)`` for every binding of the symbols to ints >= 1.

    The coefficient-wise maximum of the two polynomials, negative coefficients dropped (every
    monomial is >= 1, so each term of the result covers the matching terms of ``a`` and ``b``):
    ``upper_bound_max("4*n-4", "2*n+8")`` is ``"4*n+8"``; ints give ``max(a, b, 0)``.
    """
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b, 0)
    pa, pb = _poly(a), _poly(b)
    return _from_poly({k: max(pa.get(k, 0), pb.get(k, 0), 0) for k in pa.keys() | pb.keys()})


def symbols(d: Dim) -> set:
    if isinstance(d, int):
        return set()
    return {s for k in _poly(d) for s in k}


def evaluate(d: Dim, env: Mapping[str, int]):
    """Value of ``d`` under symbol bindings ``env``; None when a symbol is unbound."""
    if isinstance(d, int):
        return d
    total = 0
    for k, v in _poly(d).items():
        t = v
        for s in k:
            if s not in env:
                return None
            t *= env[s]
        total += t
    return total


def fmt(d: Dim) -> str:
    return str(d)


def parse(text: str) -> Dim:
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return canonical(text)
