"""Passes apply inside control-flow regions (nested graphs), keeping each region's signature."""
import numpy as np

import kiln
import kiln.testing as kt
from kiln.passes import (CommonSubexpressions, DeadCodeElimination, FoldConstants, PassContext, PassManager,
                         Simplify, default_pipeline)

BEFORE = """
graph g(%c: bool[], %x: f32[batch, 3]) {
  %r: f32[batch, 3] = if(%c, %x) {then_branch=graph then(%x: f32[batch, 3]) {
    %z: f32[] = const [0.0]
    %one: f32[] = const [1.0]
    %two: f32[] = const [2.0]
    %three: f32[] = add(%one, %two)
    %a: f32[batch, 3] = add(%x, %z)
    %dead: f32[batch, 3] = exp(%x)
    %y: f32[batch, 3] = relu(%a)
    %y2: f32[batch, 3] = relu(%a)
    %m: f32[batch, 3] = mul(%y, %three)
    %s: f32[batch, 3] = add(%m, %y2)
    return %s
  }, else_branch=graph else(%x: f32[batch, 3]) {
    %n: f32[batch, 3] = neg(%x)
    %nn: f32[batch, 3] = neg(%n)
    return %nn
  }}
  return %r
}"""

AFTER = """
graph g(%c: bool[], %x: f32[batch, 3]) {
  %r: f32[batch, 3] = if(%c, %x) {then_branch=graph then(%x: f32[batch, 3]) {
    %three: f32[] = const [3.0]
    %y: f32[batch, 3] = relu(%x)
    %m: f32[batch, 3] = mul(%y, %three)
    %s: f32[batch, 3] = add(%m, %y)
    return %s
  }, else_branch=graph else(%x: f32[batch, 3]) {
    %nn: f32[batch, 3] = identity(%x)
    return %nn
  }}
  return %r
}"""


def test_the_cleanup_pipeline_reaches_into_regions():
    g = kiln.verify(kiln.parse(BEFORE))
    out = PassManager(default_pipeline(), PassContext(debug=True)).run(g)
    assert str(out) == str(kiln.parse(AFTER))
    for cond in (True, False):
        ins = [np.array(cond), np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)]
        kt.assert_equivalent(g, out, inputs=ins)


def test_each_pass_alone_reaches_into_regions():
    g = kiln.parse(BEFORE)
    then = lambda h: h.nodes[0].attrs["then_branch"]  # noqa: E731
    assert "dead" not in str(then(DeadCodeElimination().run(g)))
    assert "y2" not in str(then(CommonSubexpressions().run(g)))
    assert "%three: f32[] = const [3.0]" in str(then(FoldConstants().run(g)))
    assert "add(%x, %z)" not in str(then(Simplify().run(g)))
    assert DeadCodeElimination().run(kiln.parse(AFTER)) is not None


def test_regions_with_different_bodies_are_not_merged():
    g = kiln.parse("""
graph g(%c: bool[], %x: f32[2]) {
  %a: f32[2] = if(%c, %x) {then_branch=graph t(%x: f32[2]) {
    %y: f32[2] = relu(%x)
    return %y
  }, else_branch=graph e(%x: f32[2]) {
    return %x
  }}
  %b: f32[2] = if(%c, %x) {then_branch=graph t(%x: f32[2]) {
    %y: f32[2] = abs(%x)
    return %y
  }, else_branch=graph e(%x: f32[2]) {
    return %x
  }}
  %c2: f32[2] = if(%c, %x) {then_branch=graph t(%x: f32[2]) {
    %y: f32[2] = relu(%x)
    return %y
  }, else_branch=graph e(%x: f32[2]) {
    return %x
  }}
  %s: f32[2] = add(%a, %b)
  %t: f32[2] = add(%s, %c2)
  return %t
}""")
    out = CommonSubexpressions().run(g)
    assert [n.outputs[0] for n in out.nodes] == ["a", "b", "s", "t"]  # c2 merged into a, b kept
    kt.assert_equivalent(g, out, inputs=[np.array(True), np.array([-1, 2], np.float32)])
