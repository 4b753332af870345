"""Dead-code elimination."""
from hypothesis import given

import kiln.testing as kt
from kiln.passes import DeadCodeElimination
from kiln.passes.dce import dce

P = DeadCodeElimination()


@given(kt.graphs())
def test_dce_preserves_semantics(g):
    out = kt.check_pass(P, g)
    # nothing dead is left: every node feeds an output, every constant is used
    live = set(out.outputs)
    for n in reversed(out.nodes):
        assert live.intersection(n.outputs), n.label
        live.update(n.inputs)
    assert set(out.constants) <= live
    assert out.inputs == g.inputs
    assert P.run(out) is out  # idempotent, and unchanged graphs are returned as they are


def test_removes_dead_nodes_and_constants():
    kt.assert_rewrites(P, """
graph g(%x: f32[batch, 3], %unused: i32[2]) {
  %c: f32[3] = const [1.0, 2.0, 3.0]
  %d: f32[] = const [2.0]
  %a: f32[batch, 3] = add(%x, %c)
  %dead: f32[batch, 3] = mul(%a, %d)
  %dead2: f32[batch, 3] = exp(%dead)
  %r: f32[batch, 3] = relu(%a)
  return %r
}""", """
graph g(%x: f32[batch, 3], %unused: i32[2]) {
  %c: f32[3] = const [1.0, 2.0, 3.0]
  %a: f32[batch, 3] = add(%x, %c)
  %r: f32[batch, 3] = relu(%a)
  return %r
}""")


def test_keeps_multi_output_nodes_with_one_live_result():
    kt.assert_rewrites(P, """
graph g(%x: f32[4]) {
  %v: f32[2], %i: i64[2] = topk(%x) {k=2}
  %n: f32[2] = neg(%v)
  return %i
}""", """
graph g(%x: f32[4]) {
  %v: f32[2], %i: i64[2] = topk(%x) {k=2}
  return %i
}""")


def test_outputs_that_are_inputs_or_constants():
    text = """
graph g(%x: f32[2]) {
  %c: f32[2] = const [1.0, 2.0]
  %dead: f32[2] = add(%x, %c)
  return %x, %c
}"""
    out = kt.assert_rewrites(P, text, """
graph g(%x: f32[2]) {
  %c: f32[2] = const [1.0, 2.0]
  return %x, %c
}""")
    assert dce(out) is out
