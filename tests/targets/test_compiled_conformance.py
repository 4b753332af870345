"""The ONNX node cases the interpreter passes, compiled with ``kiln.compile(target="cpu")`` and run natively.

Each case is compiled, linked, loaded and compared in a forked child (a crash is a failure, not the end
of the run), with the case's own tolerances, the same as the interpreter's conformance test. Cases
listed in ``compiled_conformance_failures.txt`` are known gaps (xfail); one that starts passing is reported
as a warning (a new lowering landed) and should be removed from the list; every other case must pass.
Regenerate the list with

    python benchmarks/onnx_conformance.py --target cpu --only-interpreter-passing \
        --write-failures tests/targets/compiled_conformance_failures.txt
"""
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("llvmlite")

from kiln.compiler.conformance import run_case_isolated  # noqa: E402
from kiln.frontends.onnx.conformance import collect_cases  # noqa: E402

ROOT = Path(__file__).parents[2]
_FAILURES_FILE = Path(__file__).with_name("compiled_conformance_failures.txt")
_INTERPRETER_FAILURES = ROOT / "tests" / "frontends" / "onnx_conformance_failures.txt"


def _names(path: Path) -> set:
    if not path.exists():
        return set()
    return {ln.split("#")[0].strip() for ln in path.read_text().splitlines() if ln.split("#")[0].strip()}


KNOWN_FAILURES = _names(_FAILURES_FILE)
CASES = {c.name: c for c in collect_cases() if c.name not in _names(_INTERPRETER_FAILURES)}


def test_failure_list_names_interpreter_passing_cases():
    stale = KNOWN_FAILURES - set(CASES)
    assert not stale, (f"{_FAILURES_FILE.name} names cases that do not exist or that the interpreter does not "
                       f"pass: {sorted(stale)[:5]}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_case(name):
    r = run_case_isolated(CASES[name], target="cpu", num_threads=1)
    if name in KNOWN_FAILURES:
        if r.status == "pass":
            import warnings

            warnings.warn(f"{name} passes compiled now: remove it from {_FAILURES_FILE.name}")
            return
        pytest.xfail(f"known gap: {r.status}: {r.detail}")
    assert r.status == "pass", f"{r.status}: {r.detail}"
