"""Run the ONNX package's own node test cases through ``from_onnx`` + ``kiln.interpret``.

Used by ``tests/frontends/test_onnx_conformance.py`` and ``benchmarks/onnx_conformance.py``.
Each case is converted once, run on each of its data sets, and compared with the expected
outputs the way ONNX's backend tests compare them (dtype and shape exact, values within the
case's rtol/atol, NaN equal to NaN).
"""
from __future__ import annotations

import collections
import warnings
from dataclasses import dataclass, field

import numpy as np


@dataclass
class CaseResult:
    name: str
    status: str  # 'pass' | 'fail' | 'unsupported' | 'error'
    detail: str = ""
    ops: tuple = field(default_factory=tuple)


def collect_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sorted(collect_testcases(), key=lambda c: c.name)


def _ops_of(model) -> tuple:
    from .importer import iter_nodes, qualified_op

    return tuple(dict.fromkeys(qualified_op(n) for n in iter_nodes(model.graph)))


def compare(expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float, what: str):
    """Raise AssertionError with a readable message when the arrays differ."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.dtype != actual.dtype:
        raise AssertionError(f"{what}: dtype {actual.dtype}, expected {expected.dtype}")
    if expected.shape != actual.shape:
        raise AssertionError(f"{what}: shape {list(actual.shape)}, expected {list(expected.shape)}")
    if expected.dtype.kind in "fc" or expected.dtype.type.__module__.startswith("ml_dtypes"):
        e, a = expected.astype(np.float64), actual.astype(np.float64)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


def _array(x) -> np.ndarray:
    """A test-data value as a numpy array (TensorProto and numpy scalars included)."""
    if isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, np.generic):
        arr = np.asarray(x)
    elif type(x).__name__ == "TensorProto":
        from onnx import numpy_helper

        arr = numpy_helper.to_array(x)
    else:
        raise TypeError(f"{type(x).__name__} values (sequence/optional/map) are not supported")
    if arr.dtype == object or arr.dtype.kind in "USc":
        raise TypeError(f"{arr.dtype} tensors are not supported")
    return arr


def run_case(case) -> CaseResult:
    from ... import interpret
    from ...errors import ConversionError, UnsupportedOperatorError
    from . import from_onnx

    ops = _ops_of(case.model)
    try:
        graph = from_onnx(case.model)
    except UnsupportedOperatorError as e:
        return CaseResult(case.name, "unsupported", str(e).splitlines()[1].strip(), ops)
    except ConversionError as e:
        return CaseResult(case.name, "error", f"convert: {e}", ops)
    except Exception as e:  # noqa: BLE001 - a conformance run reports, it does not stop
        return CaseResult(case.name, "error", f"convert crashed: {type(e).__name__}: {e}", ops)
    for k, (inputs, outputs) in enumerate(case.data_sets):
        try:
            inputs, outputs = [_array(x) for x in inputs], [_array(x) for x in outputs]
        except TypeError as e:
            return CaseResult(case.name, "unsupported", str(e), ops)
        try:
            with np.errstate(all="ignore"):
                got = interpret(graph, list(inputs))
        except Exception as e:  # noqa: BLE001
            return CaseResult(case.name, "error", f"interpret: {type(e).__name__}: {e}", ops)
        bad = check_outputs(case, k, outputs, list(got.values()), ops)
        if bad is not None:
            return bad
    return CaseResult(case.name, "pass", "", ops)


def check_outputs(case, k, outputs, got, ops):
    """A failing CaseResult when data set ``k``'s results ``got`` differ from ``outputs``, else None."""
    if len(got) != len(outputs):
        return CaseResult(case.name, "fail", f"{len(got)} outputs, expected {len(outputs)}", ops)
    try:
        for j, (e, a) in enumerate(zip(outputs, got)):
            compare(e, a, case.rtol, case.atol, f"data set {k} output {j}")
    except AssertionError as e:
        return CaseResult(case.name, "fail", str(e).strip().splitlines()[0][:300], ops)
    return None


def run_all(cases=None) -> list:
    return [run_case(c) for c in (cases if cases is not None else collect_cases())]


def summarize(results) -> str:
    """Pass count, then what is missing grouped by the case's main op."""
    counts = collections.Counter(r.status for r in results)
    lines = [f"ONNX node conformance: {counts['pass']} / {len(results)} cases pass "
             f"({counts['fail']} wrong result, {counts['error']} error, {counts['unsupported']} unsupported op)"]
    by_op = collections.defaultdict(list)
    for r in results:
        if r.status != "pass":
            by_op[_main_op(r)].append(r)
    lines.append("not passing, by op:")
    for op, rs in sorted(by_op.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        kinds = collections.Counter(r.status for r in rs)
        lines.append(f"  {op}: {len(rs)} ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))})")
    return "\n".join(lines)


def _main_op(r: CaseResult) -> str:
    if r.status == "unsupported" and r.detail.startswith("- "):
        return r.detail[2:].split(" ")[0]
    name = r.name[5:] if r.name.startswith("test_") else r.name
    for op in r.ops:
        if name.replace("_", "").lower().startswith(op.split(".")[-1].lower()):
            return op
    return r.ops[-1] if r.ops else "?"
