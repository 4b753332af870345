"""The CUDA target: loop IR -> GPU schedule -> LLVM IR -> PTX (llvmlite's NVPTX backend) + a launch table.

Codegen runs :func:`kiln.passes.gpu_schedule.schedule_kernel` (the pass the OpenCL target uses, with
this target's :class:`~kiln.targets.base.Caps`) on every kernel of the program, emits each launch as
one ``.entry`` of ``model.ptx`` through :mod:`.nvptx_codegen`, optimises the module at O3 for the
chosen ``sm`` and writes ``launch.json`` in the OpenCL target's format (see :mod:`.opencl`):

``kernels``
    per loop-IR kernel, its launches in order: entry name, number of blocks (an integer expression
    over the symbols, :func:`kiln.targets.opencl.encode`), threads per block, the strategy;
``calls``
    per call the kernel and, per parameter, where it points (``input``/``output`` i, or
    ``workspace``/``weight`` + byte offset), and the symbols passed after the pointers;
``workspace``
    its size in bytes (an expression over the symbols).

An entry takes one device pointer per parameter (the runtime adds the byte offset) and then the
symbols as 64-bit integers. The runtime (:mod:`kiln.runtime.cuda`) loads the PTX through the CUDA
driver, which compiles it for the device at hand; ``ptxas`` (:mod:`.ptxas`) is needed only to check
the PTX ahead of time (``-ptxas=1``, and the tests).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..ir import loops as L
from .base import Caps, Target, TargetBinary, register
from .launch import LAUNCH_TABLE, encode, launch_table

PTX = "model.ptx"
#: the SM architectures the target accepts (LLVM's NVPTX processors that ptxas 12.x assembles)
SMS = ("sm_70", "sm_72", "sm_75", "sm_80", "sm_86", "sm_87", "sm_89", "sm_90", "sm_90a")


@dataclass(frozen=True)
class CudaOptions:
    sm: str = "sm_80"             # the virtual architecture the PTX targets (the driver JITs it upward)
    max_threads: int = 256        # threads per block the schedule may use
    shared_memory: int = 49152    # static shared bytes per block the schedule may use (48 KiB everywhere)
    opt_level: int = 3
    ptxas: bool = False           # run ptxas on the PTX at compile time (an error if it refuses it)


@functools.lru_cache(maxsize=None)
def _llvm():
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm


@register("cuda")
class CudaTarget(Target):
    name = "cuda"
    executor = "cuda"
    Options = CudaOptions

    def __init__(self, options=None, **kw):
        kw.pop("num_threads", None)  # threads are the device's business
        if "sm" in kw:
            kw["sm"] = _sm(kw["sm"])
        super().__init__(options, **kw)
        o = self.options
        if o.sm not in SMS:
            raise ValueError(f"target cuda: sm {o.sm!r} is not one of {', '.join(SMS)}")
        if o.max_threads < 1 or o.max_threads > 1024 or o.shared_memory < 0:
            raise ValueError(f"target cuda: max_threads must be in 1..1024 and shared_memory >= 0, got {o}")

    @property
    def caps(self) -> Caps:
        # one lane: loop nests stay scalar, the GPU schedule spreads them over threads
        return Caps(vector_bits=8, max_threads=self.options.max_threads, local_memory=self.options.shared_memory)

    def target_machine(self):
        llvm = _llvm()
        target = llvm.Target.from_triple("nvptx64-nvidia-cuda")
        return target.create_target_machine(cpu=self.options.sm, opt=min(3, self.options.opt_level))

    def codegen(self, program, dump=None) -> TargetBinary:
        from ..passes.gpu_schedule import schedule_kernel
        from .llvm_codegen import CodegenError
        from .nvptx_codegen import NVPTXModuleGen

        tm = self.target_machine()
        mg = NVPTXModuleGen(str(tm.target_data))
        kernels, texts = {}, []
        for name, k in program.kernels.items():
            launches = schedule_kernel(k, self.caps)
            entries = []
            for i, ln in enumerate(launches):
                fn = name if len(launches) == 1 else f"{name}_{i}"
                try:
                    mg.entry(ln.kernel, fn, ln.threads)
                except CodegenError as e:
                    raise CodegenError(f"kernel {fn}: {e}") from None
                entries.append({"fn": fn, "groups": encode(ln.groups), "threads": ln.threads,
                                "strategy": ln.strategy})
                texts.append(f"// {fn}: {ln.strategy}, groups {L.fmt_expr(ln.groups)} x {ln.threads}\n"
                             + str(ln.kernel).replace("kernel k(", f"kernel {fn}("))
            kernels[name] = {"launches": entries}
        if dump:
            dump("kernels.gpu.txt", "\n\n".join(texts) + "\n")
        ptx = self.emit_ptx(str(mg.module), dump=dump)
        if self.options.ptxas:
            from . import ptxas

            ptxas.validate(ptx, self.options.sm)
        members = {PTX: ptx.encode("utf-8"), LAUNCH_TABLE: launch_table(program, kernels)}
        opts = self.describe()["options"]
        opts.update(launch_table=LAUNCH_TABLE, language="PTX", ptx_version=_ptx_version(ptx),
                    launches=sum(len(v["launches"]) for v in kernels.values()))
        return TargetBinary(members, PTX, opts, header=False)

    def emit_ptx(self, llvm_ir: str, dump=None) -> str:
        """PTX of an LLVM IR module: verified, optimised at the target's level, assembled for ``sm``."""
        llvm = _llvm()
        if dump:
            dump("model.ll", llvm_ir)
        mod = llvm.parse_assembly(llvm_ir)
        mod.verify()
        tm = self.target_machine()
        if self.options.opt_level > 0:
            pto = llvm.create_pipeline_tuning_options(speed_level=min(3, self.options.opt_level))
            pb = llvm.create_pass_builder(tm, pto)
            pb.getModulePassManager().run(mod, pb)
        if dump:
            dump("model.opt.ll", str(mod))
        ptx = tm.emit_assembly(mod)
        if dump:
            dump(PTX, ptx)
        return ptx


def _sm(v) -> str:
    """``sm_80`` from ``"sm_80"``, ``"80"`` or ``80``."""
    s = str(v).strip().lower()
    if re.fullmatch(r"\d+a?", s):
        s = "sm_" + s
    return s


def _ptx_version(ptx: str) -> str:
    m = re.search(r"^\.version\s+(\S+)", ptx, re.M)
    return m.group(1) if m else ""
