"""From tensor ops to loop IR: lazy tensors that op definitions build, and their materialisation.

Each core op's ``lower(b, *inputs, **attrs)`` receives :class:`Tensor` handles and returns tensors built
with the :class:`KernelBuilder`:

* ``b.compute(shape, fn)``: element ``idx`` is the expression ``fn(*idx)`` (injective ops). Indexing a
  computed tensor calls its function, so a chain of injective ops *is* their fusion;
* ``b.reduce(shape, rshape, fn, combiner)``: a reduction over ``rshape`` of ``fn(idx, ridx)``;
* ``b.extern(outputs, inputs, body)``: an op written directly as loop IR statements over buffers
  (sorting, scans, data-dependent loops); it always gets a kernel of its own.

:func:`materialize` turns a tensor into the loop nest that stores it in a buffer, hoisting each
reduction to the outermost loop where its inputs are known (softmax's max and sum are computed once
per row, inside the same kernel as the division).

For op authors: the finished pattern is at the end of ``kiln/ir/ops/elementwise.py``. A lowering that
cannot handle a case (a data-dependent output shape, a dtype the targets lack) raises
``NotImplementedError`` with the reason; the compiler reports it naming op and node. Test a lowering
with ``kiln.testing.check_compiled(graph)`` (compiled for cpu vs ``kiln.interpret``). Several engineers
share one checkout: commit only explicit paths (``git add <files>``), never ``git add -A``, ``stash`` or
``reset``.
"""
from __future__ import annotations

from typing import Callable, Sequence

from . import loops as L
from .dtypes import dtype as _dtype


class Tensor:
    """A lazily defined tensor: ``t[i, j]`` is the expression of that element."""

    __slots__ = ("shape", "dtype", "fn", "kind", "buffer", "origin", "_rvars", "meta")

    def __init__(self, shape, dtype, fn: Callable, kind: str = "injective", buffer=None):
        self.shape = tuple(L.as_expr(s) if not isinstance(s, L.Expr) else s for s in shape)
        self.dtype = _dtype(dtype)
        self.fn = fn
        self.kind = kind  # 'buffer' | 'injective' | 'reduce' | 'extern'
        self.buffer = buffer
        self.origin = None  # the graph value it defines, set by the compiler
        self._rvars = None
        self.meta = {}

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, idx) -> L.Expr:
        if not isinstance(idx, tuple):
            idx = (idx,)
        if len(idx) != len(self.shape):
            raise IndexError(f"tensor of rank {len(self.shape)} indexed with {len(idx)} indices")
        return self.fn(*(L.as_expr(i) for i in idx))

    def __repr__(self):
        return f"Tensor({self.kind}, {self.dtype}[{', '.join(map(L.fmt_expr, self.shape))}])"


def placeholder(buf: L.Buffer) -> Tensor:
    t = Tensor(buf.shape, buf.dtype, lambda *i: L.Load(buf, tuple(i)), kind="buffer", buffer=buf)
    return t


class ExternOp:
    """What ``b.extern`` records: output buffers, input buffers and the statement body."""

    def __init__(self, outputs, inputs, body):
        self.outputs, self.inputs, self.body = outputs, inputs, body


class KernelBuilder:
    """Handed to each op's ``lower``; builds lazy tensors and fresh variables."""

    def __init__(self, prefix: str = ""):
        self._n = 0
        self.prefix = prefix
        self.externs: list = []
        self.gemms: dict = {}           # Reduce expression -> (GemmSpec, batch index, m, n)
        self.reduce_owner: dict = {}    # Reduce expression -> the Tensor whose element it is
        self.materialize_hook = None    # set by the compiler: (tensor, name) -> tensor over a buffer
        self.constant_hook = None       # tensor -> numpy array when it is a compile-time constant
        self.weight_hook = None         # (array, dtype) -> tensor over a new weight buffer

    # -- what the compiler provides (each has a safe default for builders used alone)
    def buffer(self, t: "Tensor", name: str = "tmp") -> "Tensor":
        """Ask for ``t`` to be computed into a buffer of its own (an operand read many times)."""
        if t.kind == "buffer" or self.materialize_hook is None:
            return t
        return self.materialize_hook(t, name)

    def constant_of(self, t: "Tensor"):
        """The value of ``t`` when it is a compile-time constant (a weight), else None."""
        return self.constant_hook(t) if self.constant_hook is not None else None

    def weight(self, array, dtype) -> "Tensor | None":
        """A new weight (e.g. a packed copy of one); None when the builder has no compiler behind it."""
        return self.weight_hook(array, dtype) if self.weight_hook is not None else None

    def gemm(self, shape, spec: "GemmSpec", index_of) -> "Tensor":
        """A contraction as a lazy tensor; ``index_of(idx) -> (batch index, m, n)``."""
        return _gemm_tensor(self, shape, spec, index_of)

    # -- variables and constants
    def var(self, prefix: str = "i", dt="i64") -> L.Var:
        self._n += 1
        return L.Var(f"{prefix}{self.prefix}{self._n}", _dtype(dt))

    def dim(self, d) -> L.Expr:
        return L.as_expr(d) if not isinstance(d, L.Expr) else d

    def dims(self, shape) -> tuple:
        return tuple(self.dim(d) for d in shape)

    const = staticmethod(L.const)

    # -- tensors
    def compute(self, shape, fn: Callable, dtype=None) -> Tensor:
        shape = self.dims(shape)
        if dtype is None:
            dtype = fn(*[L.Const(0)] * len(shape)).dtype
        return Tensor(shape, dtype, fn)

    def reduce(self, shape, rshape, fn: Callable, combiner: str, init=None, dtype=None,
               select_last: bool = False) -> Tensor:
        """Reduce ``fn(idx, ridx)`` over ``rshape`` with ``combiner`` (sum, prod, max, min, argmax,
        argmin); the result has ``shape``."""
        shape, rshape = self.dims(shape), self.dims(rshape)
        rvars = tuple(self.var("r") for _ in rshape)
        probe = fn(tuple(L.Const(0) for _ in shape), rvars)
        body_dt = probe.dtype
        if init is None:
            init = identity(combiner, body_dt)
        axes = tuple(zip(rvars, rshape))

        def element(*idx):
            r = L.Reduce(combiner, L.as_expr(init, body_dt), axes, fn(idx, rvars), select_last)
            self.reduce_owner[r] = t
            return r

        out_dt = _dtype("i64") if combiner in ("argmax", "argmin") else body_dt
        t = Tensor(shape, dtype or out_dt, element, kind="reduce")
        return t

    def extern(self, outputs: Sequence, inputs: Sequence[Tensor], body: Callable) -> list:
        """An op written as statements: ``body(b, outs, ins) -> Stmt`` over buffers. ``outputs`` are
        (shape, dtype) pairs; the result tensors read the buffers the compiler gives them."""
        outs = [L.Buffer(f"out{k}", dt, self.dims(shape)) for k, (shape, dt) in enumerate(outputs)]
        op = ExternOp(outs, list(inputs), body)
        self.externs.append(op)
        tensors = []
        for k, buf in enumerate(outs):
            t = Tensor(buf.shape, buf.dtype, _extern_reader(op, k), kind="extern")
            t.meta["extern"] = (op, k)
            tensors.append(t)
        return tensors


def _extern_reader(op, k):
    def read(*idx):
        raise RuntimeError("an extern tensor must be materialised before it is read")
    return read


def identity(combiner: str, dt) -> L.Expr:
    dt = _dtype(dt)
    if combiner == "sum":
        return L.const(0, dt)
    if combiner == "prod":
        return L.const(1, dt)
    if combiner in ("max", "min"):
        import numpy as np

        if dt.is_float:
            return L.const(float("-inf") if combiner == "max" else float("inf"), dt)
        if dt.kind == "bool":
            return L.const(combiner == "min", dt)
        info = np.iinfo(dt.np)
        return L.const(info.min if combiner == "max" else info.max, dt)
    if combiner in ("argmax", "argmin"):
        return L.Const(0)
    raise ValueError(f"unknown combiner {combiner!r}")


# ------------------------------------------------------------------------------ elementwise helpers
def broadcast_index(t: Tensor, idx: Sequence[L.Expr], out_rank: int) -> tuple:
    """Index into ``t`` for output index ``idx`` under numpy broadcasting (size-1 dims read 0)."""
    off = out_rank - t.ndim
    out = []
    for d in range(t.ndim):
        s = t.shape[d]
        out.append(L.Const(0) if isinstance(s, L.Const) and s.value == 1 else idx[off + d])
    return tuple(out)


def broadcast_shape(*shapes) -> tuple:
    rank = max(len(s) for s in shapes)
    out = []
    for d in range(rank):
        cands = [s[d - (rank - len(s))] for s in shapes if d - (rank - len(s)) >= 0]
        pick = None
        for c in cands:
            if isinstance(c, L.Const) and c.value == 1:
                continue
            pick = c if pick is None or isinstance(pick, L.Var) else pick
        out.append(pick if pick is not None else L.Const(1))
    return tuple(out)


# ------------------------------------------------------------------------------------ materialising
class HoistError(Exception):
    """A reduction inside the expression would be recomputed: materialise ``tensor`` first."""

    def __init__(self, reduce_expr):
        super().__init__("reduction would be recomputed per element")
        self.reduce_expr = reduce_expr


def materialize(t: Tensor, out: L.Buffer, b: KernelBuilder, *, vector_lanes: Callable | None = None,
                parallel_min: int = 1 << 14) -> L.Stmt:
    """The loop nest storing every element of ``t`` into ``out``, reductions hoisted.

    Raises :class:`HoistError` naming a reduction that no loop level can compute once per use.
    ``vector_lanes(dtype) -> int`` asks for the innermost loop to be vectorised by that many lanes."""
    ivars = [b.var("i") for _ in t.shape]
    value = t[tuple(ivars)]
    store: L.Stmt = L.Store(out, tuple(ivars), value)
    loops = list(zip(ivars, t.shape))
    return build_nest(loops, store, b, vector_lanes=vector_lanes, parallel_min=parallel_min, dtype=t.dtype)


def static(e: L.Expr):
    return int(e.value) if isinstance(e, L.Const) else None


def build_nest(loops, store: L.Store, b: KernelBuilder, *, vector_lanes=None, parallel_min=1 << 14, dtype=None):
    ranges = {}
    for v, n in loops:
        s = static(n)
        ranges[v.name] = (0, (s - 1) if s is not None else (1 << 40))
    value = L.simplify(store.value, ranges)
    index = tuple(L.simplify(i, ranges) for i in store.index)
    lets, value = hoist_reductions(value, [v for v, _ in loops], loops, b)
    # loop structure: outer loops fused into one parallel loop when there is enough work
    nest = _nest(loops, lets, L.Store(store.buf, index, value), b, vector_lanes, parallel_min, dtype)
    return L.simplify_stmt(nest)


def hoist_reductions(value: L.Expr, loop_vars: list, loops, b: KernelBuilder):
    """Bind each reduction to a ``Let`` at the loop level after which all its free variables are known.

    Returns ({level: [(Var, Reduce)]}, rewritten value). Level -1 is outside every loop."""
    pos = {v.name: k for k, v in enumerate(loop_vars)}
    extents = [static(n) for _, n in loops]
    lets: dict = {}
    level_of_let: dict = {}
    seen: dict = {}
    # variables some reduction inside ``value`` binds; any other free name (a symbol such as
    # ``batch``) is known before the first loop
    bound = {v.name for node in L.walk(value) if isinstance(node, L.Reduce) for v, _ in node.axes}

    def visit(e):
        if not isinstance(e, L.Reduce):
            return None
        if e in seen:
            return seen[e]
        fv = L.free_vars(e)
        levels = []
        for name in fv:
            if name in pos:
                levels.append(pos[name])
            elif name in level_of_let:
                levels.append(level_of_let[name])
            elif name in bound:
                return None  # bound by an enclosing reduction: stays where it is
        lvl = max(levels, default=-1)
        # computed once per iteration of loops 0..lvl; needed once per distinct value of its vars
        used = {pos[n] for n in fv if n in pos} | {level_of_let[n] for n in fv if n in level_of_let}
        waste = 1
        for k in range(lvl + 1):
            if k not in used:
                ext = extents[k]
                waste *= ext if ext is not None else 2
        if waste > 1:
            raise HoistError(e)
        if lvl == len(loop_vars) - 1:
            seen[e] = None
            return None  # innermost: computed where it is used, once per element
        v = b.var("acc", e.dtype)
        lets.setdefault(lvl, []).append((v, e))
        level_of_let[v.name] = lvl
        seen[e] = v
        return v

    value = L.map_expr(value, visit)
    # a reduction still nested inside another one's body is recomputed per outer step: refuse
    for node in L.walk(value):
        if isinstance(node, L.Reduce):
            for inner in L.walk(node.body):
                if isinstance(inner, L.Reduce):
                    raise HoistError(inner)
    for lvl in lets:
        for _, r in lets[lvl]:
            for inner in L.walk(r.body):
                if isinstance(inner, L.Reduce):
                    raise HoistError(inner)
    return lets, value


def _nest(loops, lets, store, b, vector_lanes, parallel_min, dtype):
    n = len(loops)
    # vectorise the innermost loop when its extent is static and long enough
    lanes = vector_lanes(dtype) if (vector_lanes and n) else 0
    inner_static = static(loops[-1][1]) if n else None
    body: L.Stmt = store
    for lvl in range(n - 1, -1, -1):
        v, ext = loops[lvl]
        for var, red in reversed(lets.get(lvl, [])):
            body = L.Let(var, red, body)
        if lvl == n - 1 and lanes > 1 and (inner_static is None or inner_static >= lanes):
            body = _vector_loop(v, ext, body, lanes, b)
        else:
            body = L.For(v, ext, body)
    for var, red in reversed(lets.get(-1, [])):
        body = L.Let(var, red, body)
    return _parallelize(body, loops, parallel_min, b)


def _vector_loop(v: L.Var, ext: L.Expr, body: L.Stmt, lanes: int, b) -> L.Stmt:
    """``for v in ext`` split into a vectorised main part of ``lanes`` and a scalar remainder."""
    s = static(ext)
    vo, vi = b.var(v.name + "o"), b.var(v.name + "v")
    main_body = _subst_stmt(body, {v.name: vo * lanes + vi})
    if s is not None and s % lanes == 0:
        return L.For(vo, L.Const(s // lanes), L.For(vi, L.Const(lanes), main_body, "vectorized"))
    full = L.simplify(ext // lanes)
    main = L.For(vo, full, L.For(vi, L.Const(lanes), main_body, "vectorized"))
    rest = L.For(v, L.simplify(ext - full * lanes), _subst_stmt(body, {v.name: v + full * lanes}))
    return L.seq(main, rest)


def _subst_stmt(s: L.Stmt, env) -> L.Stmt:
    return L.map_stmt(s, lambda e: L.substitute(e, env))


def _parallelize(body: L.Stmt, loops, parallel_min: int, b) -> L.Stmt:
    """Mark the outermost loop parallel, fusing outer loops first when they are short."""
    if not isinstance(body, L.For) or body.kind != "serial":
        return body
    total = 1
    for _, n in loops:
        s = static(n)
        total *= s if s is not None else 64
    if total < parallel_min:
        return body
    # fuse the outer loops while the parallel extent is small (batch 1, a few channels)
    chain = [body]
    while isinstance(chain[-1].body, L.For) and chain[-1].body.kind == "serial":
        ext = 1
        for f in chain:
            s = static(f.extent)
            ext *= s if s is not None else 64
        if ext >= 64:
            break
        chain.append(chain[-1].body)
    if len(chain) == 1:
        body.kind = "parallel"
        return body
    return fuse_loops(chain, b, kind="parallel")


def fuse_loops(chain: list, b, kind: str = "serial") -> L.Stmt:
    """Fuse a perfect nest of loops ``chain`` (outer first) into one loop over the product."""
    total = L.Const(1)
    for f in chain:
        total = total * f.extent
    fv = b.var("f")
    env = {}
    rest = fv
    for f in reversed(chain):
        env[f.var.name] = L.simplify(rest % f.extent) if f is not chain[0] else rest
        rest = rest // f.extent
    inner = chain[-1].body
    body = _subst_stmt(inner, env)
    return L.For(fv, L.simplify(total), body, kind)


# ------------------------------------------------------------------------------ contractions (GEMM)
class GemmSpec:
    """A contraction in GEMM form, which the tiling schedule turns into a register-blocked micro-kernel.

    Over the index space (batch..., m, n): ``C[b, m, n] = sum_k a(b, m, k) * bv(b, k, n)`` where ``bv`` is
    the *vector side* (contiguous along n) and ``a`` the *broadcast side*. ``out_index(b, m, n)`` gives
    the tensor index of that element. ``bv_packed``/``a_packed`` optionally give accessors over weights
    packed at compile time into panels ``[ceil(N/nr), K, nr]`` / ``[ceil(M/mr), K, mr]`` (see
    :mod:`kiln.passes.tiling`)."""

    def __init__(self, batch, M, N, K, a, bv, out_index, dtype, *, a_const=None, bv_const=None):
        self.batch = tuple(batch)
        self.M, self.N, self.K = M, N, K
        self.a, self.bv, self.out_index = a, bv, out_index
        self.dtype = _dtype(dtype)
        self.a_array = a_const    # constant broadcast side [G, M, K] (numpy) for packing, or None
        self.bv_array = bv_const  # constant vector side [K, N] (numpy) for packing, or None
        self.out_shape = None     # the contraction's result shape (set by b.gemm)


def _gemm_tensor(b: "KernelBuilder", shape, spec: GemmSpec, index_of: Callable) -> Tensor:
    """The contraction as a lazy tensor: element ``idx`` is the reduction (the generic path), and each
    reduction expression is recorded so the tiling schedule can recognise it."""
    kv = b.var("k")

    def element(*idx):
        bidx, m, n = index_of(idx)
        body = L.binary("mul", spec.a(bidx, m, kv), spec.bv(bidx, kv, n))
        r = L.Reduce("sum", L.const(0, spec.dtype), ((kv, spec.K),), body)
        b.gemms[r] = (spec, tuple(bidx), m, n)
        b.reduce_owner[r] = t
        return r

    t = Tensor(shape, spec.dtype, element, kind="reduce")
    spec.out_shape = t.shape
    t.meta["gemm"] = spec
    return t
