"""Converters for ONNX elementwise ops: math, comparisons, logic, activations, casts, quantization.

Most ONNX elementwise ops map one-to-one onto a core op (the tables at the top). Activations,
Clip, Dropout and the quantization ops are *decompositions* into core elementwise ops: they add
no core op of their own.
"""
from __future__ import annotations

import math

import numpy as np

from ....ir import dtypes as kd
from ..registry import converter
from ._helpers import cast as _cast  # this module's ``cast`` is the Cast converter
from ._helpers import scalar_like as _k

# --- helpers ------------------------------------------------------------------------------------


def _dtype_attr(ctx, name, default=None):
    from ..importer import onnx_dtype

    code = ctx.attr(name, 0)
    if not code:
        return default
    return onnx_dtype(code, f"{ctx.node.op_type} node '{ctx.name}' attribute '{name}'")


def _require_float(ctx, i=0):
    if not ctx.dtype(i).is_float:
        ctx.fail(f"input {i} has dtype {ctx.dtype(i)}; this op needs a float tensor")


# --- one-to-one unary and binary ops ------------------------------------------------------------

#: ONNX op -> (core op, opset it first appears in)
UNARY = {
    "Abs": ("abs", 1), "Neg": ("neg", 1), "Exp": ("exp", 1), "Log": ("log", 1), "Sqrt": ("sqrt", 1),
    "Reciprocal": ("reciprocal", 1), "Sin": ("sin", 7), "Cos": ("cos", 7), "Tan": ("tan", 7),
    "Asin": ("asin", 7), "Acos": ("acos", 7), "Atan": ("atan", 7), "Sinh": ("sinh", 9),
    "Cosh": ("cosh", 9), "Tanh": ("tanh", 1), "Asinh": ("asinh", 9), "Acosh": ("acosh", 9),
    "Atanh": ("atanh", 9), "Sigmoid": ("sigmoid", 1), "Erf": ("erf", 9), "Floor": ("floor", 1),
    "Ceil": ("ceil", 1), "Round": ("round", 11), "Sign": ("sign", 9), "Not": ("not", 1),
    "IsNaN": ("isnan", 9), "Relu": ("relu", 1), "BitwiseNot": ("bitwise_not", 18),
}

#: ONNX op -> (core op, opset from which it broadcasts numpy-style)
BINARY = {
    "Add": ("add", 7), "Sub": ("sub", 7), "Mul": ("mul", 7), "Div": ("div", 7), "Pow": ("pow", 7),
    "Equal": ("equal", 7), "Less": ("less", 7), "Greater": ("greater", 7),
    "LessOrEqual": ("less_equal", 12), "GreaterOrEqual": ("greater_equal", 12),
    "And": ("and", 7), "Or": ("or", 7), "Xor": ("xor", 7),
    "BitwiseAnd": ("bitwise_and", 18), "BitwiseOr": ("bitwise_or", 18), "BitwiseXor": ("bitwise_xor", 18),
}


def _unary_converter(core):
    def convert(ctx):
        return ctx.op(core, ctx.input(0))

    return convert


def _binary_converter(core):
    def convert(ctx):
        return ctx.op(core, ctx.input(0), ctx.input(1))

    return convert


for _onnx, (_core, _since) in UNARY.items():
    converter(_onnx, since=_since)(_unary_converter(_core))
for _onnx, (_core, _since) in BINARY.items():
    converter(_onnx, since=_since)(_binary_converter(_core))


@converter("Pow", since=12)
def pow_mixed(ctx):
    """Pow-12+: base and exponent may differ in dtype; the result has the base's dtype."""
    a, b = ctx.input(0), ctx.input(1)
    ta, tb = ctx.dtype(0), ctx.dtype(1)
    if ta == tb:
        return ctx.op("pow", a, b)
    if ta.is_float:
        return ctx.op("pow", a, _cast(ctx, b, ta))
    if tb.is_float:  # integer base, float exponent: evaluate in float64, truncate back
        return _cast(ctx, ctx.op("pow", _cast(ctx, a, kd.float64), _cast(ctx, b, kd.float64)), ta)
    return ctx.op("pow", a, _cast(ctx, b, ta))  # integer base and exponent of different widths


@converter("Mod", since=10)
def mod(ctx):
    fmod = ctx.attr("fmod", 0)
    if fmod not in (0, 1):
        ctx.fail(f"fmod must be 0 or 1, got {fmod}")
    return ctx.op("mod", ctx.input(0), ctx.input(1), fmod=bool(fmod))


@converter("BitShift", since=11)
def bitshift(ctx):
    direction = ctx.attr("direction", "")
    if direction not in ("LEFT", "RIGHT"):
        ctx.fail(f"direction must be 'LEFT' or 'RIGHT', got {direction!r}")
    return ctx.op("shift_left" if direction == "LEFT" else "shift_right", ctx.input(0), ctx.input(1))


@converter("IsInf", since=10)
def isinf(ctx):
    return ctx.op("isinf", ctx.input(0), detect_positive=bool(ctx.attr("detect_positive", 1)),
                  detect_negative=bool(ctx.attr("detect_negative", 1)))


@converter("Where", since=9)
def where(ctx):
    return ctx.op("where", ctx.input(0), ctx.input(1), ctx.input(2))


# --- variadic ------------------------------------------------------------------------------------


def _fold(ctx, core):
    vals = [v for v in ctx.inputs() if v is not None]
    if not vals:
        ctx.fail("needs at least one input")
    out = vals[0]
    for v in vals[1:]:
        out = ctx.op(core, out, v)
    return out


def _fold_converter(core):
    def convert(ctx):
        return _fold(ctx, core)

    return convert


for _onnx, _core in (("Max", "max"), ("Min", "min"), ("Sum", "add")):
    converter(_onnx, since=6)(_fold_converter(_core))


@converter("Mean", since=6)
def mean(ctx):
    n = sum(1 for v in ctx.inputs() if v is not None)
    total = _fold(ctx, "add")
    return total if n == 1 else ctx.op("div", total, _k(ctx, n, total))


# --- casts ---------------------------------------------------------------------------------------


def _cast_node(ctx, to):
    saturate = ctx.attr("saturate", 1)
    round_mode = ctx.attr("round_mode", "up")
    if round_mode not in ("up", "down", "nearest"):
        ctx.fail(f"round_mode must be 'up', 'down' or 'nearest', got {round_mode!r}")
    return ctx.op("cast", ctx.input(0), to=to, saturate=bool(saturate), round_mode=round_mode)


@converter("Cast", since=6)
def cast(ctx):
    return _cast_node(ctx, _dtype_attr(ctx, "to") or ctx.fail("attribute 'to' is required"))


@converter("CastLike", since=15)
def cast_like(ctx):
    return _cast_node(ctx, ctx.dtype(1))


@converter("BitCast", since=26)
def bitcast(ctx):
    to = _dtype_attr(ctx, "to") or ctx.fail("attribute 'to' is required")
    if to.bits != ctx.dtype(0).bits:
        ctx.fail(f"cannot bit-cast {ctx.dtype(0)} ({ctx.dtype(0).bits} bits) to {to} ({to.bits} bits)")
    return ctx.op("bitcast", ctx.input(0), to=to)


# --- Clip ----------------------------------------------------------------------------------------


def _clip(ctx, x, lo, hi):
    if lo is not None:
        x = ctx.op("max", x, lo)
    if hi is not None:
        x = ctx.op("min", x, hi)
    return x


@converter("Clip", since=6)
def clip_attrs(ctx):
    """Clip-6: bounds are attributes (defaulting to the float range)."""
    x = ctx.input(0)
    lo = ctx.attr("min", None)
    hi = ctx.attr("max", None)
    return _clip(ctx, x, None if lo is None else _k(ctx, lo, x), None if hi is None else _k(ctx, hi, x))


@converter("Clip", since=11)
def clip_inputs(ctx):
    """Clip-11+: bounds are optional scalar inputs."""
    for i in (1, 2):
        if ctx.has_input(i) and ctx.dtype(i) != ctx.dtype(0):
            ctx.fail(f"bound input {i} has dtype {ctx.dtype(i)}, input has {ctx.dtype(0)}")
    return _clip(ctx, ctx.input(0), ctx.input(1), ctx.input(2))


# --- Dropout -------------------------------------------------------------------------------------


def _dropout(ctx, mask_dtype, training: bool, ratio):
    if training and ratio is not None and float(np.asarray(ratio).reshape(-1)[0]) > 0:
        ctx.fail("training_mode=True with ratio > 0 draws random numbers; kiln compiles inference only")
    x = ctx.input(0)
    if not ctx.has_output(1):
        return [x]
    true = ctx.const(np.ones((), dtype=mask_dtype.np))
    if all(isinstance(d, int) for d in ctx.shape(0)):
        return [x, ctx.op("broadcast", true, shape=ctx.shape(0))]
    # run-time dims: take the shape from x itself (a constant cannot carry it)
    return [x, ctx.op("where", ctx.op("equal", x, x), true, true)]


@converter("Dropout", since=7)
def dropout_7(ctx):
    """Dropout-7: an identity at inference; the mask has the data's dtype."""
    return _dropout(ctx, ctx.dtype(0), False, None)


@converter("Dropout", since=10)
def dropout_10(ctx):
    """Dropout-10: the mask is bool."""
    return _dropout(ctx, kd.bool_, False, None)


@converter("Dropout", since=12)
def dropout_12(ctx):
    """Dropout-12+: ratio and training_mode are optional inputs. A constant ratio of 0 makes it an
    identity even when training."""
    ratio = ctx.const_value(1) if ctx.has_input(1) else np.float32(0.5)
    if ratio is not None and float(np.asarray(ratio).reshape(-1)[0]) == 0:
        return _dropout(ctx, kd.bool_, False, None)
    training = False
    if ctx.has_input(2):
        mode = ctx.const_value(2)
        if mode is None:
            ctx.fail("training_mode is a run-time input; kiln compiles inference graphs, so it must be "
                     "a constant (or absent)")
        training = bool(np.asarray(mode).reshape(-1)[0])
    if ratio is None and training:
        ctx.fail("ratio must be known at compile time when training_mode is set")
    return _dropout(ctx, kd.bool_, training, ratio)


# --- activations (decompositions) ----------------------------------------------------------------


def activation(op_type: str, since: int):
    """Register ``fn(ctx, *inputs)`` as the converter of an activation.

    16-bit float inputs are computed in float32 and rounded once at the end, as ONNX's own
    reference does; rounding after every step of a decomposition would lose several ulps.
    """

    def deco(fn):
        def convert(ctx):
            dt = ctx.dtype(0)
            xs = ctx.inputs()
            if not (dt.is_float and dt.bits < 32):
                return fn(ctx, *xs)
            return _cast(ctx, fn(ctx, *[x and _cast(ctx, x, kd.float32) for x in xs]), dt)

        convert.__name__ = convert.__qualname__ = fn.__name__
        convert.__doc__ = fn.__doc__
        converter(op_type, since=since)(convert)
        return fn

    return deco


def _where_neg(ctx, x, neg, pos, strict=True):
    """where(x < 0, neg, pos) (``x <= 0`` when not strict)."""
    cond = ctx.op("less" if strict else "less_equal", x, _k(ctx, 0, x))
    return ctx.op("where", cond, neg, pos)


@activation("LeakyRelu", since=6)
def leaky_relu(ctx, x):
    return _where_neg(ctx, x, ctx.op("mul", x, _k(ctx, ctx.attr("alpha", 0.01), x)), x)


@activation("PRelu", since=7)
def prelu(ctx, x, slope):
    return _where_neg(ctx, x, ctx.op("mul", x, slope), x)


def _expm1(ctx, x):
    return ctx.op("sub", ctx.op("exp", x), _k(ctx, 1, x))


@activation("Elu", since=6)
def elu(ctx, x):
    alpha = ctx.attr("alpha", 1.0)
    return _where_neg(ctx, x, ctx.op("mul", _expm1(ctx, x), _k(ctx, alpha, x)), x, strict=False)


@activation("Selu", since=6)
def selu(ctx, x):
    alpha = ctx.attr("alpha", 1.67326319217681884765625)
    gamma = ctx.attr("gamma", 1.05070102214813232421875)
    neg = ctx.op("mul", _expm1(ctx, x), _k(ctx, alpha * gamma, x))
    return _where_neg(ctx, x, neg, ctx.op("mul", x, _k(ctx, gamma, x)), strict=False)


@activation("Celu", since=12)
def celu(ctx, x):
    alpha = ctx.attr("alpha", 1.0)
    if alpha == 0:
        ctx.fail("alpha must not be 0")
    neg = ctx.op("mul", _expm1(ctx, ctx.op("div", x, _k(ctx, alpha, x))), _k(ctx, alpha, x))
    return ctx.op("add", ctx.op("relu", x), ctx.op("min", neg, _k(ctx, 0, x)))


def _hard_sigmoid(ctx, x, alpha, beta):
    y = ctx.op("add", ctx.op("mul", x, _k(ctx, alpha, x)), _k(ctx, beta, x))
    return ctx.op("max", ctx.op("min", y, _k(ctx, 1, x)), _k(ctx, 0, x))


@activation("HardSigmoid", since=6)
def hard_sigmoid(ctx, x):
    return _hard_sigmoid(ctx, x, ctx.attr("alpha", 0.2), ctx.attr("beta", 0.5))


@activation("HardSwish", since=14)
def hard_swish(ctx, x):
    return ctx.op("mul", x, _hard_sigmoid(ctx, x, 1 / 6, 0.5))


def _softplus(ctx, x):
    """log(1 + exp(x)) = relu(x) + log(1 + exp(-|x|)), which never overflows."""
    e = ctx.op("exp", ctx.op("neg", ctx.op("abs", x)))
    return ctx.op("add", ctx.op("relu", x), ctx.op("log", ctx.op("add", e, _k(ctx, 1, x))))


@activation("Softplus", since=1)
def softplus(ctx, x):
    return _softplus(ctx, x)


@activation("Softsign", since=1)
def softsign(ctx, x):
    return ctx.op("div", x, ctx.op("add", ctx.op("abs", x), _k(ctx, 1, x)))


@activation("Mish", since=18)
def mish(ctx, x):
    return ctx.op("mul", x, ctx.op("tanh", _softplus(ctx, x)))


@activation("ThresholdedRelu", since=10)
def thresholded_relu(ctx, x):
    alpha = ctx.attr("alpha", 1.0)
    return ctx.op("where", ctx.op("greater", x, _k(ctx, alpha, x)), x, _k(ctx, 0, x))


@activation("Shrink", since=9)
def shrink(ctx, x):
    bias, lambd = ctx.attr("bias", 0.0), ctx.attr("lambd", 0.5)
    lo, hi = -lambd, lambd
    if not ctx.type_of(x).dtype.is_float:  # integer x: compare against the nearest integer bounds
        lo, hi = math.ceil(lo), math.floor(hi)
    below = ctx.op("less", x, _k(ctx, lo, x))
    above = ctx.op("greater", x, _k(ctx, hi, x))
    b = _k(ctx, bias, x)
    inner = ctx.op("where", above, ctx.op("sub", x, b), _k(ctx, 0, x))
    return ctx.op("where", below, ctx.op("add", x, b), inner)


def _swish(ctx, x, alpha):
    s = x if alpha == 1.0 else ctx.op("mul", x, _k(ctx, alpha, x))
    return ctx.op("mul", x, ctx.op("sigmoid", s))


@activation("Swish", since=24)
def swish(ctx, x):
    return _swish(ctx, x, ctx.attr("alpha", 1.0))


@activation("SwiGLU", since=28)
def swiglu(ctx, a, b):
    if ctx.shape(0) != ctx.shape(1):
        ctx.fail(f"A {list(ctx.shape(0))} and B {list(ctx.shape(1))} must have the same shape")
    return ctx.op("mul", _swish(ctx, a, ctx.attr("alpha", 1.0)), b)


@activation("Gelu", since=20)
def gelu(ctx, x):
    approx = ctx.attr("approximate", "none")
    half = ctx.op("mul", x, _k(ctx, 0.5, x))
    if approx == "none":
        inner = ctx.op("erf", ctx.op("mul", x, _k(ctx, 1 / math.sqrt(2), x)))
    elif approx == "tanh":
        cube = ctx.op("mul", ctx.op("mul", x, x), x)
        poly = ctx.op("add", x, ctx.op("mul", cube, _k(ctx, 0.044715, x)))
        inner = ctx.op("tanh", ctx.op("mul", poly, _k(ctx, math.sqrt(2 / math.pi), x)))
    else:
        ctx.fail(f"approximate must be 'none' or 'tanh', got {approx!r}")
    return ctx.op("mul", half, ctx.op("add", inner, _k(ctx, 1, x)))


# --- quantization (decompositions) ---------------------------------------------------------------

#: integer quantized types and their saturation ranges
_QRANGE = {
    "u8": (0, 255), "i8": (-128, 127), "u16": (0, 65535), "i16": (-32768, 32767),
    "u4": (0, 15), "i4": (-8, 7), "u2": (0, 3), "i2": (-2, 1),
}


def _expand_param(ctx, p, x_shape, axis, block_size, what):
    """Reshape a scale or zero point so it broadcasts against x (per-tensor, per-axis or blocked)."""
    t = ctx.type_of(p)
    rank = len(x_shape)
    if t.rank == 0:
        return p
    if t.rank == 1 and not block_size and t.shape[0] == 1:
        return ctx.op("reshape", p, shape=[])
    if not -rank <= axis < max(rank, 1):
        ctx.fail(f"axis {axis} is out of range for input rank {rank}")
    axis %= rank
    if not block_size:
        if t.rank != 1:
            ctx.fail(f"{what} must be a scalar or 1-D for per-axis quantization, got shape {list(t.shape)}")
        if isinstance(t.shape[0], int) and isinstance(x_shape[axis], int) and t.shape[0] != x_shape[axis]:
            ctx.fail(f"{what} has {t.shape[0]} elements, input axis {axis} has {x_shape[axis]}")
        shape = [1] * rank
        shape[axis] = t.shape[0]
        return ctx.op("reshape", p, shape=shape)
    # blocked: repeat every element block_size times along axis, then cut to the input's length
    if block_size < 0:
        ctx.fail(f"block_size must be positive, got {block_size}")
    if t.rank != rank:
        ctx.fail(f"{what} must have the input's rank {rank} for blocked quantization, got {list(t.shape)}")
    s = list(t.shape)
    n = s[axis]
    if not isinstance(n, int):
        ctx.fail(f"{what} needs a static size on the blocked axis, got {list(s)}")
    rep = ctx.op("broadcast", ctx.op("reshape", p, shape=s[:axis + 1] + [1] + s[axis + 1:]),
                 shape=s[:axis + 1] + [block_size] + s[axis + 1:])
    rep = ctx.op("reshape", rep, shape=s[:axis] + [n * block_size] + s[axis + 1:])
    d = x_shape[axis]
    if not isinstance(d, int):
        ctx.fail(f"blocked quantization needs a static size on axis {axis}, input has {d}")
    if d != n * block_size:
        if not (n - 1) * block_size < d <= n * block_size:
            ctx.fail(f"{what} shape {list(s)} does not block input axis {axis} of size {d} by {block_size}")
        rep = ctx.op("slice", rep, starts=[0], ends=[d], axes=[axis], steps=[1])
    return rep


def _quantize(ctx, axis=1, block_size=0, saturate=True, output_dtype=None, precision=None):
    x, scale, zp = ctx.input(0), ctx.input(1), ctx.input(2)
    q = ctx.dtype(2) if zp is not None else (output_dtype or kd.uint8)
    if output_dtype is not None and zp is not None and output_dtype != q:
        ctx.fail(f"output_dtype {output_dtype} differs from the zero point's dtype {q}")
    if q.name not in _QRANGE and not (q.is_float and q.bits <= 8):
        ctx.fail(f"quantizing to {q} is not supported")
    sdt = ctx.dtype(1)
    work = precision or (sdt if sdt.is_float and sdt.bits >= 16 else kd.float32)
    shape = ctx.shape(0)
    s = _expand_param(ctx, _cast(ctx, scale, work), shape, axis, block_size, "y_scale")
    y = ctx.op("div", _cast(ctx, x, work), s)
    if q.name in _QRANGE:
        y = ctx.op("round", y)
        if zp is not None:
            y = ctx.op("add", y, _expand_param(ctx, _cast(ctx, zp, work), shape, axis, block_size,
                                               "y_zero_point"))
        lo, hi = _QRANGE[q.name]
        return ctx.op("cast", _clip(ctx, y, _k(ctx, lo, y), _k(ctx, hi, y)), to=q)
    if zp is not None and q.bits == 4:  # float4: the zero point is added, as for ints
        y = ctx.op("add", y, _expand_param(ctx, _cast(ctx, zp, work), shape, axis, block_size,
                                           "y_zero_point"))
    return ctx.op("cast", y, to=q, saturate=bool(saturate))


@converter("QuantizeLinear", since=10)
def quantize_10(ctx):
    """QuantizeLinear-10: per-tensor only."""
    return _quantize(ctx)


@converter("QuantizeLinear", since=13)
def quantize_13(ctx):
    """QuantizeLinear-13: per-axis scales (``axis``)."""
    return _quantize(ctx, axis=ctx.attr("axis", 1))


@converter("QuantizeLinear", since=19)
def quantize_19(ctx):
    """QuantizeLinear-19: float8 outputs, ``saturate``."""
    return _quantize(ctx, axis=ctx.attr("axis", 1), saturate=ctx.attr("saturate", 1))


@converter("QuantizeLinear", since=21)
def quantize_21(ctx):
    """QuantizeLinear-21+: blocked scales (``block_size``), ``output_dtype``, 4- and 16-bit types;
    23+ adds ``precision`` (the dtype the division happens in)."""
    return _quantize(ctx, axis=ctx.attr("axis", 1), block_size=ctx.attr("block_size", 0),
                     saturate=ctx.attr("saturate", 1), output_dtype=_dtype_attr(ctx, "output_dtype"),
                     precision=_dtype_attr(ctx, "precision"))


def _dequantize(ctx, axis=1, block_size=0, output_dtype=None):
    x, scale, zp = ctx.input(0), ctx.input(1), ctx.input(2)
    out = output_dtype or ctx.dtype(1)
    shape = ctx.shape(0)
    y = _cast(ctx, x, kd.float32)
    if zp is not None and not ctx.dtype(2).is_float:
        if ctx.dtype(2) != ctx.dtype(0):
            ctx.fail(f"zero point dtype {ctx.dtype(2)} differs from the input's {ctx.dtype(0)}")
        y = ctx.op("sub", y, _expand_param(ctx, _cast(ctx, zp, kd.float32), shape, axis, block_size,
                                           "x_zero_point"))
    y = ctx.op("mul", y, _expand_param(ctx, _cast(ctx, scale, kd.float32), shape, axis, block_size,
                                       "x_scale"))
    return _cast(ctx, y, out)


@converter("DequantizeLinear", since=10)
def dequantize_10(ctx):
    """DequantizeLinear-10: per-tensor only."""
    return _dequantize(ctx)


@converter("DequantizeLinear", since=13)
def dequantize_13(ctx):
    """DequantizeLinear-13+: per-axis scales (``axis``)."""
    return _dequantize(ctx, axis=ctx.attr("axis", 1))


@converter("DequantizeLinear", since=21)
def dequantize_21(ctx):
    """DequantizeLinear-21+: blocked scales (``block_size``); 23+ adds ``output_dtype``."""
    return _dequantize(ctx, axis=ctx.attr("axis", 1), block_size=ctx.attr("block_size", 0),
                       output_dtype=_dtype_attr(ctx, "output_dtype"))


@converter("DynamicQuantizeLinear", since=11)
def dynamic_quantize(ctx):
    """uint8 quantization with a scale and zero point computed from the data's range."""
    x = ctx.input(0)
    _require_float(ctx)
    axes = list(range(ctx.rank(0)))
    hi = ctx.op("max", ctx.op("reduce_max", x, axes=axes, keepdims=False), _k(ctx, 0, x))
    lo = ctx.op("min", ctx.op("reduce_min", x, axes=axes, keepdims=False), _k(ctx, 0, x))
    span = ctx.op("sub", hi, lo)
    span = ctx.op("where", ctx.op("equal", span, _k(ctx, 0, x)), _k(ctx, 1, x), span)
    scale = ctx.op("div", span, _k(ctx, 255, x))
    zp = ctx.op("round", _clip(ctx, ctx.op("neg", ctx.op("div", lo, scale)), _k(ctx, 0, x), _k(ctx, 255, x)))
    y = ctx.op("add", ctx.op("round", ctx.op("div", x, scale)), zp)
    y = _clip(ctx, y, _k(ctx, 0, x), _k(ctx, 255, x))
    return [ctx.op("cast", y, to=kd.uint8), scale, ctx.op("cast", zp, to=kd.uint8)]
