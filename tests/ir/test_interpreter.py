"""The reference interpreter: input binding, symbolic dims, and its type checks."""
import numpy as np
import pytest

import kiln
from kiln.ir import GraphBuilder, Node


def test_symbolic_dims_in_attributes_are_bound_at_run_time():
    b = GraphBuilder()
    x = b.input("x", "f32", ("batch", "seq", 64))
    heads = b.op("reshape", x, shape=("batch", "seq", 4, 16))
    wide = b.op("broadcast", b.op("reshape", x, shape=("batch", "seq", 1, 64)), shape=("batch", "seq", 3, 64))
    g = b.build([heads, wide])
    data = np.arange(2 * 5 * 64, dtype=np.float32).reshape(2, 5, 64)
    out = kiln.interpret(g, {"x": data})
    np.testing.assert_array_equal(out[heads], data.reshape(2, 5, 4, 16))
    np.testing.assert_array_equal(out[wide], np.broadcast_to(data[:, :, None, :], (2, 5, 3, 64)))


def test_outputs_come_back_in_graph_order_and_may_repeat():
    b = GraphBuilder()
    x = b.input("x", "f32", (3,))
    y = b.op("neg", x)
    g = b.build([y, x, y])
    assert list(kiln.interpret(g, [np.ones(3, np.float32)])) == [y, x]
    from kiln.ir.interpreter import run_graph

    assert len(run_graph(g, [np.ones(3, np.float32)])) == 3


def test_a_wrong_op_result_is_reported_against_the_node():
    b = GraphBuilder()
    x = b.input("x", "f32", (3,))
    g = b.build([b.op("relu", x)])
    g.types["relu"] = kiln.ir.TensorType("f32", (4,))  # a wrong inferred type: an op-definition bug
    with pytest.raises(kiln.InterpreterError, match="node 'relu' \\(relu\\): output 'relu'.*expected shape"):
        kiln.interpret(g, [np.ones(3, np.float32)])


def test_reference_failure_names_the_node():
    b = GraphBuilder()
    x = b.input("x", "f32", ("n",))
    g = b.build([b.op("reshape", x, shape=(2, 2))])
    with pytest.raises(kiln.InterpreterError, match="node 'reshape' \\(reshape\\)"):
        kiln.interpret(g, [np.ones(3, np.float32)])


def test_nodes_are_immutable_records():
    n = Node("add", ["a", "b"], ["c"], {"x": 1})
    with pytest.raises(TypeError):
        n.attrs["x"] = 2
    assert n.with_(name="k").name == "k" and n.name == ""


def test_absent_trailing_optional_operands_arrive_as_none():
    b = GraphBuilder()
    x = b.input("x", "f32", (2, 3))
    p = b.input("p", "i64", (4,))
    y = b.op("pad_dynamic", x, p)  # the optional pad value is left out
    g = b.build([y])
    kiln.verify(g)
    out = kiln.interpret(g, [np.ones((2, 3), np.float32), np.array([1, 0, 0, 1])])[y]
    assert out.shape == (3, 4) and out.sum() == 6


def test_pad_value_must_match_the_dtype():
    b = GraphBuilder()
    x = b.input("x", "f32", (2,))
    v = b.const(np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="value must be a scalar of f32"):
        b.op("pad", x, v, pads=[1, 1])
