"""Symbolic dims, dtypes and tensor types."""
import numpy as np
import pytest

from kiln.ir import TensorType, dims, dtype, dtypes


def test_dim_arithmetic_is_canonical():
    assert dims.mul("batch", 12) == "12*batch"
    assert dims.mul(12, "batch") == dims.mul("batch", 12)
    assert dims.add("seq", "batch") == "batch+seq"
    assert dims.add("batch", dims.mul("batch", 2)) == "3*batch"
    assert dims.sub(dims.add("n", 1), 1) == "n"
    assert dims.sub("n", "n") == 0
    assert dims.mul("a", "b") == dims.mul("b", "a") == "a*b"
    assert dims.prod(["batch", 3, 4]) == "12*batch"
    assert dims.canonical(" 4 * batch ") == "4*batch"
    assert dims.canonical("n-1") == "n-1"


def test_dim_division():
    assert dims.div_exact("12*batch", 4) == "3*batch"
    assert dims.div_exact("12*batch", "batch") == 12
    assert dims.div_exact("12*batch", 5) is None
    assert dims.div_exact(12, 5) is None
    assert dims.div_exact("a*b", "a") == "b"
    assert dims.div_exact("a*b", "c") is None


def test_dim_evaluate_and_symbols():
    assert dims.evaluate("3*batch+seq", {"batch": 2, "seq": 5}) == 11
    assert dims.evaluate("batch", {}) is None
    assert dims.symbols("a*b+c") == {"a", "b", "c"}
    assert dims.sanitize_symbol("sequence length") == "sequence_length"
    assert dims.sanitize_symbol("1st") == "_1st"


def test_bad_dims():
    with pytest.raises(ValueError):
        dims.canonical("batch/2")
    with pytest.raises(TypeError):
        dims.canonical(True)


def test_dtypes_cover_the_required_set():
    for name in ["float32", "float16", "bfloat16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"]:
        d = dtype(name)
        assert dtype(d.name) is d
        assert dtypes.of(np.zeros(1, d.np)) is d
    assert dtype(np.float32) is dtypes.float32
    with pytest.raises(ValueError, match="unknown dtype"):
        dtype("float7")


def test_tensor_type():
    t = TensorType("f32", ("batch", 3))
    assert str(t) == "f32[batch, 3]"
    assert t.rank == 2 and not t.is_static
    assert t.size == "3*batch"
    assert TensorType("i64", ()).size == 1
    assert t == TensorType(dtypes.float32, ["batch", 3])
