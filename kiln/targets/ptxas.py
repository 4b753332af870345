"""Find NVIDIA's PTX assembler and check PTX with it.

``ptxas`` comes from the ``nvidia-cuda-nvcc`` wheel (``nvidia/cuda_nvcc/bin/ptxas``, the ``cuda``
extra) or the PATH (a CUDA toolkit). It is used at compile time only, to validate the PTX the
``cuda`` target emits (tests, and ``kiln compile --target cuda``); the runtime never needs it (the
driver JIT-compiles PTX itself).
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


class PtxasError(RuntimeError):
    """ptxas refused the PTX (the message holds its diagnostics)."""


@functools.lru_cache(maxsize=None)
def find() -> str | None:
    """The path of ptxas (the nvidia-cuda-nvcc wheel first, then the PATH), or None."""
    try:
        import nvidia.cuda_nvcc as wheel  # namespace package of the nvidia-cuda-nvcc-cu12 wheel

        for root in list(getattr(wheel, "__path__", [])):
            p = Path(root) / "bin" / "ptxas"
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    except ImportError:
        pass
    return shutil.which("ptxas")


def version() -> str:
    """ptxas's version line (e.g. ``Cuda compilation tools, release 12.9, V12.9.86``)."""
    exe = _exe()
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if "release" in ln]
    return lines[0].strip() if lines else r.stdout.strip()


def _exe() -> str:
    exe = find()
    if exe is None:
        raise PtxasError("ptxas was not found: install the nvidia-cuda-nvcc-cu12 wheel (kiln[cuda]) or put a CUDA "
                         "toolkit's bin directory on the PATH")
    return exe


def validate(ptx, sm: str = "sm_80", name: str = "model.ptx") -> bytes:
    """Assemble ``ptx`` (str or bytes) for ``sm`` (``"sm_80"``, ``"sm_90"``, or ``80``); returns the
    cubin. Raises :class:`PtxasError` with ptxas's message when it refuses the code."""
    arch = sm if str(sm).startswith("sm_") else f"sm_{sm}"
    text = ptx.encode("utf-8") if isinstance(ptx, str) else bytes(ptx)
    exe = _exe()
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, name), os.path.join(d, "out.cubin")
        Path(src).write_bytes(text)
        r = subprocess.run([exe, f"-arch={arch}", src, "-o", out], capture_output=True, text=True)
        if r.returncode:
            msg = (r.stderr or r.stdout).strip()
            lines = msg.splitlines()
            if len(lines) > 40:
                msg = "\n".join(lines[:40] + [f"... ({len(lines) - 40} more lines)"])
            raise PtxasError(f"ptxas -arch={arch} refused {name}:\n{msg}")
        return Path(out).read_bytes()
