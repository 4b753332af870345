"""The OpenCL target: loop IR -> GPU schedule -> OpenCL C 1.2 source and a launch table.

Codegen runs :func:`kiln.passes.gpu_schedule.schedule_kernel` on every kernel of the program (one
loop-IR kernel may become several launches, so the mapping happens here rather than in
``Target.schedule``, whose result is one kernel of the call sequence), emits every launch as one
``__kernel`` function of ``model.cl`` through the shared C-style emitter, and writes ``launch.json``:

``kernels``
    per loop-IR kernel, its launches in order: function name, number of work-groups (an integer
    expression over the symbols, see ``kiln.targets.launch.encode``), work-items per group and the strategy;
    and the element size of each parameter (arguments are passed as buffer + element offset);
``calls``
    the program's call sequence: per call the kernel and, per parameter, where it points
    (``input``/``output`` i, or ``workspace``/``weight`` + byte offset), and the symbols passed;
``workspace``
    its size in bytes (an expression over the symbols).

The runtime (``kiln.runtime.opencl``) builds ``model.cl`` once per OpenCL context, keeps weights and
workspace on the device and moves only inputs and outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import loops as L
from .base import Caps, Target, TargetBinary, register
from .launch import LAUNCH_TABLE, encode, launch_table

SOURCE = "model.cl"


@dataclass(frozen=True)
class OpenCLOptions:
    max_threads: int = 256        # work-items per work-group the schedule may use
    local_memory: int = 32768     # shared (__local) bytes per work-group it may use (OpenCL 1.2 guarantees 32 KiB)


@register("opencl")
class OpenCLTarget(Target):
    name = "opencl"
    executor = "opencl"
    Options = OpenCLOptions

    def __init__(self, options=None, **kw):
        kw.pop("num_threads", None)  # threads are the device's business
        super().__init__(options, **kw)
        o = self.options
        if o.max_threads < 1 or o.local_memory < 0:
            raise ValueError(f"target opencl: max_threads must be >= 1 and local_memory >= 0, got {o}")

    @property
    def caps(self) -> Caps:
        # one lane: the loop nests stay scalar, the GPU schedule spreads them over work-items
        return Caps(vector_bits=8, max_threads=self.options.max_threads, local_memory=self.options.local_memory)

    def codegen(self, program, dump=None) -> TargetBinary:
        from ..passes.gpu_schedule import schedule_kernel
        from .cstyle import OPENCL, CodegenError, Emitter, memtype

        em = Emitter(OPENCL)
        fns, kernels, texts = [], {}, []
        for name, k in program.kernels.items():
            launches = schedule_kernel(k, self.caps)
            entries = []
            for i, ln in enumerate(launches):
                fn = name if len(launches) == 1 else f"{name}_{i}"
                fns.append((ln.kernel, fn))
                entries.append({"fn": fn, "groups": encode(ln.groups), "threads": ln.threads,
                                "strategy": ln.strategy})
                texts.append(f"// {fn}: {ln.strategy}, groups {L.fmt_expr(ln.groups)} x {ln.threads}\n"
                             + str(ln.kernel).replace("kernel k(", f"kernel {fn}("))
            try:
                sizes = [_itemsize(memtype(b.dtype)) for b in k.params]
            except CodegenError as e:
                raise CodegenError(f"kernel {name}: {e}") from None
            kernels[name] = {"launches": entries, "itemsize": sizes}
        if dump:
            dump("kernels.gpu.txt", "\n\n".join(texts) + "\n")
        source = em.module(fns)
        if dump:
            dump(SOURCE, source)
        members = {SOURCE: source.encode("utf-8"), LAUNCH_TABLE: launch_table(program, kernels, fp64=em.uses_f64)}
        opts = self.describe()["options"]
        opts.update(launch_table=LAUNCH_TABLE, language="OpenCL C 1.2", fp64=em.uses_f64,
                    launches=sum(len(v["launches"]) for v in kernels.values()))
        return TargetBinary(members, SOURCE, opts, header=False)


_ITEMSIZE = {"float": 4, "double": 8, "half": 2, "ushort": 2, "short": 2, "uchar": 1, "char": 1, "int": 4,
             "uint": 4, "long": 8, "ulong": 8}


def _itemsize(ctype: str) -> int:
    return _ITEMSIZE[ctype]


