"""One C-style source emitter for the GPU targets: loop IR (after :mod:`kiln.passes.gpu_schedule`) -> C.

OpenCL C and CUDA C differ only by a :class:`Dialect` table: kernel and pointer qualifiers, the
shared-memory qualifier, the barrier, how the work-group / work-item index is spelled, the saturating
float -> int conversion and the half-precision load/store builtins. Everything else -- the closed set
of scalar operations of :mod:`kiln.ir.loops` with the semantics of :mod:`kiln.ir.loops_eval` (integer
division by zero gives 0, signed arithmetic wraps, out-of-range shifts give 0 or the sign, float
min/max propagate NaN and order -0 below +0, float -> int casts truncate and saturate with NaN -> 0)
-- is written once here.

Values live in registers of these C types: ``f32`` float, ``f64`` double, ``f16`` and ``bf16`` float
(rounded back to their precision after every operation, as the CPU target does), integers their C
type, ``bool`` bool. In memory ``f16`` is its 16 bits (converted in software, bit-exact), ``bf16`` the
upper 16 bits of a float, ``bool`` a byte. The narrow formats (float8, float4, int4, int2) follow the
CPU target (:mod:`kiln.targets.cstyle_narrow`).

Every expression node becomes one ``const`` temporary (SSA form, memoised per node), so shared
subexpressions are computed once and the text grows linearly with the IR. A :class:`~kiln.ir.loops.Reduce`
inside an expression becomes a serial loop before the statement that uses it (cooperative work-group
reductions are built by the GPU schedule, not here).

    src = Emitter(OPENCL).module([(kernel, "k0_relu")])
"""
from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field

from ..ir import loops as L
from ..ir.dtypes import DType
from ..ir.dtypes import dtype as _dtype
from . import cstyle_narrow as _narrow


class CodegenError(Exception):
    pass


@dataclass(frozen=True)
class Dialect:
    """What differs between C-like GPU languages."""

    name: str
    kernel: str                 # qualifier + return type of an entry point
    global_ptr: str             # address-space qualifier of kernel pointer parameters
    shared: str                 # qualifier of work-group memory
    barrier: str                # the work-group barrier statement
    axes: dict                  # loop kind ("gpu.block.x", ...) -> index expression (an integer)
    sat_cast: str               # "{t}" C type, "{x}" value: float -> int, truncating, saturating, NaN -> 0
    bits_of: dict               # C type -> bit reinterpretation format ("{x}"), e.g. as_uint({x})
    from_bits: dict             # C type -> the inverse
    constant: str = "__constant"   # qualifier of module-level constant tables
    fp64_pragma: str = ""
    prelude: str = ""
    inline: str = "static inline"


# C register types and the unsigned type of the same width
_CTYPE = {"f32": "float", "f64": "double", "f16": "float", "bf16": "float", "i8": "char", "u8": "uchar",
          "i16": "short", "u16": "ushort", "i32": "int", "u32": "uint", "i64": "long", "u64": "ulong",
          "bool": "bool"}
_UNSIGNED = {"char": "uchar", "short": "ushort", "int": "uint", "long": "ulong"}
_MEMTYPE = {"f16": "ushort", "bf16": "ushort", "bool": "uchar"}
_UNARY_FN = {"exp": "exp", "log": "log", "sqrt": "sqrt", "sin": "sin", "cos": "cos", "tan": "tan",
             "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
             "asinh": "asinh", "acosh": "acosh", "atanh": "atanh", "erf": "erf", "floor": "floor",
             "ceil": "ceil", "round": "rint", "trunc": "trunc", "abs": "fabs"}
_CMP = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def ctype(dt: DType) -> str:
    """The C register type of ``dt``; CodegenError for the formats the C targets lack."""
    t = _CTYPE.get(dt.name)
    if t is None:
        if _narrow.is_narrow(dt):
            return _narrow.reg_ctype(dt)
        raise CodegenError(f"dtype {dt} has no C-style code generation")
    return t


def memtype(dt: DType, scope: str = "global") -> str:
    """The C element type of a buffer of ``dt``: global buffers keep the artifact's byte layout, local and
    shared buffers hold register values (half and bfloat16 as float)."""
    if scope == "global":
        return _MEMTYPE.get(dt.name) or ("uchar" if _narrow.is_narrow(dt) else ctype(dt))
    if dt.kind == "bool":
        return "uchar"
    return ctype(dt)


# ----------------------------------------------------------------------------------------- helpers
def _helpers(d: Dialect) -> dict:
    """Named helper functions; ``{T}`` is a C type, ``{U}`` its unsigned twin, ``{B}`` its width."""
    inl = d.inline
    return {
        # integer division family: x / 0 == 0, INT_MIN / -1 wraps
        "div_s": f"{inl} {{T}} kiln_div_{{T}}({{T}} a, {{T}} b) {{ return b == 0 ? ({{T}})0 : "
                 f"(b == -1 ? ({{T}})(({{U}})0 - ({{U}})a) : ({{T}})(a / b)); }}",
        "rem_s": f"{inl} {{T}} kiln_rem_{{T}}({{T}} a, {{T}} b) {{ return (b == 0 || b == -1) ? ({{T}})0 : "
                 f"({{T}})(a % b); }}",
        "floordiv_s": f"{inl} {{T}} kiln_floordiv_{{T}}({{T}} a, {{T}} b) {{ if (b == 0) return ({{T}})0; "
                      f"if (b == -1) return ({{T}})(({{U}})0 - ({{U}})a); {{T}} q = ({{T}})(a / b); "
                      f"{{T}} r = ({{T}})(a % b); return (r != 0 && ((r < 0) != (b < 0))) ? ({{T}})(q - 1) : q; }}",
        "mod_s": f"{inl} {{T}} kiln_mod_{{T}}({{T}} a, {{T}} b) {{ if (b == 0 || b == -1) return ({{T}})0; "
                 f"{{T}} r = ({{T}})(a % b); return (r != 0 && ((r < 0) != (b < 0))) ? ({{T}})(r + b) : r; }}",
        "div_u": f"{inl} {{T}} kiln_div_{{T}}({{T}} a, {{T}} b) {{ return b == 0 ? ({{T}})0 : ({{T}})(a / b); }}",
        "rem_u": f"{inl} {{T}} kiln_rem_{{T}}({{T}} a, {{T}} b) {{ return b == 0 ? ({{T}})0 : ({{T}})(a % b); }}",
        "shl": f"{inl} {{T}} kiln_shl_{{T}}({{T}} a, {{T}} b) {{ return (b >= 0 && b < {{B}}) ? "
               f"({{T}})(({{U}})a << b) : ({{T}})0; }}",
        "shr_s": f"{inl} {{T}} kiln_shr_{{T}}({{T}} a, {{T}} b) {{ return (b >= 0 && b < {{B}}) ? ({{T}})(a >> b) "
                 f": (a < 0 ? ({{T}})-1 : ({{T}})0); }}",
        "shr_u": f"{inl} {{T}} kiln_shr_{{T}}({{T}} a, {{T}} b) {{ return (b < {{B}}) ? ({{T}})(a >> b) : ({{T}})0; }}",
        "ipow_s": f"{inl} long kiln_ipow_s(long x, long y) {{ if (y < 0) return x == 1 ? 1 : (x == -1 ? "
                  f"((y & 1) ? -1 : 1) : 0); ulong r = 1, b = (ulong)x; ulong e = (ulong)y; "
                  f"while (e) {{ if (e & 1) r *= b; b *= b; e >>= 1; }} return (long)r; }}",
        "ipow_u": f"{inl} ulong kiln_ipow_u(ulong x, ulong y) {{ ulong r = 1, b = x; "
                  f"while (y) {{ if (y & 1) r *= b; b *= b; y >>= 1; }} return r; }}",
        # floats: NaN-propagating min/max with -0 < +0 (llvm.minimum / llvm.maximum); floored modulo
        "fmin": f"{inl} {{T}} kiln_fmin_{{T}}({{T}} a, {{T}} b) {{ if (isnan(a) || isnan(b)) return a + b; "
                f"if (a < b) return a; if (b < a) return b; return signbit(a) ? a : b; }}",
        "fmax": f"{inl} {{T}} kiln_fmax_{{T}}({{T}} a, {{T}} b) {{ if (isnan(a) || isnan(b)) return a + b; "
                f"if (a > b) return a; if (b > a) return b; return signbit(a) ? b : a; }}",
        "fmod": f"{inl} {{T}} kiln_fmod_{{T}}({{T}} a, {{T}} b) {{ {{T}} r = fmod(a, b); "
                f"if (r != 0 && ((r < 0) != (b < 0))) return r + b; return r == 0 ? copysign(r, b) : r; }}",
        "fsign": f"{inl} {{T}} kiln_fsign_{{T}}({{T}} a) {{ return a > 0 ? ({{T}})1 : (a < 0 ? ({{T}})-1 : "
                 f"(isnan(a) ? a : ({{T}})0)); }}",
        # half precision in software, bit-exact like numpy: to nearest even, NaN payloads shifted (never
        # quieted or canonicalised by a hardware conversion)
        "h2f": f"{inl} float kiln_h2f(ushort h) {{ uint s = ((uint)h & 0x8000u) << 16; "
               f"uint e = ((uint)h >> 10) & 0x1Fu, m = (uint)h & 0x3FFu; "
               f"if (e == 0) {{ float v = (float)m * 5.9604644775390625e-8f; return s ? -v : v; }} "
               f"if (e == 31) return {d.from_bits['float'].format(x='s | 0x7F800000u | (m << 13)')}; "
               f"return {d.from_bits['float'].format(x='s | ((e + 112u) << 23) | (m << 13)')}; }}",
        "f2h": _to_half(inl, "float", "uint", d.bits_of["float"], 8, 23, 127),
        "d2h": _to_half(inl, "double", "ulong", d.bits_of["double"], 11, 52, 1023),
        "rh": f"{inl} float kiln_rh(float x) {{ return kiln_h2f(kiln_f2h(x)); }}",
        "rh_d": f"{inl} float kiln_rh_d(double x) {{ return kiln_h2f(kiln_d2h(x)); }}",
        "bf16_bits": f"{inl} uint kiln_bf16_bits(float x) {{ uint b = {d.bits_of['float'].format(x='x')}; "
                     f"return isnan(x) ? 0x7FC00000u : ((b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u); }}",
        "rbf": f"{inl} float kiln_rbf(float x) {{ return {d.from_bits['float'].format(x='kiln_bf16_bits(x)')}; }}",
    }


_F32, _I8 = _dtype("f32"), _dtype("i8")


def _to_half(inl: str, t: str, u: str, bits_of: str, ebits: int, mbits: int, bias: int) -> str:
    """``ushort kiln_{f,d}2h(t x)``: the half bits of a float / double, rounded to nearest even."""
    name = "kiln_f2h" if t == "float" else "kiln_d2h"
    emax = (1 << ebits) - 1
    one = "1u" if u == "uint" else "1UL"
    return (f"{inl} ushort {name}({t} x) {{ {u} b = {bits_of.format(x='x')}; "
            f"ushort s = (ushort)((b >> {ebits + mbits - 15}) & 0x8000u); int e = (int)((b >> {mbits}) & {emax}u); "
            f"{u} m = b & (({one} << {mbits}) - 1); "
            f"if (e == {emax}) {{ if (m == 0) return (ushort)(s | 0x7C00u); "
            f"ushort r = (ushort)(0x7C00u | (uint)(m >> {mbits - 10})); "
            f"return (ushort)(s | (r == 0x7C00u ? 0x7C01u : r)); }} "
            f"int he = e - {bias - 15}; if (he >= 31) return (ushort)(s | 0x7C00u); "
            f"if (he <= 0) {{ if (he < -10) return s; m |= {one} << {mbits}; int sh = {mbits - 9} - he; "
            f"{u} hm = m >> sh, rem = m & (({one} << sh) - 1), tie = {one} << (sh - 1); "
            f"if (rem > tie || (rem == tie && (hm & 1))) hm++; return (ushort)(s | (uint)hm); }} "
            f"{u} hm = m >> {mbits - 10}, rem = m & (({one} << {mbits - 10}) - 1), tie = {one} << {mbits - 11}; "
            f"uint r = (uint)s | ((uint)he << 10) | (uint)hm; "
            f"if (rem > tie || (rem == tie && (hm & 1))) r++; return (ushort)r; }}")


_BITS = {"char": 8, "uchar": 8, "short": 16, "ushort": 16, "int": 32, "uint": 32, "long": 64, "ulong": 64}


# ----------------------------------------------------------------------------------------- emitter
@dataclass
class _Fn:
    """State while emitting one function."""

    lines: list = field(default_factory=list)
    depth: int = 1
    memo: list = field(default_factory=lambda: [{}])
    nonneg: set = field(default_factory=set)
    names: dict = field(default_factory=dict)
    shared: list = field(default_factory=list)
    pure: dict = field(default_factory=dict)
    data: set = field(default_factory=set)    # let variables holding values read from memory


class Emitter:
    """Loop IR -> C-style source in one :class:`Dialect`. One emitter per module (it collects helpers)."""

    def __init__(self, dialect: Dialect):
        self.d = dialect
        self.helpers: dict = {}     # key -> code, in first-use order
        self.uses_f64 = False
        self._tmp = 0
        self._templates = _helpers(dialect)
        self.kernel_name = ""

    # ---------------------------------------------------------------------------------- module
    def module(self, kernels) -> str:
        """Source of a module: the prelude, the helpers used, then each ``(kernel, name)``."""
        bodies = [self.function(k, name) for k, name in kernels]
        head = []
        if self.uses_f64 and self.d.fp64_pragma:
            head.append(self.d.fp64_pragma)
        if self.d.prelude:
            head.append(self.d.prelude)
        head.extend(self.helpers.values())
        return "\n".join(head) + "\n\n" + "\n\n".join(bodies) + "\n"

    def _need(self, key: str, T: str | None = None) -> str:
        tpl = self._templates[key]
        code = tpl.replace("{T}", T or "").replace("{U}", _UNSIGNED.get(T, T or "")).replace(
            "{B}", str(_BITS.get(T, 0))) if T else tpl
        self.helpers.setdefault((key, T), code)
        return T

    def _need_code(self, key, code: str):
        self.helpers.setdefault(key, code)

    # the narrow formats' helpers (see cstyle_narrow): each returns the helper's name
    def _dec(self, dt) -> str:
        for key, code in _narrow.decode(dt, self.d.inline, self.d.constant, self.d.from_bits["float"]):
            self._need_code(key, code)
        return f"kiln_dec_{dt.name}"

    def _enc(self, dt, saturate=True, round_mode="up") -> str:
        name, code = _narrow.encode(dt, saturate, round_mode, self.d.inline, self.d.bits_of["float"],
                                    self.d.bits_of["float"].replace("uint", "int"))
        self._need_code(("enc", name), code)
        return name

    def _rt(self, dt) -> str:
        self._dec(dt)
        name, code = _narrow.round_to(dt, self.d.inline, self._enc(dt, False, "nearest"))
        self._need_code(("rt", name), code)
        return name

    def _wrap(self, dt) -> str:
        name, code = _narrow.wrap(dt, self.d.inline)
        self._need_code(("wrap", name), code)
        return name

    def _post(self, text: str, dt: DType) -> str:
        """An integer result of a narrow int dtype wrapped to its width."""
        return f"{self._wrap(dt)}({text})" if _narrow.is_narrow_int(dt) else text

    def _fail(self, what: str):
        raise CodegenError(f"kernel {self.kernel_name}: {what}")

    # -------------------------------------------------------------------------------- function
    def function(self, k: L.Kernel, name: str) -> str:
        """One entry point: buffer parameters (pointer + element offset), then the symbols (long)."""
        self.kernel_name = name
        f = _Fn()
        self.f = f
        for s in k.syms:
            f.names[s] = "s_" + _ident(s)
            f.nonneg.add(s)
        params, prologue = [], []
        for b in k.params:
            self._check_dtype(b.dtype)
            p = _ident(b.name)
            params.append(f"{self.d.global_ptr} {memtype(b.dtype)}* {p}")
            params.append(f"long {p}_off")
            prologue.append(f"  {p} += {p}_off;")
        params += [f"long {f.names[s]}" for s in k.syms]
        self.stmt(k.body)
        shared = [f"  {self.d.shared} {memtype(b.dtype, 'shared')} {_ident(b.name)}[{n}];" for b, n in f.shared]
        head = f"{self.d.kernel} {name}({', '.join(params)}) {{"
        return "\n".join([head] + shared + prologue + f.lines + ["}"])

    def _check_dtype(self, dt: DType):
        try:
            ctype(dt)
        except CodegenError as e:
            self._fail(str(e))
        if dt.name == "f64":
            self.uses_f64 = True

    def _emit(self, line: str):
        self.f.lines.append("  " * self.f.depth + line)

    def _open(self, head: str):
        self._emit(head + " {")
        self.f.depth += 1
        self.f.memo.append({})

    def _close(self, tail: str = "}"):
        self.f.memo.pop()
        self.f.depth -= 1
        self._emit(tail)

    def _var(self, name: str) -> str:
        n = self.f.names.get(name)
        if n is None:
            n = _ident(name)
            self.f.names[name] = n
        return n

    # ------------------------------------------------------------------------------ statements
    def stmt(self, s: L.Stmt):
        if isinstance(s, L.Seq):
            for x in s.body:
                self.stmt(x)
        elif isinstance(s, L.For):
            self._for(s)
        elif isinstance(s, L.Store):
            self._store(s)
        elif isinstance(s, L.Let):
            self._check_dtype(s.var.dtype)
            v = self.expr(s.value)
            self._open("")
            self._emit(f"const {ctype(s.var.dtype)} {self._var(s.var.name)} = {v};")
            if s.var.dtype.is_int and self._nonneg(s.value):
                self.f.nonneg.add(s.var.name)
            if not self._pure(s.value):
                self.f.data.add(s.var.name)
            self.stmt(s.body)
            self._close()
        elif isinstance(s, L.Alloc):
            self._alloc(s)
        elif isinstance(s, L.If):
            c = self.expr(s.cond)
            self._open(f"if ({c})")
            self.stmt(s.then)
            if s.else_ is not None:
                self._close("} else {")
                self.f.depth += 1
                self.f.memo.append({})
                self.stmt(s.else_)
            self._close()
        elif isinstance(s, L.Barrier):
            self._emit(self.d.barrier)
        else:
            self._fail(f"cannot emit statement {type(s).__name__}")

    def _for(self, s: L.For):
        name = self._var(s.var.name)
        if s.kind.startswith("gpu."):
            idx = self.d.axes.get(s.kind)
            if idx is None:
                self._fail(f"loop kind {s.kind} has no index in {self.d.name}")
            self._open("")
            self._emit(f"const long {name} = (long){idx};")
            self.f.nonneg.add(s.var.name)
            self.stmt(s.body)
            self._close()
            return
        start = self.expr(s.start, index=True)
        ext = self.expr(s.extent, index=True)
        stop = ext if isinstance(s.start, L.Const) and s.start.value == 0 else f"{start} + {ext}"
        if self._nonneg(s.start):
            self.f.nonneg.add(s.var.name)
        self._open(f"for (long {name} = {start}; {name} < {stop}; {name}++)")
        self.stmt(s.body)
        self._close()

    def _alloc(self, s: L.Alloc):
        b = s.buf
        self._check_dtype(b.dtype)
        n = L.simplify(b.size())
        if not isinstance(n, L.Const):
            self._fail(f"local buffer {b.name} needs a static size, got {n}")
        if b.scope == "shared":
            self.f.shared.append((b, int(n.value)))
            self.stmt(s.body)
            return
        self._open("")
        self._emit(f"{memtype(b.dtype, 'local')} {_ident(b.name)}[{max(1, int(n.value))}];")
        self.stmt(s.body)
        self._close()

    def _offset(self, buf: L.Buffer, index) -> str:
        if len(index) != len(buf.strides):
            self._fail(f"{buf.name}: {len(index)} indices for {len(buf.strides)} dims")
        off: L.Expr = L.Const(0)
        for i, st in zip(index, buf.strides):
            off = off + i * st
        return self.expr(L.simplify(off), index=True)

    def _store(self, s: L.Store):
        buf = s.buf
        self._check_dtype(buf.dtype)
        v = self.expr(s.value)
        off = self._offset(buf, s.index)
        p = _ident(buf.name)
        dt = buf.dtype
        if buf.scope == "global" and dt.name == "f16":
            self._need("f2h")
            self._emit(f"{p}[{off}] = kiln_f2h({v});")
        elif buf.scope == "global" and dt.name == "bf16":
            self._emit(f"{p}[{off}] = (ushort)({self.d.bits_of['float'].format(x=v)} >> 16);")
        elif buf.scope == "global" and _narrow.is_narrow_float(dt):  # register values are representable
            self._emit(f"{p}[{off}] = {self._enc(dt, False, 'down')}({v});")
        elif buf.scope == "global" and _narrow.is_narrow_int(dt):
            self._emit(f"{p}[{off}] = (uchar)((uchar){v} & {(1 << dt.bits) - 1}u);")
        elif dt.kind == "bool":
            self._emit(f"{p}[{off}] = (uchar)({v} ? 1 : 0);")
        else:
            self._emit(f"{p}[{off}] = {v};")

    # ----------------------------------------------------------------------------- expressions
    def _lookup(self, e):
        for m in reversed(self.f.memo):
            hit = m.get(id(e))
            if hit is not None:
                return hit[1]
        return None

    def _bind(self, e: L.Expr, text: str, dt: DType) -> str:
        self._tmp += 1
        name = f"t_{self._tmp}"
        self._emit(f"const {ctype(dt)} {name} = {text};")
        self.f.memo[-1][id(e)] = (e, name)  # the node is kept alive with its name
        return name

    def expr(self, e: L.Expr, index: bool = False) -> str:
        """The C text of ``e`` (a temporary's name or a literal); temporaries are emitted first.
        ``index``: the expression computes an address or a trip count, so 64-bit arithmetic cannot
        overflow and plain signed operations are used."""
        if isinstance(e, L.Const):
            return self._const(e.value, e.dtype)
        if isinstance(e, L.Var):
            if e.name not in self.f.names:
                self._fail(f"unbound variable {e.name}")
            return self._var(e.name)
        hit = self._lookup(e)
        if hit is not None:
            return hit
        self._check_dtype(e.dtype)
        if isinstance(e, L.Load):
            text = self._load(e)
        elif isinstance(e, L.Bin):
            text = self._post(self._bin(e, index), e.dtype)
        elif isinstance(e, L.Cmp):
            a, b = self.expr(e.a, index), self.expr(e.b, index)
            text = f"({a} {_CMP[e.op]} {b})"
        elif isinstance(e, L.Un):
            text = self._post(self._un(e), e.dtype)
        elif isinstance(e, L.Select):
            c, a, b = self.expr(e.cond), self.expr(e.a, index), self.expr(e.b, index)
            text = f"({c} ? {a} : {b})"
        elif isinstance(e, L.Cast):
            text = self._cast(e)
        elif isinstance(e, L.Bitcast):
            text = self._bitcast(e)
        elif isinstance(e, L.Reduce):
            return self._reduce(e)
        else:
            self._fail(f"cannot emit expression {e!r}")
        return self._bind(e, text, e.dtype)

    def _pure(self, e: L.Expr) -> bool:
        """Whether ``e`` reads no memory (memoised per node for this function)."""
        hit = self.f.pure.get(id(e))
        if hit is not None:
            return hit[1]
        if isinstance(e, (L.Load, L.Reduce)):
            r = False
        elif isinstance(e, L.Var):
            r = e.name not in self.f.data
        else:
            r = all(self._pure(c) for c in L.children(e))
        self.f.pure[id(e)] = (e, r)
        return r

    def _nonneg(self, e: L.Expr) -> bool:
        """Whether an integer expression is known to be >= 0 (loop counters, symbols, their sums,
        products and quotients): its floor divisions are then C's truncating ones."""
        if isinstance(e, L.Const):
            return e.dtype.is_int and int(e.value) >= 0
        if isinstance(e, L.Var):
            return e.name in self.f.nonneg
        if isinstance(e, L.Bin) and e.op in ("add", "mul", "floordiv", "mod", "min", "div", "rem"):
            return self._nonneg(e.a) and self._nonneg(e.b)
        if isinstance(e, L.Bin) and e.op == "max":
            return self._nonneg(e.a) or self._nonneg(e.b)
        return False

    def _load(self, e: L.Load) -> str:
        buf = e.buf
        self._check_dtype(buf.dtype)
        off = self._offset(buf, e.index)
        p = _ident(buf.name)
        dt = buf.dtype
        if buf.scope == "global" and dt.name == "f16":
            self._need("h2f")
            return f"kiln_h2f({p}[{off}])"
        if buf.scope == "global" and dt.name == "bf16":
            return self.d.from_bits["float"].format(x=f"((uint){p}[{off}] << 16)")
        if buf.scope == "global" and _narrow.is_narrow_float(dt):
            return f"{self._dec(dt)}({p}[{off}])"
        if buf.scope == "global" and _narrow.is_narrow_int(dt):
            return f"{self._wrap(dt)}({p}[{off}])"
        if dt.kind == "bool":
            return f"({p}[{off}] != 0)"
        return f"{p}[{off}]"

    def _const(self, value, dt: DType) -> str:
        self._check_dtype(dt)
        if _narrow.is_narrow(dt):
            v = _narrow.const(value, dt)
            if dt.kind == "uint":
                return f"((uchar){v})"
            return self._const(v, _F32 if _narrow.is_narrow_float(dt) else _I8)
        if dt.kind == "bool":
            return "true" if value else "false"
        if dt.is_float:
            v = float(value)
            if dt.name == "bf16":
                v = _bf16_round(v)
            elif dt.name == "f16":
                v = float(struct.unpack("<e", struct.pack("<e", v))[0]) if math.isfinite(v) and abs(v) < 65520 \
                    else (v if not math.isfinite(v) else math.copysign(math.inf, v))
            suffix = "" if dt.name == "f64" else "f"
            t = "double" if dt.name == "f64" else "float"
            if math.isnan(v):
                return f"(({t})NAN)"
            if math.isinf(v):
                return f"(({t}){'-' if v < 0 else ''}INFINITY)"
            if v < 0 or (v == 0 and math.copysign(1, v) < 0):
                return f"(({t}){v.hex()}{suffix})"
            return f"{v.hex()}{suffix}"
        v = int(value)
        t = ctype(dt)
        bits = dt.bits
        v &= (1 << bits) - 1
        if dt.kind == "int" and v >= 1 << (bits - 1):
            v -= 1 << bits
        if t == "long":
            return f"{v}L" if v != -(1 << 63) else "(-9223372036854775807L - 1)"
        if t == "ulong":
            return f"{v}UL"
        if t == "int":
            return f"{v}" if v != -(1 << 31) else "(-2147483647 - 1)"
        if t == "uint":
            return f"{v}u"
        return f"(({t}){v})"

    def _rounded(self, text: str, dt: DType) -> str:
        if dt.name == "f16":
            self._need("h2f")
            self._need("f2h")
            self._need("rh")
            return f"kiln_rh({text})"
        if dt.name == "bf16":
            self._need("bf16_bits")
            self._need("rbf")
            return f"kiln_rbf({text})"
        if _narrow.is_narrow_float(dt):
            return f"{self._rt(dt)}({text})"
        return text

    def _bin(self, e: L.Bin, index: bool) -> str:
        dt = e.dtype
        op = e.op
        if not index and dt.name == "i64" and self._pure(e):
            index = True  # arithmetic of loop counters, symbols and constants: an address, not data
        a, b = self.expr(e.a, index), self.expr(e.b, index)
        if dt.kind == "bool":
            op = {"min": "and", "max": "or", "add": "or", "mul": "and", "sub": "xor"}.get(op, op)
            if op == "and":
                return f"({a} && {b})"
            if op == "or":
                return f"({a} || {b})"
            if op == "xor":
                return f"({a} != {b})"
            self._fail(f"bool op {op}")
        if dt.is_float:
            t = ctype(dt) if dt.name != "f64" else "double"
            if op in ("add", "sub", "mul", "div"):
                sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
                return self._rounded(f"({a} {sym} {b})", dt)
            if op == "floordiv":
                return self._rounded(f"floor({a} / {b})", dt)
            if op == "rem":
                return self._rounded(f"fmod({a}, {b})", dt)
            if op in ("mod", "min", "max"):
                key = {"mod": "fmod", "min": "fmin", "max": "fmax"}[op]
                self._need(key, t)
                return self._rounded(f"kiln_{key}_{t}({a}, {b})", dt) if op == "mod" else f"kiln_{key}_{t}({a}, {b})"
            if op == "pow":
                return self._rounded(f"pow({a}, {b})", dt)
            if op == "atan2":
                return self._rounded(f"atan2({a}, {b})", dt)
            self._fail(f"float op {op}")
        t = ctype(dt)
        signed = dt.kind == "int"
        u = _UNSIGNED.get(t, t)
        if op in ("add", "sub", "mul"):
            sym = {"add": "+", "sub": "-", "mul": "*"}[op]
            if index and t == "long":
                return f"({a} {sym} {b})"
            if signed and t in ("int", "long"):
                return f"({t})(({u}){a} {sym} ({u}){b})"
            return f"({t})({a} {sym} {b})"
        if op in ("div", "rem", "floordiv", "mod"):
            if isinstance(e.b, L.Const) and e.b.value == 0:
                return f"({t})0"  # x / 0 == 0 (in dead code: a loop over an empty dim)
            if isinstance(e.b, L.Const) and e.b.value > 0 and (not signed or self._nonneg(e.a)):
                return f"({a} {'/' if op in ('div', 'floordiv') else '%'} {b})"
            if not signed:
                key = "div_u" if op in ("div", "floordiv") else "rem_u"
                self._need(key, t)
                return f"kiln_{'div' if op in ('div', 'floordiv') else 'rem'}_{t}({a}, {b})"
            if index and self._nonneg(e.a) and self._nonneg(e.b):  # symbolic extents: never zero here
                return f"({a} {'/' if op in ('div', 'floordiv') else '%'} {b})"
            key = op + "_s"
            self._need(key, t)
            return f"kiln_{op}_{t}({a}, {b})"
        if op == "min":
            return f"({a} < {b} ? {a} : {b})"
        if op == "max":
            return f"({a} > {b} ? {a} : {b})"
        if op in ("and", "or", "xor"):
            sym = {"and": "&", "or": "|", "xor": "^"}[op]
            return f"({t})({a} {sym} {b})"
        if op == "shl":
            self._need("shl", t)
            return f"kiln_shl_{t}({a}, {b})"
        if op == "shr":
            self._need("shr_s" if signed else "shr_u", t)
            return f"kiln_shr_{t}({a}, {b})"
        if op == "pow":
            if signed:
                self._need("ipow_s", "long")
                return f"({t})kiln_ipow_s((long){a}, (long){b})"
            self._need("ipow_u", "ulong")
            return f"({t})kiln_ipow_u((ulong){a}, (ulong){b})"
        self._fail(f"integer op {op} on {dt}")

    def _un(self, e: L.Un) -> str:
        op, src = e.op, e.a.dtype
        a = self.expr(e.a)
        if op == "isnan":
            return f"(isnan({a}) != 0)" if src.is_float else "false"
        if op == "isinf":
            return f"(isinf({a}) != 0)" if src.is_float else "false"
        if op == "not":
            return f"(!{a})" if src.kind == "bool" else f"({ctype(src)})(~{a})"
        t = ctype(src)
        if op == "neg":
            if src.is_float:
                return f"(-{a})"
            if src.kind == "bool":
                return a
            return f"({t})(({_UNSIGNED.get(t, t)})0 - ({_UNSIGNED.get(t, t)}){a})"
        if op == "abs" and not src.is_float:
            if src.kind != "int":
                return a
            return f"({a} < 0 ? ({t})(({_UNSIGNED[t]})0 - ({_UNSIGNED[t]}){a}) : {a})"
        if op == "sign":
            if src.is_float:
                ft = "double" if src.name == "f64" else "float"
                self._need("fsign", ft)
                return f"kiln_fsign_{ft}({a})"
            if src.kind == "bool":
                return a
            if src.kind == "uint":
                return f"({t})({a} > 0 ? 1 : 0)"
            return f"({t})({a} > 0 ? 1 : ({a} < 0 ? -1 : 0))"
        if not src.is_float:
            self._fail(f"{op} of {src}")
        one = "1.0" if src.name == "f64" else "1.0f"
        if op in _UNARY_FN:
            text = f"{_UNARY_FN[op]}({a})"
        elif op == "rsqrt":
            text = f"({one} / sqrt({a}))"
        elif op == "sigmoid":
            text = f"({one} / ({one} + exp(-{a})))"
        else:
            self._fail(f"unary op {op}")
        return self._rounded(text, src)

    def _cast(self, e: L.Cast) -> str:
        src, dst = e.a.dtype, e.dtype
        a = self.expr(e.a)
        if src == dst:
            return a
        t = ctype(dst)
        if _narrow.is_narrow(dst):
            return self._cast_narrow(a, src, dst, e.saturate, e.round_mode)
        if dst.kind == "bool":
            return f"({a} != 0)"
        if src.kind == "bool":
            return self._rounded(f"({t})({a} ? 1 : 0)", dst) if dst.is_float else f"({t})({a} ? 1 : 0)"
        if src.is_float and dst.is_float:
            if dst.name == "f16":
                if src.name == "f64":
                    self.uses_f64 = True
                    for key in ("h2f", "d2h", "rh_d"):
                        self._need(key)
                    return f"kiln_rh_d({a})"
                return self._rounded(a, dst)
            if dst.name == "bf16":
                return self._rounded(f"(float){a}" if src.name == "f64" else a, dst)
            return f"({t}){a}"
        if src.is_float:
            return self.d.sat_cast.format(t=t, x=a)
        if dst.is_float:
            return self._rounded(f"({'double' if dst.name == 'f64' else 'float'}){a}", dst)
        return f"({t}){a}"

    def _cast_narrow(self, a: str, src: DType, dst: DType, saturate: bool, round_mode: str) -> str:
        """``cast<dst>`` into a narrow format, as the CPU target does (kiln.targets.llvm_narrow.cast)."""
        if _narrow.is_narrow_float(dst):
            if src.kind == "bool":
                x = f"(float)({a} ? 1 : 0)"
            elif src.is_int and src.bits == 64:  # the reference goes int64 -> float64 -> float32
                self.uses_f64 = True
                x = f"(float)(double){a}"
            else:
                x = f"(float){a}"
            return f"{self._dec(dst)}({self._enc(dst, saturate, round_mode)}({x}))"
        if src.kind == "bool":
            return f"(({ctype(dst)})({a} ? 1 : 0))"
        if src.is_float:  # truncate toward zero, keep the low bits; NaN, inf and |x| >= 2**62 give 0
            t = self.d.sat_cast.format(t="long", x=a)
            return f"{self._wrap(dst)}(fabs({a}) < 0x1p62f ? {t} : 0L)"
        return f"{self._wrap(dst)}((long){a})"

    def _bits(self, a: str, dt: DType) -> tuple:
        """(C text of the raw bits, the unsigned C type holding them)."""
        if dt.name == "f32":
            return self.d.bits_of["float"].format(x=a), "uint"
        if dt.name == "f64":
            return self.d.bits_of["double"].format(x=a), "ulong"
        if dt.name == "bf16":
            return f"(ushort)({self.d.bits_of['float'].format(x=a)} >> 16)", "ushort"
        if dt.name == "f16":
            self._need("f2h")
            return f"kiln_f2h({a})", "ushort"
        if _narrow.is_narrow_float(dt):
            return f"{self._enc(dt, False, 'down')}({a})", "uchar"
        if _narrow.is_narrow_int(dt):
            return f"(uchar)((uchar){a} & {(1 << dt.bits) - 1}u)", "uchar"
        if dt.kind == "bool":
            return f"(uchar)({a} ? 1 : 0)", "uchar"
        t = memtype(dt)
        return f"({_UNSIGNED.get(t, t)}){a}", _UNSIGNED.get(t, t)

    def _bitcast(self, e: L.Bitcast) -> str:
        src, dst = e.a.dtype, e.dtype
        bits, _ = self._bits(self.expr(e.a), src)
        if dst.name == "f32":
            return self.d.from_bits["float"].format(x=f"(uint){bits}")
        if dst.name == "f64":
            return self.d.from_bits["double"].format(x=f"(ulong){bits}")
        if dst.name == "bf16":
            return self.d.from_bits["float"].format(x=f"((uint){bits} << 16)")
        if dst.name == "f16":
            self._need("h2f")
            return f"kiln_h2f((ushort){bits})"
        if _narrow.is_narrow_float(dst):
            return f"{self._dec(dst)}((uchar){bits})"
        if _narrow.is_narrow_int(dst):
            return f"{self._wrap(dst)}((uchar){bits})"
        if dst.kind == "bool":
            return f"({bits} != 0)"
        return f"({ctype(dst)}){bits}"

    def _reduce(self, e: L.Reduce) -> str:
        """A serial reduction: an accumulator declared here, loops over the axes, its final value."""
        comb = e.combiner
        dt = e.body.dtype
        self._check_dtype(dt)
        t = ctype(dt)
        init = self.expr(e.init)
        self._tmp += 1
        acc = f"a_{self._tmp}"
        arg = comb in ("argmax", "argmin")
        if arg:
            self._emit(f"{t} {acc} = {init if not dt.is_float else ('(' + t + ')0')};")
            self._emit(f"long {acc}_i = 0;")
            self._emit(f"bool {acc}_first = true;")
        else:
            self._emit(f"{t} {acc} = {init};")
        lin = None
        for v, n in e.axes:
            ext = self.expr(n, index=True)
            name = self._var(v.name)
            self.f.nonneg.add(v.name)
            self._open(f"for (long {name} = 0; {name} < {ext}; {name}++)")
            lin = name if lin is None else f"({lin}) * {ext} + {name}"
        x = self.expr(e.body)
        if arg:
            better = self._better(comb, x, acc, dt, e.select_last)
            self._emit(f"if ({acc}_first || {better}) {{ {acc} = {x}; {acc}_i = {lin}; }}")
            self._emit(f"{acc}_first = false;")
        else:
            self._emit(f"{acc} = {self.combine(comb, acc, x, dt)};")
        for _ in e.axes:
            self._close()
        result = f"{acc}_i" if arg else acc
        self.f.memo[-1][id(e)] = (e, result)
        return result

    def combine(self, comb: str, acc: str, x: str, dt: DType) -> str:
        """C text of ``acc (comb) x`` for sum/prod/max/min in ``dt``'s semantics."""
        op = {"sum": "add", "prod": "mul", "max": "max", "min": "min"}[comb]
        a, b = L.Var("__a", dt), L.Var("__b", dt)
        self.f.names["__a"], self.f.names["__b"] = acc, x
        memo = self.f.memo
        self.f.memo = [{}]
        try:
            text = self._post(self._bin(L.Bin(op, a, b, dt), False), dt)
        finally:
            self.f.memo = memo
            del self.f.names["__a"], self.f.names["__b"]
        return text

    def _better(self, comb, x, cur, dt, last) -> str:
        """C condition: ``x`` replaces ``cur`` as the running arg-extreme (NaN is the extreme)."""
        gt, ge = (">", ">=") if comb == "argmax" else ("<", "<=")
        if dt.is_float:
            if last:
                return f"(isnan({x}) || (!isnan({cur}) && {x} {ge} {cur}))"
            return f"(!isnan({cur}) && (isnan({x}) || {x} {gt} {cur}))"
        if last:
            return f"({x} {ge} {cur})"
        return f"({x} {gt} {cur})"


def _ident(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if re.fullmatch(r"[a-z]+[0-9]+", s):
        return s
    return "x_" + s


def _bf16_round(v: float) -> float:
    if math.isnan(v):
        return v
    b = struct.unpack("<I", struct.pack("<f", v))[0] if abs(v) < 3.5e38 or math.isinf(v) else None
    if b is None:
        b = struct.unpack("<I", struct.pack("<f", math.copysign(3.4028234663852886e38, v)))[0]
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", b))[0]


# --------------------------------------------------------------------------------------- dialects
OPENCL = Dialect(
    name="OpenCL C 1.2",
    kernel="__kernel void",
    global_ptr="__global",
    shared="__local",
    barrier="barrier(CLK_LOCAL_MEM_FENCE);",
    axes={"gpu.block.x": "get_group_id(0)", "gpu.block.y": "get_group_id(1)", "gpu.block.z": "get_group_id(2)",
          "gpu.thread.x": "get_local_id(0)", "gpu.thread.y": "get_local_id(1)", "gpu.thread.z": "get_local_id(2)"},
    sat_cast="(isnan({x}) ? ({t})0 : convert_{t}_sat_rtz({x}))",
    bits_of={"float": "as_uint({x})", "double": "as_ulong({x})"},
    from_bits={"float": "as_float({x})", "double": "as_double({x})"},
    fp64_pragma="#pragma OPENCL EXTENSION cl_khr_fp64 : enable",
)
