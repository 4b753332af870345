"""ONNX elementwise ops, activations, casts and quantization, across opsets, against onnxruntime.

Each case builds a one-node model at a given opset, converts it with ``from_onnx``, runs it with
``kiln.interpret`` and compares with onnxruntime (or a numpy expectation where onnxruntime lacks
the op or opset). The ONNX package's node cases cover the newest opsets; these cover older
behaviours (Clip attributes, Dropout's mask dtype, per-tensor-only quantization), integer
semantics, and run-time bounds.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import kiln  # noqa: E402
from kiln.errors import ConversionError  # noqa: E402
from kiln.frontends.onnx import from_onnx  # noqa: E402
from onnx_cases import check, make_model  # noqa: E402

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def ints(*shape, lo=-20, hi=20, dtype=np.int32):
    return RNG.integers(lo, hi, shape).astype(dtype)


# --- integer semantics -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8])
def test_integer_div_truncates_toward_zero(dtype):
    b = ints(3, 4, dtype=dtype)
    b[b == 0] = 3
    check("Div", {"a": ints(3, 4, dtype=dtype), "b": b}, 14)


@pytest.mark.parametrize("fmod", [0, 1])
def test_integer_mod_sign(fmod):
    b = ints(4, 5)
    b[b == 0] = -7
    check("Mod", {"a": ints(4, 5), "b": b}, 13, fmod=fmod)


def test_float_fmod():
    check("Mod", {"a": rand(3, 4) * 10, "b": rand(4) + 3}, 13, fmod=1)


@pytest.mark.parametrize("dx,dy", [(np.float32, np.int64), (np.int32, np.float32), (np.int64, np.int64),
                                   (np.float32, np.float64), (np.int64, np.int32)])
def test_pow_mixed_dtypes_keep_the_base_dtype(dx, dy):
    x = np.array([[1, 2, 3], [-2, 4, 5]]).astype(dx)
    e = np.array([2, 3, 1]).astype(dy)
    check("Pow", {"x": x, "e": e}, 15)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64])
def test_bitshift_unsigned(direction, dtype):
    x = ints(3, 4, lo=0, hi=255, dtype=dtype)
    check("BitShift", {"x": x, "s": ints(4, lo=0, hi=7, dtype=dtype)}, 11, direction=direction)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise(op):
    check(op, {"a": ints(3, 4, dtype=np.int16), "b": ints(4, dtype=np.int16)}, 18)
    check("BitwiseNot", {"a": ints(3, 4, lo=0, hi=200, dtype=np.uint8)}, 18)


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_comparisons_broadcast(op):
    check(op, {"a": ints(2, 3, 4, lo=-2, hi=2), "b": ints(4, lo=-2, hi=2)}, 16)


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic(op):
    check(op, {"a": rand(3, 1) > 0, "b": rand(4) > 0}, 7)
    check("Not", {"a": rand(5) > 0}, 7)


# --- variadic, Where, Clip ----------------------------------------------------------------------


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
def test_variadic_broadcast(op):
    check(op, {"a": rand(2, 3, 4), "b": rand(3, 1), "c": rand(4)}, 13)
    check(op, {"a": rand(3)}, 8)


def test_variadic_integers():
    check("Max", {"a": ints(2, 3), "b": ints(3)}, 13)
    check("Min", {"a": ints(2, 3, dtype=np.uint8, lo=0), "b": ints(3, dtype=np.uint8, lo=0)}, 13)


def test_where_broadcast():
    check("Where", {"c": rand(3, 1) > 0, "a": rand(4), "b": rand(2, 3, 4)}, 16)


def test_clip_attributes_before_11():
    x = rand(3, 4) * 3
    check("Clip", {"x": x}, 7, min=-1.0, max=0.5)
    check("Clip", {"x": x}, 7, min=-1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8])
def test_clip_inputs(dtype):
    x = (rand(3, 4) * 20).astype(dtype)
    lo, hi = np.array(2, dtype), np.array(9, dtype)
    check("Clip", {"x": x, "lo": lo, "hi": hi}, 13)  # run-time bounds
    check("Clip", {"x": x, "lo": lo, "hi": hi}, 13, initializers=("lo", "hi"))


def test_clip_missing_min():
    x, hi = rand(3, 4), np.array(0.1, np.float32)
    node = helper.make_node("Clip", ["x", "", "hi"], ["y"])
    graph = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(hi, "hi")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    (y,) = kiln.interpret(from_onnx(model), [x]).values()
    np.testing.assert_array_equal(y, np.minimum(x, hi))


# --- activations ----------------------------------------------------------------------------------

ACTIVATIONS = [
    ("LeakyRelu", 16, {"alpha": 0.2}), ("Elu", 7, {"alpha": 0.7}), ("Selu", 7, {}), ("Celu", 12, {"alpha": 1.5}),
    ("HardSigmoid", 7, {"alpha": 0.3, "beta": 0.4}), ("HardSwish", 14, {}), ("Softplus", 7, {}),
    ("Softsign", 7, {}), ("ThresholdedRelu", 10, {"alpha": 0.3}), ("Shrink", 9, {"lambd": 0.6, "bias": 0.2}),
    ("Mish", 18, {}), ("Gelu", 20, {}), ("Gelu", 20, {"approximate": "tanh"}), ("Relu", 14, {}),
    ("Sigmoid", 13, {}), ("Tanh", 13, {}), ("Erf", 13, {}),
]


@pytest.mark.parametrize("op,opset,attrs", ACTIVATIONS, ids=lambda v: str(v))
def test_activation(op, opset, attrs):
    x = rand(3, 4) * 3
    x[0, :3] = [0.0, 40.0, -40.0]
    check(op, {"x": x}, opset, rtol=1e-5, atol=1e-6, **attrs)


@pytest.mark.parametrize("op,opset,attrs", [a for a in ACTIVATIONS if a[0] not in ("Shrink",)][:13],
                         ids=lambda v: str(v))
def test_activation_float16_rounds_once(op, opset, attrs):
    x = (rand(3, 4) * 3).astype(np.float16)
    y32 = check(op, {"x": x.astype(np.float32)}, opset, **attrs)[0]
    check(op, {"x": x}, opset, expected=[y32.astype(np.float16)], rtol=1e-3, atol=1e-3, **attrs)


def test_prelu_broadcast_slope():
    check("PRelu", {"x": rand(2, 3, 4), "slope": rand(3, 1)}, 16)


def test_swish_and_swiglu():
    x, b = rand(3, 4), rand(3, 4)
    sig = 1 / (1 + np.exp(-0.5 * x))
    check("Swish", {"x": x}, 24, expected=[x * sig], alpha=0.5)
    check("SwiGLU", {"a": x, "b": b}, 28, expected=[x * sig * b], alpha=0.5, rtol=1e-5)


def test_isinf_detect_flags():
    x = np.array([np.inf, -np.inf, 1.0, np.nan], np.float32)
    check("IsInf", {"x": x}, 10, detect_negative=0)
    check("IsNaN", {"x": x}, 13)


# --- Dropout --------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [7, 10, 13])
def test_dropout_is_identity_with_all_true_mask(opset):
    x = rand(2, 3)
    attrs = {"ratio": 0.3} if opset < 12 else {}
    mask_dtype = np.float32 if opset < 10 else np.bool_
    check("Dropout", {"x": x}, opset, outputs=("y", "mask"), expected=[x, np.ones((2, 3), mask_dtype)], **attrs)


def test_dropout_training_with_ratio_fails():
    x, r, t = rand(2, 3), np.array(0.5, np.float32), np.array(True)
    model = make_model("Dropout", {"x": x, "r": r, "t": t}, 13, initializers=("r", "t"))
    with pytest.raises(ConversionError, match="training_mode"):
        from_onnx(model)
    model = make_model("Dropout", {"x": x, "r": r, "t": t}, 13, initializers=("r",))
    with pytest.raises(ConversionError, match="training_mode"):
        from_onnx(model)
    t0 = np.array(False)
    check("Dropout", {"x": x, "r": r, "t": t0}, 13, initializers=("r", "t"), expected=[x])


# --- casts ----------------------------------------------------------------------------------------

_CAST_TYPES = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int32, np.int64, np.uint16, np.bool_]


@pytest.mark.parametrize("src", _CAST_TYPES, ids=lambda d: np.dtype(d).name)
def test_cast_between_common_types(src):
    x = np.array([[-3.7, -1.0, 0.0, 0.4], [1.5, 2.5, 100.2, 7.0]])
    if np.dtype(src).kind == "u":
        x = np.abs(x)
    x = x.astype(src)
    for dst in _CAST_TYPES:
        # a negative float cast to an unsigned int is undefined in ONNX (onnxruntime wraps, kiln
        # saturates like compiled code does): compare only defined conversions
        xs = np.abs(x) if np.dtype(dst).kind == "u" and np.dtype(src).kind == "f" else x
        check("Cast", {"x": xs}, 13, to=helper.np_dtype_to_tensor_dtype(np.dtype(dst)))
    check("CastLike", {"x": x, "like": np.zeros(1, np.float16)}, 15)


@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_float8_saturate(saturate):
    x = np.array([0.3, -1000.0, 1e6, np.inf, -np.inf, 3.14159], np.float32)
    check("Cast", {"x": x}, 19, to=TensorProto.FLOAT8E4M3FN, saturate=saturate)
    # onnxruntime's Python API cannot return e5m2: inf stays inf only without saturation
    import ml_dtypes

    big = float(ml_dtypes.finfo(ml_dtypes.float8_e5m2).max)
    want = (np.clip(x, -big, big) if saturate else x).astype(ml_dtypes.float8_e5m2)
    check("Cast", {"x": x}, 19, to=TensorProto.FLOAT8E5M2, saturate=saturate, expected=[want])


# --- quantization ---------------------------------------------------------------------------------


@pytest.mark.parametrize("zp_dtype", [np.uint8, np.int8])
def test_quantize_dequantize_per_tensor_opset10(zp_dtype):
    x = rand(3, 4) * 50
    s, zp = np.array(0.37, np.float32), np.array(3, zp_dtype)
    check("QuantizeLinear", {"x": x, "s": s, "zp": zp}, 10, initializers=("s", "zp"))
    check("QuantizeLinear", {"x": x, "s": s}, 10, initializers=("s",))
    q = ints(3, 4, lo=-100, hi=100).astype(zp_dtype)
    check("DequantizeLinear", {"q": q, "s": s, "zp": zp}, 10, initializers=("s", "zp"))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_dequantize_per_axis(axis):
    x = rand(3, 4, 5) * 20
    n = x.shape[axis]
    s = (np.abs(rand(n)) + 0.1).astype(np.float32)
    zp = ints(n, lo=-10, hi=10, dtype=np.int8)
    check("QuantizeLinear", {"x": x, "s": s, "zp": zp}, 13, initializers=("s", "zp"), axis=axis)
    check("QuantizeLinear", {"x": x, "s": s, "zp": zp}, 13, axis=axis)  # run-time scale and zero point
    q = ints(3, 4, 5, lo=-128, hi=127, dtype=np.int8)
    check("DequantizeLinear", {"q": q, "s": s, "zp": zp}, 13, initializers=("s", "zp"), axis=axis)


@pytest.mark.parametrize("zp_type", [np.uint16, np.int16])
def test_quantize_blocked_opset21(zp_type):
    x = rand(2, 6, 3) * 30
    s = (np.abs(rand(2, 3, 3)) + 0.2).astype(np.float32)  # blocks of 2 along axis 1
    zp = ints(2, 3, 3, lo=0, hi=20, dtype=zp_type)
    check("QuantizeLinear", {"x": x, "s": s, "zp": zp}, 21, initializers=("s", "zp"), axis=1,
          block_size=2)
    q = ints(2, 6, 3, lo=0, hi=1000, dtype=zp_type)
    check("DequantizeLinear", {"q": q, "s": s, "zp": zp}, 21, initializers=("s", "zp"), axis=1,
          block_size=2)


def test_quantize_blocked_uneven_last_block():
    x = rand(5, 2) * 30
    s = (np.abs(rand(2, 2)) + 0.2).astype(np.float32)  # blocks of 3 along axis 0: sizes 3 and 2
    rep = np.repeat(s, 3, axis=0)[:5]
    want = np.clip(np.rint(x / rep), -128, 127).astype(np.int8)
    zp = np.zeros((2, 2), np.int8)
    check("QuantizeLinear", {"x": x, "s": s, "zp": zp}, 21, initializers=("s", "zp"), axis=0,
          block_size=3, expected=[want])


def test_quantize_float8_and_output_dtype():
    x = rand(3, 4) * 500
    s = np.array(0.5, np.float32)
    y = check("QuantizeLinear", {"x": x, "s": s}, 21, initializers=("s",),
              output_dtype=TensorProto.INT8, expected=[np.clip(np.rint(x / s), -128, 127).astype(np.int8)])
    assert y[0].dtype == np.int8
    zp8 = numpy_helper.to_array(helper.make_tensor("zp", TensorProto.FLOAT8E4M3FN, [], [0.0]))
    check("QuantizeLinear", {"x": x, "s": s, "zp": zp8}, 19, initializers=("s", "zp"))


def test_dynamic_quantize_linear():
    for x in (rand(3, 4) * 5, np.abs(rand(3, 4)), -np.abs(rand(2, 2))):
        check("DynamicQuantizeLinear", {"x": x}, 11, outputs=("y", "scale", "zp"), atol=1e-7)
    # all zeros: ONNX's reference takes the range as 1 (onnxruntime says scale 1)
    zero = np.zeros((2, 2), np.float32)
    check("DynamicQuantizeLinear", {"x": zero}, 11, outputs=("y", "scale", "zp"),
          expected=[np.zeros((2, 2), np.uint8), np.float32(1 / 255), np.uint8(0)])


def test_unsupported_quantized_type_is_named():
    x, s = rand(2, 2), np.array(1.0, np.float32)
    model = make_model("QuantizeLinear", {"x": x, "s": s}, 21, initializers=("s",),
                       output_dtype=TensorProto.INT32)
    with pytest.raises(ConversionError, match="quantizing to i32"):
        from_onnx(model)


def test_symbolic_batch_through_dropout_quantize_gelu():
    s, z = np.float32([0.1, 0.2, 0.3]), np.int8([1, 2, 3])
    s2, z2 = np.float32([[0.1, 0.2]]), np.int8([[1, 2]])
    nodes = [helper.make_node("Dropout", ["x"], ["y", "m"]),
             helper.make_node("QuantizeLinear", ["y", "s", "z"], ["q"], axis=1),
             helper.make_node("Gelu", ["x"], ["g"]),
             helper.make_node("DequantizeLinear", ["q", "s2", "z2"], ["dq"], axis=1, block_size=2)]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None)
                               for o in ("m", "q", "g", "dq")],
                              [numpy_helper.from_array(a, n) for n, a in
                               {"s": s, "z": z, "s2": s2, "z2": z2}.items()])
    g = from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
    assert g.types["m"].shape == ("N", 3) and g.types["dq"].shape == ("N", 3)
    x = rand(4, 3)
    m, q, gelu, dq = kiln.interpret(g, [x]).values()
    assert m.shape == (4, 3) and m.all()
    np.testing.assert_array_equal(q, np.clip(np.rint(x / s) + z, -128, 127).astype(np.int8))
    np.testing.assert_allclose(dq, (q.astype(np.float32) - z2[:, [0, 0, 1]]) * s2[:, [0, 0, 1]], rtol=1e-6)
    assert gelu.shape == (4, 3)


@pytest.mark.parametrize("op,inputs,opset,attrs,match", [
    ("BitShift", {"a": np.uint8([1]), "b": np.uint8([1])}, 11, {"direction": "UP"}, "direction"),
    ("Gelu", {"x": np.float32([1])}, 20, {"approximate": "erf"}, "approximate"),
    ("Mod", {"a": np.int32([1]), "b": np.int32([1])}, 13, {"fmod": 2}, "fmod"),
    ("Cast", {"x": np.float32([1])}, 13, {"to": TensorProto.STRING}, "string"),
    ("Cast", {"x": np.float32([1])}, 25, {"to": TensorProto.FLOAT16, "round_mode": "zero"}, "round_mode"),
    ("BitCast", {"x": np.float32([1])}, 26, {"to": TensorProto.INT16}, "bit-cast"),
    ("Clip", {"x": np.float32([1]), "lo": np.float64(0)}, 13, {}, "dtype"),
    ("Celu", {"x": np.float32([1])}, 12, {"alpha": 0.0}, "alpha"),
])
def test_bad_attributes_and_variants_are_named(op, inputs, opset, attrs, match):
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    with pytest.raises(ConversionError, match=match):
        from_onnx(make_model(op, inputs, opset, **attrs))


def test_dropout_ratio_zero_is_identity_even_in_training():
    x, r, t = rand(2, 3), np.array(0.0, np.float32), np.array(True)
    check("Dropout", {"x": x, "r": r, "t": t}, 13, outputs=("y", "mask"), initializers=("r",),
          expected=[x, np.ones((2, 3), bool)])
