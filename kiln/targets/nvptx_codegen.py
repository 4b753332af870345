"""GPU-scheduled loop IR -> LLVM IR for the NVPTX backend (the CUDA target's code generator).

It reuses :mod:`.llvm_codegen` (the CPU target's expression and statement emission) and changes
only what a GPU kernel needs:

* a launch is a ``ptx_kernel`` function ``(ptr..., i64 syms...)`` whose ``gpu.block.x`` and
  ``gpu.thread.x`` loops read ``ctaid.x`` / ``tid.x`` (``llvm.nvvm.read.ptx.sreg.*``) instead of
  looping, with ``maxntid`` set to the launch's threads;
* ``Barrier`` is ``llvm.nvvm.barrier0`` (``bar.sync 0``); ``shared``-scope buffers are
  module globals in address space 3 (``.shared``), used through generic pointers (LLVM's
  address-space inference turns the accesses into ``ld.shared`` / ``st.shared``);
* ``parallel`` and ``vectorized`` loops are plain loops (the grid is the parallelism);
* the math the backend has no library for (``llvm.exp``/``log``/``sin``/``cos``/``pow``, the libm
  calls, ``frem``, integer ``pow``) comes from :mod:`.nvptx_math` and is defined in the module.
"""
from __future__ import annotations

import llvmlite.ir as ir

from ..ir import loops as L
from . import llvm_codegen as C
from .llvm_codegen import I32, I64, PTR, VOID, CodegenError, FnGen, ModuleGen, Value
from .nvptx_math import MathLib

TRIPLE = "nvptx64-nvidia-cuda"
_SREG = {"gpu.block.x": "ctaid.x", "gpu.block.y": "ctaid.y", "gpu.block.z": "ctaid.z",
         "gpu.thread.x": "tid.x", "gpu.thread.y": "tid.y", "gpu.thread.z": "tid.z"}
# llvm_codegen's libm names and intrinsics -> nvptx_math functions
_MATH = {"exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "tan": "tan", "asin": "asin", "acos": "acos",
         "atan": "atan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "asinh": "asinh", "acosh": "acosh",
         "atanh": "atanh", "erf": "erf", "atan2": "atan2"}


class NVPTXModuleGen(ModuleGen):
    """One LLVM module of PTX kernels; ``entry(kernel, name, threads)`` adds a launch."""

    def __init__(self, data_layout: str = ""):
        super().__init__("kiln", triple=TRIPLE, data_layout=data_layout)
        self.math = MathLib(self.module)
        self._shared = 0

    def entry(self, k: L.Kernel, name: str, threads: int) -> ir.Function:
        fn, bufs, env = self.signature(k, name)
        fn.calling_convention = "ptx_kernel"
        GpuFnGen(self, fn, bufs, env).emit_body(k.body)
        md = self.module.add_metadata([fn, ir.MetaDataString(self.module, "maxntidx"), I32(int(threads))])
        self.module.add_named_metadata("nvvm.annotations").add(md)
        return fn

    def shared_buffer(self, buf: L.Buffer, count: int):
        """A ``.shared`` array for ``buf`` (one per Alloc; ptxas overlays nothing, so sizes add up)."""
        self._shared += 1
        t = ir.ArrayType(C.mem_type(buf.dtype), max(1, count))
        g = ir.GlobalVariable(self.module, t, name=f"shared{self._shared}_{buf.name}", addrspace=3)
        g.linkage = "internal"
        g.initializer = ir.Constant(t, ir.Undefined)
        g.align = 16
        return g

    def define_ipow(self, signed: bool) -> ir.Function:
        """``kiln_ipow{s,u}(i64, i64) -> i64`` (what the CPU runtime's C provides): wrapping power by
        squaring; negative exponents give 1/x truncated (1, -1 or 0)."""
        name = f"kiln_ipow{'s' if signed else 'u'}"
        f = self.module.globals.get(name)
        if f is not None and not f.is_declaration:
            return f
        if f is None:
            f = ir.Function(self.module, ir.FunctionType(I64, [I64, I64]), name=name)
        f.linkage = "internal"
        x, y = f.args
        entry = f.append_basic_block("entry")
        head = f.append_basic_block("head")
        body = f.append_basic_block("body")
        done = f.append_basic_block("done")
        b = ir.IRBuilder(entry)
        if signed:
            neg = f.append_basic_block("neg")
            b.cbranch(b.icmp_signed("<", y, I64(0)), neg, head)
            b.position_at_end(neg)
            odd = b.icmp_unsigned("!=", b.and_(y, I64(1)), I64(0))
            m1 = b.select(odd, I64(-1), I64(1))
            b.ret(b.select(b.icmp_signed("==", x, I64(1)), I64(1), b.select(b.icmp_signed("==", x, I64(-1)), m1,
                                                                             I64(0))))
            pre = entry
        else:
            b.branch(head)
            pre = entry
        b.position_at_end(head)
        r, base, e = b.phi(I64), b.phi(I64), b.phi(I64)
        r.add_incoming(I64(1), pre)
        base.add_incoming(x, pre)
        e.add_incoming(y, pre)
        b.cbranch(b.icmp_unsigned("!=", e, I64(0)), body, done)
        b.position_at_end(body)
        bit = b.icmp_unsigned("!=", b.and_(e, I64(1)), I64(0))
        r.add_incoming(b.select(bit, b.mul(r, base), r), body)
        base.add_incoming(b.mul(base, base), body)
        e.add_incoming(b.lshr(e, I64(1)), body)
        b.branch(head)
        b.position_at_end(done)
        b.ret(r)
        return f


class GpuFnGen(FnGen):
    """FnGen for one PTX kernel: GPU axes, barriers, shared memory, self-contained math."""

    mg: NVPTXModuleGen

    # -------------------------------------------------------------------------- statements
    def stmt(self, s: L.Stmt):
        if isinstance(s, L.Barrier):
            self.b.call(self.mg.declare("llvm.nvvm.barrier0", VOID, []), [])
        elif isinstance(s, L.Alloc) and s.buf.scope == "shared":
            n = L.simplify(s.buf.size())
            if not isinstance(n, L.Const):
                raise CodegenError(f"shared buffer {s.buf.name} needs a static size, got {n}")
            g = self.mg.shared_buffer(s.buf, int(n.value))
            self.bufs[id(s.buf)] = self.b.addrspacecast(g, PTR)
            self.stmt(s.body)
        else:
            super().stmt(s)

    def loop(self, s: L.For):
        if s.kind.startswith("gpu."):
            sreg = _SREG[s.kind]
            f = self.mg.declare(f"llvm.nvvm.read.ptx.sreg.{sreg}", I32, [])
            idx = self.b.zext(self.b.call(f, []), I64)
            start = self.expr(s.start).v
            old = self.env.get(s.var.name)
            self.env[s.var.name] = Value(self.b.add(start, idx), False)
            self.stmt(s.body)
            if old is None:
                self.env.pop(s.var.name, None)
            else:
                self.env[s.var.name] = old
            return
        if s.kind in ("parallel", "vectorized") and self.lanes == 0:
            self.serial(s)
            return
        super().loop(s)

    def parallel(self, s: L.For):
        self.serial(s)

    # --------------------------------------------------------------------------------- math
    def _math(self, op: str, args: list, vec: bool):
        def one(*xs):
            return self.mg.math.call(self.b, op, list(xs))
        return self._lanewise(one, args, vec)

    def _call_intr(self, name, x):
        if name in ("exp", "log", "sin", "cos"):
            return self._math(name, [x], isinstance(x.type, ir.VectorType))
        return super()._call_intr(name, x)

    def _libm(self, name, args, t, vec):
        if name not in _MATH:
            raise CodegenError(f"no NVPTX implementation of {name}")
        return self._math(_MATH[name], args, vec)

    def _bin(self, op, a, b, dt, vec):
        if dt.is_float and op in ("pow", "rem", "mod"):
            if op == "pow":
                return self._math("pow", [a, b], vec)
            r = self._math("fmod", [a, b], vec)
            if op == "rem":
                return r
            # floored modulo from the exact remainder, as llvm_codegen does from frem
            t = a.type
            B = self.b
            zero = C._const_like(t, 0.0)
            fix = B.and_(B.fcmp_ordered("!=", r, zero), B.xor(B.fcmp_ordered("<", r, zero), B.fcmp_ordered("<", b, zero)))
            r0 = B.select(B.fcmp_ordered("==", r, zero), B.call(self.mg.intrinsic("llvm.copysign", t, 2), [r, b]), r)
            return B.select(fix, B.fadd(r, b), r0)
        if not dt.is_float and op == "pow":
            signed = dt.kind == "int"
            self.mg.define_ipow(signed)
        return super()._bin(op, a, b, dt, vec)


__all__ = ["NVPTXModuleGen", "GpuFnGen", "TRIPLE"]
