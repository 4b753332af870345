"""Checking that two graphs compute the same function, with a readable diff when they do not."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..ir.graph import Graph
from ..ir.interpreter import interpret

__all__ = ["assert_equivalent", "assert_rewrites", "check_pass", "compare_outputs", "signature_diff"]


def signature_diff(g1: Graph, g2: Graph, check_names: bool = True) -> list:
    """What differs between the two graphs' signatures (input and output names and types)."""
    problems = []
    for what, a, b in (("input", g1.inputs, g2.inputs), ("output", g1.outputs, g2.outputs)):
        if len(a) != len(b):
            problems.append(f"{len(a)} {what}s ({', '.join(a)}) vs {len(b)} ({', '.join(b)})")
            continue
        for k, (x, y) in enumerate(zip(a, b)):
            tx, ty = g1.types[x], g2.types[y]
            if tx != ty:
                problems.append(f"{what} {k} '{x}' is {tx} vs '{y}' {ty}")
            elif check_names and x != y:
                problems.append(f"{what} {k} is named '{x}' vs '{y}'")
    return problems


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.8g}"
    return str(v.item() if hasattr(v, "item") else v)


def compare_outputs(name: str, a: np.ndarray, b: np.ndarray, rtol: float, atol: float, max_shown: int = 5):
    """None if ``a`` and ``b`` agree (NaN equals NaN, infinities by sign), else a description."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype:
        return f"{name}: dtype {a.dtype} vs {b.dtype}"
    if a.shape != b.shape:
        return f"{name}: shape {list(a.shape)} vs {list(b.shape)}"
    if a.size == 0:
        return None
    if a.dtype.kind in "biu":
        bad = a != b
        wa, wb = a.astype(np.float64), b.astype(np.float64)
    else:
        wa, wb = a.astype(np.float64), b.astype(np.float64)
        bad = ~np.isclose(wa, wb, rtol=rtol, atol=atol, equal_nan=True)
    if not bad.any():
        return None
    with np.errstate(all="ignore"):
        err = np.abs(wa - wb)
        rel = err / np.maximum(np.abs(wb), np.finfo(np.float64).tiny)
    err = np.where(bad, np.nan_to_num(err, nan=np.inf), 0.0)
    rel = np.where(bad, np.nan_to_num(rel, nan=np.inf), 0.0)
    worst = np.unravel_index(int(np.argmax(err)), a.shape)
    worst_rel = np.unravel_index(int(np.argmax(rel)), a.shape)
    idx = [tuple(int(i) for i in k) for k in np.argwhere(bad)]  # argwhere: 0-d arrays too
    lines = [
        f"{name}: {len(idx)} of {a.size} elements differ (rtol={rtol:g}, atol={atol:g})",
        f"  max abs error {_fmt(err[worst])} at {tuple(int(i) for i in worst)}: {_fmt(a[worst])} vs {_fmt(b[worst])}",
        f"  max rel error {_fmt(rel[worst_rel])} at {tuple(int(i) for i in worst_rel)}: "
        f"{_fmt(a[worst_rel])} vs {_fmt(b[worst_rel])}",
    ]
    shown = ", ".join(f"{k}: {_fmt(a[k])} vs {_fmt(b[k])}" for k in idx[:max_shown])
    lines.append(f"  first differences: {shown}" + (" ..." if len(idx) > max_shown else ""))
    return "\n".join(lines)


def _input_sets(g: Graph, inputs, seed, trials, symbols):
    from .strategies import random_inputs

    if inputs is None:
        return [random_inputs(g, seed=seed + k, symbols=symbols) for k in range(trials)]
    if isinstance(inputs, Mapping):
        return [inputs]
    seq = list(inputs)
    # a list of input sets (lists or dicts), or one set (a list of arrays)
    if seq and all(isinstance(s, (list, tuple, Mapping)) for s in seq):
        return seq
    return [seq]


def assert_equivalent(g1: Graph, g2: Graph, inputs=None, rtol: float = 1e-5, atol: float = 1e-6, *,
                      seed: int = 0, trials: int = 2, symbols: Mapping | None = None,
                      check_names: bool = True) -> None:
    """Raise AssertionError unless ``g1`` and ``g2`` agree on every output.

    Both graphs are run by the reference interpreter on ``inputs`` (one list or dict of arrays, or
    a list of such sets) or, by default, on ``trials`` seeded random input sets (symbolic dims bound
    to small sizes, or as given by ``symbols``). Floats compare with ``rtol``/``atol`` and NaN equals
    NaN; ints and bools compare exactly. Signatures (input and output types, and names unless
    ``check_names=False``) must match. ``g1`` is the reference: if it fails to run, that error
    propagates; if only ``g2`` fails, it is an AssertionError.
    """
    problems = signature_diff(g1, g2, check_names)
    if problems:
        raise AssertionError(f"graphs '{g1.name}' and '{g2.name}' have different signatures:\n  "
                             + "\n  ".join(problems))
    for k, ins in enumerate(_input_sets(g1, inputs, seed, trials, symbols)):
        r1 = interpret(g1, ins)
        try:
            r2 = interpret(g2, ins)
        except Exception as e:  # noqa: BLE001 - reported as a difference
            raise AssertionError(f"graph '{g2.name}' failed where '{g1.name}' ran "
                                 f"(input set {k}): {type(e).__name__}: {e}") from e
        diffs = []
        for j, (o1, o2) in enumerate(zip(g1.outputs, g2.outputs)):
            d = compare_outputs(f"output {j} '{o1}' ({g1.types[o1]})", r1[o1], r2[o2], rtol, atol)
            if d:
                diffs.append(d)
        if diffs:
            shapes = ", ".join(f"{n}: {list(np.shape(a))}" for n, a in zip(g1.inputs, _as_list(g1, ins)))
            raise AssertionError(f"graphs '{g1.name}' and '{g2.name}' differ on input set {k} ({shapes}):\n"
                                 + "\n".join(diffs))


def check_pass(pass_, graph: Graph, ctx=None, **tolerances) -> Graph:
    """Run ``pass_`` on ``graph`` and check what every pass owes: the result verifies, the input
    graph is left exactly as it was, and the result computes the same outputs
    (:func:`assert_equivalent`, with ``tolerances``). Returns the result for further checks.

        @given(kt.graphs())
        def test_my_pass(g):
            kt.check_pass(MyPass(), g)
    """
    from ..ir.verify import verify

    before = str(graph), {k: id(v) for k, v in graph.constants.items()}
    out = pass_.run(graph, ctx) if ctx is not None else pass_.run(graph)
    if (str(graph), {k: id(v) for k, v in graph.constants.items()}) != before:
        raise AssertionError(f"pass '{getattr(pass_, 'name', pass_)}' mutated its input graph")
    verify(out)
    assert_equivalent(graph, out, **tolerances)
    return out


def _as_list(g, ins) -> Sequence:
    if isinstance(ins, Mapping):
        return [ins[n] for n in g.inputs]
    return list(ins)


def assert_rewrites(pass_, before: str, expected: str, *, constants=None, ctx=None, equivalent: bool = True):
    """Before/expected check for a pass: ``pass_.run(parse(before))`` must print as ``expected``.

    Both texts are parsed (so whitespace and default attributes do not matter) and verified; the
    result is verified too, and with ``equivalent`` it is compared with the input through the
    interpreter. On a mismatch the AssertionError shows both texts. Returns the result graph.
    """
    from ..ir.parser import parse
    from ..ir.verify import verify

    g = verify(parse(before, constants=constants))
    want = verify(parse(expected, constants=constants))
    snapshot = str(g)
    out = pass_.run(g, ctx) if ctx is not None else pass_.run(g)
    if str(g) != snapshot:
        raise AssertionError(f"pass {getattr(pass_, 'name', pass_)!r} mutated its input graph")
    verify(out)
    if str(out) != str(want):
        raise AssertionError(f"pass {getattr(pass_, 'name', pass_)!r} gave\n{out}\n\nexpected\n{want}")
    if equivalent:
        assert_equivalent(g, out)
    return out


def check_compiled(graph: Graph, inputs=None, target="cpu", rtol: float = 1e-5, atol: float = 1e-6, *,
                   seed: int = 0, trials: int = 2, symbols: Mapping | None = None, opt_level: int = 2,
                   num_threads: int | None = None):
    """Compile ``graph`` for ``target`` and assert it agrees with the interpreter on every output.

    Inputs as for :func:`assert_equivalent` (random by default, symbolic dims bound to small sizes).
    Returns the compiled model."""
    from ..compiler.compile import compile as _compile

    model = _compile(graph, target, opt_level=opt_level, num_threads=num_threads, progress=False)
    for k, ins in enumerate(_input_sets(graph, inputs, seed, trials, symbols)):
        ref = interpret(graph, ins)
        arrays = [ins[n] for n in graph.inputs] if isinstance(ins, Mapping) else list(ins)
        got = model(*arrays)
        diffs = []
        for j, name in enumerate(graph.outputs):
            d = compare_outputs(f"output {j} '{name}' ({graph.types[name]})", ref[name], np.asarray(got[j]), rtol, atol)
            if d:
                diffs.append(d)
        if diffs:
            shapes = ", ".join(f"{n}: {list(np.shape(a))}" for n, a in zip(graph.inputs, arrays))
            raise AssertionError(f"compiled '{graph.name}' ({target}) differs from the interpreter on input set {k} "
                                 f"({shapes}):\n" + "\n".join(diffs) + f"\n\ngraph:\n{graph}")
    return model
