"""The OpenCL executor: runs an artifact of the ``opencl`` target through pyopencl.

``model.cl`` is built once per OpenCL context (programs are cached by source and build options, so
two models or two loads of one model share the build); the weights are copied to the device once,
the workspace (every intermediate buffer, at the offsets of the memory plan) lives on the device
and grows when a call needs more; a call copies its inputs in, runs the launch table's kernels in
order on one in-order queue and copies its outputs out.

The device is ``device="opencl:N"`` (the N-th device over all platforms, in pyopencl's order), else
the ``KILN_OPENCL_DEVICE`` environment variable (same form), else ``opencl:0``. pyopencl is imported
only when an OpenCL artifact is loaded.
"""
from __future__ import annotations

import hashlib
import os
import threading

import numpy as np

from ..errors import ArtifactError
from .launch import evaluate, read_launch_table

_LOCK = threading.Lock()
_CONTEXTS: dict = {}   # device key -> (context, queue)
_PROGRAMS: dict = {}   # (device key, sha256 of source, options) -> built program
_PID = None            # the process that initialised OpenCL


def _cl():
    try:
        import pyopencl as cl
    except ImportError as e:
        raise ArtifactError(f"the opencl executor needs pyopencl ({e}); install kiln[opencl]") from None
    return cl


def _check_fork():
    global _PID
    if _PID is None:
        _PID = os.getpid()
    elif _PID != os.getpid():
        raise RuntimeError("OpenCL was initialised in a parent process, and does not survive fork(): "
                           "use OpenCL models only in the process that forks, or open them only in children")


def devices() -> list:
    """Every OpenCL device, over all platforms, in the order ``opencl:N`` counts them."""
    cl = _cl()
    _check_fork()
    try:
        platforms = cl.get_platforms()
    except cl.Error:  # no ICD loader / no platform
        return []
    out = []
    for p in platforms:
        try:
            out.extend(p.get_devices())
        except cl.Error:
            continue
    return out


def _parse(spec) -> int:
    text = str(spec)
    idx = text.split(":", 1)[1] if text.startswith("opencl:") else text
    if not idx.isdigit():
        raise ValueError(f"OpenCL device must be 'opencl:N' (N an index), got {spec!r}")
    return int(idx)


def pick_device(spec=None):
    """The device named by ``spec`` (``"opencl:N"``, ``"N"`` or an int), ``KILN_OPENCL_DEVICE``, or the first."""
    if spec is None:
        spec = os.environ.get("KILN_OPENCL_DEVICE") or "opencl:0"
    n = _parse(spec)
    found = devices()
    if n >= len(found):
        names = ", ".join(f"opencl:{i} ({d.name.strip()})" for i, d in enumerate(found)) or "none"
        raise ValueError(f"no OpenCL device {spec!r}; available: {names}")
    return found[n]


def _context(dev):
    key = dev.int_ptr
    with _LOCK:
        got = _CONTEXTS.get(key)
        if got is None:
            cl = _cl()
            ctx = cl.Context([dev])
            got = (ctx, cl.CommandQueue(ctx, dev))
            _CONTEXTS[key] = got
    return got


def build_options(dev) -> str:
    cl = _cl()
    opts = ["-cl-std=CL1.2"]
    if dev.single_fp_config & cl.device_fp_config.CORRECTLY_ROUNDED_DIVIDE_SQRT:
        opts.append("-cl-fp32-correctly-rounded-divide-sqrt")
    return " ".join(opts)


def build(dev, source: str):
    """The program of ``source`` built for ``dev`` (cached per context); ArtifactError with the build log."""
    cl = _cl()
    ctx, _ = _context(dev)
    opts = build_options(dev)
    key = (dev.int_ptr, hashlib.sha256(source.encode("utf-8")).hexdigest(), opts)
    with _LOCK:
        prog = _PROGRAMS.get(key)
    if prog is not None:
        return prog
    try:
        prog = cl.Program(ctx, source).build(options=opts)
    except cl.Error as e:
        raise ArtifactError(f"OpenCL build failed on {dev.name.strip()}: {e}") from None
    with _LOCK:
        _PROGRAMS.setdefault(key, prog)
        return _PROGRAMS[key]


def load(manifest: dict, members: dict, *, num_threads=None, device=None) -> "OpenCLExecutor":
    """The executor interface (see ``kiln.runtime.module``); ``num_threads`` does not apply."""
    return OpenCLExecutor(manifest, members, device=device)


class OpenCLExecutor:
    """Runs one artifact. The device is opened at load when ``device`` names one (so a wrong name fails
    there), else at the first call: a process may compile or load models and then fork workers, which
    OpenCL implementations do not survive once initialised (PoCL's threads stay in the parent)."""

    def __init__(self, manifest: dict, members: dict, *, device=None):
        self.table = read_launch_table(manifest, members, "OpenCL")
        self.source = bytes(members[manifest["binary"]]).decode("utf-8")
        w = manifest.get("weights")
        self._blob = members[w["member"]] if w else b""
        self.symbols = list(self.table["symbols"])
        self._spec = device
        self.device = None
        self._lock = threading.Lock()
        if device is not None:
            _parse(device)
            self._open()

    def _open(self):
        cl = _cl()
        dev = pick_device(self._spec)
        if self.table.get("fp64") and "cl_khr_fp64" not in dev.extensions:
            raise ArtifactError(f"the model computes in float64, which OpenCL device "
                                f"{dev.name.strip()} lacks (cl_khr_fp64)")
        self.ctx, self.queue = _context(dev)
        self.program = build(dev, self.source)
        mf = cl.mem_flags
        if len(self._blob):
            self.weights = cl.Buffer(self.ctx, mf.READ_ONLY | mf.COPY_HOST_PTR,
                                     hostbuf=np.frombuffer(self._blob, np.uint8))
        else:
            self.weights = cl.Buffer(self.ctx, mf.READ_ONLY, 64)
        self._blob = None
        self.workspace = cl.Buffer(self.ctx, mf.READ_WRITE, 64)
        self.workspace_bytes = 64
        self.kernels = {}
        for entry in self.table["kernels"].values():
            for ln in entry["launches"]:
                self.kernels[ln["fn"]] = cl.Kernel(self.program, ln["fn"])
        self._io: dict = {}
        self.device = dev

    def _buffer(self, key, nbytes: int):
        cl = _cl()
        nbytes = max(64, int(nbytes))
        buf = self._io.get(key)
        if buf is None or buf.size < nbytes:
            buf = cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE, nbytes)
            self._io[key] = buf
        return buf

    def run(self, inputs, outputs, syms) -> None:
        cl = _cl()
        env = {s: int(v) for s, v in zip(self.symbols, list(syms))}
        with self._lock:
            if self.device is None:
                self._open()
            need = evaluate(self.table["workspace"], env)
            if need > self.workspace_bytes:
                self.workspace = cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE, need)
                self.workspace_bytes = need
            ins = []
            for i, a in enumerate(inputs):
                buf = self._buffer(("in", i), a.nbytes)
                if a.nbytes:
                    cl.enqueue_copy(self.queue, buf, a, is_blocking=False)
                ins.append(buf)
            outs = [self._buffer(("out", i), a.nbytes) for i, a in enumerate(outputs)]
            for call in self.table["calls"]:
                entry = self.table["kernels"][call["kernel"]]
                args = []
                for a, size in zip(call["args"], entry["itemsize"]):
                    if a["kind"] == "input":
                        args += [ins[a["index"]], np.int64(0)]
                    elif a["kind"] == "output":
                        args += [outs[a["index"]], np.int64(0)]
                    else:
                        off = evaluate(a["offset"], env)
                        args += [self.workspace if a["kind"] == "workspace" else self.weights, np.int64(off // size)]
                args += [np.int64(env[s]) for s in call["syms"]]
                for ln in entry["launches"]:
                    groups = evaluate(ln["groups"], env)
                    if groups <= 0:
                        continue
                    k = self.kernels[ln["fn"]]
                    k.set_args(*args)
                    threads = int(ln["threads"])
                    cl.enqueue_nd_range_kernel(self.queue, k, (groups * threads,), (threads,))
            for a, buf in zip(outputs, outs):
                if a.nbytes:
                    cl.enqueue_copy(self.queue, a, buf, is_blocking=False)
            self.queue.finish()
