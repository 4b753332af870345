"""PassManager: ordered pipeline, verification in debug mode, IR dumps, timing report, instruments."""
import pytest
from hypothesis import given

import kiln
import kiln.testing as kt
from kiln import VerificationError
from kiln.passes import (CommonSubexpressions, DeadCodeElimination, FoldConstants, Pass, PassContext,
                         PassManager, Simplify, default_pipeline, function_pass)

TEXT = """
graph g(%x: f32[batch, 3]) {
  %c: f32[3] = const [1.0, 2.0, 3.0]
  %z: f32[] = const [0.0]
  %two: f32[] = const [2.0]
  %c2: f32[3] = mul(%c, %two)
  %a: f32[batch, 3] = add(%x, %c2)
  %b: f32[batch, 3] = add(%c2, %x)
  %s: f32[batch, 3] = add(%a, %z)
  %t: f32[batch, 3] = mul(%s, %b)
  %dead: f32[batch, 3] = exp(%t)
  return %t
}"""

EXPECTED = """
graph g(%x: f32[batch, 3]) {
  %c2: f32[3] = const [2.0, 4.0, 6.0]
  %a: f32[batch, 3] = add(%x, %c2)
  %t: f32[batch, 3] = mul(%a, %a)
  return %t
}"""


@given(kt.graphs())
def test_default_pipeline_preserves_semantics(g):
    pm = PassManager(default_pipeline(), PassContext(debug=True))
    out = pm.run(g)
    kt.assert_equivalent(g, out)
    assert [r.name for r in pm.report] == [p.name for p in pm.passes]


def test_pipeline_runs_in_order_and_reports():
    g = kiln.parse(TEXT)
    pm = PassManager([Simplify(), FoldConstants(), CommonSubexpressions(), DeadCodeElimination()],
                     PassContext(debug=True))
    out = pm.run(g)
    assert str(out) == str(kiln.parse(EXPECTED))
    assert str(g) == str(kiln.parse(TEXT))  # the input is untouched
    recs = pm.report.records
    assert [r.name for r in recs] == ["simplify", "fold_constants", "cse", "dce"]
    assert [r.index for r in recs] == [1, 2, 3, 4]
    assert recs[0].nodes_before == 6 and recs[-1].nodes_after == 2
    assert all(r.seconds >= 0 for r in recs) and recs[2].changed and not recs[3].changed
    table = str(pm.report)
    assert "simplify" in table and "total" in table and "6->" in table


def test_dump_ir_writes_numbered_files(tmp_path):
    g = kiln.parse(TEXT)
    pm = PassManager([Simplify(), FoldConstants()], dump_ir=tmp_path / "ir")
    out = pm.run(g)
    files = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert files == ["00_input.kir", "01_simplify.kir", "02_fold_constants.kir"]
    assert kiln.parse((tmp_path / "ir" / "02_fold_constants.kir").read_text()) == out
    assert pm.report.records[1].dump.endswith("02_fold_constants.kir")
    # the context's dump_dir does the same
    PassManager([DeadCodeElimination()], PassContext(dump_dir=str(tmp_path / "ctx"))).run(g)
    assert sorted(p.name for p in (tmp_path / "ctx").iterdir()) == ["00_input.kir", "01_dce.kir"]
    # only after some passes
    PassManager([Simplify(), DeadCodeElimination(), FoldConstants()], dump_ir=tmp_path / "some",
                dump_after=["dce"]).run(g)
    assert sorted(p.name for p in (tmp_path / "some").iterdir()) == ["00_input.kir", "02_dce.kir"]


class _Breaks(Pass):
    name = "breaks_types"

    def run(self, graph, ctx=None):
        g = graph.copy()
        n = g.nodes[0]
        g.types[n.outputs[0]] = g.types[n.outputs[0]].with_dtype("i8")
        return g


class _Mutates(Pass):
    name = "mutates"

    def run(self, graph, ctx=None):
        graph.nodes.pop()
        return graph


def test_debug_mode_verifies_and_names_the_pass():
    g = kiln.parse(TEXT)
    with pytest.raises(VerificationError, match=r"after pass 'breaks_types' \(#2\): node 'c2' \(mul\)"):
        PassManager([Simplify(), _Breaks()], PassContext(debug=True)).run(g)
    PassManager([_Breaks()], PassContext(debug=False)).run(g)  # no checks unless asked
    with pytest.raises(VerificationError, match=r"pass 'mutates' \(#1\) mutated its input"):
        PassManager([_Mutates()], PassContext(debug=True)).run(kiln.parse(TEXT))
    bad = kiln.parse(TEXT)
    bad.outputs = ["ghost"]
    with pytest.raises(VerificationError, match="input graph"):
        PassManager([], PassContext(debug=True)).run(bad)


def test_options_instruments_and_function_passes():
    seen = []

    class Recorder:
        def before_pass(self, p, graph, ctx):
            seen.append(("before", p.name, len(graph.nodes)))

        def after_pass(self, p, graph, ctx, seconds):
            seen.append(("after", p.name, len(graph.nodes)))

    @function_pass("drop_outputs_but_first")
    def first_only(graph, ctx):
        g = graph.copy()
        g.outputs = g.outputs[: ctx.option("keep", 1)]
        return g

    g = kiln.parse(TEXT)
    ctx = PassContext(options={"fold_constants.max_elements": 1, "keep": 1}, instruments=[Recorder()])
    out = PassManager([FoldConstants(), first_only], ctx).run(g)
    assert "mul(%c, %two)" in str(out)  # c2 has 3 elements > 1: not folded
    assert seen == [("before", "fold_constants", 6), ("after", "fold_constants", 6),
                    ("before", "drop_outputs_but_first", 6), ("after", "drop_outputs_but_first", 6)]
    assert first_only(g).outputs == ["t"]


def test_passes_are_pure_on_drawn_graphs():
    # every pass, on a graph, leaves that graph exactly as it was
    from hypothesis import HealthCheck, Phase, settings

    @settings(max_examples=60, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(kt.graphs())
    def check(g):
        before = str(g), dict(g.types), list(g.nodes), dict(g.constants)
        for p in default_pipeline():
            p.run(g)
            assert (str(g), dict(g.types), list(g.nodes), dict(g.constants)) == before, p.name

    check()


def test_a_pipeline_nests_as_a_pass():
    inner = PassManager([Simplify(), FoldConstants()])
    outer = PassManager([inner, CommonSubexpressions(), DeadCodeElimination()], PassContext(debug=True))
    out = outer.run(kiln.parse(TEXT))
    assert str(out) == str(kiln.parse(EXPECTED))
    assert [r.name for r in outer.report] == ["pipeline", "cse", "dce"]
    assert [r.name for r in inner.report] == ["simplify", "fold_constants"]
