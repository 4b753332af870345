"""The table of JAX primitive converters and the context each one runs in.

    @converter("tanh")
    def tanh(cx, x):
        return cx.op("tanh", x)

A converter gets a :class:`Cx` (the emitter, the equation's params and avals, helpers for
symbolic dims) and the kiln values of the equation's operands; it returns one value, or a list
with one value per equation result. Nothing here imports jax.
"""
from __future__ import annotations

import numpy as np

from ...errors import ConversionError
from ...ir import dims as _dims
from ...ir import dtypes as kd
from ..common import symbol_dim

#: primitive name -> converter function
CONVERTERS: dict = {}


def converter(*names):
    """Register the decorated function for each JAX primitive name in ``names``."""
    def deco(fn):
        for n in names:
            if n in CONVERTERS:
                raise ValueError(f"JAX primitive '{n}' has two converters")
            CONVERTERS[n] = fn
        return fn

    return deco


def lookup(name: str):
    from . import elementwise, indexing, nn, reduce, shape  # noqa: F401  (register the converters)

    return CONVERTERS.get(name)


def kiln_dtype(np_dtype):
    """A numpy (or ml_dtypes) dtype as a kiln dtype."""
    return kd.dtype(np.dtype(np_dtype))


class Cx:
    """What a converter sees of the equation it converts.

    ``e`` is the :class:`~kiln.frontends.common.Emitter`; ``name`` the primitive; ``params`` the equation's params;
    ``in_avals`` / ``out_avals`` the abstract values (shape, dtype) JAX gives its operands and
    results; ``where`` names the equation and its source line for error messages.
    """

    def __init__(self, e, sym_values):
        self.e = e
        self._sym_values = sym_values  # symbol -> callable giving its run-time int64 scalar
        self.name = ""  # the primitive's name
        self.params: dict = {}
        self.in_avals: list = []
        self.out_avals: list = []
        self.where = ""

    # --- emitting (shorthands for the emitter) ---------------------------------------------------
    def op(self, name, *inputs, **attrs):
        return self.e.op(name, *inputs, **attrs)

    def const(self, value, dtype=None):
        return self.e.const(value, dtype)

    def scalar_like(self, value, like):
        return self.e.scalar_like(value, like)

    def cast(self, v, to):
        return self.e.cast(v, to)

    def shape(self, v):
        return self.e.shape(v)

    def rank(self, v):
        return self.e.rank(v)

    def dtype(self, v):
        return self.e.dtype(v)

    def const_of(self, v):
        return self.e.const_of(v)

    def out_dtype(self, i: int = 0):
        return kiln_dtype(self.out_avals[i].dtype)

    def out_shape(self, i: int = 0):
        return self.dims(self.out_avals[i].shape)

    # --- errors ---------------------------------------------------------------------------------
    def error(self, message: str) -> ConversionError:
        return ConversionError(f"{self.where}: {message}")

    # --- dims -----------------------------------------------------------------------------------
    def dim(self, d):
        """A JAX dim (an int, or a symbolic ``_DimExpr``) as a kiln dim."""
        if isinstance(d, (int, np.integer)):
            return int(d)
        try:
            return symbol_dim(str(d))
        except (ValueError, TypeError):
            raise self.error(f"the symbolic dim '{d}' is not a polynomial of the input dims; kiln's symbolic "
                             f"dims cannot express it (give that input fixed sizes in input_shapes)") from None

    def dims(self, ds):
        return tuple(self.dim(d) for d in ds)

    def static_dim(self, d, what: str) -> int:
        d = self.dim(d)
        if not isinstance(d, int):
            raise self.error(f"{what} is the symbolic dim '{d}'; this primitive needs it static here "
                             f"(give that input a fixed size in input_shapes)")
        return d

    def dim_value(self, d, dtype="i64"):
        """A rank-0 tensor holding dim ``d`` at run time (a constant when ``d`` is static)."""
        d = self.dim(d)
        if isinstance(d, int):
            return self.const(d, dtype)
        total = None
        for syms, coeff in _dims._poly(d).items():
            term = self.const(coeff, "i64")
            for s in syms:
                if s not in self._sym_values:
                    raise self.error(f"the symbolic dim '{s}' is not a dim of any input")
                term = self.op("mul", term, self._sym_values[s]())
            total = term if total is None else self.op("add", total, term)
        return self.cast(total, dtype)
