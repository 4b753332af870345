"""kiln.testing.assert_equivalent: passes for equal graphs, fails with a readable diff otherwise."""
import numpy as np
import pytest
from hypothesis import given

import kiln
import kiln.testing as kt
from kiln.ir import GraphBuilder


def _relu_graph(op="relu"):
    b = GraphBuilder("g")
    x = b.input("x", "f32", ("batch", 4))
    y = b.op(op, x, out="y")
    z = b.op("add", y, b.const(np.float32(1.0), "one"), out="z")
    return b.build([y, z])


@given(kt.graphs())
def test_printed_and_parsed_graph_is_equivalent(g):
    kt.assert_equivalent(g, kiln.parse(str(g), constants=g.constants))


def test_relu_swapped_for_abs_is_caught():
    g, bad = _relu_graph("relu"), _relu_graph("abs")
    bad = bad.copy()
    with pytest.raises(AssertionError) as e:
        kt.assert_equivalent(g, bad)
    msg = str(e.value)
    assert "output 0 'y'" in msg and "max abs error" in msg and "elements differ" in msg


def test_swapping_relu_for_abs_in_drawn_graphs_is_caught():
    # every relu in a drawn graph swapped for abs: caught whenever a relu sees a negative number
    from hypothesis import HealthCheck, Phase, find, settings

    def swapped(g):
        h = g.copy()
        h.nodes = [n.with_(op="abs") if n.op == "relu" else n for n in g.nodes]
        return h

    def caught(g):
        try:
            kt.assert_equivalent(g, swapped(g))
        except AssertionError:
            return True
        return False

    g = find(kt.graphs(ops=["relu", "add", "mul", "transpose", "reduce_sum"], dtypes=["f32"]), caught,
             settings=settings(max_examples=500, database=None, derandomize=True, phases=[Phase.generate],
                               suppress_health_check=list(HealthCheck)))
    assert any(n.op == "relu" for n in g.nodes)


def test_signature_differences_are_reported():
    g = _relu_graph()
    h = kiln.parse(str(g).replace("f32", "f64").replace("[1.0]", "[1.0]"))
    with pytest.raises(AssertionError, match="different signatures"):
        kt.assert_equivalent(g, h)
    h2 = g.copy()
    h2.outputs = ["y"]
    with pytest.raises(AssertionError, match=r"2 outputs \(y, z\) vs 1 \(y\)"):
        kt.assert_equivalent(g, h2)
    h3 = g.rename({"z": "w"})
    with pytest.raises(AssertionError, match="named 'z' vs 'w'"):
        kt.assert_equivalent(g, h3)
    kt.assert_equivalent(g, h3, check_names=False)


def test_nan_equals_nan_and_tolerances():
    b = GraphBuilder("g")
    x = b.input("x", "f32", (5,))
    g = b.build([b.op("log", x)])
    ins = [np.array([-1, 0, 1, 2, np.inf], np.float32)]
    kt.assert_equivalent(g, kiln.parse(str(g)), inputs=ins)

    b = GraphBuilder("g")
    x = b.input("x", "f32", (5,))
    h = b.build([b.op("add", b.op("log", x, out="log"), b.const(np.float32(1e-3)), out="log_1")])
    h = h.rename({"log_1": "log", "log": "inner"})
    with pytest.raises(AssertionError, match="max rel error"):
        kt.assert_equivalent(g, h, inputs=ins)
    kt.assert_equivalent(g, h, inputs=ins, rtol=0, atol=2e-3)


def test_integers_compare_exactly_and_inputs_can_be_dicts_or_sets():
    b = GraphBuilder("g")
    x = b.input("x", "i32", (3,))
    g = b.build([b.op("abs", x, out="y")])
    b = GraphBuilder("g")
    x = b.input("x", "i32", (3,))
    h = b.build([b.op("neg", x, out="y")])
    kt.assert_equivalent(g, h, inputs={"x": np.array([0, 0, 0], np.int32)})
    with pytest.raises(AssertionError, match=r"1 of 3 elements differ"):
        kt.assert_equivalent(g, h, inputs=[[np.array([0, 0, 0], np.int32)], [np.array([0, 1, 0], np.int32)]])


def test_failure_of_the_second_graph_is_an_assertion():
    g = _relu_graph()
    g.outputs = ["z"]
    h = g.copy()
    h.types["y"] = h.types["y"].with_shape(("batch", 5))  # the interpreter's type check fails
    with pytest.raises(AssertionError, match="failed where"):
        kt.assert_equivalent(g, h)


def test_scalar_outputs_are_compared():
    b = GraphBuilder("g")
    x = b.input("x", "f32", ())
    g = b.build([b.op("relu", x, out="y")])
    b = GraphBuilder("g")
    x = b.input("x", "f32", ())
    h = b.build([b.op("abs", x, out="y")])
    with pytest.raises(AssertionError, match=r"1 of 1 elements differ.*\n.*at \(\): 0 vs 1"):
        kt.assert_equivalent(g, h, inputs=[np.array(-1, np.float32)])


def test_check_pass_catches_a_pass_that_mutates_its_input():
    from kiln.ir import GraphBuilder
    from kiln.passes import Pass

    class Sloppy(Pass):
        name = "sloppy"

        def run(self, graph, ctx=None):
            graph.nodes[0] = graph.nodes[0].with_(op="abs")  # edits the caller's graph
            return graph

    b = GraphBuilder()
    x = b.input("x", "f32", (3,))
    g = b.build([b.op("relu", x)])
    with pytest.raises(AssertionError, match="mutated its input"):
        kt.check_pass(Sloppy(), g)
