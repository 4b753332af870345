"""Loop IR -> LLVM IR (llvmlite.ir), shared by the CPU target and the NVPTX target.

Scalar statements map one to one. A ``vectorized`` loop of constant extent is widened: every
expression becomes a vector of its lanes (or stays a uniform scalar), contiguous loads and stores
become vector memory operations, other accesses are gathered lane by lane, and reductions keep
vector accumulators. ``unrolled`` loops are emitted once per iteration. ``parallel`` loops are
outlined into a function ``(ctx, begin, end)`` handed to the runtime's ``kiln_parallel_for``.
"""
from __future__ import annotations

import math
import struct

import llvmlite.ir as ir

from ..ir import loops as L
from ..ir.dtypes import DType, dtype as _dtype
from . import llvm_narrow as _narrow
from .llvm_math import FAST_F32

I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()


class CodegenError(Exception):
    pass


def reg_type(dt: DType):
    """The type a value of ``dt`` has in registers (bf16 computes in float)."""
    if dt.kind == "bool":
        return I1
    if _narrow.is_narrow(dt):  # float8 / float4 in float, int4 / int2 in i8 (see llvm_narrow)
        return _narrow.reg_type(dt)
    if dt.kind in ("int", "uint"):
        if dt.bits not in (8, 16, 32, 64):
            raise CodegenError(f"dtype {dt} is not supported by the LLVM targets")
        return ir.IntType(dt.bits)
    if dt.kind == "float":
        if dt.name == "f16":
            return F16
        if dt.name == "bf16" or dt.name == "f32":
            return F32
        if dt.name == "f64":
            return F64
    raise CodegenError(f"dtype {dt} is not supported by the LLVM targets")


def mem_type(dt: DType):
    if dt.kind == "bool" or _narrow.is_narrow(dt):
        return I8
    if dt.name == "bf16":
        return I16
    return reg_type(dt)


# libm functions per float width for the operations without an LLVM intrinsic we trust everywhere
_LIBM = {"tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "atan2"}
_INTRINSIC = {"exp": "llvm.exp", "log": "llvm.log", "sqrt": "llvm.sqrt", "sin": "llvm.sin", "cos": "llvm.cos",
              "floor": "llvm.floor", "ceil": "llvm.ceil", "round": "llvm.roundeven", "trunc": "llvm.trunc",
              "abs": "llvm.fabs"}


def _vec(t, n):
    return ir.VectorType(t, n) if n else t


def _suffix(t):
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{_suffix(t.element)}"
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    return {F16: "f16", F32: "f32", F64: "f64"}[t] if t in (F16, F32, F64) else str(t)


class Value:
    """An emitted value: an LLVM value and whether it is a vector of ``lanes``."""

    __slots__ = ("v", "vec")

    def __init__(self, v, vec: bool):
        self.v, self.vec = v, vec


class ModuleGen:
    """Builds one LLVM module; ``kernel(k)`` adds a kernel function and returns it."""

    def __init__(self, name: str = "kiln", triple: str = "", data_layout: str = "", parallel_fn: str = "kiln_parallel_for"):
        self.module = ir.Module(name=name)
        if triple:
            self.module.triple = triple
        if data_layout:
            self.module.data_layout = data_layout
        self.parallel_fn = parallel_fn
        self._decls: dict = {}
        self._outlined = 0

    # -- declarations
    def declare(self, name: str, ret, args):
        if name in self._decls:
            return self._decls[name]
        f = self.module.globals.get(name)
        if f is None:
            f = ir.Function(self.module, ir.FunctionType(ret, args), name=name)
        self._decls[name] = f
        return f

    def intrinsic(self, base: str, t, nargs: int = 1):
        return self.declare(f"{base}.{_suffix(t)}", t, [t] * nargs)

    def signature(self, k: L.Kernel, name: str):
        """The function of kernel ``k``, its buffers (noalias pointers) then its symbols (i64), with the
        maps a code generator starts from: ``(function, {id(buffer): pointer}, {symbol: Value})``."""
        args = [PTR] * len(k.params) + [I64] * len(k.syms)
        fn = ir.Function(self.module, ir.FunctionType(VOID, args), name=name)
        for i, b in enumerate(k.params):
            fn.args[i].name = b.name
            fn.args[i].add_attribute("noalias")
        env = {}
        for j, s in enumerate(k.syms):
            a = fn.args[len(k.params) + j]
            a.name = s
            env[s] = Value(a, False)
        return fn, {id(b): fn.args[i] for i, b in enumerate(k.params)}, env

    def kernel(self, k: L.Kernel, name: str | None = None) -> ir.Function:
        fn, bufs, env = self.signature(k, name or k.name)
        fn.linkage = "internal"
        FnGen(self, fn, bufs, env).emit_body(k.body)
        return fn


class FnGen:
    def __init__(self, mg: ModuleGen, fn: ir.Function, bufs: dict, env: dict):
        self.mg = mg
        self.fn = fn
        self.entry = fn.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)
        self.bufs = dict(bufs)  # id(Buffer) -> pointer
        self.env = dict(env)  # var name -> Value
        self.lanes = 0  # >0 inside a vectorized loop
        self.vvar = None  # name of the vectorized loop var

    def emit_body(self, s: L.Stmt):
        self.stmt(s)
        self.b.ret_void()

    # ------------------------------------------------------------------------------- statements
    def _typed(self, p, t):
        """``p`` usable as a pointer to ``t`` (allocas carry typed pointers in llvmlite)."""
        if getattr(p.type, "is_opaque", True):
            return p
        return self.b.bitcast(p, t.as_pointer())

    def alloca(self, t, count=None):
        with self.b.goto_block(self.entry):
            if self.entry.instructions:
                self.b.position_before(self.entry.instructions[0])
            return self.b.alloca(t, size=count)

    def stmt(self, s: L.Stmt):
        if isinstance(s, L.Seq):
            for x in s.body:
                self.stmt(x)
        elif isinstance(s, L.For):
            self.loop(s)
        elif isinstance(s, L.Store):
            self.store(s)
        elif isinstance(s, L.Let):
            old = self.env.get(s.var.name)
            self.env[s.var.name] = self.expr(s.value)
            self.stmt(s.body)
            if old is None:
                self.env.pop(s.var.name, None)
            else:
                self.env[s.var.name] = old
        elif isinstance(s, L.Alloc):
            n = L.simplify(s.buf.size())
            if not isinstance(n, L.Const):
                raise CodegenError(f"local buffer {s.buf.name} needs a static size, got {n}")
            p = self.alloca(mem_type(s.buf.dtype), I64(max(1, int(n.value))))
            p.align = 64
            self.bufs[id(s.buf)] = p
            self.stmt(s.body)
        elif isinstance(s, L.If):
            c = self.expr(s.cond)
            if c.vec:
                raise CodegenError("an if on a vector condition inside a vectorized loop")
            if s.else_ is None:
                with self.b.if_then(c.v):
                    self.stmt(s.then)
            else:
                with self.b.if_else(c.v) as (then, other):
                    with then:
                        self.stmt(s.then)
                    with other:
                        self.stmt(s.else_)
        else:
            raise CodegenError(f"cannot emit statement {s!r}")

    def loop(self, s: L.For):
        if s.kind == "vectorized" and self.lanes == 0:
            ext = L.simplify(s.extent)
            if isinstance(ext, L.Const) and _widenable(s.body):
                self.lanes = int(ext.value)
                self.vvar = s.var.name
                start = self.expr(s.start)
                self.env[s.var.name] = Value(start.v, False)  # lane 0; lanes added by _var
                try:
                    self.stmt(s.body)
                finally:
                    self.lanes, self.vvar = 0, None
                    self.env.pop(s.var.name, None)
                return
        if s.kind == "unrolled":
            ext = L.simplify(s.extent)
            if isinstance(ext, L.Const):
                start = self.expr(s.start).v
                for k in range(int(ext.value)):
                    self.env[s.var.name] = Value(self.b.add(start, I64(k)) if k else start, False)
                    self.stmt(s.body)
                self.env.pop(s.var.name, None)
                return
        if s.kind == "parallel" and self.lanes == 0:
            self.parallel(s)
            return
        self.serial(s)

    def serial(self, s: L.For, begin=None, end=None):
        b = self.b
        if begin is None:
            begin = self.expr(s.start).v
            end = b.add(begin, self.expr(s.extent).v)
        start, stop = begin, end
        pre = b.block
        head = self.fn.append_basic_block(f"{s.var.name}.head")
        body = self.fn.append_basic_block(f"{s.var.name}.body")
        done = self.fn.append_basic_block(f"{s.var.name}.end")
        b.branch(head)
        b.position_at_end(head)
        phi = b.phi(I64, name=s.var.name)
        phi.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", phi, stop), body, done)
        b.position_at_end(body)
        old = self.env.get(s.var.name)
        self.env[s.var.name] = Value(phi, False)
        self.stmt(s.body)
        nxt = b.add(phi, I64(1))
        phi.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(done)
        if old is not None:
            self.env[s.var.name] = old

    def parallel(self, s: L.For):
        """Outline the loop body into f(ctx, begin, end) and hand it to the thread pool."""
        names = sorted(L.stmt_free_vars(s.body) - {s.var.name} | L.free_vars(s.extent) | L.free_vars(s.start))
        bufs = L.stmt_buffers(s.body)
        caps = [(n, self.env[n]) for n in names if n in self.env]
        cap_bufs = [bb for bb in bufs if id(bb) in self.bufs]
        types = [c.v.type for _, c in caps] + [PTR] * len(cap_bufs)
        st = ir.LiteralStructType(types or [I64])
        ctx = self.alloca(st)
        for k, (_, c) in enumerate(caps):
            self.b.store(c.v, self.b.gep(ctx, [I32(0), I32(k)], inbounds=True))
        for k, bb in enumerate(cap_bufs):
            self.b.store(self.bufs[id(bb)], self.b.gep(ctx, [I32(0), I32(len(caps) + k)], inbounds=True))
        mg = self.mg
        mg._outlined += 1
        inner = ir.Function(mg.module, ir.FunctionType(VOID, [PTR, I64, I64]),
                            name=f"{self.fn.name}.par{mg._outlined}")
        inner.linkage = "internal"
        g = FnGen(mg, inner, {}, {})
        c_arg, lo, hi = inner.args
        for k, (n, c) in enumerate(caps):
            p = g.b.gep(c_arg, [I32(0), I32(k)], inbounds=True, source_etype=st)
            g.env[n] = Value(g.b.load(p, typ=c.v.type), False)
        for k, bb in enumerate(cap_bufs):
            p = g.b.gep(c_arg, [I32(0), I32(len(caps) + k)], inbounds=True, source_etype=st)
            g.bufs[id(bb)] = g.b.load(p, typ=PTR)
        start = g.expr(s.start).v
        g.serial(L.For(s.var, s.extent, s.body), begin=g.b.add(start, lo), end=g.b.add(start, hi))
        g.b.ret_void()
        pf = mg.declare(mg.parallel_fn, VOID, [PTR, PTR, I64])
        self.b.call(pf, [inner, ctx, self.expr(s.extent).v])

    # ---------------------------------------------------------------------------------- memory
    def _address(self, buf: L.Buffer, index):
        off = L.Const(0)
        for i, st in zip(index, buf.strides):
            off = off + i * st
        return L.simplify(off)

    def _ptr(self, buf):
        p = self.bufs.get(id(buf))
        if p is None:
            raise CodegenError(f"buffer {buf.name} is not bound in this kernel")
        return p

    def load(self, e: L.Load) -> Value:
        buf = e.buf
        mt = mem_type(buf.dtype)
        off = self._address(buf, e.index)
        base = self._ptr(buf)
        if self.lanes and self.vvar in L.free_vars(off):
            kind = self._access_kind(off)
            if kind == "contiguous":
                o = self.expr(L.substitute(off, {self.vvar: _LaneZero()}))
                p = self.b.gep(base, [o.v], inbounds=True, source_etype=mt)
                vt = ir.VectorType(mt, self.lanes)
                ld = self.b.load(self._typed(p, vt), typ=vt)
                ld.align = mt.width // 8 if isinstance(mt, ir.IntType) else _fsize(mt)
                return Value(self._from_mem(ld, buf.dtype, True), True)
            offs = self.expr(off)
            if _gatherable(mt):  # one hardware gather (vgatherdps on AVX-512/AVX2)
                vt = ir.VectorType(mt, self.lanes)
                mask = ir.VectorType(I1, self.lanes)
                g = self.mg.declare(f"llvm.masked.gather.{_suffix(vt)}.v{self.lanes}p0", vt,
                                    [ir.VectorType(PTR, self.lanes), I32, mask, vt])
                x = self.b.call(g, [self._lane_ptrs(base, offs.v, mt), I32(_msize(mt)),
                                    ir.Constant(mask, [1] * self.lanes), ir.Constant(vt, ir.Undefined)])
                return Value(self._from_mem(x, buf.dtype, True), True)
            vals = ir.Constant(ir.VectorType(reg_type(buf.dtype), self.lanes), ir.Undefined)
            for k in range(self.lanes):
                o = self.b.extract_element(offs.v, I32(k))
                x = self.b.load(self.b.gep(base, [o], inbounds=True, source_etype=mt), typ=mt)
                vals = self.b.insert_element(vals, self._from_mem(x, buf.dtype, False), I32(k))
            return Value(vals, True)
        o = self.scalar_expr(off)
        x = self.b.load(self.b.gep(base, [o], inbounds=True, source_etype=mt), typ=mt)
        return Value(self._from_mem(x, buf.dtype, False), False)

    def _lane_ptrs(self, base, offs, mt):
        """<lanes x ptr> addresses base + offs * sizeof(mt)."""
        n = self.lanes
        vi = ir.VectorType(I64, n)
        pb = self._splat(Value(self.b.ptrtoint(base, I64), False))
        addr = self.b.add(pb, self.b.mul(offs, _const_like(vi, _msize(mt))))
        return self.b.inttoptr(addr, ir.VectorType(PTR, n))

    def _access_kind(self, off: L.Expr) -> str:
        t = L.affine(off)
        if t is not None:
            coef = t.get(L.Var(self.vvar), 0)
            others = [k for k in t if k is not None and k != L.Var(self.vvar)]
            if coef == 1 and all(self.vvar not in L.free_vars(k) for k in others):
                return "contiguous"
        return "gather"

    def store(self, s: L.Store):
        buf = s.buf
        mt = mem_type(buf.dtype)
        off = self._address(buf, s.index)
        base = self._ptr(buf)
        val = self.expr(s.value)
        if self.lanes:
            if self._access_kind(off) == "contiguous" and self.vvar in L.free_vars(off):
                o = self.expr(L.substitute(off, {self.vvar: _LaneZero()}))
                p = self.b.gep(base, [o.v], inbounds=True, source_etype=mt)
                v = self._to_mem(self._splat(val), buf.dtype, True)
                st = self.b.store(v, self._typed(p, v.type))
                st.align = mt.width // 8 if isinstance(mt, ir.IntType) else _fsize(mt)
                return
            offs = self._splat(self.expr(off))
            v = self._splat(val)
            if _gatherable(mt):  # one hardware scatter; overlapping lanes: the last one wins, as in order
                vt = ir.VectorType(mt, self.lanes)
                mask = ir.VectorType(I1, self.lanes)
                sc = self.mg.declare(f"llvm.masked.scatter.{_suffix(vt)}.v{self.lanes}p0", VOID,
                                     [vt, ir.VectorType(PTR, self.lanes), I32, mask])
                self.b.call(sc, [self._to_mem(v, buf.dtype, True), self._lane_ptrs(base, offs, mt), I32(_msize(mt)),
                                 ir.Constant(mask, [1] * self.lanes)])
                return
            for k in range(self.lanes):
                o = self.b.extract_element(offs, I32(k))
                x = self.b.extract_element(v, I32(k))
                self.b.store(self._to_mem(x, buf.dtype, False), self.b.gep(base, [o], inbounds=True, source_etype=mt))
            return
        o = self.scalar_expr(off)
        self.b.store(self._to_mem(val.v, buf.dtype, False), self.b.gep(base, [o], inbounds=True, source_etype=mt))

    def _from_mem(self, x, dt: DType, vec: bool):
        if dt.kind == "bool":
            return self.b.icmp_unsigned("!=", x, ir.Constant(x.type, 0))
        if _narrow.is_narrow(dt):
            return _narrow.from_mem(self, x, dt)
        if dt.name == "bf16":
            n = self.lanes if vec else 0
            w = self.b.zext(x, _vec(I32, n))
            w = self.b.shl(w, _const_like(_vec(I32, n), 16))
            return self.b.bitcast(w, _vec(F32, n))
        return x

    def _to_mem(self, x, dt: DType, vec: bool):
        if dt.kind == "bool":
            return self.b.zext(x, _vec(I8, self.lanes if vec else 0))
        if _narrow.is_narrow(dt):
            return _narrow.to_mem(self, x, dt)
        if dt.name == "bf16":
            return self.b.trunc(self.b.lshr(self._bf16_bits(x, vec), _const_like(x.type if False else _vec(I32, self.lanes if vec else 0), 16)),
                                _vec(I16, self.lanes if vec else 0))
        return x

    def _bf16_bits(self, x, vec):
        """float -> its bits rounded to nearest-even at bf16 (upper 16 bits), NaN kept quiet."""
        n = self.lanes if vec else 0
        it = _vec(I32, n)
        bits = self.b.bitcast(x, it)
        lsb = self.b.and_(self.b.lshr(bits, _const_like(it, 16)), _const_like(it, 1))
        rounded = self.b.add(bits, self.b.add(lsb, _const_like(it, 0x7FFF)))
        isnan = self.b.fcmp_unordered("uno", x, x)
        return self.b.select(isnan, _const_like(it, 0x7FC00000), rounded)

    def _round_bf16(self, x, vec):
        n = self.lanes if vec else 0
        it = _vec(I32, n)
        bits = self.b.and_(self._bf16_bits(x, vec), _const_like(it, -65536))
        return self.b.bitcast(bits, _vec(F32, n))

    # ------------------------------------------------------------------------------ expressions
    def _splat(self, x: Value):
        if x.vec or not self.lanes:
            return x.v
        vt = ir.VectorType(x.v.type, self.lanes)
        undef = ir.Constant(vt, ir.Undefined)
        v = self.b.insert_element(undef, x.v, I32(0))
        return self.b.shuffle_vector(v, undef, ir.Constant(ir.VectorType(I32, self.lanes), [0] * self.lanes))

    def scalar_expr(self, e: L.Expr):
        x = self.expr(e)
        if x.vec:
            raise CodegenError(f"expected a scalar for {e}")
        return x.v

    def expr(self, e: L.Expr) -> Value:
        if isinstance(e, _LaneZero):
            return self.env[self.vvar]
        if isinstance(e, L.Const):
            return Value(_const(e.value, e.dtype), False)
        if isinstance(e, L.Var):
            v = self.env.get(e.name)
            if v is None:
                raise CodegenError(f"unbound variable {e.name}")
            if self.lanes and e.name == self.vvar:
                base = self._splat(v)
                step = ir.Constant(ir.VectorType(I64, self.lanes), list(range(self.lanes)))
                return Value(self.b.add(base, step), True)
            return v
        if isinstance(e, L.Load):
            return self.load(e)
        if isinstance(e, L.Bin):
            r = self.binop(e)
            return Value(_narrow.after_op(self, r.v, e.dtype, e.op), r.vec) if _narrow.is_narrow(e.dtype) else r
        if isinstance(e, L.Cmp):
            return self.cmp(e)
        if isinstance(e, L.Un):
            r = self.unop(e)
            return Value(_narrow.after_op(self, r.v, e.dtype, e.op), r.vec) if _narrow.is_narrow(e.dtype) else r
        if isinstance(e, L.Select):
            c, a, b = self.expr(e.cond), self.expr(e.a), self.expr(e.b)
            if c.vec or a.vec or b.vec:
                return Value(self.b.select(self._splat(c), self._splat(a), self._splat(b)), True)
            return Value(self.b.select(c.v, a.v, b.v), False)
        if isinstance(e, L.Cast):
            return self.cast(e)
        if isinstance(e, L.Bitcast):
            x = self.expr(e.a)
            src, dst = e.a.dtype, e.dtype
            n = self.lanes if x.vec else 0
            v = x.v
            if _narrow.is_narrow(src) or _narrow.is_narrow(dst):
                return Value(_narrow.bitcast(self, v, src, dst, reg_type), x.vec)
            if src.name == "bf16":
                v = self.b.trunc(self.b.lshr(self.b.bitcast(v, _vec(I32, n)), _const_like(_vec(I32, n), 16)), _vec(I16, n))
            elif src.kind == "bool":
                v = self.b.zext(v, _vec(I8, n))
            if dst.name == "bf16":
                w = self.b.shl(self.b.zext(self.b.bitcast(v, _vec(I16, n)), _vec(I32, n)), _const_like(_vec(I32, n), 16))
                return Value(self.b.bitcast(w, _vec(F32, n)), x.vec)
            if dst.kind == "bool":
                return Value(self.b.icmp_unsigned("!=", v, ir.Constant(v.type, 0)), x.vec)
            return Value(self.b.bitcast(v, _vec(reg_type(dst), n)), x.vec)
        if isinstance(e, L.Reduce):
            return self.reduce(e)
        raise CodegenError(f"cannot emit expression {e!r}")

    def _pair(self, e):
        a, b = self.expr(e.a), self.expr(e.b)
        vec = a.vec or b.vec
        if vec:
            return self._splat(a), self._splat(b), True
        return a.v, b.v, False

    def binop(self, e: L.Bin) -> Value:
        a, b, vec = self._pair(e)
        dt = e.dtype
        r = self._bin(e.op, a, b, dt, vec)
        if dt.name == "bf16" and e.op not in ("min", "max"):
            r = self._round_bf16(r, vec)
        return Value(r, vec)

    def _bin(self, op, a, b, dt: DType, vec: bool):
        B = self.b
        t = a.type
        if dt.is_float:
            if op == "add":
                return B.fadd(a, b, flags=("contract",))
            if op == "sub":
                return B.fsub(a, b, flags=("contract",))
            if op == "mul":
                return B.fmul(a, b, flags=("contract",))
            if op == "div":
                return B.fdiv(a, b)
            if op == "floordiv":
                return self._call_intr("floor", B.fdiv(a, b))
            if op == "rem":
                return B.frem(a, b)
            if op == "mod":  # floored: sign of the divisor
                r = B.frem(a, b)
                zero = _const_like(t, 0.0)
                fix = B.and_(B.fcmp_ordered("!=", r, zero),
                             B.xor(B.fcmp_ordered("<", r, zero), B.fcmp_ordered("<", b, zero)))
                # a zero remainder takes the divisor's sign too (numpy: mod(-0.0, 1) == 0.0, mod(1, -1) == -0.0)
                r0 = B.select(B.fcmp_ordered("==", r, zero),
                              B.call(self.mg.intrinsic("llvm.copysign", t, 2), [r, b]), r)
                return B.select(fix, B.fadd(r, b), r0)
            if op in ("min", "max"):
                return B.call(self.mg.intrinsic("llvm.minimum" if op == "min" else "llvm.maximum", t, 2), [a, b])
            if op == "pow":
                return B.call(self.mg.intrinsic("llvm.pow", t, 2), [a, b])
            if op == "atan2":
                return self._libm("atan2", [a, b], t, vec)
            raise CodegenError(f"float op {op}")
        signed = dt.kind == "int"
        if dt.kind == "bool" and op in ("and", "or", "xor", "min", "max", "add", "mul"):
            op = {"min": "and", "max": "or", "add": "or", "mul": "and"}.get(op, op)
        if op == "add":
            return B.add(a, b)
        if op == "sub":
            return B.sub(a, b)
        if op == "mul":
            return B.mul(a, b)
        if op in ("div", "rem", "floordiv", "mod"):
            zero, one = _const_like(t, 0), _const_like(t, 1)
            bz = B.icmp_unsigned("==", b, zero)
            safe = B.select(bz, one, b)
            if signed:
                # avoid INT_MIN / -1 overflow: make the divisor 1 and negate instead
                m1 = B.icmp_signed("==", safe, _const_like(t, -1))
                safe2 = B.select(m1, one, safe)
                q = B.sdiv(a, safe2)
                q = B.select(m1, B.sub(zero, a), q)
                r = B.select(m1, zero, B.srem(a, safe2))
                if op in ("floordiv", "mod"):
                    fix = B.and_(B.icmp_signed("!=", r, zero),
                                 B.xor(B.icmp_signed("<", r, zero), B.icmp_signed("<", safe, zero)))
                    if op == "floordiv":
                        q = B.select(fix, B.sub(q, one), q)
                    else:
                        r = B.select(fix, B.add(r, safe), r)
            else:
                q, r = B.udiv(a, safe), B.urem(a, safe)
            res = q if op in ("div", "floordiv") else r
            return B.select(bz, zero, res)
        if op == "min":
            return B.select(B.icmp_signed("<", a, b) if signed else B.icmp_unsigned("<", a, b), a, b)
        if op == "max":
            return B.select(B.icmp_signed(">", a, b) if signed else B.icmp_unsigned(">", a, b), a, b)
        if op == "and":
            return B.and_(a, b)
        if op == "or":
            return B.or_(a, b)
        if op == "xor":
            return B.xor(a, b)
        if op in ("shl", "shr"):
            bits = t.element.width if isinstance(t, ir.VectorType) else t.width
            ok = B.icmp_unsigned("<", b, _const_like(t, bits))  # also false for negative amounts
            sb = B.select(ok, b, _const_like(t, 0))
            if op == "shl":
                return B.select(ok, B.shl(a, sb), _const_like(t, 0))
            sh = B.ashr(a, sb) if signed else B.lshr(a, sb)
            fill = B.ashr(a, _const_like(t, bits - 1)) if signed else _const_like(t, 0)
            return B.select(ok, sh, fill)
        if op == "pow":
            f = self.mg.declare(f"kiln_ipow{'s' if signed else 'u'}", I64, [I64, I64])
            return self._lanewise(lambda x, y: self._trunc_int(B.call(f, [self._ext64(x, signed), self._ext64(y, signed)]), x.type),
                                  [a, b], vec)
        raise CodegenError(f"integer op {op} on {dt}")

    def _ext64(self, x, signed):
        if x.type.width == 64:
            return x
        return self.b.sext(x, I64) if signed else self.b.zext(x, I64)

    def _trunc_int(self, x, t):
        return x if t.width == 64 else self.b.trunc(x, t)

    def _lanewise(self, f, args, vec):
        if not vec:
            return f(*args)
        out = None
        for k in range(self.lanes):
            r = f(*[self.b.extract_element(a, I32(k)) for a in args])
            if out is None:
                out = ir.Constant(ir.VectorType(r.type, self.lanes), ir.Undefined)
            out = self.b.insert_element(out, r, I32(k))
        return out

    def _libm(self, name, args, t, vec):
        et = t.element if isinstance(t, ir.VectorType) else t
        if et == F16:
            cargs = [self.b.fpext(a, _vec(F32, self.lanes if vec else 0)) for a in args]
            r = self._libm(name, cargs, _vec(F32, self.lanes if vec else 0), vec)
            return self.b.fptrunc(r, t)
        cname = name + ("f" if et == F32 else "")
        f = self.mg.declare(cname, et, [et] * len(args))
        return self._lanewise(lambda *xs: self.b.call(f, list(xs)), args, vec)

    def _call_intr(self, name, x):
        return self.b.call(self.mg.intrinsic(_INTRINSIC[name], x.type), [x])

    def cmp(self, e: L.Cmp) -> Value:
        a, b, vec = self._pair(e)
        dt = e.a.dtype
        sym = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[e.op]
        if dt.is_float:
            r = self.b.fcmp_unordered(sym, a, b) if e.op == "ne" else self.b.fcmp_ordered(sym, a, b)
        elif dt.kind == "int":
            r = self.b.icmp_signed(sym, a, b)
        else:
            r = self.b.icmp_unsigned(sym, a, b)
        return Value(r, vec)

    def unop(self, e: L.Un) -> Value:
        x = self.expr(e.a)
        v, vec, t = x.v, x.vec, x.v.type
        dt = e.a.dtype
        B = self.b
        op = e.op
        if op == "isnan":
            return Value(B.fcmp_unordered("uno", v, v) if dt.is_float else _const_like(_vec(I1, self.lanes if vec else 0), 0), vec)
        if op == "isinf":
            a = self._call_intr("abs", v)
            return Value(B.fcmp_ordered("==", a, _const_like(t, math.inf)), vec)
        if op == "not":
            return Value(B.xor(v, _const_like(t, -1 if dt.kind != "bool" else 1)), vec)
        if op == "neg":
            return Value(B.fneg(v) if dt.is_float else B.sub(_const_like(t, 0), v), vec)
        if op == "abs" and not dt.is_float:
            if dt.kind == "uint" or dt.kind == "bool":
                return x
            return Value(B.select(B.icmp_signed("<", v, _const_like(t, 0)), B.sub(_const_like(t, 0), v), v), vec)
        if op == "sign":
            zero = _const_like(t, 0.0 if dt.is_float else 0)
            one, m1 = _const_like(t, 1.0 if dt.is_float else 1), _const_like(t, -1.0 if dt.is_float else -1)
            if dt.is_float:
                # sign(+-0) is +0, sign(NaN) is NaN
                r = B.select(B.fcmp_ordered(">", v, zero), one, B.select(B.fcmp_ordered("<", v, zero), m1,
                             B.select(B.fcmp_unordered("uno", v, v), v, zero)))
            elif dt.kind == "uint":
                r = B.select(B.icmp_unsigned(">", v, zero), one, zero)
            else:
                r = B.select(B.icmp_signed(">", v, zero), one, B.select(B.icmp_signed("<", v, zero), m1, zero))
            return Value(r, vec)
        if not dt.is_float:
            raise CodegenError(f"{op} of {dt}")
        if dt.name == "f32" and op in FAST_F32:
            return Value(FAST_F32[op](self, v), vec)
        if op in _INTRINSIC:
            r = self._call_intr(op, v)
        elif op == "rsqrt":
            r = B.fdiv(_const_like(t, 1.0), self._call_intr("sqrt", v))
        elif op == "sigmoid":
            one = _const_like(t, 1.0)
            r = B.fdiv(one, B.fadd(one, self._call_intr("exp", B.fneg(v))))
        elif op in _LIBM:
            r = self._libm(op, [v], t, vec)
        else:
            raise CodegenError(f"unary op {op}")
        if dt.name == "bf16":
            r = self._round_bf16(r, vec)
        return Value(r, vec)

    def cast(self, e: L.Cast) -> Value:
        x = self.expr(e.a)
        src, dst = e.a.dtype, e.dtype
        n = self.lanes if x.vec else 0
        v = x.v
        dt_reg = _vec(reg_type(dst), n)
        B = self.b
        if src == dst:
            return x
        if _narrow.is_narrow(src) or _narrow.is_narrow(dst):
            r = _narrow.cast(self, v, src, dst, e.saturate, e.round_mode)
            if r is not None:
                return Value(r, x.vec)
        if dst.kind == "bool":
            if src.is_float:
                return Value(B.fcmp_unordered("!=", v, _const_like(v.type, 0.0)), x.vec)
            return Value(B.icmp_unsigned("!=", v, _const_like(v.type, 0)), x.vec)
        if src.kind == "bool":
            if dst.is_float:
                r = B.uitofp(v, dt_reg)
            else:
                r = B.zext(v, dt_reg)
            return Value(r, x.vec)
        if src.is_float and dst.is_float:
            sw, dw = _fwidth(reg_type(src)), _fwidth(reg_type(dst))
            if sw < dw:
                r = B.fpext(v, dt_reg)
            elif sw > dw:
                r = B.fptrunc(v, dt_reg)
            else:
                r = v
            if dst.name == "bf16":
                r = self._round_bf16(r, x.vec)
            return Value(r, x.vec)
        if src.is_float:  # -> int: truncate toward zero; NaN gives 0, out-of-range values saturate (see ir/ops/_cast.py)
            if dst.kind == "int":
                r = B.call(self.mg.intrinsic_conv("llvm.fptosi.sat", dt_reg, v.type), [v])
            else:
                r = B.call(self.mg.intrinsic_conv("llvm.fptoui.sat", dt_reg, v.type), [v])
            return Value(r, x.vec)
        if dst.is_float:
            r = B.sitofp(v, dt_reg) if src.kind == "int" else B.uitofp(v, dt_reg)
            if dst.name == "bf16":
                r = self._round_bf16(r, x.vec)
            return Value(r, x.vec)
        sw, dw = src.bits, dst.bits
        if sw > dw:
            return Value(B.trunc(v, dt_reg), x.vec)
        if sw < dw:
            return Value(B.sext(v, dt_reg) if src.kind == "int" else B.zext(v, dt_reg), x.vec)
        return Value(v, x.vec)

    def reduce(self, e: L.Reduce) -> Value:
        """Emit the reduction loops; the accumulator lives in registers (a phi per loop)."""
        init = self.expr(e.init)
        comb = e.combiner
        arg = comb in ("argmax", "argmin")
        # the accumulator as allocas (mem2reg turns them into phis)
        probe_vec = self.lanes and _depends_on(e, self.vvar, self.env)
        n = self.lanes if probe_vec else 0
        body_t = _vec(reg_type(e.body.dtype), n)
        acc = self.alloca(body_t)
        if arg:
            vt = body_t
            best_val = acc
            acc = self.alloca(_vec(I64, n))
            self.b.store(_const_like(_vec(I64, n), 0), acc)
            self.b.store(ir.Constant(vt, None) if False else _const_like(vt, math.nan if e.body.dtype.is_float else 0), best_val)
            first = self.alloca(I1)
            self.b.store(I1(1), first)
        else:
            self.b.store(self._splat(init) if n else init.v, acc)
        # nested loops over the axes
        axes = list(e.axes)
        blocks = []
        for v, ext in axes:
            start = I64(0)
            stop = self.scalar_expr(ext)
            pre = self.b.block
            head = self.fn.append_basic_block(f"{v.name}.head")
            body = self.fn.append_basic_block(f"{v.name}.body")
            done = self.fn.append_basic_block(f"{v.name}.end")
            self.b.branch(head)
            self.b.position_at_end(head)
            phi = self.b.phi(I64, name=v.name)
            phi.add_incoming(start, pre)
            self.b.cbranch(self.b.icmp_signed("<", phi, stop), body, done)
            self.b.position_at_end(body)
            self.env[v.name] = Value(phi, False)
            blocks.append((phi, head, done))
        x = self.expr(e.body)
        xv = self._splat(x) if n else x.v
        dt = e.body.dtype
        if arg:
            # linear index of the reduction point
            lin = I64(0)
            for (v, ext) in axes:
                lin = self.b.add(self.b.mul(lin, self.scalar_expr(ext)), self.env[v.name].v)
            cur = self.b.load(best_val, typ=body_t)
            curi = self.b.load(acc, typ=_vec(I64, n))
            better = self._better(comb, xv, cur, dt, e.select_last)
            isfirst = self.b.load(first, typ=I1)
            if n:
                isfirst_v = self._splat(Value(isfirst, False))
                take = self.b.or_(isfirst_v, better)
            else:
                take = self.b.or_(isfirst, better)
            self.b.store(self.b.select(take, xv, cur), best_val)
            self.b.store(self.b.select(take, self._splat(Value(lin, False)) if n else lin, curi), acc)
            self.b.store(I1(0), first)
        else:
            cur = self.b.load(acc, typ=body_t)
            self.b.store(self._combine(comb, cur, xv, dt, bool(n)), acc)
        for (v, _), (phi, head, done) in reversed(list(zip(axes, blocks))):
            nxt = self.b.add(phi, I64(1))
            phi.add_incoming(nxt, self.b.block)
            self.b.branch(head)
            self.b.position_at_end(done)
            self.env.pop(v.name, None)
        return Value(self.b.load(acc, typ=_vec(I64, n) if arg else body_t), bool(n))

    def _better(self, comb, x, cur, dt, last):
        B = self.b
        if dt.is_float:
            # NaN wins (numpy argmax returns the first NaN; with select_last, the last one)
            xnan = B.fcmp_unordered("uno", x, x)
            sym = (">=" if last else ">") if comb == "argmax" else ("<=" if last else "<")
            cmpv = B.fcmp_ordered(sym, x, cur)  # false when cur is NaN: a number never beats it
            if last:
                return B.or_(cmpv, xnan)
            curnan = B.fcmp_unordered("uno", cur, cur)
            return B.and_(B.or_(cmpv, xnan), B.xor(curnan, _const_like(curnan.type, 1)))
        sym = (">=" if last else ">") if comb == "argmax" else ("<=" if last else "<")
        return B.icmp_signed(sym, x, cur) if dt.kind == "int" else B.icmp_unsigned(sym, x, cur)

    def _combine(self, comb, acc, x, dt, vec):
        B = self.b
        if dt.is_float:
            if comb == "sum":
                r = B.fadd(acc, x, flags=("reassoc", "contract"))
            elif comb == "prod":
                r = B.fmul(acc, x, flags=("reassoc", "contract"))
            elif comb in ("max", "min"):
                r = B.call(self.mg.intrinsic("llvm.maximum" if comb == "max" else "llvm.minimum", acc.type, 2), [acc, x])
            else:
                raise CodegenError(comb)
            if dt.name == "bf16":
                r = self._round_bf16(r, vec)
            return r
        op = {"sum": "add", "prod": "mul", "max": "max", "min": "min"}[comb]
        return self._bin(op, acc, x, dt, vec)


class _LaneZero(L.Expr):
    """Stands for the vectorized loop var at lane 0 when computing a vector access's base."""

    dtype = L.I64

    def __eq__(self, o):
        return isinstance(o, _LaneZero)

    def __hash__(self):
        return 7


def _gatherable(mt) -> bool:
    return mt in (F32, F64) or (isinstance(mt, ir.IntType) and mt.width in (32, 64))


def _msize(mt) -> int:
    return mt.width // 8 if isinstance(mt, ir.IntType) else _fsize(mt)


def _fsize(t):
    return {F16: 2, F32: 4, F64: 8}[t]


def _fwidth(t):
    return {F16: 16, F32: 32, F64: 64}[t]


def _const(value, dt: DType):
    if _narrow.is_narrow(dt):
        return _narrow.const(value, dt)
    t = reg_type(dt)
    if dt.kind == "bool":
        return ir.Constant(I1, int(bool(value)))
    if dt.is_float:
        v = float(value)
        if dt.name == "bf16":
            v = struct.unpack("<f", struct.pack("<I", _bf16_round_bits(v)))[0]
        return ir.Constant(t, v)
    bits = dt.bits
    v = int(value) & ((1 << bits) - 1)
    return ir.Constant(t, v)


def _bf16_round_bits(v: float) -> int:
    if math.isnan(v):
        return 0x7FC00000
    b = struct.unpack("<I", struct.pack("<f", v))[0]
    b += 0x7FFF + ((b >> 16) & 1)
    return b & 0xFFFF0000


def _const_like(t, value):
    if isinstance(t, ir.VectorType):
        e = t.element
        c = _scalar_const(e, value)
        return ir.Constant(t, [c] * t.count)
    return _scalar_const(t, value)


def _scalar_const(t, value):
    if isinstance(t, ir.IntType):
        return ir.Constant(t, int(value) & ((1 << t.width) - 1))
    return ir.Constant(t, float(value))


def _widenable(s: L.Stmt) -> bool:
    """A vectorized loop body must be straight-line stores and lets (no inner loops or ifs)."""
    if isinstance(s, (L.Store,)):
        return True
    if isinstance(s, L.Let):
        return _widenable(s.body)
    if isinstance(s, L.Seq):
        return all(_widenable(x) for x in s.body)
    if isinstance(s, L.For):
        return s.kind == "unrolled" and isinstance(L.simplify(s.extent), L.Const) and _widenable(s.body)
    return False


def _depends_on(e: L.Expr, var: str, env) -> bool:
    return var in L.free_vars(e) or any(
        n in env and env[n].vec for n in L.free_vars(e))


def _intrinsic_conv(self, base, ret, arg):
    return self.declare(f"{base}.{_suffix(ret)}.{_suffix(arg)}", ret, [arg])


ModuleGen.intrinsic_conv = _intrinsic_conv
