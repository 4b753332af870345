"""The LLVM CPU target: loop IR -> LLVM IR (llvmlite) -> O3 for the host or a named triple/CPU ->
object file -> shared library linked by the system C compiler with kiln's small runtime (the thread pool).

Cross-compiling (a triple other than the host's) stops at the object file: the artifact then holds
``model.o`` and ``kiln_runtime.c`` to link on the device (``cc -shared model.o kiln_runtime.c -lgomp``).
"""
from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..ir import loops as L
from .base import Caps, Target, TargetBinary, register

RUNTIME_C = Path(__file__).with_name("cpu_runtime.c")


@functools.lru_cache(maxsize=None)
def _llvm():
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm


def host_triple() -> str:
    return _llvm().get_process_triple()


@dataclass(frozen=True)
class CpuOptions:
    triple: str | None = None      # default: the host
    cpu: str | None = None         # default: the host CPU (or "generic" when cross-compiling)
    features: str | None = None    # default: the host CPU's features
    opt_level: int = 3
    num_threads: int | None = None


@register("cpu")
@register("llvm")
class LLVMCpuTarget(Target):
    name = "cpu"
    executor = "cpu"
    Options = CpuOptions

    def __init__(self, options=None, **kw):
        super().__init__(options, **kw)
        llvm = _llvm()
        o = self.options
        triple = o.triple or llvm.get_process_triple()
        self.cross = _arch(triple) != _arch(llvm.get_process_triple())
        if o.cpu:
            cpu = o.cpu
        else:
            cpu = "generic" if self.cross else llvm.get_host_cpu_name()
        if o.features is not None:
            features = o.features
        elif self.cross:
            features = ""
        else:
            features = llvm.get_host_cpu_features().flatten()
        try:
            target = llvm.Target.from_triple(triple)
        except RuntimeError as e:
            raise ValueError(f"target cpu: unknown triple {triple!r} ({e})") from None
        self.triple, self.cpu, self.features = triple, cpu, features
        tuned = features + (",-prefer-256-bit" if "+avx512f" in features else "")
        self.tm = target.create_target_machine(cpu=cpu, features=tuned, opt=min(3, o.opt_level), reloc="pic",
                                               codemodel="default")

    @property
    def caps(self) -> Caps:
        f = self.features
        if "+avx512f" in f:
            bits = 512
        elif "+avx2" in f or "+avx" in f:
            bits = 256
        else:
            bits = 128  # SSE2 / NEON
        return Caps(vector_bits=bits, max_threads=os.cpu_count() or 1)

    def describe(self) -> dict:
        d = super().describe()
        d["options"].update(triple=self.triple, cpu=self.cpu, features=self.features)
        return d

    # ------------------------------------------------------------------------------------- codegen
    def llvm_module(self, program):
        from .llvm_codegen import ModuleGen

        mg = ModuleGen("kiln", triple=self.triple, data_layout=str(self.tm.target_data))
        for name, k in program.kernels.items():
            mg.kernel(k, name)
        emit_entry(mg, program)
        return mg.module

    def optimize(self, module_text: str):
        llvm = _llvm()
        mod = llvm.parse_assembly(module_text)
        mod.verify()
        pto = llvm.create_pipeline_tuning_options(speed_level=min(3, self.options.opt_level))
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pb = llvm.create_pass_builder(self.tm, pto)
        pm = pb.getModulePassManager()
        pm.run(mod, pb)
        return mod

    def codegen(self, program, dump=None) -> TargetBinary:
        ir_module = self.llvm_module(program)
        text = str(ir_module)
        if dump:
            dump("model.ll", text)
        mod = self.optimize(text)
        if dump:
            dump("model.opt.ll", str(mod))
        obj = self.tm.emit_object(mod)
        opts = self.describe()["options"]
        if self.cross:
            return TargetBinary({"model.o": obj, "kiln_runtime.c": RUNTIME_C.read_bytes()}, "model.o", opts)
        return TargetBinary({"model.so": link_shared(obj)}, "model.so", opts)


def _arch(triple: str) -> str:
    return triple.split("-")[0]


@functools.lru_cache(maxsize=None)
def _runtime_object() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "rt.o")
        _run([_cc(), "-O2", "-fPIC", "-c", str(RUNTIME_C), "-o", out])
        return Path(out).read_bytes()


def _cc() -> str:
    return os.environ.get("CC", "cc")


def _run(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeError(f"kiln needs a C compiler to link the CPU library: {cmd[0]!r} was not found "
                           "(install gcc or set CC)") from None
    if r.returncode:
        raise RuntimeError(f"linking the CPU library failed: {' '.join(cmd)}\n{r.stderr.strip()}")


def link_shared(obj: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        o, rt, so = (os.path.join(d, n) for n in ("model.o", "rt.o", "model.so"))
        Path(o).write_bytes(obj)
        Path(rt).write_bytes(_runtime_object())
        _run([_cc(), "-shared", "-o", so, o, rt, "-lgomp", "-lm", "-Wl,-z,noexecstack"])
        return Path(so).read_bytes()


def emit_entry(mg, program):
    """``kiln_run``, ``kiln_workspace_size``: the call sequence with each argument's address."""
    import llvmlite.ir as ir

    from .llvm_codegen import I32, I64, PTR, FnGen, Value

    m = mg.module
    run = ir.Function(m, ir.FunctionType(I32, [PTR, PTR, PTR, PTR, PTR]), name="kiln_run")
    ins, outs, syms_p, ws, weights = run.args
    g = FnGen(mg, run, {}, {})
    b = g.b
    for k, s in enumerate(program.symbols):
        g.env[s] = Value(b.load(b.gep(syms_p, [I64(k)], inbounds=True, source_etype=I64), typ=I64), False)
    fns = {f.name: f for f in m.functions}
    mark = mg.declare("kiln_prof_mark", ir.VoidType(), [I32])
    b.call(mark, [I32(0)])
    for n, call in enumerate(program.calls):
        args = []
        for a in call.args:
            if a.kind == "input":
                args.append(b.load(b.gep(ins, [I64(a.index)], inbounds=True, source_etype=PTR), typ=PTR))
            elif a.kind == "output":
                args.append(b.load(b.gep(outs, [I64(a.index)], inbounds=True, source_etype=PTR), typ=PTR))
            elif a.kind == "workspace":
                off = g.scalar_expr(L.dim_expr(a.offset))
                args.append(b.gep(ws, [off], inbounds=True, source_etype=ir.IntType(8)))
            elif a.kind == "weight":
                args.append(b.gep(weights, [I64(int(a.offset))], inbounds=True, source_etype=ir.IntType(8)))
            else:
                raise ValueError(f"unknown argument kind {a.kind}")
        for s in call.syms:
            args.append(g.env[s].v)
        b.call(fns[call.kernel], args)
        b.call(mark, [I32(n + 1)])
    b.ret(I32(0))
    size = ir.Function(m, ir.FunctionType(I64, [PTR]), name="kiln_workspace_size")
    g2 = FnGen(mg, size, {}, {})
    for k, s in enumerate(program.symbols):
        g2.env[s] = Value(g2.b.load(g2.b.gep(size.args[0], [I64(k)], inbounds=True, source_etype=I64), typ=I64), False)
    g2.b.ret(g2.scalar_expr(L.dim_expr(program.workspace_size)))
