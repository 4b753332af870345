"""Elementwise ops: one table row per op.

Each row is the whole definition of the op: its name, which dtypes it accepts, its result dtype
and its numpy semantics. Binary and ternary ops broadcast their operands numpy-style.

Integer rules, the ones targets must match:

* ``div`` truncates toward zero (C semantics), as every target's integer divide does; x / 0 is 0.
* ``mod`` takes the divisor's sign (floored), or the dividend's with ``fmod``; x mod 0 is 0.
* ``pow`` of integers is exact and wraps; a negative exponent gives trunc(1 / a**-b).
* ``shift_left`` / ``shift_right`` by a negative amount or by the width or more give the sign
  fill alone (-1 for a right shift of a negative value, else 0); right shifts of signed values
  are arithmetic.

Float ``max`` / ``min`` are IEEE 754-2019 maximum / minimum: NaN propagates and +0 is greater
than -0, so they commute (``np.maximum`` would return its first operand for two zeros); hence
``relu(-0.0)`` is +0.

Transcendental ops evaluate in float64 and round once to the operand's dtype. Compiled code may
differ from this reference within a few ulps there, and in one more way: the LLVM targets may fuse
a float multiply and the add or subtract consuming it into one FMA (one rounding instead of two;
the GEMM micro-kernels rely on it), so ``x * y - z`` can give the product's rounding error where
the reference gives 0. ``cast`` and
``bitcast`` convert between any two dtypes (see :mod:`._cast` for the rules).
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import Attr, OpDef, register
from ..types import TensorType
from ._util import broadcast_shapes, require, same_dtype

# dtype classes an op accepts
_CLASSES = {
    "float": lambda d: d.is_float,
    "signed": lambda d: d.kind in ("float", "int"),
    "num": lambda d: d.kind in ("float", "int", "uint"),
    "int": lambda d: d.is_int,
    "bool": lambda d: d.kind == "bool",
    "intbool": lambda d: d.is_int or d.kind == "bool",
    "any": lambda d: True,
}

_erf = np.frompyfunc(math.erf, 1, 1)


def _round_half_even(x):
    return np.round(x)


def _maximum(a, b):
    """IEEE 754-2019 maximum: NaN propagates, +0 > -0 (commutative, unlike ``np.maximum``)."""
    r = np.maximum(a, b)
    if r.dtype.kind in "iub":
        return r
    return np.where((a == 0) & (b == 0), np.where(np.signbit(a), b, a), r)


def _minimum(a, b):
    """IEEE 754-2019 minimum: NaN propagates, -0 < +0 (commutative, unlike ``np.minimum``)."""
    r = np.minimum(a, b)
    if r.dtype.kind in "iub":
        return r
    return np.where((a == 0) & (b == 0), np.where(np.signbit(a), a, b), r)


def _relu(x):
    return _maximum(x, np.zeros((), x.dtype))


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def _sign(x):
    r = np.sign(x)
    return r if r.dtype.kind in "iub" else np.where(r == 0, np.zeros((), r.dtype), r)  # +0 for -0 (bf16 too)


def _rsqrt(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.sqrt(x)


def _recip(x):
    with np.errstate(divide="ignore"):
        return 1.0 / x


#: name -> (accepted dtype class, result: 'same' | 'bool', numpy function, evaluate in float64?)
UNARY = {
    "abs": ("num", "same", np.abs, False),
    "neg": ("signed", "same", np.negative, False),
    "relu": ("signed", "same", _relu, False),
    "sign": ("num", "same", _sign, False),
    "floor": ("float", "same", np.floor, False),
    "ceil": ("float", "same", np.ceil, False),
    "round": ("float", "same", _round_half_even, False),
    "exp": ("float", "same", np.exp, True),
    "log": ("float", "same", np.log, True),
    "sqrt": ("float", "same", np.sqrt, True),
    "rsqrt": ("float", "same", _rsqrt, True),
    "reciprocal": ("float", "same", _recip, True),
    "sin": ("float", "same", np.sin, True),
    "cos": ("float", "same", np.cos, True),
    "tan": ("float", "same", np.tan, True),
    "asin": ("float", "same", np.arcsin, True),
    "acos": ("float", "same", np.arccos, True),
    "atan": ("float", "same", np.arctan, True),
    "sinh": ("float", "same", np.sinh, True),
    "cosh": ("float", "same", np.cosh, True),
    "tanh": ("float", "same", np.tanh, True),
    "asinh": ("float", "same", np.arcsinh, True),
    "acosh": ("float", "same", np.arccosh, True),
    "atanh": ("float", "same", np.arctanh, True),
    "sigmoid": ("float", "same", _sigmoid, True),
    "erf": ("float", "same", lambda x: np.asarray(_erf(x), dtype=np.float64), True),
    "not": ("bool", "same", np.logical_not, False),
    "bitwise_not": ("int", "same", np.invert, False),
    "isnan": ("float", "bool", np.isnan, False),
}


def _numpy_native(a, b):
    """Operands as dtypes numpy computes with natively: the ml_dtypes formats (int4, bfloat16,
    float8, ...) widen to int64 / float64; the caller casts the result back."""
    if a.dtype.kind != "V":
        return a, b
    wide = np.int64 if _kiln_dtype(a.dtype).is_int else np.float64
    return a.astype(wide), b.astype(wide)


def _kiln_dtype(npdt):
    from ..dtypes import dtype

    return dtype(npdt)


def _int_div(a, b):
    a, b = _numpy_native(a, b)
    if a.dtype.kind in "iu":
        q = np.where(b == 0, 0, a // np.where(b == 0, 1, b))
        r = a - q * b
        # floor -> truncate: adjust when signs differ and the division was inexact (x / 0 stays 0)
        fix = (r != 0) & ((a < 0) != (b < 0)) & (b != 0)
        return q + fix
    return np.divide(a, b)


def _mod(a, b, fmod):
    a, b = _numpy_native(a, b)
    if a.dtype.kind in "iu":
        safe = np.where(b == 0, 1, b)
        return np.where(b == 0, 0, np.fmod(a, safe) if fmod else np.mod(a, safe))
    return np.fmod(a, b) if fmod else np.mod(a, b)


def _pow(a, b):
    """Integer powers are exact (wrapping like repeated multiplication); a negative integer
    exponent gives the truncated quotient 1 / a**-b (so 0 unless a is 1 or -1)."""
    if a.dtype.kind == "u":  # unsigned exponents are never negative, however large
        return np.power(a.astype(np.uint64), b.astype(np.uint64))
    if a.dtype.kind in "iu":
        a64, b64 = a.astype(np.int64), b.astype(np.int64)
        pos = np.power(a64, np.maximum(b64, 0))
        neg = np.where(a64 == 1, 1, np.where(a64 == -1, 1 - 2 * (np.abs(b64) % 2), 0))
        return np.where(b64 < 0, neg, pos)
    with np.errstate(all="ignore"):
        return np.power(a.astype(np.float64), b.astype(np.float64))


def _shift(a, b, left):
    """Shift by b bits; shifting by a negative amount or by the width or more leaves only the
    sign fill: -1 for a right shift of a negative signed value, else 0."""
    bits = _kiln_dtype(a.dtype).bits
    if bits < 8:  # int4/int2: shift in int64; the final cast keeps the low bits
        a, b = a.astype(np.int64), b.astype(np.int64)
    ok = (b >= 0) & (b < bits)
    s = np.where(ok, b, 0).astype(a.dtype)
    if left:
        return np.where(ok, np.left_shift(a, s), 0)
    fill = (a < 0) * -1 if a.dtype.kind == "i" else 0
    return np.where(ok, np.right_shift(a, s), fill)


def _shift_left(a, b):
    return _shift(a, b, True)


def _shift_right(a, b):
    return _shift(a, b, False)


#: name -> (accepted dtype class, result: 'same' | 'bool', numpy function, traits, attrs)
BINARY = {
    "add": ("num", "same", np.add, ("commutative",), {}),
    "sub": ("num", "same", np.subtract, (), {}),
    "mul": ("num", "same", np.multiply, ("commutative",), {}),
    "div": ("num", "same", _int_div, (), {}),
    "pow": ("num", "same", _pow, (), {}),
    "max": ("num", "same", _maximum, ("commutative",), {}),
    "min": ("num", "same", _minimum, ("commutative",), {}),
    "mod": ("num", "same", _mod, (), {"fmod": Attr("bool", False)}),
    "equal": ("any", "bool", np.equal, ("commutative",), {}),
    "less": ("num", "bool", np.less, (), {}),
    "less_equal": ("num", "bool", np.less_equal, (), {}),
    "greater": ("num", "bool", np.greater, (), {}),
    "greater_equal": ("num", "bool", np.greater_equal, (), {}),
    "and": ("bool", "bool", np.logical_and, ("commutative",), {}),
    "or": ("bool", "bool", np.logical_or, ("commutative",), {}),
    "xor": ("bool", "bool", np.logical_xor, ("commutative",), {}),
    "bitwise_and": ("int", "same", np.bitwise_and, ("commutative",), {}),
    "bitwise_or": ("int", "same", np.bitwise_or, ("commutative",), {}),
    "bitwise_xor": ("int", "same", np.bitwise_xor, ("commutative",), {}),
    "shift_left": ("int", "same", _shift_left, (), {}),
    "shift_right": ("int", "same", _shift_right, (), {}),
}


def _check_class(name, cls, t):
    require(_CLASSES[cls](t.dtype), f"{name} does not accept dtype {t.dtype} (needs {cls})")


def _make_unary(name, cls, result, fn, wide):
    def infer(x: TensorType):
        _check_class(name, cls, x)
        return TensorType("bool" if result == "bool" else x.dtype, x.shape)

    def reference(x):
        with np.errstate(all="ignore"):
            y = fn(x.astype(np.float64) if wide and x.dtype.itemsize < 8 else x)
            # float64 -> narrower float may overflow to inf: that is the op's result in that dtype
            return np.asarray(y).astype(np.bool_ if result == "bool" else x.dtype)

    return OpDef(name, ("x",), {}, 1, infer, reference, frozenset({"elementwise"}),
                 doc=f"elementwise {name}")


def _make_binary(name, cls, result, fn, traits, attrs):
    def infer(a: TensorType, b: TensorType, **kw):
        same_dtype(name, a, b)
        _check_class(name, cls, a)
        return TensorType("bool" if result == "bool" else a.dtype, broadcast_shapes(a.shape, b.shape))

    def reference(a, b, **kw):
        with np.errstate(all="ignore"):
            y = fn(a, b, **kw)
            return np.asarray(y).astype(np.bool_ if result == "bool" else a.dtype)

    return OpDef(name, ("a", "b"), attrs, 1, infer, reference, frozenset({"elementwise", *traits}),
                 doc=f"elementwise {name}, numpy broadcasting")


for _n, _row in UNARY.items():
    register(_make_unary(_n, *_row))
for _n, _row in BINARY.items():
    register(_make_binary(_n, *_row))


def _isinf_infer(x: TensorType, detect_positive, detect_negative):
    _check_class("isinf", "float", x)
    return TensorType("bool", x.shape)


def _isinf_ref(x, detect_positive, detect_negative):
    return (np.isposinf(x) & detect_positive) | (np.isneginf(x) & detect_negative)


register(OpDef("isinf", ("x",), {"detect_positive": Attr("bool", True), "detect_negative": Attr("bool", True)},
               1, _isinf_infer, _isinf_ref, frozenset({"elementwise"}), doc="elementwise isinf"))


def _where_infer(cond: TensorType, a: TensorType, b: TensorType):
    require(cond.dtype.name == "bool", f"where: condition must be bool, got {cond.dtype}")
    same_dtype("where", a, b)
    return TensorType(a.dtype, broadcast_shapes(cond.shape, a.shape, b.shape))


def _where_ref(cond, a, b):
    return np.where(cond, a, b).astype(a.dtype)


register(OpDef("where", ("cond", "a", "b"), {}, 1, _where_infer, _where_ref, frozenset({"elementwise"}),
               doc="select a where cond else b, numpy broadcasting"))


def _cast_infer(x: TensorType, to, saturate, round_mode):
    return TensorType(to, x.shape)


def _cast_ref(x, to, saturate, round_mode):
    from ._cast import cast_array

    return cast_array(x, to, saturate, round_mode)


register(OpDef("cast", ("x",), {"to": Attr("dtype"), "saturate": Attr("bool", True),
                                "round_mode": Attr("str", "up", choices=("up", "down", "nearest"))}, 1,
               _cast_infer, _cast_ref, frozenset({"elementwise"}),
               doc="convert elements to another dtype; float->int truncates toward zero; "
                   "saturate clamps out-of-range values for float8 targets; round_mode says how "
                   "values round to the power-of-two format f8e8m0"))


def _bitcast_infer(x: TensorType, to):
    require(x.dtype.bits == to.bits,
            f"bitcast: {x.dtype} ({x.dtype.bits} bits) and {to} ({to.bits} bits) differ in width")
    return TensorType(to, x.shape)


def _bitcast_ref(x, to):
    return np.ascontiguousarray(x).view(to.np).reshape(x.shape)


register(OpDef("bitcast", ("x",), {"to": Attr("dtype")}, 1, _bitcast_infer, _bitcast_ref,
               frozenset({"elementwise"}),
               doc="reinterpret each element's bits as another dtype of the same width"))


# ------------------------------------------------------------------------------------------ lowering
# Each elementwise op lowers to one scalar loop-IR expression per element; broadcasting reads index 0
# along size-1 dims. A chain of these is one loop nest: consumers inline their producers.
from .. import loops as _L  # noqa: E402
from ..lowering import broadcast_index as _bidx, broadcast_shape as _bshape  # noqa: E402

_UNARY_EXPR = {
    "relu": lambda x: _L.maximum(x, _L.const(0, x.dtype)),
    "reciprocal": lambda x: _L.binary("div", _L.const(1, x.dtype), x),
    "bitwise_not": lambda x: _L.unary("not", x),
}
_BINARY_EXPR = {
    "add": "add", "sub": "sub", "mul": "mul", "div": "div", "pow": "pow", "max": "max", "min": "min",
    "equal": "eq", "less": "lt", "less_equal": "le", "greater": "gt", "greater_equal": "ge",
    "and": "and", "or": "or", "xor": "xor", "bitwise_and": "and", "bitwise_or": "or", "bitwise_xor": "xor",
    "shift_left": "shl", "shift_right": "shr",
}


def _lower_unary(name):
    fn = _UNARY_EXPR.get(name) or (lambda x: _L.unary(name, x))

    def lower(b, x):
        return b.compute(x.shape, lambda *i: fn(x[i]))

    return lower


def _lower_binary(name):
    def lower(b, x, y, fmod=False):
        op = ("rem" if fmod else "mod") if name == "mod" else _BINARY_EXPR[name]
        shape = _bshape(x.shape, y.shape)
        n = len(shape)
        return b.compute(shape, lambda *i: _L.binary(op, x[_bidx(x, i, n)], y[_bidx(y, i, n)]))

    return lower


def _lower_where(b, c, x, y):
    shape = _bshape(c.shape, x.shape, y.shape)
    n = len(shape)
    return b.compute(shape, lambda *i: _L.select(c[_bidx(c, i, n)], x[_bidx(x, i, n)], y[_bidx(y, i, n)]))


def _lower_cast(b, x, to, saturate, round_mode):
    return b.compute(x.shape, lambda *i: _L.cast(x[i], to, saturate, round_mode), dtype=to)


def _lower_bitcast(b, x, to):
    return b.compute(x.shape, lambda *i: _L.Bitcast(x[i], to), dtype=to)


def _lower_isinf(b, x, detect_positive, detect_negative):
    inf = _L.const(float("inf"), x.dtype)

    def el(*i):
        v = x[i]
        pos = _L.binary("eq", v, inf) if detect_positive else _L.Const(False, _L.BOOL)
        neg = _L.binary("eq", v, -inf if False else _L.const(float("-inf"), x.dtype)) if detect_negative \
            else _L.Const(False, _L.BOOL)
        return _L.binary("or", pos, neg)

    return b.compute(x.shape, el, dtype="bool")


def _attach_lowerings():
    from ..registry import OPS

    for n in UNARY:
        OPS[n].lower = _lower_unary(n)
    for n in BINARY:
        OPS[n].lower = _lower_binary(n)
    OPS["where"].lower = _lower_where
    OPS["cast"].lower = _lower_cast
    OPS["bitcast"].lower = _lower_bitcast
    OPS["isinf"].lower = _lower_isinf


_attach_lowerings()
