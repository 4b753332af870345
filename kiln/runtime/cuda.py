"""The CUDA executor: runs an artifact of the ``cuda`` target through the CUDA driver API (cuda-python).

The PTX (``model.ptx``) is loaded once per device with ``cuModuleLoadData`` (the driver compiles it
for the GPU at hand) and every entry of the launch table is looked up once. The weights are copied to
the device once, into one allocation; the workspace (every intermediate buffer, at the offsets of the
memory plan) is one allocation that grows when a call needs more; a call copies its inputs in, runs
the launch table's kernels in order on one stream (symbolic dims evaluated for that call) and copies
its outputs out.

The device is ``device="cuda:N"``, else the ``KILN_CUDA_DEVICE`` environment variable (same form),
else ``cuda:0``; it is opened at load when named, else at the first call (a process may compile and
then fork workers; CUDA does not survive fork once initialised). cuda-python is imported only when a
CUDA artifact runs. Driver errors become :class:`RuntimeError` / :class:`kiln.ArtifactError` naming
the kernel or step and the CUDA error name.
"""
from __future__ import annotations

import os
import threading

import numpy as np

from ..errors import ArtifactError
from .launch import evaluate, read_launch_table

_LOCK = threading.Lock()
_DEVICES: dict = {}    # ordinal -> (device, primary context)
_MODULES: dict = {}    # (ordinal, ptx bytes) -> CUmodule (shared by loads of one artifact)
_PID = None
_MAX_GRID_X = (1 << 31) - 1


class CudaError(RuntimeError):
    """A CUDA driver call failed; ``name`` is the CUresult's name (``CUDA_ERROR_...``)."""

    def __init__(self, message: str, name: str = ""):
        super().__init__(message)
        self.name = name


def _driver():
    try:
        from cuda.bindings import driver
    except ImportError as e:
        try:  # cuda-python before 12.6 spelled it cuda.cuda
            from cuda import cuda as driver  # type: ignore
        except ImportError:
            raise ArtifactError(f"the cuda executor needs cuda-python ({e}); install kiln[cuda]") from None
    return driver


def _error_name(err) -> str:
    d = _driver()
    try:
        _, name = d.cuGetErrorName(err)
        _, text = d.cuGetErrorString(err)
        name = name.decode() if isinstance(name, bytes) else str(name)
        text = text.decode() if isinstance(text, bytes) else str(text)
        return f"{name} ({text})"
    except Exception:
        return str(err)


def _check(result, what: str):
    """The values of a cuda-python call ``(CUresult, *values)``; CudaError naming ``what`` otherwise."""
    d = _driver()
    err, rest = result[0], result[1:]
    if err != d.CUresult.CUDA_SUCCESS:
        name = _error_name(err)
        raise CudaError(f"CUDA error {name} in {what}", name.split(" ")[0])
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


def _check_fork():
    global _PID
    if _PID is None:
        _PID = os.getpid()
    elif _PID != os.getpid():
        raise RuntimeError("CUDA was initialised in a parent process and does not survive fork(): open CUDA "
                           "models only in the process that runs them, or only in the children")


def _init():
    d = _driver()
    _check_fork()
    try:
        _check(d.cuInit(0), "cuInit")
    except CudaError:
        raise
    except Exception as e:  # no libcuda.so: cuda-python raises its own loader errors
        raise CudaError(f"CUDA is unavailable: {type(e).__name__}: {e}", "NO_DRIVER") from None


def device_count() -> int:
    """The number of CUDA devices (0 when there is no driver or no device)."""
    try:
        _init()
        return int(_check(_driver().cuDeviceGetCount(), "cuDeviceGetCount"))
    except (CudaError, ArtifactError):
        return 0


def _parse(spec) -> int:
    text = str(spec)
    idx = text.split(":", 1)[1] if text.startswith("cuda:") else text
    if not idx.isdigit():
        raise ValueError(f"CUDA device must be 'cuda:N' (N an index), got {spec!r}")
    return int(idx)


def _device(ordinal: int):
    """(CUdevice, its primary context), retained once per process."""
    d = _driver()
    with _LOCK:
        got = _DEVICES.get(ordinal)
        if got is None:
            _init()
            n = int(_check(d.cuDeviceGetCount(), "cuDeviceGetCount"))
            if ordinal >= n:
                raise ValueError(f"no CUDA device 'cuda:{ordinal}'; this machine has {n}")
            dev = _check(d.cuDeviceGet(ordinal), f"cuDeviceGet({ordinal})")
            ctx = _check(d.cuDevicePrimaryCtxRetain(dev), f"cuDevicePrimaryCtxRetain(cuda:{ordinal})")
            got = (dev, ctx)
            _DEVICES[ordinal] = got
    return got


def device_name(ordinal: int = 0) -> str:
    d = _driver()
    dev, _ = _device(ordinal)
    name = _check(d.cuDeviceGetName(256, dev), "cuDeviceGetName")
    return bytes(name).split(b"\0", 1)[0].decode(errors="replace")


def load(manifest: dict, members: dict, *, num_threads=None, device=None) -> "CudaExecutor":
    """The executor interface (see ``kiln.runtime.module``); ``num_threads`` does not apply."""
    return CudaExecutor(manifest, members, device=device)


class CudaExecutor:
    """Runs one artifact on one CUDA device."""

    def __init__(self, manifest: dict, members: dict, *, device=None):
        opts = manifest.get("target", {}).get("options") or {}
        self.table = read_launch_table(manifest, members, "CUDA")
        self.ptx = bytes(members[manifest["binary"]])
        self.sm = opts.get("sm", "")
        w = manifest.get("weights")
        self._blob = members[w["member"]] if w else b""
        self.symbols = list(self.table["symbols"])
        self._spec = device if device is not None else os.environ.get("KILN_CUDA_DEVICE") or "cuda:0"
        self._ordinal = _parse(self._spec)
        self.device = None
        self._lock = threading.Lock()
        self._allocs: list = []
        if device is not None:
            self._open()

    # ------------------------------------------------------------------------------------ setup
    def _open(self):
        d = _driver()
        dev, ctx = _device(self._ordinal)
        self.ctx = ctx
        _check(d.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        key = (self._ordinal, self.ptx)
        with _LOCK:
            mod = _MODULES.get(key)
        if mod is None:
            try:
                mod = _check(d.cuModuleLoadData(self.ptx + b"\0"), "cuModuleLoadData (JIT-compiling model.ptx)")
            except CudaError as e:
                hint = ""
                if e.name in ("CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "CUDA_ERROR_INVALID_PTX"):
                    hint = (f"; the PTX targets {self.sm or 'an unknown sm'}: the driver may be older than the "
                            f"PTX ISA version, or the GPU older than the sm (recompile with another -sm)")
                raise ArtifactError(f"the CUDA driver refused model.ptx on cuda:{self._ordinal}: {e}{hint}") from None
            with _LOCK:
                mod = _MODULES.setdefault(key, mod)
        self.functions = {}
        for entry in self.table["kernels"].values():
            for ln in entry["launches"]:
                name = ln["fn"]
                self.functions[name] = _check(d.cuModuleGetFunction(mod, name.encode()),
                                              f"cuModuleGetFunction({name})")
        self.stream = _check(d.cuStreamCreate(0), "cuStreamCreate")
        blob = np.frombuffer(self._blob, np.uint8) if len(self._blob) else np.zeros(64, np.uint8)
        self.weights = self._alloc(blob.nbytes, "the weights")
        _check(d.cuMemcpyHtoD(self.weights, blob.ctypes.data, blob.nbytes), "copying the weights to the device")
        self._blob = None
        self.workspace, self.workspace_bytes = self._alloc(64, "the workspace"), 64
        self._io: dict = {}
        self.device = dev

    def _alloc(self, nbytes: int, what: str):
        d = _driver()
        ptr = _check(d.cuMemAlloc(max(64, int(nbytes))), f"cuMemAlloc({nbytes} bytes for {what})")
        self._allocs.append(ptr)
        return ptr

    def _free(self, ptr):
        d = _driver()
        if ptr in self._allocs:
            self._allocs.remove(ptr)
        d.cuMemFree(ptr)

    def _buffer(self, key, nbytes: int):
        got = self._io.get(key)
        if got is None or got[1] < nbytes:
            if got is not None:
                self._free(got[0])
            got = (self._alloc(nbytes, f"{key[0]}put {key[1]}"), max(64, int(nbytes)))
            self._io[key] = got
        return got[0]

    def __del__(self):
        try:
            if self.device is None or _PID != os.getpid():
                return
            d = _driver()
            d.cuCtxSetCurrent(self.ctx)
            for p in list(self._allocs):
                d.cuMemFree(p)
            self._allocs = []
        except Exception:
            pass

    # ------------------------------------------------------------------------------------- calls
    def run(self, inputs, outputs, syms) -> None:
        d = _driver()
        env = {s: int(v) for s, v in zip(self.symbols, list(syms))}
        with self._lock:
            if self.device is None:
                self._open()
            _check(d.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")
            need = evaluate(self.table["workspace"], env)
            if need > self.workspace_bytes:
                self._free(self.workspace)
                self.workspace, self.workspace_bytes = self._alloc(need, "the workspace"), need
            ins = []
            for i, a in enumerate(inputs):
                buf = self._buffer(("in", i), a.nbytes)
                if a.nbytes:
                    _check(d.cuMemcpyHtoDAsync(buf, a.ctypes.data, a.nbytes, self.stream), f"copying input {i} to the device")
                ins.append(int(buf))
            outs = [int(self._buffer(("out", i), a.nbytes)) for i, a in enumerate(outputs)]
            base = {"workspace": int(self.workspace), "weight": int(self.weights)}
            last = None
            for call in self.table["calls"]:
                entry = self.table["kernels"][call["kernel"]]
                ptrs = []
                for a in call["args"]:
                    if a["kind"] == "input":
                        ptrs.append(ins[a["index"]])
                    elif a["kind"] == "output":
                        ptrs.append(outs[a["index"]])
                    else:
                        ptrs.append(base[a["kind"]] + evaluate(a["offset"], env))
                params = [np.array([p], np.uint64) for p in ptrs] + [np.array([env[s]], np.int64)
                                                                    for s in call["syms"]]
                addrs = np.array([p.ctypes.data for p in params], np.uint64)
                for ln in entry["launches"]:
                    groups = evaluate(ln["groups"], env)
                    if groups <= 0:
                        continue
                    name = ln["fn"]
                    if groups > _MAX_GRID_X:
                        raise RuntimeError(f"kernel {name}: {groups} blocks exceed CUDA's grid limit ({_MAX_GRID_X})")
                    threads = int(ln["threads"])
                    _check(d.cuLaunchKernel(self.functions[name], groups, 1, 1, threads, 1, 1, 0, self.stream,
                                            addrs.ctypes.data, 0), f"launching kernel {name} ({groups} x {threads})")
                    last = name
            for i, (a, buf) in enumerate(zip(outputs, outs)):
                if a.nbytes:
                    _check(d.cuMemcpyDtoHAsync(a.ctypes.data, buf, a.nbytes, self.stream), f"copying output {i} from the device")
            where = f"the kernels (the last launched: {last})" if last else "the copies"
            _check(d.cuStreamSynchronize(self.stream), f"running {where}")
