"""Elementwise ATen ops: arithmetic, comparisons, logic, activations, casts and copies.

Arithmetic is computed in the result dtype torch promoted to (the node's own dtype); comparisons
in the promoted dtype of their operands. Activations that core ATen keeps whole (gelu, elu,
leaky_relu, hardtanh, ...) decompose here into core kiln ops.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import ConversionError
from ...ir import dtypes as kd
from ._util import binary
from .registry import converts

# --- unary ----------------------------------------------------------------------------------------

_FLOAT_UNARY = {
    "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt", "reciprocal": "reciprocal", "sin": "sin",
    "cos": "cos", "tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh",
    "tanh": "tanh", "asinh": "asinh", "acosh": "acosh", "atanh": "atanh", "sigmoid": "sigmoid", "erf": "erf",
}


def _float_unary(kop):
    def conv(cx, x, *_, **__):
        return cx.e.op(kop, cx.tensor(x, cx.out_dtype))
    conv.__name__ = f"convert_{kop}"
    return conv


for _aten, _kop in _FLOAT_UNARY.items():
    converts(f"aten.{_aten}.default")(_float_unary(_kop))


@converts("aten.abs.default")
def _abs(cx, x):
    if cx.e.dtype(x).kind in ("bool", "uint"):
        return x
    return cx.e.op("abs", x)


@converts("aten.neg.default")
def _neg(cx, x):
    if cx.e.dtype(x).kind == "uint":
        return cx.e.op("sub", cx.tensor(0, cx.e.dtype(x)), x)
    return cx.e.op("neg", x)


@converts("aten.sign.default", "aten.sgn.default")
def _sign(cx, x):
    if cx.e.dtype(x).kind == "bool":
        return x
    return cx.e.op("sign", x)


@converts("aten.relu.default")
def _relu(cx, x):
    if cx.e.dtype(x).kind == "uint":
        return x
    return cx.e.op("relu", x)


def _rounding(kop):
    def conv(cx, x, *_, **__):
        if not cx.e.dtype(x).is_float:
            return x  # torch rounds integers to themselves
        return cx.e.op(kop, x)
    return conv


converts("aten.floor.default")(_rounding("floor"))
converts("aten.ceil.default")(_rounding("ceil"))
converts("aten.round.default")(_rounding("round"))


@converts("aten.round.decimals")
def _round_decimals(cx, x, decimals=0):
    if not cx.e.dtype(x).is_float:
        return x
    s = cx.tensor(10.0 ** decimals, cx.e.dtype(x))
    return cx.e.op("div", cx.e.op("round", cx.e.op("mul", x, s)), s)


@converts("aten.trunc.default")
def _trunc(cx, x):
    if not cx.e.dtype(x).is_float:
        return x
    return trunc(cx, x)


def trunc(cx, x):
    e = cx.e
    neg = e.op("less", x, cx.tensor(0, e.dtype(x)))
    return e.op("where", neg, e.op("ceil", x), e.op("floor", x))


@converts("aten.frac.default")
def _frac(cx, x):
    return cx.e.op("sub", x, trunc(cx, x))


@converts("aten.exp2.default")
def _exp2(cx, x):
    x = cx.tensor(x, cx.out_dtype)
    return cx.e.op("pow", cx.tensor(2.0, cx.out_dtype), x)


@converts("aten.expm1.default")
def _expm1(cx, x):
    e, x = cx.e, cx.tensor(x, cx.out_dtype)
    dt = e.dtype(x)
    direct = e.op("sub", e.op("exp", x), cx.tensor(1.0, dt))
    # exp(x) - 1 loses every digit for tiny x: there x + x^2/2 + x^3/6 is exact to rounding
    series = e.op("add", x, e.op("mul", e.op("mul", x, x), e.op("add", cx.tensor(0.5, dt),
                                                                 e.op("mul", x, cx.tensor(1 / 6, dt)))))
    small = e.op("less", e.op("abs", x), cx.tensor(1e-3, dt))
    return e.op("where", small, series, direct)


@converts("aten.log1p.default")
def _log1p(cx, x):
    e, x = cx.e, cx.tensor(x, cx.out_dtype)
    dt = e.dtype(x)
    direct = e.op("log", e.op("add", x, cx.tensor(1.0, dt)))
    x2 = e.op("mul", x, x)
    series = e.op("add", e.op("sub", x, e.op("mul", x2, cx.tensor(0.5, dt))),
                  e.op("mul", e.op("mul", x2, x), cx.tensor(1 / 3, dt)))
    small = e.op("less", e.op("abs", x), cx.tensor(1e-3, dt))
    return e.op("where", small, series, direct)


@converts("aten.log2.default")
def _log2(cx, x):
    x = cx.tensor(x, cx.out_dtype)
    return cx.e.op("mul", cx.e.op("log", x), cx.tensor(1 / math.log(2), cx.out_dtype))


@converts("aten.log10.default")
def _log10(cx, x):
    x = cx.tensor(x, cx.out_dtype)
    return cx.e.op("mul", cx.e.op("log", x), cx.tensor(1 / math.log(10), cx.out_dtype))


@converts("aten.erfc.default")
def _erfc(cx, x):
    x = cx.tensor(x, cx.out_dtype)
    return cx.e.op("sub", cx.tensor(1.0, cx.out_dtype), cx.e.op("erf", x))


@converts("aten.isnan.default")
def _isnan(cx, x):
    if not cx.e.dtype(x).is_float:
        return cx.e.op("broadcast", cx.tensor(False), shape=cx.out_shape)
    return cx.e.op("isnan", x)


@converts("aten.isinf.default")
def _isinf(cx, x):
    if not cx.e.dtype(x).is_float:
        return cx.e.op("broadcast", cx.tensor(False), shape=cx.out_shape)
    return cx.e.op("isinf", x)


@converts("aten.isposinf.default", "aten.isneginf.default")
def _isposneg(cx, x):
    if not cx.e.dtype(x).is_float:
        return cx.e.op("broadcast", cx.tensor(False), shape=cx.out_shape)
    pos = "isposinf" in str(cx.node.target)
    return cx.e.op("isinf", x, detect_positive=pos, detect_negative=not pos)


@converts("aten.isfinite.default")
def _isfinite(cx, x):
    e = cx.e
    if not e.dtype(x).is_float:
        return e.op("broadcast", cx.tensor(True), shape=cx.out_shape)
    return e.op("not", e.op("or", e.op("isnan", x), e.op("isinf", x)))


@converts("aten.logical_not.default")
def _logical_not(cx, x):
    return cx.e.op("not", cx.tensor(x, kd.bool_))


@converts("aten.bitwise_not.default")
def _bitwise_not(cx, x):
    if cx.e.dtype(x).kind == "bool":
        return cx.e.op("not", x)
    return cx.e.op("bitwise_not", x)


# --- binary arithmetic ------------------------------------------------------------------------------

def _alpha(cx, b, alpha):
    if alpha is None or alpha == 1:
        return b
    return binary(cx, "mul", b, alpha)


@converts("aten.add.Tensor", "aten.add.Scalar")
def _add(cx, a, b, alpha=1):
    if cx.out_dtype.kind == "bool":
        return binary(cx, "or", a, b)
    return binary(cx, "add", a, _alpha(cx, b, alpha))


@converts("aten.sub.Tensor", "aten.sub.Scalar")
def _sub(cx, a, b, alpha=1):
    return binary(cx, "sub", a, _alpha(cx, b, alpha))


@converts("aten.rsub.Scalar", "aten.rsub.Tensor")
def _rsub(cx, a, b, alpha=1):
    return binary(cx, "sub", b, _alpha(cx, a, alpha))


@converts("aten.mul.Tensor", "aten.mul.Scalar")
def _mul(cx, a, b):
    if cx.out_dtype.kind == "bool":
        return binary(cx, "and", a, b)
    return binary(cx, "mul", a, b)


@converts("aten.div.Tensor", "aten.div.Scalar", "aten.true_divide.Tensor")
def _div(cx, a, b):
    return binary(cx, "div", a, b)  # the result dtype is a float: ints divide exactly


@converts("aten.div.Tensor_mode", "aten.div.Scalar_mode")
def _div_mode(cx, a, b, rounding_mode=None):
    if rounding_mode is None:
        return binary(cx, "div", a, b)
    if rounding_mode == "trunc":
        if cx.out_dtype.is_float:
            return trunc(cx, binary(cx, "div", a, b))
        return binary(cx, "div", a, b)  # kiln's integer division truncates
    if rounding_mode == "floor":
        return floor_div(cx, a, b)
    raise ConversionError(f"rounding_mode {rounding_mode!r} is not one of None, 'trunc', 'floor'")


def floor_div(cx, a, b):
    e, dt = cx.e, cx.out_dtype
    a, b = cx.tensor(a, dt), cx.tensor(b, dt)
    if dt.is_float:
        return e.op("floor", e.op("div", a, b))
    q = e.op("div", a, b)  # truncated
    r = e.op("sub", a, e.op("mul", q, b))
    zero = cx.tensor(0, dt)
    fix = e.op("and", e.op("not", e.op("equal", r, zero)),
               e.op("xor", e.op("less", r, zero), e.op("less", b, zero)))
    return e.op("sub", q, e.cast(fix, dt))


@converts("aten.floor_divide.default", "aten.floor_divide.Scalar")
def _floor_divide(cx, a, b):
    return floor_div(cx, a, b)


@converts("aten.remainder.Tensor", "aten.remainder.Scalar", "aten.remainder.Scalar_Tensor")
def _remainder(cx, a, b):
    return binary(cx, "mod", a, b)


@converts("aten.fmod.Tensor", "aten.fmod.Scalar")
def _fmod(cx, a, b):
    dt = cx.out_dtype
    return cx.e.op("mod", cx.tensor(a, dt), cx.tensor(b, dt), fmod=True)


@converts("aten.pow.Tensor_Tensor", "aten.pow.Tensor_Scalar", "aten.pow.Scalar")
def _pow(cx, a, b):
    e, dt = cx.e, cx.out_dtype
    if isinstance(b, (int, float)) and not isinstance(b, bool) and isinstance(a, str):
        x = cx.tensor(a, dt)
        if b == 1:
            return x
        if b == 2:
            return e.op("mul", x, x)
        if b == 0.5 and dt.is_float:
            return e.op("sqrt", x)
        if b == -0.5 and dt.is_float:
            return e.op("rsqrt", x)
        if b == -1 and dt.is_float:
            return e.op("reciprocal", x)
    return binary(cx, "pow", a, b)


@converts("aten.maximum.default", "aten.max.other")
def _maximum(cx, a, b):
    return binary(cx, "max", a, b)


@converts("aten.minimum.default", "aten.min.other")
def _minimum(cx, a, b):
    return binary(cx, "min", a, b)


@converts("aten.fmax.default", "aten.fmin.default")
def _fmax(cx, a, b):
    e, dt = cx.e, cx.out_dtype
    a, b = cx.tensor(a, dt), cx.tensor(b, dt)
    r = e.op("max" if "fmax" in str(cx.node.target) else "min", a, b)
    if not dt.is_float:
        return r
    return e.op("where", e.op("isnan", a), b, e.op("where", e.op("isnan", b), a, r))


@converts("aten.atan2.default")
def _atan2(cx, y, x):
    e, dt = cx.e, cx.out_dtype
    y, x = cx.tensor(y, dt), cx.tensor(x, dt)
    zero = cx.tensor(0.0, dt)
    pi = cx.tensor(math.pi, dt)
    base = e.op("atan", e.op("div", y, x))
    ylt = e.op("less", y, zero)
    xneg = e.op("less", x, zero)
    signed_pi = e.op("where", ylt, e.op("neg", pi), pi)
    r = e.op("where", xneg, e.op("add", base, signed_pi), base)
    half = e.op("where", ylt, cx.tensor(-math.pi / 2, dt), cx.tensor(math.pi / 2, dt))
    xzero = e.op("equal", x, zero)
    r = e.op("where", xzero, e.op("where", e.op("equal", y, zero), zero, half), r)
    return r


@converts("aten.hypot.default")
def _hypot(cx, a, b):
    e, dt = cx.e, cx.out_dtype
    a, b = cx.tensor(a, dt), cx.tensor(b, dt)
    return e.op("sqrt", e.op("add", e.op("mul", a, a), e.op("mul", b, b)))


@converts("aten.lerp.Scalar", "aten.lerp.Tensor")
def _lerp(cx, a, b, w):
    e, dt = cx.e, cx.out_dtype
    a, b, w = cx.tensor(a, dt), cx.tensor(b, dt), cx.tensor(w, dt)
    return e.op("add", a, e.op("mul", w, e.op("sub", b, a)))


@converts("aten.addcmul.default")
def _addcmul(cx, x, t1, t2, value=1):
    e, dt = cx.e, cx.out_dtype
    p = e.op("mul", cx.tensor(t1, dt), cx.tensor(t2, dt))
    return e.op("add", cx.tensor(x, dt), p if value == 1 else e.op("mul", p, cx.tensor(value, dt)))


@converts("aten.addcdiv.default")
def _addcdiv(cx, x, t1, t2, value=1):
    e, dt = cx.e, cx.out_dtype
    p = e.op("div", cx.tensor(t1, dt), cx.tensor(t2, dt))
    return e.op("add", cx.tensor(x, dt), p if value == 1 else e.op("mul", p, cx.tensor(value, dt)))


# --- bitwise and logical -------------------------------------------------------------------------

def _bitwise(kop, bool_op):
    def conv(cx, a, b):
        if cx.out_dtype.kind == "bool":
            return binary(cx, bool_op, a, b)
        return binary(cx, kop, a, b)
    return conv


for _name, _kop, _bop in (("bitwise_and", "bitwise_and", "and"), ("bitwise_or", "bitwise_or", "or"),
                          ("bitwise_xor", "bitwise_xor", "xor")):
    converts(f"aten.{_name}.Tensor", f"aten.{_name}.Scalar")(_bitwise(_kop, _bop))


def _logical(kop):
    def conv(cx, a, b):
        return cx.e.op(kop, cx.tensor(a, kd.bool_), cx.tensor(b, kd.bool_))
    return conv


for _name in ("and", "or", "xor"):
    converts(f"aten.logical_{_name}.default")(_logical(_name))


@converts("aten.bitwise_left_shift.Tensor", "aten.bitwise_left_shift.Tensor_Scalar",
          "aten.__lshift__.Tensor", "aten.__lshift__.Scalar")
def _lshift(cx, a, b):
    return binary(cx, "shift_left", a, b)


@converts("aten.bitwise_right_shift.Tensor", "aten.bitwise_right_shift.Tensor_Scalar",
          "aten.__rshift__.Tensor", "aten.__rshift__.Scalar")
def _rshift(cx, a, b):
    return binary(cx, "shift_right", a, b)


# --- comparisons -----------------------------------------------------------------------------------

def _compare(kop, negate=False):
    def conv(cx, a, b):
        dt = cx.promoted(*cx.node.args[:2])
        if dt.kind == "bool" and kop != "equal":
            dt = kd.uint8  # ordering bools: as 0 and 1
        r = cx.e.op(kop, cx.tensor(a, dt), cx.tensor(b, dt))
        return cx.e.op("not", r) if negate else r
    return conv


for _name, _kop, _neg_ in (("eq", "equal", False), ("ne", "equal", True), ("lt", "less", False),
                           ("le", "less_equal", False), ("gt", "greater", False), ("ge", "greater_equal", False)):
    converts(f"aten.{_name}.Tensor", f"aten.{_name}.Scalar")(_compare(_kop, _neg_))


# --- selection -------------------------------------------------------------------------------------

@converts("aten.where.self", "aten.where.ScalarSelf", "aten.where.ScalarOther", "aten.where.Scalar")
def _where(cx, cond, a, b):
    dt = cx.out_dtype
    return cx.e.op("where", cx.tensor(cond, kd.bool_), cx.tensor(a, dt), cx.tensor(b, dt))


@converts("aten.masked_fill.Scalar", "aten.masked_fill.Tensor")
def _masked_fill(cx, x, mask, value):
    dt = cx.out_dtype
    return cx.e.op("where", cx.tensor(mask, kd.bool_), cx.tensor(value, dt), cx.tensor(x, dt))


@converts("aten.clamp.default", "aten.clamp.Tensor", "aten.clip.default", "aten.clip.Tensor")
def _clamp(cx, x, min=None, max=None):
    return clamp(cx, x, min, max)


def clamp(cx, x, lo=None, hi=None):
    e, dt = cx.e, cx.out_dtype
    x = cx.tensor(x, dt)
    if lo is not None:
        x = e.op("max", x, cx.tensor(lo, dt))
    if hi is not None:
        x = e.op("min", x, cx.tensor(hi, dt))
    return x


@converts("aten.clamp_min.default", "aten.clamp_min.Tensor")
def _clamp_min(cx, x, lo):
    return clamp(cx, x, lo, None)


@converts("aten.clamp_max.default", "aten.clamp_max.Tensor")
def _clamp_max(cx, x, hi):
    return clamp(cx, x, None, hi)


@converts("aten.nan_to_num.default")
def _nan_to_num(cx, x, nan=0.0, posinf=None, neginf=None):
    e, dt = cx.e, cx.e.dtype(x)
    if not dt.is_float:
        return x
    big = float(np.finfo(dt.np).max) if dt.np.kind == "f" else 3.3895313892515355e38
    x = e.op("where", e.op("isnan", x), cx.tensor(nan if nan is not None else 0.0, dt), x)
    x = e.op("where", e.op("isinf", x, detect_negative=False), cx.tensor(big if posinf is None else posinf, dt), x)
    return e.op("where", e.op("isinf", x, detect_positive=False), cx.tensor(-big if neginf is None else neginf, dt), x)


# --- activations -----------------------------------------------------------------------------------

@converts("aten.hardtanh.default")
def _hardtanh(cx, x, min_val=-1.0, max_val=1.0):
    return clamp(cx, x, min_val, max_val)


@converts("aten.relu6.default")
def _relu6(cx, x):
    return clamp(cx, x, 0, 6)


@converts("aten.gelu.default")
def _gelu(cx, x, approximate="none"):
    e, dt = cx.e, cx.out_dtype
    x = cx.tensor(x, dt)
    half = e.op("mul", x, cx.tensor(0.5, dt))
    if approximate == "tanh":
        inner = e.op("mul", e.op("add", x, e.op("mul", e.op("mul", e.op("mul", x, x), x), cx.tensor(0.044715, dt))),
                     cx.tensor(math.sqrt(2 / math.pi), dt))
        return e.op("mul", half, e.op("add", e.op("tanh", inner), cx.tensor(1.0, dt)))
    if approximate != "none":
        raise ConversionError(f"gelu approximate={approximate!r} is not 'none' or 'tanh'")
    cdf = e.op("add", e.op("erf", e.op("mul", x, cx.tensor(1 / math.sqrt(2), dt))), cx.tensor(1.0, dt))
    return e.op("mul", half, cdf)


@converts("aten.silu.default")
def _silu(cx, x):
    return cx.e.op("mul", x, cx.e.op("sigmoid", x))


@converts("aten.mish.default")
def _mish(cx, x):
    return cx.e.op("mul", x, cx.e.op("tanh", softplus(cx, x, 1.0, 20.0)))


def softplus(cx, x, beta, threshold):
    e, dt = cx.e, cx.e.dtype(x)
    bx = x if beta == 1 else e.op("mul", x, cx.tensor(beta, dt))
    # log(1 + exp(bx)) without overflow: max(bx, 0) + log(1 + exp(-|bx|))
    soft = e.op("add", e.op("max", bx, cx.tensor(0.0, dt)),
                e.op("log", e.op("add", cx.tensor(1.0, dt), e.op("exp", e.op("neg", e.op("abs", bx))))))
    if beta != 1:
        soft = e.op("div", soft, cx.tensor(beta, dt))
    return e.op("where", e.op("greater", bx, cx.tensor(threshold, dt)), x, soft)


@converts("aten.softplus.default")
def _softplus(cx, x, beta=1.0, threshold=20.0):
    return softplus(cx, cx.tensor(x, cx.out_dtype), beta, threshold)


@converts("aten.leaky_relu.default")
def _leaky_relu(cx, x, negative_slope=0.01):
    e, dt = cx.e, cx.out_dtype
    return e.op("where", e.op("greater", x, cx.tensor(0, dt)), x, e.op("mul", x, cx.tensor(negative_slope, dt)))


@converts("aten.elu.default")
def _elu(cx, x, alpha=1.0, scale=1.0, input_scale=1.0):
    e, dt = cx.e, cx.out_dtype
    xin = x if input_scale == 1 else e.op("mul", x, cx.tensor(input_scale, dt))
    neg = e.op("mul", e.op("sub", e.op("exp", xin), cx.tensor(1.0, dt)), cx.tensor(alpha, dt))
    r = e.op("where", e.op("greater", x, cx.tensor(0.0, dt)), x, neg)
    return r if scale == 1 else e.op("mul", r, cx.tensor(scale, dt))


@converts("aten.celu.default")
def _celu(cx, x, alpha=1.0):
    return _elu(cx, x, alpha, 1.0, 1.0 / alpha)


@converts("aten.selu.default")
def _selu(cx, x):
    return _elu(cx, x, 1.6732632423543772848170429916717, 1.0507009873554804934193349852946, 1.0)


@converts("aten.hardswish.default")
def _hardswish(cx, x):
    return cx.e.op("mul", x, _hardsigmoid(cx, x))


@converts("aten.hardsigmoid.default")
def _hardsigmoid(cx, x):
    e, dt = cx.e, cx.out_dtype
    return e.op("div", clamp(cx, e.op("add", x, cx.tensor(3.0, dt)), 0.0, 6.0), cx.tensor(6.0, dt))


@converts("aten.threshold.default")
def _threshold(cx, x, threshold, value):
    e, dt = cx.e, cx.out_dtype
    return e.op("where", e.op("greater", x, cx.tensor(threshold, dt)), x, cx.tensor(value, dt))


@converts("aten.hardshrink.default", "aten.softshrink.default")
def _shrink(cx, x, lambd=0.5):
    e, dt = cx.e, cx.out_dtype
    lam = cx.tensor(lambd, dt)
    keep = e.op("greater", e.op("abs", x), lam)
    if "hardshrink" in str(cx.node.target):
        return e.op("where", keep, x, cx.tensor(0.0, dt))
    shrunk = e.op("sub", x, e.op("mul", e.op("sign", x), lam))
    return e.op("where", keep, shrunk, cx.tensor(0.0, dt))


@converts("aten._prelu_kernel.default")
def _prelu(cx, x, w):
    e = cx.e
    return e.op("where", e.op("greater", x, cx.tensor(0.0, e.dtype(x))), x, e.op("mul", x, w))


@converts("aten.logit.default")
def _logit(cx, x, eps=None):
    e, dt = cx.e, cx.out_dtype
    if eps is not None:
        x = clamp(cx, x, eps, 1 - eps)
    return e.op("log", e.op("div", x, e.op("sub", cx.tensor(1.0, dt), x)))


# --- casts and copies ----------------------------------------------------------------------------

@converts("aten._to_copy.default", "aten.to.dtype", "aten._to_dim_order_copy.default")
def _to_copy(cx, x, *_, **__):
    return cx.e.cast(x, cx.out_dtype)


@converts("aten.clone.default", "aten.alias.default", "aten.detach.default", "aten.lift_fresh_copy.default",
          "aten.contiguous.default", "aten.positive.default", "aten.alias_copy.default", "aten.detach_copy.default",
          "aten.view_copy.dtype_identity")
def _identity(cx, x, *_, **__):
    return x


@converts("aten.dropout.default", "aten.feature_dropout.default", "aten.alpha_dropout.default",
          "aten.feature_alpha_dropout.default")
def _dropout(cx, x, p=0.5, train=False):
    if train:
        raise ConversionError("dropout in training mode is random; call model.eval() (kiln compiles inference)")
    return x


@converts("aten.native_dropout.default")
def _native_dropout(cx, x, p, train):
    if train:
        raise ConversionError("dropout in training mode is random; call model.eval() (kiln compiles inference)")
    mask = cx.e.op("broadcast", cx.tensor(True), shape=cx.e.shape(x)) if cx.used(1) else None
    return (x, mask)


@converts("aten.copy.default", "aten.copy_.default")
def _copy(cx, dst, src, non_blocking=False):
    e = cx.e
    v = e.cast(cx.tensor(src, e.dtype(dst)), e.dtype(dst))
    if list(e.shape(v)) != list(e.shape(dst)):
        v = e.op("broadcast", v, shape=list(e.shape(dst)))
    return v


@converts("aten.fill.Scalar", "aten.fill.Tensor")
def _fill(cx, x, value):
    dt = cx.e.dtype(x)
    return cx.e.op("broadcast", cx.tensor(value, dt), shape=list(cx.e.shape(x)))

