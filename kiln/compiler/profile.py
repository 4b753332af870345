"""Per-kernel time of a compiled CPU model: where an inference spends its time.

``kiln_run`` marks the end of every kernel call; :func:`profile` enables the marks, runs the model and
returns one row per call (kernel, the value it computes, milliseconds), slowest first."""
from __future__ import annotations

import ctypes

import numpy as np


def profile(model, *arrays, runs: int = 10) -> list:
    lib = getattr(getattr(model, "_executor", None), "lib", None)
    if lib is None or not hasattr(lib, "kiln_prof_read"):
        raise ValueError("this model's library has no profile marks (only cpu artifacts have them)")
    calls = model.manifest.get("kernels") or []
    n = len(calls) + 1
    lib.kiln_prof_enable(ctypes.c_int32(1))
    buf = (ctypes.c_int64 * n)()
    totals = np.zeros(n - 1)
    try:
        model(*arrays)  # warm up
        for _ in range(runs):
            model(*arrays)
            lib.kiln_prof_read(buf, ctypes.c_int32(n))
            t = np.frombuffer(buf, dtype=np.int64).astype(np.float64)
            totals += np.diff(t) / 1e6
    finally:
        lib.kiln_prof_enable(ctypes.c_int32(0))
    rows = [(c.get("name", "?"), (c.get("outputs") or ["?"])[0], totals[i] / runs) for i, c in enumerate(calls)]
    return sorted(rows, key=lambda r: -r[2])


def format_profile(rows, top: int = 25) -> str:
    total = sum(r[2] for r in rows) or 1.0
    lines = [f"{'kernel':<28} {'value':<28} {'ms':>8} {'share':>6}"]
    for name, value, ms in rows[:top]:
        lines.append(f"{name[:28]:<28} {str(value)[:28]:<28} {ms:8.3f} {100 * ms / total:5.1f}%")
    lines.append(f"{'total':<57} {total:8.3f}")
    return "\n".join(lines)
