"""Inputs that must fail, with the message checked: every error names the thing that is wrong."""
import subprocess
import sys

import numpy as np
import pytest

import kiln
from kiln.frontends.onnx import from_onnx

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def _model(nodes, inputs, outputs, opset=17, initializers=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _relu_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    return _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [x], [y])


def test_import_kiln_is_light():
    code = ("import sys, kiln, kiln.ir, kiln.frontends, kiln.runtime; "
            "heavy = [m for m in ('onnx', 'onnxruntime', 'torch', 'jax', 'hypothesis', 'llvmlite', 'google.protobuf') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_missing_file(tmp_path):
    with pytest.raises(kiln.ModelLoadError, match="no such model file"):
        from_onnx(tmp_path / "nope.onnx")


def test_truncated_file(tmp_path):
    data = _relu_model().SerializeToString()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(kiln.ModelLoadError, match="cut.onnx"):
        from_onnx(p)


def test_garbage_file(tmp_path):
    p = tmp_path / "garbage.onnx"
    p.write_bytes(b"this is not a model at all \x00\xff\x12" * 10)
    with pytest.raises(kiln.ModelLoadError):
        from_onnx(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    with pytest.raises(kiln.ModelLoadError, match="no ONNX graph"):
        from_onnx(p)


def test_directory_is_not_a_model(tmp_path):
    with pytest.raises(kiln.ModelLoadError, match="directory"):
        from_onnx(tmp_path)


def test_wrong_argument_type():
    with pytest.raises(kiln.ModelLoadError, match="takes a path"):
        from_onnx(42)


def test_every_unsupported_op_is_listed_at_once():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    nodes = [
        helper.make_node("FancyOp", ["x"], ["a"], name="first_fancy"),
        helper.make_node("Relu", ["a"], ["b"], name="ok"),
        helper.make_node("FancyOp", ["b"], ["c"], name="second_fancy"),
        helper.make_node("Weird", ["c"], ["d"], name="weird1", domain="com.example"),
        helper.make_node("OtherOp", ["d"], ["y"], name="other"),
    ]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(kiln.UnsupportedOperatorError) as ei:
        from_onnx(m)
    e = ei.value
    assert [u[0] for u in e.unsupported] == ["FancyOp", "com.example.Weird", "OtherOp"]
    assert e.unsupported[0] == ("FancyOp", 17, "first_fancy")
    msg = str(e)
    assert "first_fancy" in msg and "weird1" in msg and "other" in msg and "opset 17" in msg
    assert "second_fancy" not in msg  # first node of each op only


def test_too_old_opset_is_refused_clearly():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    m = _model([helper.make_node("FancyOp", ["x"], ["y"], name="f")], [x], [y], opset=5)
    with pytest.raises(kiln.UnsupportedOperatorError, match="(?s)opset 5.*version_converter.*FancyOp"):
        from_onnx(m)


def test_unsupported_dtype_names_the_input():
    x = helper.make_tensor_value_info("text", TensorProto.STRING, [2])
    y = helper.make_tensor_value_info("y", TensorProto.STRING, [2])
    m = _model([helper.make_node("Identity", ["text"], ["y"])], [x], [y])
    with pytest.raises(kiln.ConversionError, match="'text'.*string"):
        from_onnx(m)


def test_input_shapes_with_unknown_name():
    with pytest.raises(kiln.ConversionError, match="unknown input.*'?bogus"):
        from_onnx(_relu_model(), input_shapes={"bogus": [1, 4]})


def test_input_shapes_override_and_symbolic_dims_are_kept():
    g = from_onnx(_relu_model())
    assert g.types["x"].shape == ("batch", 4)
    g2 = from_onnx(_relu_model(), input_shapes={"x": [3, 4]})
    assert g2.types["x"].shape == (3, 4)
    assert g2.types["y"].shape == (3, 4)


def test_bad_inputs_to_interpret_name_the_input():
    g = from_onnx(_relu_model())
    with pytest.raises(kiln.InterpreterError, match="input 'x': expected dtype float32"):
        kiln.interpret(g, [np.zeros((2, 4), np.int32)])
    with pytest.raises(kiln.InterpreterError, match="input 'x': expected shape"):
        kiln.interpret(g, [np.zeros((2, 5), np.float32)])
    with pytest.raises(kiln.InterpreterError, match="missing input"):
        kiln.interpret(g, {"z": np.zeros((2, 4), np.float32)})
    with pytest.raises(kiln.InterpreterError, match="takes 1 input"):
        kiln.interpret(g, [])


def test_symbolic_dim_bound_consistently():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    m = _model([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["w"], ["y"])], [x, w], [y])
    g = from_onnx(m)
    with pytest.raises(kiln.InterpreterError, match="input 'w'.*n=2"):
        kiln.interpret(g, [np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32)])


def test_bad_attribute_names_the_node():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])
    m = _model([helper.make_node("Transpose", ["x"], ["y"], name="tr", perm=[0, 0])], [x], [y])
    with pytest.raises(kiln.ConversionError, match="Transpose node 'tr' \\(opset 17\\).*perm"):
        from_onnx(m)


def test_undefined_input_names_the_node_and_value():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    m = _model([helper.make_node("Add", ["x", "ghost"], ["y"], name="adder")], [x], [y])
    with pytest.raises(kiln.ConversionError, match="Add node 'adder'.*'ghost' is not defined"):
        from_onnx(m)


def test_shape_mismatch_names_the_node():
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])
    m = _model([helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")], [a, b], [y])
    with pytest.raises(kiln.ConversionError, match="MatMul node 'mm'.*inner dims"):
        from_onnx(m)
