"""A reference evaluator of the loop IR (:mod:`kiln.ir.loops`) in Python and numpy: slow but exact.

``evaluate(kernel, buffers, syms)`` runs a :class:`~kiln.ir.loops.Kernel` (or a bare statement) on
numpy arrays, one scalar at a time, every loop kind run as a serial loop (``parallel``, ``vectorized``,
``unrolled`` and the GPU axes only change how a target emits a loop, never what it computes). It is
the oracle for schedule transformations (:mod:`kiln.ir.schedule`) without LLVM, and a second one for
the code generators. Values are numpy scalars of their dtype, so integer arithmetic wraps and float
arithmetic rounds as the targets do; the operator semantics follow :mod:`kiln.targets.llvm_codegen`
(integer division by zero gives 0, float min/max propagate NaN, float -> int casts saturate, ...).

Every access is bounds-checked: an index outside its buffer raises :class:`EvalError` naming the
buffer, and local buffers (``Alloc``) start filled with NaN (floats) or a sentinel, so a schedule that
reads memory it never wrote shows up.

    >>> out = evaluate(kernel, {"x": x, "y": np.zeros(4, np.float32)}, {"N": 4})["y"]
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from . import loops as L


class EvalError(Exception):
    pass


def evaluate(kernel, buffers: Mapping[str, np.ndarray], syms: Mapping[str, int] | None = None) -> dict:
    """Run ``kernel`` (a Kernel or a statement) over ``buffers`` (name -> array, written in place).

    Every global buffer the statements touch must be given, as a C-contiguous array holding at least
    the buffer's elements (its shape is not checked: strides decide the addressing). Returns
    ``buffers`` (the same arrays)."""
    syms = dict(syms or {})
    body = kernel.body if isinstance(kernel, L.Kernel) else kernel
    mem: dict = {}
    for b in L.stmt_buffers(body):
        if b.name not in buffers:
            raise EvalError(f"no array given for buffer {b.name}")
        arr = buffers[b.name]
        if not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous:
            raise EvalError(f"buffer {b.name} needs a C-contiguous numpy array")
        if arr.dtype != b.dtype.np:
            raise EvalError(f"buffer {b.name} is {b.dtype} but the array is {arr.dtype}")
        mem[id(b)] = (b, arr.reshape(-1))
    env = {k: np.int64(v) for k, v in syms.items()}
    with np.errstate(all="ignore"):
        _Run(mem).stmt(body, env)
    return dict(buffers)


# ----------------------------------------------------------------------------------------- statements
class _Run:
    def __init__(self, mem):
        self.mem = mem  # id(Buffer) -> (Buffer, flat array)

    def stmt(self, s: L.Stmt, env: dict):
        if isinstance(s, L.Seq):
            for x in s.body:
                self.stmt(x, env)
        elif isinstance(s, L.For):
            start = int(self.expr(s.start, env))
            ext = int(self.expr(s.extent, env))
            old = env.get(s.var.name)
            for k in range(start, start + ext):
                env[s.var.name] = np.int64(k)
                self.stmt(s.body, env)
            _restore(env, s.var.name, old)
        elif isinstance(s, L.Store):
            buf, flat = self._buf(s.buf)
            value = _as(self.expr(s.value, env), buf.dtype)
            flat[self._offset(buf, s.index, env, flat)] = value
        elif isinstance(s, L.Let):
            old = env.get(s.var.name)
            env[s.var.name] = _as(self.expr(s.value, env), s.var.dtype)
            self.stmt(s.body, env)
            _restore(env, s.var.name, old)
        elif isinstance(s, L.Alloc):
            n = int(self.expr(s.buf.size(), env))
            self.mem[id(s.buf)] = (s.buf, _garbage(s.buf.dtype, max(n, 0)))
            try:
                self.stmt(s.body, env)
            finally:
                del self.mem[id(s.buf)]
        elif isinstance(s, L.If):
            if bool(self.expr(s.cond, env)):
                self.stmt(s.then, env)
            elif s.else_ is not None:
                self.stmt(s.else_, env)
        else:
            raise EvalError(f"not a statement: {s!r}")

    def _buf(self, buf):
        got = self.mem.get(id(buf))
        if got is None:
            raise EvalError(f"buffer {buf.name} is not bound here")
        return got

    def _offset(self, buf, index, env, flat) -> int:
        if len(index) != len(buf.strides):
            raise EvalError(f"{buf.name}: {len(index)} indices for {len(buf.strides)} dims")
        off = 0
        for d, (i, st) in enumerate(zip(index, buf.strides)):
            iv = int(self.expr(i, env))
            n = int(self.expr(buf.shape[d], env))
            if not 0 <= iv < n:
                raise EvalError(f"index {iv} out of bounds for dim {d} of {buf.name} (size {n})")
            off += iv * int(self.expr(st, env))
        if not 0 <= off < flat.size:
            raise EvalError(f"offset {off} out of bounds for {buf.name} ({flat.size} elements)")
        return off

    # -------------------------------------------------------------------------------- expressions
    def expr(self, e: L.Expr, env: dict):
        if isinstance(e, L.Const):
            return _as(e.value, e.dtype)
        if isinstance(e, L.Var):
            v = env.get(e.name)
            if v is None:
                raise EvalError(f"unbound variable {e.name}")
            return v
        if isinstance(e, L.Load):
            buf, flat = self._buf(e.buf)
            return flat[self._offset(buf, e.index, env, flat)]
        if isinstance(e, L.Bin):
            return _bin(e.op, self.expr(e.a, env), self.expr(e.b, env), e.dtype)
        if isinstance(e, L.Cmp):
            return _cmp(e.op, self.expr(e.a, env), self.expr(e.b, env), e.a.dtype)
        if isinstance(e, L.Un):
            return _un(e.op, self.expr(e.a, env), e.a.dtype, e.dtype)
        if isinstance(e, L.Select):
            return self.expr(e.a, env) if bool(self.expr(e.cond, env)) else self.expr(e.b, env)
        if isinstance(e, L.Cast):
            return _cast(self.expr(e.a, env), e.a.dtype, e.dtype)
        if isinstance(e, L.Bitcast):
            x = np.asarray(_as(self.expr(e.a, env), e.a.dtype))
            return x.view(e.dtype.np)[()]
        if isinstance(e, L.Reduce):
            return self.reduce(e, env)
        raise EvalError(f"cannot evaluate {e!r}")

    def reduce(self, e: L.Reduce, env: dict):
        comb, dt = e.combiner, e.body.dtype
        names = [v.name for v, _ in e.axes]
        exts = [int(self.expr(n, env)) for _, n in e.axes]
        old = {n: env.get(n) for n in names}
        if comb in ("argmax", "argmin"):
            best, besti = None, 0
            for lin, point in enumerate(np.ndindex(*exts) if all(x > 0 for x in exts) else ()):
                for n, k in zip(names, point):
                    env[n] = np.int64(k)
                x = self.expr(e.body, env)
                if best is None or _better(comb, x, best, dt, e.select_last):
                    best, besti = x, lin
            result = np.int64(besti)
        else:
            acc = _as(self.expr(e.init, env), dt)
            op = {"sum": "add", "prod": "mul", "max": "max", "min": "min"}[comb]
            for point in (np.ndindex(*exts) if all(x > 0 for x in exts) else ()):
                for n, k in zip(names, point):
                    env[n] = np.int64(k)
                acc = _bin(op, acc, self.expr(e.body, env), dt)
            result = acc
        for n in names:
            _restore(env, n, old[n])
        return result


def _restore(env, name, old):
    if old is None:
        env.pop(name, None)
    else:
        env[name] = old


def _garbage(dt, n):
    if dt.is_float:
        return np.full(n, np.nan, dt.np)
    if dt.kind == "bool":
        return np.ones(n, dt.np)
    return np.full(n, 0x5A5A5A5A5A5A5A5A, np.int64).astype(dt.np)


# ------------------------------------------------------------------------------------- scalar semantics
def _as(x, dt):
    """``x`` as a numpy scalar of ``dt`` (ints wrap)."""
    t = dt.np.type
    if isinstance(x, np.generic) and x.dtype == dt.np:
        return x
    if dt.kind == "bool":
        return np.bool_(bool(x))
    if dt.is_int:
        if isinstance(x, (bool, np.bool_)):
            x = int(x)
        if isinstance(x, (int, np.integer)):
            v = int(x) & ((1 << dt.bits) - 1)
            if dt.kind == "int" and v >= 1 << (dt.bits - 1):
                v -= 1 << dt.bits
            return t(v)
    return t(x)


def _bin(op, a, b, dt):
    if dt.kind == "bool":
        a, b = bool(a), bool(b)
        op = {"min": "and", "max": "or", "add": "or", "mul": "and"}.get(op, op)
        if op == "and":
            return np.bool_(a and b)
        if op == "or":
            return np.bool_(a or b)
        if op == "xor":
            return np.bool_(a != b)
        if op == "sub":
            return np.bool_(a != b)
        raise EvalError(f"bool op {op}")
    if dt.is_float:
        a, b = _as(a, dt), _as(b, dt)
        if op == "add":
            r = a + b
        elif op == "sub":
            r = a - b
        elif op == "mul":
            r = a * b
        elif op == "div":
            r = np.divide(a, b)
        elif op == "floordiv":
            r = np.floor(np.divide(a, b))
        elif op == "rem":
            r = np.fmod(a, b)
        elif op == "mod":
            r = np.fmod(a, b)
            if r != 0 and ((r < 0) != (b < 0)):
                r = r + b
        elif op == "min":
            r = np.minimum(a, b)
        elif op == "max":
            r = np.maximum(a, b)
        elif op == "pow":
            r = np.power(a, b)
        elif op == "atan2":
            r = np.arctan2(a, b)
        else:
            raise EvalError(f"float op {op}")
        return _as(r, dt)
    x, y = int(a), int(b)
    bits, signed = dt.bits, dt.kind == "int"
    if op == "add":
        r = x + y
    elif op == "sub":
        r = x - y
    elif op == "mul":
        r = x * y
    elif op in ("div", "rem", "floordiv", "mod"):
        if y == 0:
            r = 0
        else:
            q = abs(x) // abs(y) * (1 if (x >= 0) == (y >= 0) else -1)  # truncated
            rr = x - q * y
            if op in ("floordiv", "mod") and rr != 0 and ((rr < 0) != (y < 0)):
                q, rr = q - 1, rr + y
            r = q if op in ("div", "floordiv") else rr
    elif op == "min":
        r = min(x, y)
    elif op == "max":
        r = max(x, y)
    elif op == "and":
        r = x & y
    elif op == "or":
        r = x | y
    elif op == "xor":
        r = x ^ y
    elif op == "shl":
        r = x << y if 0 <= y < bits else 0
    elif op == "shr":
        if 0 <= y < bits:
            r = x >> y
        else:
            r = (-1 if x < 0 else 0) if signed else 0
    elif op == "pow":
        if y < 0 and signed:
            r = 1 if x == 1 else ((-1 if y & 1 else 1) if x == -1 else 0)
        else:
            r = pow(x, y % (1 << 64), 1 << 64)
    else:
        raise EvalError(f"integer op {op} on {dt}")
    return _as(r, dt)


def _cmp(op, a, b, dt):
    if dt.is_float:
        a, b = _as(a, dt), _as(b, dt)
        if op == "ne":
            return np.bool_(not (a == b))  # unordered: NaN != x
    else:
        a, b = (bool(a), bool(b)) if dt.kind == "bool" else (int(a), int(b))
    return np.bool_({"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op])


_UN_FLOAT = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "tanh": np.tanh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh, "floor": np.floor,
    "ceil": np.ceil, "round": np.rint, "trunc": np.trunc, "abs": np.abs,
}


def _un(op, x, src, dst):
    if op == "isnan":
        return np.bool_(src.is_float and bool(np.isnan(x)))
    if op == "isinf":
        return np.bool_(src.is_float and bool(np.isinf(x)))
    if op == "not":
        if src.kind == "bool":
            return np.bool_(not bool(x))
        return _as(~int(x), src)
    if op == "neg":
        return _as(-x, src) if src.is_float else _as(-int(x), src)
    if op == "abs" and not src.is_float:
        return x if src.kind != "int" else _as(abs(int(x)), src)
    if op == "sign":
        if src.is_float:
            return x if (x == 0 or np.isnan(x)) else _as(1.0 if x > 0 else -1.0, src)
        v = int(x)
        return _as((v > 0) - (v < 0), src)
    if not src.is_float:
        raise EvalError(f"{op} of {src}")
    if op in _UN_FLOAT:
        return _as(_UN_FLOAT[op](x), dst)
    if op == "rsqrt":
        return _as(_as(1.0, src) / np.sqrt(x), dst)
    if op == "sigmoid":
        one = _as(1.0, src)
        return _as(one / (one + np.exp(-x)), dst)
    if op == "erf":
        return _as(math.erf(float(x)), dst)
    raise EvalError(f"unary op {op}")


def _cast(x, src, dst):
    if src == dst:
        return x
    if dst.kind == "bool":
        return np.bool_(bool(x != 0) or (src.is_float and bool(np.isnan(x))))
    if src.kind == "bool":
        return _as(1 if x else 0, dst) if not dst.is_float else _as(1.0 if x else 0.0, dst)
    if src.is_float and dst.is_int:  # truncate toward zero; NaN -> 0; out of range saturates
        f = float(x)
        if math.isnan(f):
            return _as(0, dst)
        lo = -(1 << (dst.bits - 1)) if dst.kind == "int" else 0
        hi = (1 << (dst.bits - 1)) - 1 if dst.kind == "int" else (1 << dst.bits) - 1
        if math.isinf(f):
            return _as(hi if f > 0 else lo, dst)
        return _as(min(max(int(f), lo), hi), dst)
    if dst.is_float:
        if src.is_int:
            return _as(float(int(x)), dst) if abs(int(x)) < 1 << 53 else dst.np.type(np.float64(int(x)))
        return dst.np.type(x)
    return _as(int(x), dst)


def _better(comb, x, cur, dt, last):
    """Whether ``x`` replaces ``cur`` as the running arg-extreme (NaN is the extreme; first wins)."""
    if dt.is_float:
        xn, cn = bool(np.isnan(x)), bool(np.isnan(cur))
        if last:
            return xn or (not cn and ((x >= cur) if comb == "argmax" else (x <= cur)))
        if cn:
            return False
        return xn or bool((x > cur) if comb == "argmax" else (x < cur))
    xv, cv = (int(x), int(cur)) if dt.kind != "bool" else (bool(x), bool(cur))
    if last:
        return (xv >= cv) if comb == "argmax" else (xv <= cv)
    return (xv > cv) if comb == "argmax" else (xv < cv)
