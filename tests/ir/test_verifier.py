"""The verifier accepts every well-formed graph and names the node of a broken one."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import kiln
import kiln.testing as kt
from kiln import VerificationError
from kiln.ir import GraphBuilder, Node

GOOD = """graph g(%x: f32[batch, 3]) {
  %c: f32[3] = const [1.0, 2.0, 3.0]
  %a: f32[batch, 3] = add(%x, %c)
  %r: f32[batch, 3] = relu(%a)
  %s: f32[batch] = reduce_sum(%r) {axes=[1], keepdims=false}
  return %s
}"""


def _g():
    return kiln.parse(GOOD)


def _broken(edit):
    g = _g()
    edit(g)
    return g


@given(kt.graphs())
def test_drawn_graphs_verify(g):
    assert kiln.verify(g) is g


@given(st.data())
def test_a_wrong_recorded_type_names_its_node(data):
    g = data.draw(kt.graphs())
    n = data.draw(st.sampled_from(g.nodes))
    o = n.outputs[0]
    t = g.types[o]
    g.types[o] = t.with_dtype("f64" if t.dtype.name != "f64" else "f32")
    with pytest.raises(VerificationError, match=f"node '{n.name}' \\({n.op}\\)"):
        kiln.verify(g)


@given(st.data())
def test_a_use_before_definition_names_its_node(data):
    g = data.draw(kt.graphs(min_nodes=2))
    users = [k for k, n in enumerate(g.nodes) if any(i in g.nodes[k - 1].outputs for i in n.inputs) and k > 0]
    if not users:
        return
    k = data.draw(st.sampled_from(users))
    g.nodes[k - 1], g.nodes[k] = g.nodes[k], g.nodes[k - 1]
    with pytest.raises(VerificationError, match=f"node '{g.nodes[k - 1].name}'.*not defined before use"):
        kiln.verify(g)


def test_good_graph_verifies():
    kiln.verify(_g())


@pytest.mark.parametrize("edit, message", [
    (lambda g: g.nodes.__setitem__(1, g.nodes[1].with_(inputs=("nope",))),
     r"node 'r' \(relu\): input x 'nope' is not defined"),
    (lambda g: g.types.__setitem__("r", kiln.ir.tensor("f32", "batch", 4)),
     r"node 'r' \(relu\): output 'r' is typed f32\[batch, 4\] but the op infers f32\[batch, 3\]"),
    (lambda g: g.types.__setitem__("s", kiln.ir.tensor("i32", "batch")),
     r"node 's' \(reduce_sum\): output 's' is typed i32"),
    (lambda g: g.nodes.__setitem__(1, g.nodes[1].with_(inputs=("a", "a"))),
     r"node 'r' \(relu\): takes 1 input"),
    (lambda g: g.nodes.__setitem__(1, g.nodes[1].with_(op="frobnicate")),
     r"node 'r' \(frobnicate\): unknown op 'frobnicate'"),
    (lambda g: g.nodes.__setitem__(2, g.nodes[2].with_(attrs={"axes": (1,), "keepdims": False, "bogus": 1})),
     r"node 's' \(reduce_sum\): unknown attribute\(s\) bogus"),
    (lambda g: g.nodes.__setitem__(2, g.nodes[2].with_(attrs={"keepdims": False})),
     r"node 's' \(reduce_sum\): missing required attribute 'axes'"),
    (lambda g: g.nodes.__setitem__(2, g.nodes[2].with_(attrs={"axes": [1], "keepdims": False})),
     r"node 's' \(reduce_sum\): attributes .* are not in canonical form"),
    (lambda g: g.nodes.__setitem__(2, g.nodes[2].with_(attrs={"axes": (5,), "keepdims": False})),
     r"node 's' \(reduce_sum\).*out of range"),
    (lambda g: g.nodes.__setitem__(1, g.nodes[1].with_(outputs=("a",))),
     r"node 'r' \(relu\): output 'a' is defined twice"),
    (lambda g: g.nodes.insert(0, g.nodes.pop(1)),
     r"node 'r' \(relu\): input x 'a' is not defined before use"),
    (lambda g: g.types.pop("r"),
     r"node 'r' \(relu\): output 'r' has no type"),
    (lambda g: g.constants.__setitem__("c", np.zeros(4, np.float32)),
     r"constant 'c' holds float32\[4\] but is typed f32\[3\]"),
    (lambda g: g.outputs.append("ghost"),
     r"output 'ghost' is not defined"),
    (lambda g: g.inputs.append("x"),
     r"input 'x' is listed twice"),
])
def test_broken_graphs_are_named(edit, message):
    with pytest.raises(VerificationError, match=message):
        kiln.verify(_broken(edit))


def test_named_node_is_reported_by_name():
    b = GraphBuilder("g")
    x = b.input("x", "f32", (2,))
    y = b.op("exp", x, name="my_exp", out="e")
    g = b.build([y])
    g.types["e"] = g.types["e"].with_shape((3,))
    with pytest.raises(VerificationError, match=r"node 'my_exp' \(exp\)"):
        kiln.verify(g)


def test_run_time_dims_may_be_any_symbol():
    b = GraphBuilder("g")
    x = b.input("x", "f32", ("batch", 4))
    y = b.op("slice", x, starts=[1], ends=[3], axes=[0], steps=[1])
    g = b.build([y])
    assert g.types[y].shape[0] == f"{y}_d0"
    g.types[y] = g.types[y].with_shape(("n", 4))  # a pass may rename it, or prove a size
    kiln.verify(g)
    g.types[y] = g.types[y].with_shape((2, 4))
    kiln.verify(g)
    g.types[y] = g.types[y].with_shape((2, 5))
    with pytest.raises(VerificationError, match="slice"):
        kiln.verify(g)
    assert isinstance(Node("relu", ("x",), ("y",)), Node)
