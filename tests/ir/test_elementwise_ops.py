"""Core elementwise ops: inference agrees with the reference, and the reference's semantics.

For every elementwise op and every dtype it accepts, the reference run on small broadcasting
operands gives exactly the dtype and shape ``infer`` promises. Then the rules that are easy to
get wrong: integer division and modulo, shifts, integer powers, casts into narrow formats.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from kiln.ir import dtypes as kd
from kiln.ir.ops._cast import cast_array
from kiln.ir.ops.elementwise import BINARY, UNARY
from kiln.ir.registry import get
from kiln.ir.types import TensorType


def _sample(dt: kd.DType, shape) -> np.ndarray:
    n = int(np.prod(shape))
    if dt.kind == "bool":
        return (np.arange(n) % 2 == 0).reshape(shape)
    if dt.kind == "uint":
        vals = np.arange(n) % 3 + 1
    elif dt.kind == "int":
        vals = np.arange(n) % 3 - 1
    else:
        vals = np.linspace(-0.75, 0.5, n)
    return vals.reshape(shape).astype(dt.np)


def _run(name, types, arrays, **attrs):
    opdef = get(name)
    attrs = opdef.normalize_attrs(attrs)
    t = opdef.infer(*types, **attrs)
    y = opdef.reference(*arrays, **attrs)
    return t, y


def _accepts(name, types, **attrs):
    opdef = get(name)
    try:
        opdef.infer(*types, **opdef.normalize_attrs(attrs))
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_infer_matches_reference(name):
    seen = 0
    for dt in kd.ALL:
        t_in = TensorType(dt, ("n", 3))
        if not _accepts(name, [t_in]):
            continue
        seen += 1
        t, y = _run(name, [t_in], [_sample(dt, (2, 3))])
        assert y.dtype == t.dtype.np, (name, dt)
        assert t.shape == ("n", 3) and y.shape == (2, 3)
        for shape in [(), (0, 2)]:  # 0-d and empty operands
            t, y = _run(name, [TensorType(dt, shape)], [_sample(dt, shape)])
            assert y.dtype == t.dtype.np and y.shape == shape, (name, dt, shape)
    assert seen, f"{name} accepts no dtype"


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_infer_matches_reference_and_broadcasts(name):
    seen = 0
    for dt in kd.ALL:
        ta, tb = TensorType(dt, ("n", 1, 4)), TensorType(dt, (3, 1))
        if not _accepts(name, [ta, tb]):
            continue
        seen += 1
        t, y = _run(name, [ta, tb], [_sample(dt, (2, 1, 4)), _sample(dt, (3, 1))])
        assert t.shape == ("n", 3, 4) and y.shape == (2, 3, 4), name
        assert y.dtype == t.dtype.np, (name, dt)
        t, y = _run(name, [TensorType(dt, ()), TensorType(dt, ())], [_sample(dt, ()), _sample(dt, ())])
        assert y.dtype == t.dtype.np and y.shape == (), (name, dt)
    assert seen, f"{name} accepts no dtype"


@pytest.mark.parametrize("name", ["add", "equal", "where"])
def test_mismatched_operands_are_rejected(name):
    f, i = TensorType("f32", (2, 3)), TensorType("i32", (2, 3))
    opdef = get(name)
    args = [TensorType("bool", (2, 3)), f, i] if name == "where" else [f, i]
    with pytest.raises(ValueError, match="dtype"):
        opdef.infer(*args)
    with pytest.raises(ValueError, match="broadcast"):
        get("add").infer(TensorType("f32", (2, 3)), TensorType("f32", (4,)))


def test_class_checks_name_the_op_and_dtype():
    with pytest.raises(ValueError, match="sqrt does not accept dtype i32"):
        get("sqrt").infer(TensorType("i32", (2,)))
    with pytest.raises(ValueError, match="and does not accept dtype f32"):
        get("and").infer(TensorType("f32", (2,)), TensorType("f32", (2,)))


def test_where_isinf_cast_bitcast_infer_matches_reference():
    c, a = np.array([[True], [False]]), np.arange(3, dtype=np.float16)
    t, y = _run("where", [TensorType("bool", (2, 1)), TensorType("f16", (3,)), TensorType("f16", ())],
                [c, a, np.array(7, np.float16)])
    assert t == TensorType("f16", (2, 3)) and y.dtype == np.float16 and y.tolist() == [[0, 1, 2], [7, 7, 7]]
    x = np.array([np.inf, -np.inf, np.nan, 1], np.float32)
    t, y = _run("isinf", [TensorType("f32", (4,))], [x], detect_positive=False)
    assert t.dtype.name == "bool" and y.tolist() == [False, True, False, False]
    for src in kd.ALL:
        for dst in kd.ALL:
            t, y = _run("cast", [TensorType(src, (2, 3))], [_sample(src, (2, 3))], to=dst)
            assert y.dtype == dst.np and y.shape == (2, 3), (src, dst)
            if src.bits == dst.bits and src.kind != "bool" and dst.kind != "bool":
                t, y = _run("bitcast", [TensorType(src, (2, 3))], [_sample(src, (2, 3))], to=dst)
                assert y.dtype == dst.np and y.shape == (2, 3), (src, dst)
    with pytest.raises(ValueError, match="width"):
        get("bitcast").infer(TensorType("f32", (2,)), to=kd.float16)


# --- semantics ------------------------------------------------------------------------------------


def test_integer_div_truncates_and_mod_follows_divisor():
    a = np.array([7, -7, 7, -7, 5], np.int32)
    b = np.array([2, 2, -2, -2, 0], np.int32)
    assert get("div").reference(a, b).tolist() == [3, -3, -3, 3, 0]
    assert get("mod").reference(a, b, fmod=False).tolist() == [1, 1, -1, -1, 0]
    assert get("mod").reference(a, b, fmod=True).tolist() == [1, -1, 1, -1, 0]
    f = np.array([5.5, -5.5], np.float32)
    assert get("mod").reference(f, np.float32([2, 2]), fmod=False).tolist() == [1.5, 0.5]
    assert get("mod").reference(f, np.float32([2, 2]), fmod=True).tolist() == [1.5, -1.5]


def test_shifts_fill_with_sign_beyond_the_width():
    sl, sr = get("shift_left").reference, get("shift_right").reference
    assert sl(np.uint8([1, 255, 1]), np.uint8([3, 1, 8])).tolist() == [8, 254, 0]
    assert sr(np.int8([-128, -128, 64, -1]), np.int8([1, 8, 9, -1])).tolist() == [-64, -1, 0, -1]
    assert sr(np.uint64([2**63]), np.uint64([63])).tolist() == [1]
    assert sl(np.array([1, 1], ml_dtypes.int4), np.array([3, 4], ml_dtypes.int4)).astype(int).tolist() == [-8, 0]


def test_integer_pow():
    y = get("pow").reference(np.int32([2, -1, -1, 1, 3, 2]), np.int32([3, -3, -2, -5, -1, 31]))
    assert y.dtype == np.int32 and y.tolist() == [8, -1, 1, 1, 0, -2**31]


def test_float_unary_ops_round_once():
    x = np.array([0.5, 1.5, 2.5, -0.5], np.float32)
    assert get("round").reference(x).tolist() == [0, 2, 2, -0.0]
    y = get("erf").reference(np.array([0.5], ml_dtypes.bfloat16))
    assert y.dtype == ml_dtypes.bfloat16 and float(y[0]) == pytest.approx(0.5205, abs=4e-3)
    assert get("sigmoid").reference(np.float32([-1000, 0, 1000])).tolist() == [0, 0.5, 1]


def test_cast_into_narrow_formats():
    x = np.array([-9.7, -8.5, 7.6, 8.2, 15.5, 20], np.float32)
    assert cast_array(x, kd.int4).astype(int).tolist() == [7, -8, 7, -8, -1, 4]  # truncate, keep low bits
    assert cast_array(np.int16([200, -56]), kd.int8).tolist() == [-56, -56]
    assert cast_array(np.float32([np.nan, 0, -2]), kd.bool_).tolist() == [True, False, True]
    big = np.array([1e6, -np.inf, np.inf, np.nan], np.float32)
    sat = cast_array(big, kd.float8e4m3fn).astype(np.float32)
    assert sat[:3].tolist() == [448, -448, 448] and np.isnan(sat[3])
    nosat = cast_array(big, kd.float8e5m2, saturate=False).astype(np.float32)
    assert nosat[:3].tolist() == [np.inf, -np.inf, np.inf]
    assert np.isnan(cast_array(big, kd.float8e4m3fn, saturate=False).astype(np.float32)[:3]).all()
    assert cast_array(np.float32([7, -100]), kd.float4e2m1).astype(np.float32).tolist() == [6, -6]


@pytest.mark.parametrize("mode,expected", [("up", [0.125, 2, 4, 1]), ("down", [0.0625, 1, 4, 1]),
                                           ("nearest", [0.125, 1, 4, 1])])
def test_cast_to_e8m0_round_modes(mode, expected):
    x = np.float32([0.124, 1.1, 4, 1])
    y = cast_array(x, kd.float8e8m0, True, mode)
    assert y.dtype == ml_dtypes.float8_e8m0fnu
    assert y.astype(np.float32).tolist() == expected


def test_bitcast_reinterprets_bits():
    y = get("bitcast").reference(np.float32([1.0, -2.0]), to=kd.int32)
    assert y.tolist() == [0x3F800000, -0x40000000]


def test_cast_to_e8m0_saturates_infinities():
    x = np.float32([np.inf, 3e38, np.nan])
    sat = cast_array(x, kd.float8e8m0, True, "up").astype(np.float32)
    assert sat[:2].tolist() == [2.0**127] * 2 and np.isnan(sat[2])
    assert np.isnan(cast_array(x, kd.float8e8m0, False, "up").astype(np.float32)).all()
