"""Control-flow ops (if, loop, scan): regions print, parse, verify and interpret."""
import numpy as np
import pytest

import kiln
from kiln.ir import GraphBuilder


def _branch(name, op):
    b = GraphBuilder(name)
    x = b.input("x", "f32", ("n",))
    return b.build([b.op(op, x)])


def _sum_loop_graph():
    lb = GraphBuilder("body")
    lb.input("i", "i64", ())
    cond = lb.input("cond", "bool", ())
    acc = lb.input("acc", "f32", ("n",))
    x = lb.input("x", "f32", ("n",))
    acc2 = lb.op("add", acc, x)
    body = lb.build([cond, acc2, acc2])
    b = GraphBuilder("main")
    c = b.input("c", "bool", ())
    x = b.input("x", "f32", ("n",))
    (y,) = b.op("if", c, x, then_branch=_branch("then", "relu"), else_branch=_branch("else", "neg"))
    trip = b.const(np.array(3, np.int64), "trip")
    final, stacked = b.op("loop", trip, None, y, x, body=body, num_carried=1)
    return b.build([y, final, stacked])


def test_regions_round_trip_through_text():
    g = _sum_loop_graph()
    kiln.verify(g)
    text = str(g)
    assert "then_branch=graph then(%x: f32[n]) {" in text
    g2 = kiln.parse(text, constants=g.constants)
    assert g2 == g and str(g2) == text


def test_if_and_loop_interpret():
    g = _sum_loop_graph()
    x = np.array([1.0, -2.0], np.float32)
    out = kiln.interpret(g, [np.array(False), x])
    np.testing.assert_array_equal(out["if"], -x)
    np.testing.assert_array_equal(out["loop"], -x + 3 * x)
    np.testing.assert_array_equal(out["loop_1"], np.stack([-x + k * x for k in (1, 2, 3)]))
    assert g.types["if"].shape == ("n",)  # the branch symbol bound by the operand is kept
    out = kiln.interpret(g, [np.array(True), x])
    np.testing.assert_array_equal(out["if"], np.maximum(x, 0))


def test_scan_cumulative_sum_reversed():
    bb = GraphBuilder("body")
    s = bb.input("s", "f32", (2,))
    row = bb.input("row", "f32", (2,))
    s2 = bb.op("add", s, row)
    body = bb.build([s2, s2])
    b = GraphBuilder("main")
    init = b.input("init", "f32", (2,))
    xs = b.input("xs", "f32", ("t", 2))
    final, ys = b.op("scan", init, xs, body=body, num_states=1, num_scan_inputs=1,
                     scan_input_directions=[1])
    g = b.build([final, ys])
    kiln.verify(g)
    assert g.types[ys].shape == ("t", 2)
    data = np.arange(6, dtype=np.float32).reshape(3, 2)
    out = kiln.interpret(g, [np.zeros(2, np.float32), data])
    np.testing.assert_array_equal(out[ys], np.cumsum(data[::-1], axis=0))
    np.testing.assert_array_equal(out[final], data.sum(0))


def test_verifier_names_the_node_and_region():
    g = _sum_loop_graph()
    node = g.nodes[0]
    bad_then = node.attrs["then_branch"].copy()
    bad_then.nodes = [bad_then.nodes[0].with_(inputs=("nope",))]
    g.nodes[0] = node.with_(attrs={**node.attrs, "then_branch": bad_then})
    with pytest.raises(kiln.VerificationError, match="region 'then_branch'.*'nope' is not defined"):
        kiln.verify(g)


def test_mismatched_branches_are_rejected():
    b = GraphBuilder("main")
    c = b.input("c", "bool", ())
    x = b.input("x", "f32", ("n",))
    other = GraphBuilder("other")
    other.input("x", "f32", ("n",))
    other_g = other.build([other.op("cast", "x", to="i32")])
    with pytest.raises(ValueError, match="differ in dtype"):
        b.op("if", c, x, then_branch=_branch("then", "relu"), else_branch=other_g)
