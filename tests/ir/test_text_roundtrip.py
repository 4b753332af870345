"""Printer/parser round trip: str(parse(str(g))) == str(g) and the graphs are equal."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import kiln
import kiln.testing as kt
from kiln.ir import GraphBuilder, printer


@given(kt.graphs())
def test_round_trip_of_drawn_graphs(g):
    text = str(g)
    h = kiln.parse(text, constants=g.constants)
    assert str(h) == text
    assert h == g
    kiln.verify(h)


@given(kt.graphs(max_nodes=4))
def test_round_trip_is_stable(g):
    text = str(g)
    once = kiln.parse(text, constants=g.constants)
    twice = kiln.parse(str(once), constants=once.constants)
    assert str(twice) == text and twice == once


def test_large_constants_print_by_name_and_need_constants():
    b = GraphBuilder("g")
    x = b.input("x", "f32", ("batch", 32))
    w = b.const(np.arange(32 * 4, dtype=np.float32).reshape(32, 4) / 7, "w")
    g = b.build([b.op("matmul", x, w)])
    text = str(g)
    assert "%w: f32[32, 4] = const\n" in text
    with pytest.raises(kiln.ParseError, match="constant %w"):
        kiln.parse(text)
    assert kiln.parse(text, constants=g.constants) == g


def test_special_values_names_and_attrs_round_trip():
    b = GraphBuilder("my graph")
    x = b.input("x.in", "f32", ("batch", "seq", 3))
    c = b.const(np.array([np.inf, -np.inf, np.nan, -0.0, 1e-30, 3.5], np.float32).reshape(2, 3), "weird")
    f16 = b.const(np.array([0.1, 65504], np.float16), "h")
    i8 = b.const(np.array([-128, 127], np.int8), "i")
    bo = b.const(np.array([True, False]), "flags")
    y = b.op("add", x, c, name="add node")
    r = b.op("reshape", y, shape=("batch*seq", 6))
    s = b.op("slice", r, starts=[0], ends=[2**63 - 1], axes=[0], steps=[1])
    k = b.op("cast", s, to="bf16")
    g = b.build([k, f16, i8, bo])
    text = str(g)
    assert '"my graph"' in text and '%x.in' in text and '%"add node"' in text
    assert "shape=[batch*seq, 6]" in text and "to=bf16" in text
    h = kiln.parse(text)
    assert str(h) == text
    assert h == g
    kiln.verify(h)


def test_inline_limit_boundary():
    for n in (printer.INLINE_LIMIT, printer.INLINE_LIMIT + 1):
        b = GraphBuilder("g")
        x = b.input("x", "i32", (n,))
        g = b.build([b.op("add", x, b.const(np.arange(n, dtype=np.int32), "c"))])
        inline = n <= printer.INLINE_LIMIT
        assert ("= const [" in str(g)) == inline
        assert kiln.parse(str(g), constants=None if inline else g.constants) == g


def test_handwritten_text_round_trips():
    text = """graph mlp(%x: f32[batch, 4], %m: bool[4]) {
  %w: f32[4, 2] = const [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
  %zero: f32[] = const [0.0]
  %h: f32[batch, 4] = where(%m, %x, %zero) @"select node"
  %y: f32[batch, 2] = matmul(%h, %w)
  %s: f32[batch, 1] = reduce_sum(%y) {axes=[-1]}
  %i: i64[batch] = argmax(%y) {axis=1, keepdims=false}
  return %s, %i
}"""
    g = kiln.verify(kiln.parse(text))
    assert str(g) == text
    assert g.nodes[0].name == "select node"


def test_negative_nan_round_trips():
    with np.errstate(all="ignore"):
        a = np.log(np.array([-1.0, 1.0], np.float32))  # numpy's NaN has its sign bit set
    b = GraphBuilder("g")
    x = b.input("x", "f32", (2,))
    g = b.build([b.op("add", x, b.const(a, "c"))])
    assert "-nan" in str(g)
    assert kiln.parse(str(g)) == g


@given(kt.graphs(max_nodes=8))
def test_round_trip_after_the_cleanup_pipeline(g):
    # folded constants (NaN, inf, narrow floats) print and parse back bit for bit
    from kiln.passes import PassManager, default_pipeline

    out = PassManager(default_pipeline()).run(g)
    h = kiln.parse(str(out), constants=out.constants)
    assert str(h) == str(out) and h == out


_ODD = ["a b", "x.1", "none", "ü", "-", "1", '"q"', "%v", "@n", "back\\slash", "tab\t", "return", "graph", "const"]


@given(kt.graphs(max_nodes=6), st.lists(st.sampled_from(_ODD), min_size=1, max_size=4))
def test_round_trip_with_odd_names(g, prefixes):
    values = list(g.inputs) + list(g.constants) + [o for n in g.nodes for o in n.outputs]
    mapping = {v: f"{prefixes[i % len(prefixes)]}{i}" for i, v in enumerate(values)}
    h = g.rename(mapping)
    h.name = prefixes[0]
    text = str(h)
    back = kiln.parse(text, constants=h.constants)
    assert str(back) == text and back == h
