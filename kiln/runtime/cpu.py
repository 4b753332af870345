"""The CPU executor: loads an artifact's shared library with ctypes; one native call per inference.

The library implements the kiln C ABI (see the artifact's ``kiln.h``)::

    int64_t kiln_workspace_size(const int64_t *syms);
    int32_t kiln_run(const void *const *inputs, void *const *outputs, const int64_t *syms,
                     void *workspace, const void *weights);
    void kiln_set_num_threads(int32_t n);

The shared library is loaded from an anonymous in-memory file (``memfd_create``) where the system has
one, else from a temporary file removed right after loading. A loaded library is never unloaded
(ctypes does not, and unloading under a live thread pool would crash); its memfd stays open with it,
so that its ``/proc/self/fd/N`` name is never reused by a later library: glibc's ``dlopen`` recognises
an already-loaded library by name before it looks at the file.
"""
from __future__ import annotations

import ctypes
import os
import platform
import tempfile
import threading

import numpy as np

from ..errors import ArtifactError
from .artifact import aligned_empty

_ALIGN = 64
_DEFAULT_ENTRY = {"run": "kiln_run", "workspace_size": "kiln_workspace_size",
                  "set_num_threads": "kiln_set_num_threads"}

# LLVM feature name -> /proc/cpuinfo flag, for the features whose absence would mean SIGILL. Features
# not listed here are not checked (LLVM names many that cpuinfo does not show).
_X86_FLAGS = {
    "sse3": "pni", "ssse3": "ssse3", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "avx": "avx", "avx2": "avx2",
    "fma": "fma", "f16c": "f16c", "bmi": "bmi1", "bmi2": "bmi2", "avx512f": "avx512f", "avx512cd": "avx512cd",
    "avx512bw": "avx512bw", "avx512dq": "avx512dq", "avx512vl": "avx512vl", "avx512vnni": "avx512_vnni",
    "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16", "avx512ifma": "avx512ifma",
    "avx512vbmi": "avx512vbmi", "avxvnni": "avx_vnni", "amx-tile": "amx_tile", "amx-int8": "amx_int8",
    "amx-bf16": "amx_bf16",
}
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "i686": "x86", "i386": "x86"}


def load(manifest: dict, members: dict, *, num_threads=None, device=None) -> "CpuExecutor":
    """The executor interface: a ready-to-run :class:`CpuExecutor` for an artifact's manifest and members."""
    if device not in (None, "cpu"):
        raise ValueError(f"the cpu executor runs on device 'cpu', not {device!r}")
    return CpuExecutor(manifest, members, num_threads=num_threads)


class CpuExecutor:
    def __init__(self, manifest: dict, members: dict, *, num_threads=None):
        options = manifest.get("target", {}).get("options") or {}
        check_host(options)
        binary = manifest["binary"]
        lib = load_library(members[binary], binary)
        entry = {**_DEFAULT_ENTRY, **(manifest.get("entry") or {})}
        self._run = _symbol(lib, entry["run"], binary)
        self._run.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),
                              ctypes.POINTER(ctypes.c_int64), ctypes.c_void_p, ctypes.c_void_p]
        self._run.restype = ctypes.c_int32
        self._workspace_size = _symbol(lib, entry["workspace_size"], binary)
        self._workspace_size.argtypes = [ctypes.POINTER(ctypes.c_int64)]
        self._workspace_size.restype = ctypes.c_int64
        self._set_num_threads = None
        if entry.get("set_num_threads"):
            self._set_num_threads = _symbol(lib, entry["set_num_threads"], binary)
            self._set_num_threads.argtypes = [ctypes.c_int32]
            self._set_num_threads.restype = None
        self.lib = lib

        w = manifest.get("weights")
        alignment = max(_ALIGN, int((w or {}).get("alignment") or _ALIGN))
        self._weights = _aligned_copy(members[w["member"]] if w else b"", alignment)
        self._weights_ptr = self._weights.ctypes.data
        self._workspace = aligned_empty(_ALIGN)
        self._workspace_ptr = self._workspace.ctypes.data
        self._lock = threading.Lock()

        if num_threads is None:
            num_threads = options.get("num_threads")
        if num_threads is not None:
            self.set_num_threads(num_threads)

    def set_num_threads(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"num_threads must be a positive int, got {n!r}")
        if self._set_num_threads is not None:
            self._set_num_threads(int(n))

    def workspace_size(self, syms) -> int:
        """Bytes of workspace ``kiln_run`` needs for symbol values ``syms`` (manifest "symbols" order)."""
        return int(self._workspace_size(_int64_array(syms)))

    def run(self, inputs, outputs, syms) -> None:
        n_in, n_out = len(inputs), len(outputs)
        ins = (ctypes.c_void_p * (n_in or 1))(*[a.ctypes.data for a in inputs])
        outs = (ctypes.c_void_p * (n_out or 1))(*[a.ctypes.data for a in outputs])
        sym = _int64_array(syms)
        size = self._workspace_size(sym)
        if size < 0:
            raise RuntimeError(f"kiln_workspace_size returned {size} for symbols {list(sym)}")
        with self._lock:  # one workspace, shared by every call
            if size > self._workspace.nbytes:
                self._workspace = aligned_empty(size, _ALIGN)
                self._workspace_ptr = self._workspace.ctypes.data
            status = self._run(ins, outs, sym, self._workspace_ptr, self._weights_ptr)
        if status != 0:
            raise RuntimeError(f"the compiled model failed: kiln_run returned {status}")


def _int64_array(syms):
    values = syms.tolist() if isinstance(syms, np.ndarray) else list(syms)
    return (ctypes.c_int64 * (len(values) or 1))(*values)


def _aligned_copy(data, alignment: int) -> np.ndarray:
    """``data`` as a uint8 array starting on an ``alignment`` boundary; no copy when it already does."""
    src = np.frombuffer(data, dtype=np.uint8) if len(data) else np.empty(0, np.uint8)
    if len(src) and src.ctypes.data % alignment == 0:
        return src
    buf = aligned_empty(max(len(src), alignment), alignment)
    buf[:len(src)] = src
    return buf


def _symbol(lib, name: str, member: str):
    try:
        return getattr(lib, name)
    except AttributeError:
        raise ArtifactError(f"member '{member}' lacks the entry point '{name}'") from None


def load_library(data, member: str = "model.so") -> ctypes.CDLL:
    """Load shared-library bytes with ctypes; ArtifactError naming ``member`` when the system refuses."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        try:
            fd = memfd_create(f"kiln:{member}", getattr(os, "MFD_CLOEXEC", 0))
        except OSError:
            fd = None
        if fd is not None:
            path = f"/proc/self/fd/{fd}"
            try:
                _write_all(fd, data)
                # the fd stays open for as long as the library stays loaded: the life of the process
                return ctypes.CDLL(path)
            except OSError as e:
                os.close(fd)
                raise _load_error(member, e, path) from None
    fd, path = tempfile.mkstemp(prefix="kiln-", suffix=".so")
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        return ctypes.CDLL(path)
    except OSError as e:
        raise _load_error(member, e, path) from None
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def _load_error(member: str, error: OSError, path: str) -> ArtifactError:
    why = str(error).replace(path, member)
    return ArtifactError(f"member '{member}' could not be loaded as a shared library: {why}")


def _write_all(fd: int, data) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


def check_host(options: dict, cpuinfo: str | None = None) -> None:
    """ArtifactError when the artifact's target triple or CPU features do not fit this machine.

    A library built for another architecture would not load; one built for CPU features this machine
    lacks would load and then die of an illegal instruction, so both are refused here with a message.
    """
    triple = options.get("triple")
    if triple:
        want = triple.split("-")[0].lower()
        want = _ARCH_ALIASES.get(want, want)
        have = platform.machine().lower()
        have = _ARCH_ALIASES.get(have, have)
        if have and want != have:
            raise ArtifactError(f"the artifact was compiled for {triple}; this machine is {have}. "
                                f"Recompile it for this machine's target")
    features = options.get("features") or ""
    needed = [f[1:] for f in features.split(",") if f.startswith("+") and f[1:] in _X86_FLAGS]
    if not needed:
        return
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    if not flags:
        return
    missing = [f for f in needed if _X86_FLAGS[f] not in flags]
    if missing:
        cpu = options.get("cpu")
        raise ArtifactError(f"the artifact needs CPU feature(s) {', '.join(missing)} that this machine lacks"
                            + (f" (it was compiled for cpu '{cpu}')" if cpu else "")
                            + "; recompile it for this machine or a more generic cpu")
