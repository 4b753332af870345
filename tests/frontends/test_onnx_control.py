"""ONNX If / Loop / Scan against onnxruntime, with bodies that read enclosing values (captures)."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import kiln  # noqa: E402
from kiln.frontends.onnx import from_onnx  # noqa: E402

F = TensorProto.FLOAT


def _vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def _check(model, feeds):
    g = from_onnx(model)
    kiln.verify(g)
    got = kiln.interpret(g, feeds)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)
    for (name, a), b in zip(got.items(), want):
        np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=name)
    return g


def test_if_with_captured_outer_values():
    then_g = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["t"])], "then", [], [_vi("t", F, [3])])
    else_g = helper.make_graph([helper.make_node("Sub", ["x", "w"], ["e"])], "else", [], [_vi("e", F, [3])])
    nodes = [helper.make_node("Relu", ["x0"], ["x"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    w = numpy_helper.from_array(np.array([1, 2, 3], np.float32), "w")
    m = helper.make_model(helper.make_graph(nodes, "g", [_vi("c", TensorProto.BOOL, []), _vi("x0", F, [3])],
                                            [_vi("y", F, [3])], initializer=[w]),
                          opset_imports=[helper.make_opsetid("", 17)])
    x = np.array([-1, 2, 3], np.float32)
    g = _check(m, {"c": np.array(True), "x0": x})
    _check(m, {"c": np.array(False), "x0": x})
    (node,) = [n for n in g.nodes if n.op == "if"]
    assert len(node.inputs) == 2  # cond + the captured relu output; the constant w was copied in


def test_if_on_a_constant_condition_keeps_only_the_taken_branch():
    then_g = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [], [_vi("t", F, [2])])
    else_g = helper.make_graph([helper.make_node("Abs", ["x"], ["e"])], "else", [], [_vi("e", F, [2])])
    c = numpy_helper.from_array(np.array(False), "c")
    m = helper.make_model(helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then_g,
                                                              else_branch=else_g)],
                                            "g", [_vi("x", F, [2])], [_vi("y", F, [2])], initializer=[c]),
                          opset_imports=[helper.make_opsetid("", 17)])
    g = _check(m, {"x": np.array([-1, 2], np.float32)})
    assert [n.op for n in g.nodes] == ["abs"]


def test_loop_with_scan_output_and_nested_capture():
    # body: acc' = acc + x * i ; scan output = acc'
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=F),
         helper.make_node("Mul", ["x", "fi"], ["xi"]),
         helper.make_node("Add", ["acc", "xi"], ["acc2"]),
         helper.make_node("Identity", ["cond"], ["cond2"]),
         helper.make_node("Identity", ["acc2"], ["scan"])],
        "body", [_vi("i", TensorProto.INT64, []), _vi("cond", TensorProto.BOOL, []), _vi("acc", F, [2])],
        [_vi("cond2", TensorProto.BOOL, []), _vi("acc2", F, [2]), _vi("scan", F, [2])])
    nodes = [helper.make_node("Loop", ["trip", "", "init"], ["final", "all"], body=body)]
    m = helper.make_model(helper.make_graph(nodes, "g", [_vi("trip", TensorProto.INT64, []), _vi("init", F, [2]),
                                                         _vi("x", F, [2])], [_vi("final", F, [2]), _vi("all", F, [None, 2])]),
                          opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"trip": np.array(4, np.int64), "init": np.zeros(2, np.float32), "x": np.array([1, 10], np.float32)}
    _check(m, feeds)
    feeds["trip"] = np.array(0, np.int64)
    _check(m, feeds)


def test_scan_running_sum():
    body = helper.make_graph([helper.make_node("Add", ["s", "row"], ["s2"]),
                              helper.make_node("Mul", ["s2", "k"], ["y"])],
                             "body", [_vi("s", F, [2]), _vi("row", F, [2])], [_vi("s2", F, [2]), _vi("y", F, [2])])
    nodes = [helper.make_node("Scan", ["init", "xs"], ["final", "ys"], body=body, num_scan_inputs=1,
                              scan_input_axes=[1], scan_output_axes=[1])]
    m = helper.make_model(helper.make_graph(nodes, "g", [_vi("init", F, [2]), _vi("xs", F, [2, 5]), _vi("k", F, [2])],
                                            [_vi("final", F, [2]), _vi("ys", F, [2, 5])]),
                          opset_imports=[helper.make_opsetid("", 17)])
    rng = np.random.default_rng(0)
    _check(m, {"init": rng.standard_normal(2).astype(np.float32), "xs": rng.standard_normal((2, 5)).astype(np.float32),
               "k": np.array([2, 3], np.float32)})


def test_regions_with_large_constants_round_trip_through_text():
    big = numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(2, 20), "big")
    then_g = helper.make_graph([helper.make_node("Add", ["x", "big"], ["t"])], "then", [], [_vi("t", F, [2, 20])])
    else_g = helper.make_graph([helper.make_node("Sub", ["x", "big"], ["e"])], "else", [], [_vi("e", F, [2, 20])])
    m = helper.make_model(helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then_g,
                                                              else_branch=else_g)],
                                            "g", [_vi("c", TensorProto.BOOL, []), _vi("x", F, [2, 20])],
                                            [_vi("y", F, [2, 20])], initializer=[big]),
                          opset_imports=[helper.make_opsetid("", 17)])
    g = _check(m, {"c": np.array(True), "x": np.ones((2, 20), np.float32)})
    consts = g.all_constants()
    assert len(consts) == 2  # one copy per branch, under distinct names
    assert kiln.parse(str(g), constants=consts) == g
