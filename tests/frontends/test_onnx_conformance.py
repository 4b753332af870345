"""The ONNX package's own node test cases, through from_onnx + kiln.interpret.

Every case runs. Cases listed in ``onnx_conformance_failures.txt`` are the known gaps (what is
still missing, by op, is printed by ``python benchmarks/onnx_conformance.py``); they are strict
xfails, so a case that starts passing fails this test until it is removed from the list, and the
list cannot silently grow.
"""
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from kiln.frontends.onnx.conformance import collect_cases, run_case  # noqa: E402

TOTAL_CASES = 1884  # onnx 1.23's node cases; the issue's target is >= 1300 passing
REQUIRED_PASSING = 1300

_FAILURES_FILE = Path(__file__).with_name("onnx_conformance_failures.txt")
KNOWN_FAILURES = {
    line.split("#")[0].strip() for line in _FAILURES_FILE.read_text().splitlines() if line.split("#")[0].strip()
}
CASES = {c.name: c for c in collect_cases()}


def test_known_failures_leave_the_target_met():
    stale = KNOWN_FAILURES - set(CASES)
    assert not stale, f"failure list names cases that do not exist: {sorted(stale)[:5]}"
    assert len(CASES) - len(KNOWN_FAILURES) >= min(REQUIRED_PASSING, len(CASES) * REQUIRED_PASSING // TOTAL_CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_node_case(name):
    r = run_case(CASES[name])
    if name in KNOWN_FAILURES:
        if r.status == "pass":
            pytest.fail(f"{name} passes now: remove it from {_FAILURES_FILE.name}")
        pytest.xfail(f"known gap: {r.status}: {r.detail}")
    assert r.status == "pass", f"{r.status}: {r.detail}"
