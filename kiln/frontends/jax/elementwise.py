"""Elementwise JAX primitives: arithmetic, comparisons, logic, math functions, selects and casts.

Operands of a binary lax primitive share one dtype and shape (a literal may be a rank-0 scalar,
which numpy broadcasting covers). Functions kiln has no core op for are written out here:
``log1p``/``expm1`` with the usual cancellation-free formulas, ``erfc`` in float64, ``erf_inv``
as XLA's single-precision polynomial, ``atan2`` from ``atan`` with quadrant fixes, ``nextafter``
on the bit pattern.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir import dtypes as kd
from .registry import converter, kiln_dtype

_UNARY = {
    "neg": "neg", "abs": "abs", "sign": "sign", "floor": "floor", "ceil": "ceil", "exp": "exp", "log": "log",
    "tanh": "tanh", "logistic": "sigmoid", "erf": "erf", "rsqrt": "rsqrt", "sqrt": "sqrt", "sin": "sin",
    "cos": "cos", "tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh",
    "asinh": "asinh", "acosh": "acosh", "atanh": "atanh",
}
_BINARY = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "eq": "equal", "lt": "less",
           "le": "less_equal", "gt": "greater", "ge": "greater_equal", "shift_left": "shift_left",
           "shift_right_arithmetic": "shift_right"}


def _unary(core):
    return lambda cx, x: cx.op(core, x)


def _binary(core):
    def conv(cx, a, b):
        if cx.dtype(a).kind == "bool" and core in ("less", "less_equal", "greater", "greater_equal"):
            a, b = cx.cast(a, "i8"), cx.cast(b, "i8")
        return cx.op(core, a, b)

    return conv


for _jax_name, _core in _UNARY.items():
    converter(_jax_name)(_unary(_core))
for _jax_name, _core in _BINARY.items():
    converter(_jax_name)(_binary(_core))


def _total_order_key(cx, x):
    """An integer whose order is IEEE totalOrder of float ``x`` (-NaN < -inf < ... < -0 < +0 < ... < NaN)."""
    it = {16: "i16", 32: "i32", 64: "i64"}.get(cx.dtype(x).bits)
    if it is None:
        raise cx.error(f"total-order comparison of {cx.dtype(x)} is not supported")
    k = cx.op("bitcast", x, to=it)
    mag = cx.const(np.iinfo(kd.dtype(it).np).max, it)
    return cx.op("where", cx.op("less", k, cx.const(0, it)), cx.op("bitwise_xor", k, mag), k)


@converter("lt_to", "le_to", "eq_to")
def total_order_compare(cx, a, b):
    """Comparisons in IEEE totalOrder (sort's and searchsorted's order); plain comparisons for integers."""
    if cx.dtype(a).kind == "float":
        a, b = _total_order_key(cx, a), _total_order_key(cx, b)
    elif cx.dtype(a).kind == "bool":
        a, b = cx.cast(a, "i8"), cx.cast(b, "i8")
    return cx.op({"lt_to": "less", "le_to": "less_equal", "eq_to": "equal"}[cx.name], a, b)


@converter("ne")
def ne(cx, a, b):
    return cx.op("not", cx.op("equal", a, b))


@converter("max", "min")
def max_min(cx, a, b):
    is_max = cx.name == "max"
    if cx.dtype(a).kind == "bool":
        return cx.op("or" if is_max else "and", a, b)
    return cx.op("max" if is_max else "min", a, b)


@converter("rem")
def rem(cx, a, b):
    return cx.op("mod", a, b, fmod=True)  # C fmod: the result takes the dividend's sign


@converter("pow")
def pow_(cx, a, b):
    return cx.op("pow", a, cx.cast(b, cx.dtype(a)))


@converter("integer_pow")
def integer_pow(cx, x):
    y = int(cx.params["y"])
    if y == 0:
        return cx.op("broadcast", cx.scalar_like(1, x), shape=list(cx.shape(x)))
    n, acc, base = abs(y), None, x
    if n > 64:
        r = cx.op("pow", x, cx.scalar_like(n, x))
    else:  # square and multiply, as XLA expands it: exact for integers, as rounded as JAX for floats
        while n:
            if n & 1:
                acc = base if acc is None else cx.op("mul", acc, base)
            n >>= 1
            if n:
                base = cx.op("mul", base, base)
        r = acc
    if y < 0:
        r = cx.op("div", cx.scalar_like(1, x), r)
    return r


@converter("square")
def square(cx, x):
    return cx.op("mul", x, x)


@converter("exp2")
def exp2(cx, x):
    return cx.op("pow", cx.scalar_like(2, x), x)


@converter("log1p")
def log1p(cx, x):
    # log(u) * x / (u - 1) with u = 1 + x cancels the rounding of u (Goldberg); u == 1 means log1p(x) == x
    one = cx.scalar_like(1, x)
    u = cx.op("add", one, x)
    um1 = cx.op("sub", u, one)
    safe = cx.op("where", cx.op("equal", um1, cx.scalar_like(0, x)), one, um1)
    r = cx.op("div", cx.op("mul", cx.op("log", u), x), safe)
    r = cx.op("where", cx.op("equal", u, one), x, r)
    return cx.op("where", cx.op("isinf", u), u, r)  # log1p(inf) = inf (the formula gives NaN)


@converter("expm1")
def expm1(cx, x):
    # (u - 1) * x / log(u) with u = exp(x) (Kahan); u == 1 means expm1(x) == x; u - 1 == -1 means -1
    one = cx.scalar_like(1, x)
    u = cx.op("exp", x)
    um1 = cx.op("sub", u, one)
    lu = cx.op("log", u)
    safe = cx.op("where", cx.op("equal", lu, cx.scalar_like(0, x)), one, lu)
    r = cx.op("div", cx.op("mul", um1, x), safe)
    r = cx.op("where", cx.op("equal", u, one), x, r)
    # away from 0, exp(x) - 1 loses nothing (and (u - 1) * x could overflow)
    return cx.op("where", cx.op("greater", cx.op("abs", x), one), um1, r)


@converter("cbrt")
def cbrt(cx, x):
    mag = cx.op("pow", cx.op("abs", x), cx.scalar_like(1.0 / 3.0, x))
    return cx.op("mul", cx.op("sign", x), mag)


@converter("erfc")
def erfc(cx, x):
    dt = cx.dtype(x)
    wide = cx.cast(x, "f64")  # 1 - erf(x) loses every digit for large x in float32; float64 keeps them
    r = cx.op("sub", cx.scalar_like(1, wide), cx.op("erf", wide))
    return cx.cast(r, dt)


def _poly(cx, w, coeffs):
    p = cx.scalar_like(coeffs[0], w)
    for c in coeffs[1:]:
        p = cx.op("add", cx.scalar_like(c, w), cx.op("mul", p, w))
    return p


@converter("erf_inv")
def erf_inv(cx, x):
    # M. Giles, "Approximating the erfinv function" (single precision), the approximation XLA uses
    one = cx.scalar_like(1, x)
    w = cx.op("neg", cx.op("log", cx.op("mul", cx.op("sub", one, x), cx.op("add", one, x))))
    lt5 = cx.op("less", w, cx.scalar_like(5, x))
    small = _poly(cx, cx.op("sub", w, cx.scalar_like(2.5, x)), [
        2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
        -0.00417768164, 0.246640727, 1.50140941])
    big_w = cx.op("sub", cx.op("sqrt", cx.op("where", lt5, cx.scalar_like(9, x), w)), cx.scalar_like(3, x))
    big = _poly(cx, big_w, [
        -0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
        0.00943887047, 1.00167406, 2.83297682])
    r = cx.op("mul", cx.op("where", lt5, small, big), x)
    edge = cx.op("equal", cx.op("abs", x), one)  # erf_inv(+-1) = +-inf
    return cx.op("where", edge, cx.op("mul", x, cx.scalar_like(np.inf, x)), r)


@converter("atan2")
def atan2(cx, y, x):
    zero, pi = cx.scalar_like(0, x), cx.scalar_like(math.pi, x)

    def negative(v):  # v < 0, counting -0 as negative (its reciprocal is -inf)
        is0 = cx.op("equal", v, zero)
        return cx.op("where", is0, cx.op("less", cx.op("div", cx.scalar_like(1, v), v), zero), cx.op("less", v, zero))

    xneg, yneg = negative(x), negative(y)
    base = cx.op("atan", cx.op("div", y, x))
    r = cx.op("where", xneg, cx.op("add", base, cx.op("where", yneg, cx.op("neg", pi), pi)), base)
    half = cx.scalar_like(math.pi / 2, x)
    signed_pi = cx.op("where", yneg, cx.op("neg", pi), pi)
    at_zero = cx.op("where", cx.op("equal", y, zero), cx.op("where", xneg, signed_pi, y),
                    cx.op("where", yneg, cx.op("neg", half), half))
    return cx.op("where", cx.op("equal", x, zero), at_zero, r)


@converter("nextafter")
def nextafter(cx, a, b):
    dt = cx.dtype(a)
    ints = {32: "i32", 64: "i64", 16: "i16"}
    if dt.kind != "float" or dt.bits not in ints:
        raise cx.error(f"nextafter of {dt} is not supported")
    it = ints[dt.bits]
    zero = cx.scalar_like(0, a)
    bits = cx.op("bitcast", a, to=it)
    up = cx.op("equal", cx.op("greater", b, a), cx.op("greater", a, zero))  # magnitude grows
    step = cx.op("where", up, cx.const(1, it), cx.const(-1, it))
    r = cx.op("bitcast", cx.op("add", bits, step), to=dt)
    tiny = np.array(1, kd.dtype(it).np).view(dt.np)
    from_zero = cx.op("where", cx.op("greater", b, zero), cx.const(tiny, dt), cx.const(-tiny, dt))
    r = cx.op("where", cx.op("equal", a, zero), from_zero, r)
    r = cx.op("where", cx.op("equal", a, b), b, r)
    nan = cx.op("or", cx.op("isnan", a), cx.op("isnan", b))
    return cx.op("where", nan, cx.op("add", a, b), r)


@converter("round")
def round_(cx, x):
    if int(cx.params.get("rounding_method", 0)) == 1:  # TO_NEAREST_EVEN
        return cx.op("round", x)
    # AWAY_FROM_ZERO: truncate, then step away from zero when the dropped part is at least a half
    zero = cx.scalar_like(0, x)
    t = cx.op("where", cx.op("less", x, zero), cx.op("ceil", x), cx.op("floor", x))
    frac = cx.op("abs", cx.op("sub", x, t))
    away = cx.op("greater_equal", frac, cx.scalar_like(0.5, x))
    return cx.op("where", away, cx.op("add", t, cx.op("sign", x)), t)


@converter("is_finite")
def is_finite(cx, x):
    return cx.op("not", cx.op("or", cx.op("isnan", x), cx.op("isinf", x)))


@converter("not")
def not_(cx, x):
    return cx.op("not" if cx.dtype(x).kind == "bool" else "bitwise_not", x)


def _logic(core):
    def conv(cx, a, b):
        return cx.op(core if cx.dtype(a).kind == "bool" else f"bitwise_{core}", a, b)

    return conv


for _core in ("and", "or", "xor"):
    converter(_core)(_logic(_core))


@converter("shift_right_logical")
def shift_right_logical(cx, a, b):
    dt = cx.dtype(a)
    if dt.kind == "uint":
        return cx.op("shift_right", a, b)
    ut = kd.dtype(f"u{dt.bits}")  # shift the bits as unsigned, then read them back as signed
    return cx.op("bitcast", cx.op("shift_right", cx.op("bitcast", a, to=ut), cx.op("bitcast", b, to=ut)), to=dt)


@converter("select_n")
def select_n(cx, pred, *cases):
    if len(cases) == 1:
        return cases[0]
    c = cx.const_of(pred)
    if c is not None and c.size and np.all(c == c.flat[0]):  # one case everywhere (jnp indexing's sign fix)
        pick = cases[int(np.clip(int(c.flat[0]), 0, len(cases) - 1))]
        out = list(cx.out_shape())
        return pick if list(cx.shape(pick)) == out else cx.op("broadcast", pick, shape=out)
    if cx.dtype(pred).kind == "bool":
        return cx.op("where", pred, cases[1], cases[0])
    r = cases[-1]
    for i in range(len(cases) - 2, -1, -1):
        r = cx.op("where", cx.op("equal", pred, cx.scalar_like(i, pred)), cases[i], r)
    return r


@converter("clamp")
def clamp(cx, lo, x, hi):
    return cx.op("min", cx.op("max", x, lo), hi)


@converter("convert_element_type")
def convert_element_type(cx, x):
    return cx.cast(x, kiln_dtype(cx.params["new_dtype"]))


@converter("bitcast_convert_type")
def bitcast_convert_type(cx, x):
    to = kiln_dtype(cx.params["new_dtype"])
    if to.bits != cx.dtype(x).bits:
        raise cx.error(f"bitcast from {cx.dtype(x)} to {to} changes the element width (and so the shape)")
    return cx.op("bitcast", x, to=to)


@converter("reduce_precision")
def reduce_precision(cx, x):
    e, m = int(cx.params["exponent_bits"]), int(cx.params["mantissa_bits"])
    dt = cx.dtype(x)
    have = {"f64": (11, 52), "f32": (8, 23), "f16": (5, 10), "bf16": (8, 7)}.get(dt.name)
    if have and e >= have[0] and m >= have[1]:
        return x
    narrow = {(8, 7): "bf16", (5, 10): "f16", (8, 23): "f32"}.get((e, m))
    if narrow is None or have is None:
        raise cx.error(f"reduce_precision to {e} exponent / {m} mantissa bits of {dt} is not supported")
    return cx.cast(cx.cast(x, narrow), dt)


@converter("stop_gradient", "copy", "copy_p", "optimization_barrier", "sharding_constraint", "device_put",
           "pvary", "mesh_cast", "reshard")
def passthrough(cx, *xs):
    """Primitives that only matter to autodiff, placement or scheduling: the operands themselves."""
    return list(xs)


@converter("debug_callback", "debug_print")
def debug_callback(cx, *operands):
    """``jax.debug.print`` / ``jax.debug.callback``: host-side effects with no results; a compiled model
    has no host to call back, so they are left out."""
    return []
