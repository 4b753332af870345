"""kiln.testing.graphs / inputs_for: drawn graphs are well typed, varied, and run."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings, strategies as st

import kiln
import kiln.testing as kt
from kiln.ir import dims

_FIND = settings(max_examples=2000, database=None, suppress_health_check=list(HealthCheck), derandomize=True,
                 phases=[Phase.generate])


def _sample(strategy, n=300):
    """n drawn examples (derandomized, no shrinking)."""
    out = []

    @settings(max_examples=n, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x):
        out.append(x)

    collect()
    return out


def _has_symbolic_input(g):
    return any(not dims.is_static(d) for i in g.inputs for d in g.types[i].shape)


@given(kt.graphs())
def test_drawn_graphs_verify_and_run(g):
    kiln.verify(g)
    assert 1 <= len(g.nodes) <= 12
    assert g.outputs and len(set(g.outputs)) == len(g.outputs)
    out = kiln.interpret(g, kt.random_inputs(g))
    for o in g.outputs:
        assert out[o].dtype == g.types[o].dtype.np


@given(kt.graphs(ops=["add", "relu", "transpose"], dtypes=["f32"], max_nodes=6, min_nodes=2))
def test_ops_dtypes_and_size_are_respected(g):
    assert {n.op for n in g.nodes} <= {"add", "relu", "transpose"}
    assert 2 <= len(g.nodes) <= 6
    assert all(g.types[v].dtype.name == "f32" for v in g.types)


@given(kt.graphs(symbolic_dims=False, max_rank=2, max_dim=3))
def test_static_shapes_when_asked(g):
    assert not _has_symbolic_input(g)
    assert all(len(g.types[i].shape) <= 2 for i in g.inputs)


@given(st.data())
def test_inputs_for_matches_the_signature(data):
    g = data.draw(kt.graphs(max_nodes=4))
    ins = data.draw(kt.inputs_for(g))
    assert len(ins) == len(g.inputs)
    kiln.interpret(g, ins)  # binds symbols consistently, checks dtypes and shapes


@given(st.data())
def test_inputs_for_binds_given_symbols(data):
    g = data.draw(kt.graphs(max_nodes=3).filter(_has_symbolic_input))
    ins = data.draw(kt.inputs_for(g, symbols={"batch": 3}))
    for name, a in zip(g.inputs, ins):
        for d, n in zip(g.types[name].shape, a.shape):
            if d == "batch":
                assert n == 3


def test_graphs_are_varied():
    # each feature the passes need shows up often
    gs = _sample(kt.graphs(), 300)

    def share(pred):
        return sum(1 for g in gs if pred(g)) / len(gs)

    assert share(lambda g: len(g.nodes) >= 8) > 0.2
    assert share(lambda g: len(g.nodes) >= 12) > 0.02
    assert share(_has_symbolic_input) > 0.2
    assert share(lambda g: len(g.outputs) >= 2) > 0.2
    assert share(lambda g: len(g.constants) >= 1) > 0.3
    assert share(lambda g: len({g.types[v].dtype for v in g.types}) >= 3) > 0.05
    assert share(lambda g: len({n.op for n in g.nodes}) >= 6) > 0.1
    assert share(lambda g: any(n.op == "matmul" for n in g.nodes)) > 0.02
    assert share(lambda g: any(n.op == "reshape" and not dims.all_static(n.attrs["shape"])
                               for n in g.nodes)) > 0.01
    drawn = {n.op for g in gs for n in g.nodes}
    assert len(drawn) > 40, sorted(kt.supported_ops() - drawn)


def test_recipes_cover_the_core_ops():
    want = {"add", "sub", "mul", "div", "relu", "abs", "exp", "where", "cast", "reduce_sum", "reduce_max",
            "argmax", "matmul", "reshape", "transpose", "broadcast", "slice", "concat", "identity"}
    assert want <= kt.supported_ops()
    assert kt.supported_ops() <= set(kiln.ir.all_ops())


def test_unknown_op_is_an_error():
    with pytest.raises(ValueError, match="no_such_op"):
        kt.graphs(ops=["no_such_op"])


def test_random_inputs_are_seeded():
    g = find(kt.graphs(), lambda g: len(g.inputs) >= 2, settings=_FIND)
    a, b = kt.random_inputs(g, seed=3), kt.random_inputs(g, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_import_kiln_does_not_import_hypothesis():
    code = ("import sys, kiln; import kiln.passes; "
            "bad = [m for m in ('hypothesis', 'onnx', 'onnxruntime', 'torch', 'jax') if m in sys.modules]; "
            "assert not bad, bad; kiln.testing.graphs; assert 'hypothesis' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@given(kt.graphs(symbols=("batch", "seq"), max_nodes=8))
def test_two_symbols(g):
    kiln.verify(g)
    kt.assert_equivalent(g, kiln.parse(str(g), constants=g.constants))
    kt.assert_equivalent(g, g, symbols={"batch": 2, "seq": 3}, trials=1)


def test_two_symbols_show_up():
    gs = _sample(kt.graphs(symbols=("batch", "seq")), 200)
    syms = {s for g in gs for i in g.inputs for d in g.types[i].shape for s in dims.symbols(d)}
    assert syms == {"batch", "seq"}
