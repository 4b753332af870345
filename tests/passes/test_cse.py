"""Common-subexpression elimination."""
import numpy as np
from hypothesis import given

import kiln
import kiln.testing as kt
from kiln.ir import OpDef, register
from kiln.ir.registry import OPS
from kiln.ir.types import TensorType
from kiln.passes import CommonSubexpressions, PassContext

P = CommonSubexpressions()


@given(kt.graphs())
def test_cse_preserves_semantics(g):
    out = kt.check_pass(P, g)
    assert len(out.nodes) <= len(g.nodes)
    again = P.run(out)
    assert again is out or again == out


def test_merges_duplicates_and_commutative_operands():
    kt.assert_rewrites(P, """
graph g(%x: f32[3], %y: f32[3]) {
  %a: f32[3] = add(%x, %y)
  %b: f32[3] = add(%y, %x)
  %s: f32[3] = sub(%x, %y)
  %t: f32[3] = sub(%y, %x)
  %m: f32[3] = mul(%a, %s)
  %n: f32[3] = mul(%b, %s)
  %o: f32[3] = add(%m, %n)
  %p: f32[3] = add(%o, %t)
  return %p
}""", """
graph g(%x: f32[3], %y: f32[3]) {
  %a: f32[3] = add(%x, %y)
  %s: f32[3] = sub(%x, %y)
  %t: f32[3] = sub(%y, %x)
  %m: f32[3] = mul(%a, %s)
  %o: f32[3] = add(%m, %m)
  %p: f32[3] = add(%o, %t)
  return %p
}""")


def test_attributes_matter_and_outputs_keep_their_names():
    kt.assert_rewrites(P, """
graph g(%x: f32[2, 3]) {
  %a: f32[2] = reduce_sum(%x) {axes=[1], keepdims=false}
  %b: f32[3] = reduce_sum(%x) {axes=[0], keepdims=false}
  %c: f32[2] = reduce_sum(%x) {axes=[1], keepdims=false}
  %d: f32[2] = reduce_sum(%x) {axes=[1], keepdims=false}
  %e: f32[2] = mul(%c, %a)
  return %e, %b, %d
}""", """
graph g(%x: f32[2, 3]) {
  %a: f32[2] = reduce_sum(%x) {axes=[1], keepdims=false}
  %b: f32[3] = reduce_sum(%x) {axes=[0], keepdims=false}
  %d: f32[2] = reduce_sum(%x) {axes=[1], keepdims=false}
  %e: f32[2] = mul(%a, %a)
  return %e, %b, %d
}""")


def test_identical_constants_merge():
    kt.assert_rewrites(P, """
graph g(%x: f32[2]) {
  %c1: f32[2] = const [1.0, 2.0]
  %c2: f32[2] = const [1.0, 2.0]
  %c3: f32[2] = const [1.0, 3.0]
  %a: f32[2] = add(%x, %c1)
  %b: f32[2] = add(%x, %c2)
  %c: f32[2] = add(%x, %c3)
  %m: f32[2] = mul(%a, %b)
  %n: f32[2] = mul(%m, %c)
  return %n
}""", """
graph g(%x: f32[2]) {
  %c1: f32[2] = const [1.0, 2.0]
  %c3: f32[2] = const [1.0, 3.0]
  %a: f32[2] = add(%x, %c1)
  %c: f32[2] = add(%x, %c3)
  %m: f32[2] = mul(%a, %a)
  %n: f32[2] = mul(%m, %c)
  return %n
}""")
    # a size limit keeps large weights from being hashed
    b = kiln.ir.GraphBuilder("g")
    x = b.input("x", "f32", (64,))
    c1, c2 = b.const(np.ones(64, np.float32), "c1"), b.const(np.ones(64, np.float32), "c2")
    g = b.build([b.op("add", b.op("add", x, c1), c2)])
    assert len(P.run(g).constants) == 1
    assert len(CommonSubexpressions().run(g, PassContext(options={"cse.max_constant_elements": 10})).constants) == 2
    assert len(CommonSubexpressions(max_constant_elements=10).run(g).constants) == 2


def test_random_ops_are_never_merged():
    def infer(x: TensorType):
        return x

    def reference(x):
        return x + np.random.default_rng().random(x.shape).astype(x.dtype)

    name = "test_cse_random_noise"
    if name not in OPS:
        register(OpDef(name, ("x",), {}, 1, infer, reference, frozenset({"random"})))
    try:
        text = f"""
graph g(%x: f32[3]) {{
  %a: f32[3] = {name}(%x)
  %b: f32[3] = {name}(%x)
  %c: f32[3] = sub(%a, %b)
  return %c
}}"""
        g = kiln.parse(text)
        assert P.run(g) is g
    finally:
        OPS.pop(name, None)
