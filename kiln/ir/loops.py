"""Loop IR: the kernel-level IR every target consumes.

A :class:`Kernel` owns buffers (dtype, shape, strides) and a statement tree of loop nests:

* expressions (immutable, hashable): :class:`Const`, :class:`Var`, :class:`Bin` (arithmetic, min/max,
  logic, shifts, pow), :class:`Cmp`, :class:`Un` (negation and the math intrinsics: exp, log, erf, ...),
  :class:`Select`, :class:`Cast`, :class:`Load` and :class:`Reduce` (a combiner, an init and reduction
  axes over a body);
* statements: :class:`For` (with a kind: serial, parallel, vectorized, unrolled, or a GPU axis),
  :class:`Store`, :class:`Let` (a scalar computed once), :class:`Alloc` (a local buffer), :class:`If`,
  :class:`Seq` and :class:`Barrier` (GPU schedules only: every work-item of a work-group waits there).

A buffer's ``scope`` is ``"global"`` (a kernel parameter), ``"local"`` (an ``Alloc`` private to one
thread of execution) or ``"shared"`` (an ``Alloc`` shared by the work-items of one GPU work-group,
written by GPU schedules only). CPU targets refuse barriers and shared buffers.

Index arithmetic is int64. :func:`simplify` folds constants, normalises affine index expressions and
removes floor-division/modulo that loop ranges make trivial. ``str(kernel)`` gives the text form used
in dumps and tests. Targets emit only the closed set of scalar operations listed in :data:`BIN_OPS` and
:data:`UN_OPS`, so a new tensor op never touches a backend.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from .dtypes import DType, dtype as _dtype

I64 = _dtype("i64")
BOOL = _dtype("bool")

#: binary operators: arithmetic follows the elementwise op rules (``div`` truncates for integers,
#: ``floordiv``/``mod`` floor, ``rem`` truncates); logic ops take bools or integers.
BIN_OPS = ("add", "sub", "mul", "div", "floordiv", "mod", "rem", "min", "max", "pow", "atan2",
           "and", "or", "xor", "shl", "shr")
CMP_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
#: unary operators; the transcendental ones are the math intrinsics a target must provide
UN_OPS = ("neg", "not", "abs", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tan", "asin", "acos",
          "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "floor", "ceil", "round",
          "trunc", "isnan", "isinf", "sign", "sigmoid")
REDUCERS = ("sum", "prod", "max", "min", "argmax", "argmin")
LOOP_KINDS = ("serial", "parallel", "vectorized", "unrolled",
              "gpu.block.x", "gpu.block.y", "gpu.block.z", "gpu.thread.x", "gpu.thread.y", "gpu.thread.z")


# ----------------------------------------------------------------------------------------- expressions
class Expr:
    """Base of all expressions. Every expression has a ``dtype``."""

    __slots__ = ()
    dtype: DType

    def __add__(self, o):
        return binary("add", self, o)

    def __radd__(self, o):
        return binary("add", o, self)

    def __sub__(self, o):
        return binary("sub", self, o)

    def __rsub__(self, o):
        return binary("sub", o, self)

    def __mul__(self, o):
        return binary("mul", self, o)

    def __rmul__(self, o):
        return binary("mul", o, self)

    def __floordiv__(self, o):
        return binary("floordiv", self, o)

    def __mod__(self, o):
        return binary("mod", self, o)

    def __neg__(self):
        return unary("neg", self)

    def __str__(self):
        return fmt_expr(self)


def _frozen(cls):
    cls = dataclass(frozen=True, eq=True, repr=False)(cls)
    cls.__repr__ = lambda self: fmt_expr(self)
    return cls


@_frozen
class Const(Expr):
    value: object
    dtype: DType = I64


@_frozen
class Var(Expr):
    name: str
    dtype: DType = I64


@_frozen
class Bin(Expr):
    op: str
    a: Expr
    b: Expr
    dtype: DType


@_frozen
class Cmp(Expr):
    op: str
    a: Expr
    b: Expr

    @property
    def dtype(self):
        return BOOL


@_frozen
class Un(Expr):
    op: str
    a: Expr
    dtype: DType


@_frozen
class Select(Expr):
    cond: Expr
    a: Expr
    b: Expr

    @property
    def dtype(self):
        return self.a.dtype


@_frozen
class Cast(Expr):
    a: Expr
    dtype: DType
    saturate: bool = True  # float8 destinations only (see kiln.ir.ops._cast)
    round_mode: str = "up"  # f8e8m0 destinations only


@_frozen
class Bitcast(Expr):
    a: Expr
    dtype: DType


class Buffer:
    """A named buffer: dtype, shape (index expressions) and strides in elements (row-major by default).

    ``scope`` is ``"global"`` for kernel parameters, ``"local"`` for buffers a kernel allocates."""

    __slots__ = ("name", "dtype", "shape", "strides", "scope")

    def __init__(self, name: str, dtype, shape: Sequence, strides: Sequence | None = None, scope: str = "global"):
        self.name = name
        self.dtype = _dtype(dtype)
        self.shape = tuple(as_expr(s) for s in shape)
        if strides is None:
            st, acc = [], Const(1)
            for s in reversed(self.shape):
                st.append(acc)
                acc = simplify(acc * s)
            strides = tuple(reversed(st))
        self.strides = tuple(as_expr(s) for s in strides)
        self.scope = scope

    def __getitem__(self, index) -> "Load":
        if not isinstance(index, tuple):
            index = (index,)
        return Load(self, tuple(as_expr(i) for i in index))

    def size(self) -> Expr:
        n = Const(1)
        for s in self.shape:
            n = n * s
        return simplify(n)

    def __repr__(self):
        return f"{self.name}: {self.dtype}[{', '.join(map(fmt_expr, self.shape))}]"


@_frozen
class Load(Expr):
    buf: Buffer
    index: tuple

    @property
    def dtype(self):
        return self.buf.dtype


@_frozen
class Reduce(Expr):
    """``combiner`` over the ``axes`` (pairs of Var and extent) of ``body``, starting from ``init``.

    ``argmax``/``argmin`` reduce over one axis and give the int64 index of the first extreme value
    (NaN counts as the extreme); ``select_last`` picks the last one instead."""

    combiner: str
    init: Expr
    axes: tuple
    body: Expr
    select_last: bool = False

    @property
    def dtype(self):
        return I64 if self.combiner in ("argmax", "argmin") else self.body.dtype


def as_expr(x, dtype=None) -> Expr:
    if isinstance(x, Expr):
        return x
    if isinstance(x, bool):
        return Const(bool(x), BOOL)
    if isinstance(x, int):
        return Const(int(x), _dtype(dtype) if dtype else I64)
    if isinstance(x, float):
        return Const(float(x), _dtype(dtype) if dtype else _dtype("f64"))
    if isinstance(x, str):  # a symbolic dim
        from .dims import _poly

        return dim_expr(x)
    import numpy as np

    if isinstance(x, np.generic):
        return as_expr(x.item(), dtype or _dtype(x.dtype))
    raise TypeError(f"cannot make an expression of {x!r}")


def dim_expr(d) -> Expr:
    """A kiln dim (int or symbolic polynomial string) as an int64 expression over symbol Vars."""
    if isinstance(d, int):
        return Const(d)
    from .dims import _poly

    total: Expr = Const(0)
    for key, coef in sorted(_poly(d).items()):
        term: Expr = Const(coef)
        for s in key:
            term = term * Var(s)
        total = total + term
    return simplify(total)


def const(value, dt) -> Const:
    dt = _dtype(dt)
    if dt.kind == "bool":
        return Const(bool(value), dt)
    if dt.is_float:
        return Const(float(value), dt)
    return Const(int(value), dt)


def binary(op, a, b) -> Expr:
    if not isinstance(a, Expr):
        a = as_expr(a, b.dtype if isinstance(b, Expr) else None)
    if not isinstance(b, Expr):
        b = as_expr(b, a.dtype)
    if op in CMP_OPS:
        return Cmp(op, a, b)
    return _fold(Bin(op, a, b, a.dtype))


def unary(op, a) -> Expr:
    return Un(op, a, BOOL if op in ("isnan", "isinf") else a.dtype)


def select(c, a, b) -> Expr:
    if isinstance(c, Const):
        return a if c.value else b
    return Select(c, a, b)


def cast(a: Expr, dt, saturate: bool = True, round_mode: str = "up") -> Expr:
    dt = _dtype(dt)
    if a.dtype == dt:
        return a
    if isinstance(a, Const) and a.dtype.is_int and dt.is_int and dt.bits == 64:
        return Const(int(a.value), dt)
    if not (dt.is_float and dt.bits <= 8):  # the flags mean nothing elsewhere: keep the default text
        saturate = True
    if dt.name != "f8e8m0":
        round_mode = "up"
    return Cast(a, dt, bool(saturate), round_mode)


def minimum(a, b):
    return binary("min", a, b)


def maximum(a, b):
    return binary("max", a, b)


# ----------------------------------------------------------------------------------------- statements
class Stmt:
    __slots__ = ()

    def __str__(self):
        return "\n".join(fmt_stmt(self, 0))


@dataclass(eq=False)
class For(Stmt):
    var: Var
    extent: Expr
    body: Stmt
    kind: str = "serial"
    start: Expr = field(default_factory=lambda: Const(0))

    def __post_init__(self):
        if self.kind not in LOOP_KINDS:
            raise ValueError(f"unknown loop kind {self.kind!r}")


@dataclass(eq=False)
class Store(Stmt):
    buf: Buffer
    index: tuple
    value: Expr


@dataclass(eq=False)
class Let(Stmt):
    var: Var
    value: Expr
    body: Stmt


@dataclass(eq=False)
class Alloc(Stmt):
    buf: Buffer
    body: Stmt


@dataclass(eq=False)
class If(Stmt):
    cond: Expr
    then: Stmt
    else_: Stmt | None = None


@dataclass(eq=False)
class Seq(Stmt):
    body: list


@dataclass(eq=False)
class Barrier(Stmt):
    """A work-group barrier with a fence on shared (``"shared"``-scope) memory: GPU schedules only,
    where a ``gpu.thread.*`` loop's iterations run concurrently and meet here."""


def seq(*stmts) -> Stmt:
    flat = []
    for s in stmts:
        if s is None:
            continue
        if isinstance(s, Seq):
            flat.extend(s.body)
        else:
            flat.append(s)
    return flat[0] if len(flat) == 1 else Seq(flat)


@dataclass(eq=False)
class Kernel:
    """One kernel: parameters in call order (buffers), the symbols it reads, and its body."""

    name: str
    params: list
    body: Stmt
    syms: list = field(default_factory=list)
    ops: list = field(default_factory=list)

    def __str__(self):
        head = ", ".join(f"{b.name}: {b.dtype}[{', '.join(map(fmt_expr, b.shape))}]" for b in self.params)
        syms = f" syms({', '.join(self.syms)})" if self.syms else ""
        ops = f"  # {' '.join(self.ops)}" if self.ops else ""
        lines = [f"kernel {self.name}({head}){syms} {{{ops}"]
        lines += fmt_stmt(self.body, 1)
        lines.append("}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------- visitors
def map_expr(e: Expr, fn: Callable[[Expr], Expr | None]) -> Expr:
    """Rebuild ``e`` bottom-up; ``fn`` may return a replacement for a node (or None to keep it)."""
    memo: dict = {}

    def go(x):
        key = id(x)
        if key in memo:
            return memo[key][1]
        if isinstance(x, Bin):
            y = Bin(x.op, go(x.a), go(x.b), x.dtype)
        elif isinstance(x, Cmp):
            y = Cmp(x.op, go(x.a), go(x.b))
        elif isinstance(x, Un):
            y = Un(x.op, go(x.a), x.dtype)
        elif isinstance(x, Select):
            y = Select(go(x.cond), go(x.a), go(x.b))
        elif isinstance(x, Cast):
            y = Cast(go(x.a), x.dtype, x.saturate, x.round_mode)
        elif isinstance(x, Bitcast):
            y = Bitcast(go(x.a), x.dtype)
        elif isinstance(x, Load):
            y = Load(x.buf, tuple(go(i) for i in x.index))
        elif isinstance(x, Reduce):
            y = Reduce(x.combiner, go(x.init), tuple((v, go(n)) for v, n in x.axes), go(x.body), x.select_last)
        else:
            y = x
        r = fn(y)
        r = y if r is None else r
        memo[key] = (x, r)
        return r

    return go(e)


def substitute(e: Expr, env: Mapping[str, Expr]) -> Expr:
    if not env:
        return e
    return map_expr(e, lambda x: env.get(x.name) if isinstance(x, Var) else None)


def children(e: Expr):
    if isinstance(e, (Bin, Cmp)):
        return (e.a, e.b)
    if isinstance(e, (Un, Cast, Bitcast)):
        return (e.a,)
    if isinstance(e, Select):
        return (e.cond, e.a, e.b)
    if isinstance(e, Load):
        return e.index
    if isinstance(e, Reduce):
        return (e.init, *(n for _, n in e.axes), e.body)
    return ()


def walk(e: Expr):
    """Every node of ``e``, children before parents (each distinct object once)."""
    seen = set()
    out = []

    def go(x):
        if id(x) in seen:
            return
        seen.add(id(x))
        for c in children(x):
            go(c)
        out.append(x)

    go(e)
    return out


def free_vars(e: Expr) -> set:
    out: set = set()

    def go(x, bound):
        if isinstance(x, Var):
            if x.name not in bound:
                out.add(x.name)
        elif isinstance(x, Reduce):
            go(x.init, bound)
            b2 = bound | {v.name for v, _ in x.axes}
            for _, n in x.axes:
                go(n, bound)
            go(x.body, b2)
        else:
            for c in children(x):
                go(c, bound)

    go(e, frozenset())
    return out


def map_stmt(s: Stmt, fexpr: Callable[[Expr], Expr]) -> Stmt:
    """Apply ``fexpr`` to every expression of a statement tree (buffers stay)."""
    if isinstance(s, For):
        return For(s.var, fexpr(s.extent), map_stmt(s.body, fexpr), s.kind, fexpr(s.start))
    if isinstance(s, Store):
        return Store(s.buf, tuple(fexpr(i) for i in s.index), fexpr(s.value))
    if isinstance(s, Let):
        return Let(s.var, fexpr(s.value), map_stmt(s.body, fexpr))
    if isinstance(s, Alloc):
        return Alloc(s.buf, map_stmt(s.body, fexpr))
    if isinstance(s, If):
        return If(fexpr(s.cond), map_stmt(s.then, fexpr), map_stmt(s.else_, fexpr) if s.else_ else None)
    if isinstance(s, Seq):
        return Seq([map_stmt(x, fexpr) for x in s.body])
    if isinstance(s, Barrier):
        return s
    raise TypeError(f"not a statement: {s!r}")


def stmt_children(s: Stmt):
    if isinstance(s, (For, Let, Alloc)):
        return [s.body]
    if isinstance(s, If):
        return [s.then] + ([s.else_] if s.else_ else [])
    if isinstance(s, Seq):
        return list(s.body)
    return []


def walk_stmts(s: Stmt):
    yield s
    for c in stmt_children(s):
        yield from walk_stmts(c)


# ------------------------------------------------------------------------------------------ simplifier
def _is_int(e: Expr) -> bool:
    return e.dtype.is_int


def _fold(e: Bin) -> Expr:
    """Local constant folding and identities for one binary node (operands already simple)."""
    a, b, op = e.a, e.b, e.op
    if not e.dtype.is_int:
        return e
    if isinstance(a, Const) and isinstance(b, Const):
        x, y = int(a.value), int(b.value)
        v = None
        if op == "add":
            v = x + y
        elif op == "sub":
            v = x - y
        elif op == "mul":
            v = x * y
        elif op == "floordiv" and y:
            v = x // y
        elif op == "mod" and y:
            v = x % y
        elif op == "min":
            v = min(x, y)
        elif op == "max":
            v = max(x, y)
        if v is not None and e.dtype.bits == 64:
            return Const(v, e.dtype)
    if op == "add":
        if _zero(a):
            return b
        if _zero(b):
            return a
    elif op == "sub" and _zero(b):
        return a
    elif op == "mul":
        if _one(a):
            return b
        if _one(b):
            return a
        if _zero(a) or _zero(b):
            return Const(0, e.dtype)
    elif op in ("floordiv", "div") and _one(b):
        return a
    elif op == "mod" and _one(b):
        return Const(0, e.dtype)
    return e


def _zero(e):
    return isinstance(e, Const) and e.value == 0


def _one(e):
    return isinstance(e, Const) and e.value == 1


def affine(e: Expr):
    """``e`` as {term: coefficient} over int64 atoms (term None is the constant), or None."""
    if not (e.dtype.is_int and e.dtype.bits == 64):
        return None
    if isinstance(e, Const):
        return {None: int(e.value)}
    if isinstance(e, Bin) and e.op in ("add", "sub"):
        x, y = affine(e.a), affine(e.b)
        if x is None or y is None:
            return None
        s = 1 if e.op == "add" else -1
        out = dict(x)
        for k, v in y.items():
            out[k] = out.get(k, 0) + s * v
        return _recombine({k: v for k, v in out.items() if v or k is None})
    if isinstance(e, Bin) and e.op == "mul":
        x, y = affine(e.a), affine(e.b)
        if x is not None and y is not None:
            if set(x) <= {None}:
                x, y = y, x
            if set(y) <= {None}:
                c = y.get(None, 0)
                return {k: v * c for k, v in x.items() if v * c or k is None}
    return {e: 1, None: 0}


def _recombine(terms: dict) -> dict:
    """``c*(x // c) + (x % c) -> x`` (times a common coefficient): unflattening then flattening an
    index gives the index back, so a reshape between fused ops keeps accesses affine."""
    changed = True
    while changed:
        changed = False
        for q, qc in list(terms.items()):
            if not (isinstance(q, Bin) and q.op == "floordiv" and isinstance(q.b, Const)):
                continue
            c = int(q.b.value)
            r = Bin("mod", q.a, q.b, q.dtype)
            rc = terms.get(r)
            if rc and qc == c * rc:
                del terms[q], terms[r]
                inner = affine(q.a) or {q.a: 1}
                for k, v in inner.items():
                    terms[k] = terms.get(k, 0) + v * rc
                terms = {k: v for k, v in terms.items() if v or k is None}
                changed = True
                break
    return terms


def from_affine(terms: Mapping) -> Expr:
    out: Expr | None = None
    items = sorted(((k, v) for k, v in terms.items() if k is not None and v),
                   key=lambda kv: (0 if isinstance(kv[0], Var) else 1, fmt_expr(kv[0])))
    for k, v in items:
        t = k if v == 1 else Bin("mul", k, Const(v), I64)
        out = t if out is None else Bin("add", out, t, I64)
    c = terms.get(None, 0)
    if out is None:
        return Const(c)
    if c:
        out = Bin("add", out, Const(c), I64) if c > 0 else Bin("sub", out, Const(-c), I64)
    return out


def bounds(e: Expr, ranges: Mapping[str, tuple]):
    """Inclusive integer (lo, hi) of an int expression given var ranges, or None if unknown."""
    if isinstance(e, Const) and e.dtype.is_int:
        return (int(e.value), int(e.value))
    if isinstance(e, Var):
        return ranges.get(e.name)
    if isinstance(e, Bin):
        x, y = bounds(e.a, ranges), bounds(e.b, ranges)
        if x is None or y is None:
            if e.op == "mod" and y is not None and y[0] > 0:
                return (0, y[1] - 1)
            return None
        if e.op == "add":
            return (x[0] + y[0], x[1] + y[1])
        if e.op == "sub":
            return (x[0] - y[1], x[1] - y[0])
        if e.op == "mul":
            c = [x[0] * y[0], x[0] * y[1], x[1] * y[0], x[1] * y[1]]
            return (min(c), max(c))
        if e.op == "floordiv" and y[0] > 0:
            c = [x[0] // y[0], x[0] // y[1], x[1] // y[0], x[1] // y[1]]
            return (min(c), max(c))
        if e.op == "mod" and y[0] > 0:
            if x[0] >= 0 and x[1] < y[0]:
                return x
            return (0, y[1] - 1)
        if e.op == "min":
            return (min(x[0], y[0]), min(x[1], y[1]))
        if e.op == "max":
            return (max(x[0], y[0]), max(x[1], y[1]))
    return None


def simplify(e: Expr, ranges: Mapping[str, tuple] | None = None) -> Expr:
    """Fold constants, normalise affine int64 expressions and drop floor-divisions and modulos that the
    var ``ranges`` (inclusive) make trivial: ``(8*i + j) // 8 -> i`` when 0 <= j < 8."""
    ranges = ranges or {}

    def rule(x: Expr):
        if isinstance(x, Bin):
            if x.dtype.is_int and x.dtype.bits == 64 and x.op in ("floordiv", "mod") and isinstance(x.b, Const) \
                    and int(x.b.value) > 0:
                return _divmod(x, int(x.b.value), ranges)
            y = _fold(x)
            if y is not x:
                return y
            if x.op in ("add", "sub", "mul") and x.dtype.is_int and x.dtype.bits == 64:
                t = affine(x)
                if t is not None:
                    return from_affine(t)
            if x.op in ("min", "max") and x.dtype.is_int:
                ba, bb = bounds(x.a, ranges), bounds(x.b, ranges)
                if ba and bb:
                    if x.op == "min":
                        if ba[1] <= bb[0]:
                            return x.a
                        if bb[1] <= ba[0]:
                            return x.b
                    else:
                        if ba[0] >= bb[1]:
                            return x.a
                        if bb[0] >= ba[1]:
                            return x.b
        if isinstance(x, Cmp) and x.a.dtype.is_int:
            ba, bb = bounds(x.a, ranges), bounds(x.b, ranges)
            if ba and bb:
                lo, hi = ba[0] - bb[1], ba[1] - bb[0]  # range of a - b
                truth = {"lt": (hi < 0, lo >= 0), "le": (hi <= 0, lo > 0), "gt": (lo > 0, hi <= 0),
                         "ge": (lo >= 0, hi < 0), "eq": (lo == hi == 0, lo > 0 or hi < 0),
                         "ne": (lo > 0 or hi < 0, lo == hi == 0)}[x.op]
                if truth[0]:
                    return Const(True, BOOL)
                if truth[1]:
                    return Const(False, BOOL)
        if isinstance(x, Select) and isinstance(x.cond, Const):
            return x.a if x.cond.value else x.b
        if isinstance(x, Bin) and x.op in ("and", "or") and x.dtype == BOOL:
            for p, q in ((x.a, x.b), (x.b, x.a)):
                if isinstance(p, Const):
                    if x.op == "and":
                        return q if p.value else p
                    return p if p.value else q
        return None

    return map_expr(e, rule)


def _divmod(x: Bin, c: int, ranges) -> Expr:
    t = affine(x.a)
    if t is None:
        return _fold(x)
    q_terms, r_terms = {None: 0}, {None: 0}
    for k, v in t.items():
        if k is None:
            q_terms[None] += v // c
            r_terms[None] += v % c
        elif v % c == 0:
            q_terms[k] = v // c
        else:
            r_terms[k] = v
    rest = from_affine(r_terms)
    rb = bounds(rest, ranges)
    if rb is not None and 0 <= rb[0] and rb[1] < c:
        if x.op == "floordiv":
            return from_affine(q_terms)
        return rest
    whole = bounds(x.a, ranges)
    if whole is not None and 0 <= whole[0] and whole[1] < c:
        return x.a if x.op == "mod" else Const(0)
    if isinstance(x.a, Const):
        return _fold(x)
    return Bin(x.op, from_affine(t), Const(c), I64)


def simplify_stmt(s: Stmt, ranges: Mapping[str, tuple] | None = None) -> Stmt:
    """Simplify every expression in a statement tree, using each loop's range for its var."""
    ranges = dict(ranges or {})
    if isinstance(s, For):
        ext = simplify(s.extent, ranges)
        start = simplify(s.start, ranges)
        inner = dict(ranges)
        eb, sb = bounds(ext, ranges), bounds(start, ranges)
        if eb and sb:
            inner[s.var.name] = (sb[0], sb[1] + eb[1] - 1)
        return For(s.var, ext, simplify_stmt(s.body, inner), s.kind, start)
    if isinstance(s, Store):
        return Store(s.buf, tuple(simplify(i, ranges) for i in s.index), simplify(s.value, ranges))
    if isinstance(s, Let):
        v = simplify(s.value, ranges)
        inner = dict(ranges)
        b = bounds(v, ranges) if v.dtype.is_int else None
        if b:
            inner[s.var.name] = b
        return Let(s.var, v, simplify_stmt(s.body, inner))
    if isinstance(s, Alloc):
        return Alloc(s.buf, simplify_stmt(s.body, ranges))
    if isinstance(s, If):
        c = simplify(s.cond, ranges)
        if isinstance(c, Const):
            return simplify_stmt(s.then, ranges) if c.value else (
                simplify_stmt(s.else_, ranges) if s.else_ else Seq([]))
        return If(c, simplify_stmt(s.then, ranges), simplify_stmt(s.else_, ranges) if s.else_ else None)
    if isinstance(s, Seq):
        return seq(*[simplify_stmt(x, ranges) for x in s.body]) if s.body else s
    if isinstance(s, Barrier):
        return s
    raise TypeError(f"not a statement: {s!r}")


# ------------------------------------------------------------------------------------------ text form
_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//", "mod": "%"}


def fmt_expr(e: Expr) -> str:
    if isinstance(e, Const):
        if e.dtype == I64:
            return str(e.value)
        if e.dtype == BOOL:
            return "true" if e.value else "false"
        return f"{e.value!r}:{e.dtype}"
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Bin):
        if e.op in _SYMBOL and e.dtype == I64:
            return f"({fmt_expr(e.a)} {_SYMBOL[e.op]} {fmt_expr(e.b)})"
        return f"{e.op}({fmt_expr(e.a)}, {fmt_expr(e.b)})"
    if isinstance(e, Cmp):
        return f"{e.op}({fmt_expr(e.a)}, {fmt_expr(e.b)})"
    if isinstance(e, Un):
        return f"{e.op}({fmt_expr(e.a)})"
    if isinstance(e, Select):
        return f"select({fmt_expr(e.cond)}, {fmt_expr(e.a)}, {fmt_expr(e.b)})"
    if isinstance(e, Cast):
        flags = ("" if e.saturate else ", nosat") + ("" if e.round_mode == "up" else f", {e.round_mode}")
        return f"cast<{e.dtype}{flags}>({fmt_expr(e.a)})"
    if isinstance(e, Bitcast):
        return f"bitcast<{e.dtype}>({fmt_expr(e.a)})"
    if isinstance(e, Load):
        return f"{e.buf.name}[{', '.join(fmt_expr(i) for i in e.index)}]"
    if isinstance(e, Reduce):
        axes = ", ".join(f"{v.name} < {fmt_expr(n)}" for v, n in e.axes)
        last = "; last" if e.select_last else ""  # part of the meaning: kernels are deduplicated by text
        return f"{e.combiner}({axes}; init={fmt_expr(e.init)}{last}; {fmt_expr(e.body)})"
    return repr(e)


def fmt_stmt(s: Stmt, depth: int) -> list:
    pad = "  " * depth
    if isinstance(s, For):
        kind = "" if s.kind == "serial" else f"{s.kind} "
        # with a start, Python's range(start, stop): the loop runs ``extent`` times from ``start``
        rng = fmt_expr(s.extent) if _zero(s.start) else \
            f"{fmt_expr(s.start)}, {fmt_expr(simplify(s.start + s.extent))}"
        lines = [f"{pad}{kind}for {s.var.name} in range({rng}):"]
        return lines + fmt_stmt(s.body, depth + 1)
    if isinstance(s, Store):
        return [f"{pad}{s.buf.name}[{', '.join(fmt_expr(i) for i in s.index)}] = {fmt_expr(s.value)}"]
    if isinstance(s, Let):
        return [f"{pad}let {s.var.name}: {s.var.dtype} = {fmt_expr(s.value)}"] + fmt_stmt(s.body, depth)
    if isinstance(s, Alloc):
        shared = "shared " if s.buf.scope == "shared" else ""
        return [f"{pad}alloc {shared}{s.buf.name}: {s.buf.dtype}[{', '.join(map(fmt_expr, s.buf.shape))}]"] + \
            fmt_stmt(s.body, depth)
    if isinstance(s, If):
        lines = [f"{pad}if {fmt_expr(s.cond)}:"] + fmt_stmt(s.then, depth + 1)
        if s.else_:
            lines += [f"{pad}else:"] + fmt_stmt(s.else_, depth + 1)
        return lines
    if isinstance(s, Seq):
        return [ln for x in s.body for ln in fmt_stmt(x, depth)] or [f"{pad}pass"]
    if isinstance(s, Barrier):
        return [f"{pad}barrier"]
    return [f"{pad}{s!r}"]


def stmt_free_vars(s: Stmt) -> set:
    out: set = set()
    bound: set = set()

    def go(st, bound):
        if isinstance(st, For):
            out.update(free_vars(st.extent) - bound)
            out.update(free_vars(st.start) - bound)
            go(st.body, bound | {st.var.name})
        elif isinstance(st, Store):
            for i in st.index:
                out.update(free_vars(i) - bound)
            out.update(free_vars(st.value) - bound)
            for sh in st.buf.shape + st.buf.strides:
                out.update(free_vars(sh) - bound)
        elif isinstance(st, Let):
            out.update(free_vars(st.value) - bound)
            go(st.body, bound | {st.var.name})
        elif isinstance(st, Alloc):
            go(st.body, bound)
        elif isinstance(st, If):
            out.update(free_vars(st.cond) - bound)
            go(st.then, bound)
            if st.else_:
                go(st.else_, bound)
        elif isinstance(st, Seq):
            for x in st.body:
                go(x, bound)

    go(s, frozenset())
    # buffer strides of loads
    for b in stmt_buffers(s):
        for sh in b.shape + b.strides:
            out.update(free_vars(sh))
    return out


def stmt_buffers(s: Stmt) -> list:
    seen: dict = {}

    def add_expr(e):
        for n in walk(e):
            if isinstance(n, Load):
                seen.setdefault(id(n.buf), n.buf)

    for st in walk_stmts(s):
        if isinstance(st, Store):
            seen.setdefault(id(st.buf), st.buf)
            add_expr(st.value)
            for i in st.index:
                add_expr(i)
        elif isinstance(st, For):
            add_expr(st.extent)
            add_expr(st.start)
        elif isinstance(st, Let):
            add_expr(st.value)
        elif isinstance(st, If):
            add_expr(st.cond)
    allocated = {id(st.buf) for st in walk_stmts(s) if isinstance(st, Alloc)}
    return [b for k, b in seen.items() if k not in allocated]


_counter = itertools.count()


def fresh_var(prefix: str = "v", dt=I64) -> Var:
    return Var(f"{prefix}{next(_counter)}", _dtype(dt))
