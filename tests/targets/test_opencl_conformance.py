"""ONNX node conformance for the OpenCL target: a fixed sample of the cases the CPU target passes,
compiled with ``kiln.compile(target="opencl")`` and run on a real device (PoCL in CI).

The full run (every case; about 15 minutes on PoCL, which builds each kernel at its first launch)
passes exactly the cases the CPU target passes (the gaps in ``compiled_conformance_failures.txt`` are
data-dependent shapes and control flow, not targets)::

    python benchmarks/onnx_conformance.py --target opencl --only-interpreter-passing

Here every ``STRIDE``-th of those cases runs, in this process (a forked child could not use an
OpenCL implementation this process has already initialised).
"""
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("pyopencl")

from kiln.compiler.conformance import run_case  # noqa: E402
from kiln.frontends.onnx.conformance import collect_cases  # noqa: E402


def _have_device() -> bool:
    from kiln.runtime import opencl

    try:
        return bool(opencl.devices())
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _have_device(), reason="no OpenCL device")

ROOT = Path(__file__).parents[2]
STRIDE = 20


def _names(path: Path) -> set:
    if not path.exists():
        return set()
    return {ln.split("#")[0].strip() for ln in path.read_text().splitlines() if ln.split("#")[0].strip()}


_SKIP = _names(ROOT / "tests" / "frontends" / "onnx_conformance_failures.txt") | \
    _names(Path(__file__).with_name("compiled_conformance_failures.txt"))
CASES = {c.name: c for c in collect_cases() if c.name not in _SKIP}
SAMPLE = sorted(CASES)[::STRIDE]


@pytest.mark.parametrize("name", SAMPLE)
def test_case_on_opencl(name):
    r = run_case(CASES[name], target="opencl")
    assert r.status == "pass", f"{r.status}: {r.detail}"
