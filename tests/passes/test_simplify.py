"""Algebraic simplification."""
import pytest
from hypothesis import given

import kiln
import kiln.testing as kt
from kiln.passes import Simplify

P = Simplify()


@given(kt.graphs())
def test_simplify_preserves_semantics(g):
    out = kt.check_pass(P, g)
    assert len(out.nodes) <= len(g.nodes)
    again = P.run(out)
    assert str(again) == str(out)  # a fixed point


@given(kt.graphs(ops=["transpose", "reshape", "identity", "cast", "add", "mul", "sub", "div", "relu"],
                 dtypes=["f32", "i32"]))
def test_simplify_on_movement_heavy_graphs(g):
    out = P.run(g)
    kt.assert_equivalent(g, out)
    producer = {o: m for m in out.nodes for o in m.outputs}
    for n in out.nodes:
        assert not (n.op == "identity" and n.outputs[0] not in out.outputs), n.label
        if n.op in ("transpose", "reshape"):
            inner = producer.get(n.inputs[0])
            assert inner is None or inner.op != n.op, n.label
        if n.op in ("reshape", "cast", "broadcast", "identity"):  # same type: a no-op
            assert n.outputs[0] in out.outputs or out.types[n.inputs[0]] != out.types[n.outputs[0]], n.label


CASES = {
    "add_zero": ("""
graph g(%x: f32[2, 3]) {
  %z: f32[3] = const [0.0, 0.0, 0.0]
  %zz: f32[2, 2, 3] = const [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
  %a: f32[2, 3] = add(%x, %z)
  %b: f32[2, 3] = add(%z, %a)
  %c: f32[2, 2, 3] = add(%b, %zz)
  %d: f32[2, 3] = sub(%b, %z)
  %e: f32[2, 3] = sub(%z, %d)
  return %c, %e
}""", """
graph g(%x: f32[2, 3]) {
  %z: f32[3] = const [0.0, 0.0, 0.0]
  %zz: f32[2, 2, 3] = const [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
  %c: f32[2, 2, 3] = add(%x, %zz)
  %e: f32[2, 3] = sub(%z, %x)
  return %c, %e
}"""),
    "mul_one_div_one": ("""
graph g(%x: f32[3], %i: i32[3]) {
  %one: f32[] = const [1.0]
  %ione: i32[3] = const [1, 1, 1]
  %a: f32[3] = mul(%one, %x)
  %b: f32[3] = div(%a, %one)
  %c: f32[3] = div(%one, %b)
  %j: i32[3] = mul(%i, %ione)
  %k: i32[3] = div(%j, %ione)
  %l: i32[3] = neg(%k)
  return %c, %l
}""", """
graph g(%x: f32[3], %i: i32[3]) {
  %one: f32[] = const [1.0]
  %c: f32[3] = div(%one, %x)
  %l: i32[3] = neg(%i)
  return %c, %l
}"""),
    "mul_zero_ints_only": ("""
graph g(%x: f32[3], %i: i32[3]) {
  %fz: f32[] = const [0.0]
  %iz: i32[] = const [0]
  %a: f32[3] = mul(%x, %fz)
  %b: i32[3] = mul(%iz, %i)
  %c: i32[3] = add(%b, %i)
  return %a, %c, %b
}""", """
graph g(%x: f32[3], %i: i32[3]) {
  %fz: f32[] = const [0.0]
  %b: i32[3] = const [0, 0, 0]
  %a: f32[3] = mul(%x, %fz)
  %c: i32[3] = identity(%i)
  return %a, %c, %b
}"""),
    "identity": ("""
graph g(%x: f32[3]) {
  %a: f32[3] = identity(%x)
  %b: f32[3] = relu(%a)
  %c: f32[3] = identity(%b)
  %d: f32[3] = identity(%c)
  %e: f32[3] = exp(%d)
  %f: f32[3] = identity(%e)
  return %f, %a, %d
}""", """
graph g(%x: f32[3]) {
  %a: f32[3] = identity(%x)
  %d: f32[3] = relu(%x)
  %f: f32[3] = exp(%d)
  return %f, %a, %d
}"""),
    "transpose_pairs": ("""
graph g(%x: f32[batch, 2, 3, 4]) {
  %a: f32[batch, 3, 4, 2] = transpose(%x) {perm=[0, 2, 3, 1]}
  %b: f32[batch, 2, 3, 4] = transpose(%a) {perm=[0, 3, 1, 2]}
  %c: f32[4, 2, 3, batch] = transpose(%b) {perm=[3, 1, 2, 0]}
  %d: f32[3, batch, 4, 2] = transpose(%c) {perm=[2, 3, 0, 1]}
  %e: f32[3, batch, 4, 2] = transpose(%d) {perm=[0, 1, 2, 3]}
  %f: f32[3, batch, 4, 2] = relu(%e)
  return %f
}""", """
graph g(%x: f32[batch, 2, 3, 4]) {
  %e: f32[3, batch, 4, 2] = transpose(%x) {perm=[2, 0, 3, 1]}
  %f: f32[3, batch, 4, 2] = relu(%e)
  return %f
}"""),
    "reshapes": ("""
graph g(%x: f32[batch, 2, 6]) {
  %a: f32[batch, 12] = reshape(%x) {shape=[batch, 12]}
  %b: f32[batch, 3, 4] = reshape(%a) {shape=[batch, 3, 4]}
  %c: f32[batch, 3, 4] = reshape(%b) {shape=[batch, 3, 4]}
  %d: f32[12*batch] = reshape(%c) {shape=[12*batch]}
  %e: f32[batch, 2, 6] = reshape(%d) {shape=[batch, 2, 6]}
  %f: f32[batch, 2, 6] = add(%e, %x)
  return %f, %b
}""", """
graph g(%x: f32[batch, 2, 6]) {
  %b: f32[batch, 3, 4] = reshape(%x) {shape=[batch, 3, 4]}
  %f: f32[batch, 2, 6] = add(%x, %x)
  return %f, %b
}"""),
    "cast_and_broadcast_to_self": ("""
graph g(%x: f32[2, 3]) {
  %a: f32[2, 3] = cast(%x) {to=f32}
  %b: f32[2, 3] = broadcast(%a) {shape=[2, 3]}
  %c: f64[2, 3] = cast(%b) {to=f64}
  %d: f64[4, 2, 3] = broadcast(%c) {shape=[4, 2, 3]}
  return %d
}""", """
graph g(%x: f32[2, 3]) {
  %c: f64[2, 3] = cast(%x) {to=f64}
  %d: f64[4, 2, 3] = broadcast(%c) {shape=[4, 2, 3]}
  return %d
}"""),
    "output_is_input": ("""
graph g(%x: f32[3]) {
  %z: f32[] = const [0.0]
  %y: f32[3] = add(%x, %z)
  return %y
}""", """
graph g(%x: f32[3]) {
  %y: f32[3] = identity(%x)
  return %y
}"""),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewrites(name):
    before, expected = CASES[name]
    kt.assert_rewrites(P, before, expected)


def test_unchanged_graph_is_returned_as_is():
    g = kiln.parse("""
graph g(%x: f32[3]) {
  %y: f32[3] = relu(%x)
  return %y
}""")
    assert P.run(g) is g


MORE_CASES = {
    "involutions_and_idempotents": ("""
graph g(%x: f32[3], %b: bool[3], %i: i32[3]) {
  %n1: f32[3] = neg(%x)
  %n2: f32[3] = neg(%n1)
  %m: f32[3] = max(%n2, %n2)
  %k: f32[3] = min(%m, %m)
  %t1: bool[3] = not(%b)
  %t2: bool[3] = not(%t1)
  %a: bool[3] = and(%t2, %t2)
  %o: bool[3] = or(%a, %a)
  %w: f32[3] = where(%o, %k, %k)
  %v: f32[3] = where(%o, %k, %n1)
  %j: i32[3] = bitwise_not(%i)
  %j2: i32[3] = bitwise_not(%j)
  %j3: i32[3] = abs(%j2)
  return %w, %v, %j3
}""", """
graph g(%x: f32[3], %b: bool[3], %i: i32[3]) {
  %n1: f32[3] = neg(%x)
  %w: f32[3] = identity(%x)
  %v: f32[3] = where(%b, %x, %n1)
  %j3: i32[3] = abs(%i)
  return %w, %v, %j3
}"""),
    "whole_slices_single_concats_trivial_reductions": ("""
graph g(%x: f32[batch, 4, 1], %i: i32[2, 1]) {
  %a: f32[batch, 4, 1] = slice(%x) {starts=[0, -9], ends=[9223372036854775807, 4], axes=[0, 1], steps=[1, 1]}
  %b: f32[batch, 2, 1] = slice(%a) {starts=[-4], ends=[3], axes=[1], steps=[2]}
  %c: f32[batch, 4, 1] = concat(%a) {axis=1}
  %d: f32[batch, 4, 1] = reduce_sum(%c) {axes=[2]}
  %e: f32[batch, 4, 1] = reduce_max(%d) {axes=[]}
  %f: f32[batch, 4, 1] = exp(%e)
  %m: i32[2, 1] = reduce_mean(%i) {axes=[1]}
  %p: i32[2, 1] = reduce_prod(%m) {axes=[1]}
  return %f, %b, %p
}""", """
graph g(%x: f32[batch, 4, 1], %i: i32[2, 1]) {
  %b: f32[batch, 2, 1] = slice(%x) {starts=[-4], ends=[3], axes=[1], steps=[2]}
  %f: f32[batch, 4, 1] = exp(%x)
  %p: i32[2, 1] = reduce_mean(%i) {axes=[1]}
  return %f, %b, %p
}"""),
}


@pytest.mark.parametrize("name", sorted(MORE_CASES))
def test_more_rewrites(name):
    before, expected = MORE_CASES[name]
    kt.assert_rewrites(P, before, expected)
