"""GPU scheduling: a loop-IR kernel mapped onto a grid of work-groups of work-items.

Target-neutral (OpenCL and CUDA share it): the only inputs are the kernel and the target's
:class:`~kiln.targets.base.Caps` (``max_threads`` per work-group, ``local_memory`` bytes per group).
Each statement at the top of a kernel's body becomes one :class:`Launch`, a kernel whose body is::

    gpu.block.x for g in range(groups):        # one work-group per iteration (runs concurrently)
      gpu.thread.x for t in range(threads):    # the group's work-items (concurrently; barriers meet)
        ...

and launches run in order. The strategies, tried in this order:

``gemm``
    ``out[...] = epilogue(sum(k; X * Y))`` over a nest whose loops split into those only ``X`` reads
    (m), those only ``Y`` reads (n) and the rest (batch): matmul, and convolution in GEMM form. A
    work-group computes a ``TM x TN`` tile, each work-item an ``RM x RN`` block in registers; ``X`` and
    ``Y`` pass through shared memory ``TK`` steps of k at a time (zero-filled past the edges), and
    the epilogue (bias, activation, residual) is applied in the guarded store.
``rows``
    A nest holding a large reduction (softmax's max and sum, layer norm's moments, reduce_*, a
    matrix-vector product): the loops outside the deepest such reduction become work-groups, each
    of those reductions a work-group reduction (strided partial sums, a tree in shared memory with
    barriers, the result read by every work-item), and the loops inside are shared out among the
    work-items, strided, with bounds guards.
``elementwise``
    Any other loop nest ending in one store: its loops flattened into one index, one work-item per
    element, guarded; small reductions run serially in each work-item.
``loops``
    Leading loops of another shape whose iterations touch disjoint slices of what they write (an
    extern op's rows: a scan, a sort, a scatter per row): one work-item per iteration.
``serial``
    Anything else (sorting, scans, data-dependent loops): one work-item runs the statement as written.

What a code generator provides for a scheduled kernel: the block and thread loops are no loops but
the work-group and work-item index; an ``Alloc`` of a ``shared`` buffer is one per work-group (OpenCL
``__local``, CUDA ``__shared__``), of a ``local`` buffer one per work-item; a ``Barrier`` is a
work-group barrier fencing shared memory, which the schedule only places where every work-item of the
group arrives (never under a condition that differs between them).

Fused loops (``f // c``, ``f % c``) are split back into their digits first, so a batch fused with
channels does not hide a GEMM. :func:`launch_geometry` reads the launch back from a scheduled kernel;
the target records it per kernel in the artifact.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import loops as L

#: reductions at least this long are computed by a whole work-group
COOP_MIN = 16
#: a nest whose reductions and inner loops are shorter than this runs one element per work-item
ROWS_MIN = 32
#: work-items per group for elementwise launches
ELEMENTWISE_THREADS = 256
#: symbolic extents count as this many iterations in the cost estimates
SYMBOLIC = 1 << 12


@dataclass
class Launch:
    """One kernel launch: a scheduled kernel, its number of work-groups (an int64 expression over the
    kernel's symbols), its work-items per group, and the strategy that made it."""

    kernel: L.Kernel
    groups: L.Expr
    threads: int
    strategy: str


@dataclass(frozen=True)
class Tiles:
    """GEMM tile sizes: a work-group's tile ``tm x tn``, a work-item's block ``rm x rn``, k step ``tk``."""

    tm: int = 64
    tn: int = 64
    tk: int = 16
    rm: int = 4
    rn: int = 4

    @property
    def threads(self) -> int:
        return (self.tm // self.rm) * (self.tn // self.rn)


def schedule_kernel(k: L.Kernel, caps, tiles: Tiles | None = None) -> list:
    """The launches that run kernel ``k`` on a GPU with capabilities ``caps``, in order."""
    return _Scheduler(k, caps, tiles).run()


def launch_geometry(k: L.Kernel) -> tuple:
    """``(groups, threads)`` of a scheduled kernel: the extents of its block and thread loops."""
    blk = k.body
    if not (isinstance(blk, L.For) and blk.kind == "gpu.block.x" and isinstance(blk.body, L.For)
            and blk.body.kind == "gpu.thread.x" and isinstance(blk.body.extent, L.Const)):
        raise ValueError(f"kernel {k.name} is not GPU-scheduled (no block/thread loops at its top)")
    return blk.extent, int(blk.body.extent.value)


# ---------------------------------------------------------------------------------------- helpers
def _static(e):
    e = L.simplify(e)
    return int(e.value) if isinstance(e, L.Const) else None


def _size(e) -> int:
    s = _static(e)
    return SYMBOLIC if s is None else s


def _least(e: L.Expr) -> int:
    """``e`` with every symbol 1 (a symbolic batch at its smallest), at least 1."""
    v = _static(L.substitute(e, {n: L.Const(1) for n in L.free_vars(e)}))
    return max(1, v if v is not None else 1)


def _prod(exts) -> L.Expr:
    out: L.Expr = L.Const(1)
    for e in exts:
        out = out * e
    return L.simplify(out)


def _ceil_div(a: L.Expr, b: int) -> L.Expr:
    return L.simplify((a + (b - 1)) // b) if b > 1 else a


def _pow2_at_least(n: int, lo: int, hi: int) -> int:
    p = lo
    while p < n and p < hi:
        p *= 2
    return min(p, hi)


def _digits(idx: L.Expr, exts: list) -> list:
    """Row-major digits of a flat index over extents ``exts`` (the first digit is not reduced)."""
    out = []
    rest = idx
    for k in range(len(exts) - 1, -1, -1):
        if k == 0:
            out.append(rest)
        else:
            out.append(L.simplify(rest % exts[k]))
            rest = L.simplify(rest // exts[k])
    return list(reversed(out))


def _subst(s: L.Stmt, env: dict) -> L.Stmt:
    return L.map_stmt(s, lambda e: L.substitute(e, env)) if env else s


def _reduces(e: L.Expr) -> list:
    return [n for n in L.walk(e) if isinstance(n, L.Reduce)]


def _red_size(e: L.Expr) -> int:
    best = 0
    for r in _reduces(e):
        n = 1
        for _, ext in r.axes:
            n *= _size(ext)
        best = max(best, n)
    return best


def _loads(e: L.Expr) -> list:
    return [n for n in L.walk(e) if isinstance(n, L.Load)]


def _identity(comb: str, dt) -> L.Expr:
    from ..ir.lowering import identity

    if comb == "sum" and dt.is_float:
        return L.const(-0.0, dt)  # the true identity: -0.0 + x == x for every x, +0.0 included
    return identity(comb, dt)


# --------------------------------------------------------------------------------- loop unfusing
def unfuse(s: L.Stmt) -> L.Stmt:
    """Split each loop whose variable is only used through ``v // c`` and ``v % c`` (static ``c``
    dividing one another and the static extent) back into one loop per digit."""
    if isinstance(s, L.For):
        body = unfuse(s.body)
        s = L.For(s.var, s.extent, body, s.kind, s.start)
        return _split_fused(s)
    if isinstance(s, L.Let):
        return L.Let(s.var, s.value, unfuse(s.body))
    if isinstance(s, L.Seq):
        return L.Seq([unfuse(x) for x in s.body])
    if isinstance(s, L.If):
        return L.If(s.cond, unfuse(s.then), unfuse(s.else_) if s.else_ else None)
    if isinstance(s, L.Alloc):
        return L.Alloc(s.buf, unfuse(s.body))
    return s


def _stmt_exprs(s: L.Stmt):
    for st in L.walk_stmts(s):
        if isinstance(st, L.For):
            yield st.extent
            yield st.start
        elif isinstance(st, L.Store):
            yield from st.index
            yield st.value
        elif isinstance(st, L.Let):
            yield st.value
        elif isinstance(st, L.If):
            yield st.cond


def _split_fused(f: L.For) -> L.For:
    E = _static(f.extent)
    if E is None or not (isinstance(f.start, L.Const) and f.start.value == 0) or f.kind.startswith("gpu."):
        return f
    name = f.var.name
    divisors = set()
    for e in _stmt_exprs(f.body):
        for n in L.walk(e):
            if isinstance(n, L.Bin) and n.op in ("floordiv", "mod") and isinstance(n.a, L.Var) \
                    and n.a.name == name and isinstance(n.b, L.Const):
                c = int(n.b.value)
                if 1 < c < E:
                    divisors.add(c)
    if not divisors:
        return f
    ds = sorted(divisors)
    for a, b in zip(ds, ds[1:] + [E]):
        if b % a:
            return f
    # radices outermost first: E/d_last, ..., d2/d1, d1
    radices = [E // ds[-1]] + [ds[i + 1] // ds[i] for i in range(len(ds) - 2, -1, -1)] + [ds[0]]
    vars_ = [L.Var(f"{name}_{i}") for i in range(len(radices))]
    flat: L.Expr = L.Const(0)
    for v, r in zip(vars_, radices):
        flat = flat * r + v
    ranges = {v.name: (0, r - 1) for v, r in zip(vars_, radices)}
    body = L.simplify_stmt(_subst(f.body, {name: L.simplify(flat)}), ranges)
    for v, r in reversed(list(zip(vars_, radices))):
        body = L.For(v, L.Const(r), body)
    return body


# --------------------------------------------------------------------------- independent loops
def _independent_chain(s: L.Stmt, outer: set) -> list:
    """The leading perfectly nested loops of ``s`` whose iterations touch disjoint memory, outer first:
    each loop's variable indexes one fixed dim of every access to every buffer the loop's body writes
    (so iteration v reads and writes only slice v of them), its extent depends on outer loops only,
    and the body's local buffers are allocated inside it. An extern op's rows (a scan, a sort, a
    scatter per row) qualify; a scan along the loop does not."""
    chain = []
    known = set(outer)
    cur = s
    while isinstance(cur, L.For) and not cur.kind.startswith("gpu.") and _independent(cur, known):
        chain.append(cur)
        known.add(cur.var.name)
        cur = cur.body
    return chain


def _independent(f: L.For, known: set) -> bool:
    if (L.free_vars(f.extent) | L.free_vars(f.start)) - known:
        return False
    v = f.var.name
    allocated = {id(st.buf) for st in L.walk_stmts(f.body) if isinstance(st, L.Alloc)}
    dims: dict = {}   # id(buffer) -> dims indexed by exactly v in every access seen so far

    def see(buf, index):
        here = {d for d, i in enumerate(index) if isinstance(i, L.Var) and i.name == v}
        dims[id(buf)] = dims.get(id(buf), here) & here

    written = set()
    for st in L.walk_stmts(f.body):
        if isinstance(st, L.Store):
            if id(st.buf) in allocated:
                continue
            if st.buf.scope != "global":
                return False  # a buffer shared by the iterations
            written.add(id(st.buf))
            see(st.buf, st.index)
    if not written:
        return False
    for e in _stmt_exprs(f.body):
        for ld in _loads(e):
            if id(ld.buf) in written:
                see(ld.buf, ld.index)
    return all(dims[b] for b in written)


# ----------------------------------------------------------------------------------- nest shape
@dataclass
class _Nest:
    loops: list      # For statements, outer first
    lets: dict       # level (-1 .. n-1) -> [(Var, value)]
    store: L.Store


def _nest(s: L.Stmt) -> _Nest | None:
    """The perfect nest (lets between loops allowed) ending in one store whose iterations are
    independent, or None."""
    loops, lets = [], {-1: []}
    cur = s
    while True:
        if isinstance(cur, L.Let):
            lets.setdefault(len(loops) - 1, []).append((cur.var, cur.value))
            cur = cur.body
        elif isinstance(cur, L.For) and not cur.kind.startswith("gpu."):
            loops.append(cur)
            cur = cur.body
        elif isinstance(cur, L.Store):
            break
        else:
            return None
    store = cur
    bound = {f.var.name for f in loops} | {v.name for vs in lets.values() for v, _ in vs}
    for f in loops:
        if (L.free_vars(f.extent) | L.free_vars(f.start)) & bound:
            return None  # not rectangular
    # independent iterations: every loop variable reaches the stored index, the index reads no
    # memory, and nothing in the nest reads the stored buffer
    index_vars = set()
    for i in store.index:
        if _loads(i):
            return None
        index_vars |= L.free_vars(i)
    let_deps = {}
    for vs in lets.values():
        for v, val in vs:
            let_deps[v.name] = L.free_vars(val)
    for f in loops:
        if f.var.name not in index_vars:
            return None
    exprs = [store.value, *store.index] + [val for vs in lets.values() for _, val in vs]
    for e in exprs:
        if any(ld.buf is store.buf for ld in _loads(e)):
            return None
    return _Nest(loops, lets, store)


# ------------------------------------------------------------------------------------ scheduler
class _Scheduler:
    def __init__(self, k: L.Kernel, caps, tiles):
        self.k = k
        self.caps = caps
        self.max_threads = max(1, int(getattr(caps, "max_threads", 0) or 1))
        self.local_memory = int(getattr(caps, "local_memory", 0) or 0)
        self.tiles = tiles
        self._n = 0

    def var(self, prefix: str) -> L.Var:
        self._n += 1
        return L.Var(f"{prefix}{self._n}")

    def run(self) -> list:
        body = self.k.body
        parts = list(body.body) if isinstance(body, L.Seq) else [body]
        out = []
        for part in parts:
            out.append(self.one(unfuse(part)))
        return out

    def launch(self, body: L.Stmt, g: L.Var, groups: L.Expr, t: L.Var, threads: int, strategy: str) -> Launch:
        groups = L.simplify(groups)
        stmt = L.For(g, groups, L.For(t, L.Const(threads), body, "gpu.thread.x"), "gpu.block.x")
        k = L.Kernel(self.k.name, list(self.k.params), stmt, list(self.k.syms), list(self.k.ops))
        return Launch(k, groups, threads, strategy)

    def one(self, s: L.Stmt) -> Launch:
        nest = _nest(s)
        if nest is not None:
            got = self.gemm(nest)
            if got is not None:
                return got
            return self.rows_or_elementwise(nest)
        chain = _independent_chain(s, set(self.k.syms))
        if chain:
            return self.loops(chain)
        return self.serial(s)

    # ----------------------------------------------------------------------------- serial / loops
    def serial(self, s: L.Stmt) -> Launch:
        g, t = self.var("g"), self.var("t")
        return self.launch(s, g, L.Const(1), t, 1, "serial")

    def loops(self, chain: list) -> Launch:
        """The leading loops ``chain`` (outer first, iterations independent) flattened over work-items;
        the innermost one's body runs serially in each."""
        threads = min(ELEMENTWISE_THREADS, self.max_threads)
        total = _prod([f.extent for f in chain])
        st = _static(total)
        if st is not None:
            threads = max(1, min(threads, _pow2_at_least(st, 1, threads)))
        g, t, i = self.var("g"), self.var("t"), self.var("i")
        body = _subst(chain[-1].body, self._flatten(chain, i))
        guarded = body if st is not None and st % threads == 0 else L.If(L.binary("lt", i, total), body)
        stmt = L.Let(i, L.simplify(g * threads + t), guarded)
        return self.launch(stmt, g, _ceil_div(total, threads), t, threads, "loops")

    # ---------------------------------------------------------------------- elementwise / rows
    def rows_or_elementwise(self, nest: _Nest) -> Launch:
        n = len(nest.loops)
        inline = _red_size(nest.store.value)
        levels = [lvl for lvl, vs in nest.lets.items() if any(_reduces(val) for _, val in vs)]
        if inline:
            levels.append(n - 1)
            split = n
        elif levels:
            split = max(levels) + 1
        else:
            return self.elementwise(nest)
        red = max([inline] + [_red_size(val) for lvl, vs in nest.lets.items() if lvl < split for _, val in vs])
        inner = 1
        for f in nest.loops[split:]:
            inner *= _size(f.extent)
        if red < ROWS_MIN and inner < ROWS_MIN:
            return self.elementwise(nest)
        return self.rows(nest, split, red, inner)

    def _flatten(self, loops: list, idx: L.Expr) -> dict:
        """Loop variable -> its digit of the flat index ``idx`` over the loops' extents."""
        exts = [f.extent for f in loops]
        return {f.var.name: L.simplify(d + f.start) for f, d in zip(loops, _digits(idx, exts))}

    def _inner(self, nest: _Nest, lo: int, env: dict) -> L.Stmt:
        """Loops ``lo..`` of the nest, serial, with their lets and the store, under ``env``."""
        body: L.Stmt = _subst(nest.store, env)
        for lvl in range(len(nest.loops) - 1, lo - 1, -1):
            for v, val in reversed(nest.lets.get(lvl, [])):
                body = L.Let(v, L.substitute(val, env), body)
            f = nest.loops[lvl]
            body = L.For(f.var, L.substitute(f.extent, env), body, "serial", L.substitute(f.start, env))
        return body

    def elementwise(self, nest: _Nest) -> Launch:
        loops = nest.loops
        # flatten the loops down to the first level holding lets: deeper ones stay serial per work-item
        depth = len(loops)
        for lvl in range(len(loops) - 1):
            if nest.lets.get(lvl):
                depth = lvl + 1
                break
        total = _prod([f.extent for f in loops[:depth]])
        st = _static(total)
        threads = min(ELEMENTWISE_THREADS, self.max_threads)
        if st is not None:
            threads = max(1, min(threads, _pow2_at_least(st, 1, threads)))
        g, t, i = self.var("g"), self.var("t"), self.var("i")
        env = self._flatten(loops[:depth], i)
        body = self._inner(nest, depth, env)
        for lvl in range(depth - 1, -2, -1):
            for v, val in reversed(nest.lets.get(lvl, [])):
                body = L.Let(v, L.substitute(val, env), body)
        ranges = {i.name: (0, (st - 1) if st is not None else 1 << 40)}
        body = L.simplify_stmt(body, ranges)
        guarded = body if st is not None and st % threads == 0 else L.If(L.binary("lt", i, total), body)
        stmt = L.Let(i, L.simplify(g * threads + t), guarded)
        return self.launch(stmt, g, _ceil_div(total, threads), t, threads, "elementwise")

    def rows(self, nest: _Nest, split: int, red: int, inner: int) -> Launch:
        cap = _fit_threads(256, self.max_threads)
        threads = min(cap, _pow2_at_least(max(red, inner), 32, 256))
        outer = nest.loops[:split]
        groups = _prod([f.extent for f in outer])
        g, t = self.var("g"), self.var("t")
        env = self._flatten(outer, g) if outer else {}
        ctx = _Coop(self, t, threads)
        n = len(nest.loops)
        if split == n:
            pre, value = ctx._extract(L.substitute(nest.store.value, env))
            store = L.Store(nest.store.buf, tuple(L.substitute(i, env) for i in nest.store.index), value)
            tail: L.Stmt = ctx._around(pre, L.If(L.binary("eq", t, L.Const(0)), store))
        else:
            tail = self._shared_out(nest, split, env, t, threads)
        # the lets of the group levels, outermost first, around the tail
        binders = []
        for lvl in range(-1, split):
            for v, val in nest.lets.get(lvl, []):
                binders.append((v, L.substitute(val, env)))
        body = ctx.bind(binders, tail)
        body = ctx.wrap(body)
        return self.launch(body, g, groups, t, threads, "rows")

    def _shared_out(self, nest: _Nest, split: int, env: dict, t: L.Var, threads: int) -> L.Stmt:
        """Loops ``split..`` shared out among the work-items: those up to the next lets flattened and
        strided by the group size, the rest serial."""
        loops = nest.loops
        depth = len(loops)
        for lvl in range(split, len(loops) - 1):
            if nest.lets.get(lvl):
                depth = lvl + 1
                break
        part = loops[split:depth]
        total = _prod([L.substitute(f.extent, env) for f in part])
        jo, j = self.var("jo"), self.var("j")
        env2 = dict(env)
        env2.update(self._flatten([L.For(f.var, L.substitute(f.extent, env), f.body, f.kind,
                                         L.substitute(f.start, env)) for f in part], j))
        body = self._inner(nest, depth, env2)
        for lvl in range(depth - 1, split - 1, -1):
            for v, val in reversed(nest.lets.get(lvl, [])):
                body = L.Let(v, L.substitute(val, env2), body)
        st = _static(total)
        guarded = body if st is not None and st % threads == 0 else L.If(L.binary("lt", j, total), body)
        return L.For(jo, _ceil_div(total, threads), L.Let(j, L.simplify(jo * threads + t), guarded))

    # ------------------------------------------------------------------------------------ gemm
    def gemm(self, nest: _Nest) -> Launch | None:
        if any(nest.lets.values()):
            return None
        value = nest.store.value
        reds = _reduces(value)
        if len(reds) != 1:
            return None
        r = reds[0]
        if r.combiner != "sum" or not r.body.dtype.is_float or r.body.dtype.name in ("f16", "bf16"):
            return None
        body = r.body
        if not (isinstance(body, L.Bin) and body.op == "mul"):
            return None
        X, Y = body.a, body.b
        loop_vars = [f.var.name for f in nest.loops]
        kvars = {v.name for v, _ in r.axes}
        fx, fy = L.free_vars(X), L.free_vars(Y)
        if not (fx & kvars and fy & kvars):
            return None
        m_loops = [f for f in nest.loops if f.var.name in fx and f.var.name not in fy]
        n_loops = [f for f in nest.loops if f.var.name in fy and f.var.name not in fx]
        b_loops = [f for f in nest.loops if f not in m_loops and f not in n_loops]
        if not m_loops or not n_loops or set(loop_vars) & L.free_vars(r.init):
            return None
        if any(L.free_vars(ext) & set(loop_vars) for _, ext in r.axes):
            return None
        M = _prod([f.extent for f in m_loops])
        N = _prod([f.extent for f in n_loops])
        K = _prod([ext for _, ext in r.axes])
        if min(_size(M), _size(N)) < 8 or _size(M) * _size(N) < 256 or _size(K) < 8:
            return None
        # tiles for the smallest run: a symbolic dim (a batch) counts as 1
        batch = _least(_prod([f.extent for f in b_loops]))
        tiles = self.tiles or _choose_tiles(_least(M), _least(N), self.max_threads, self.local_memory,
                                            r.body.dtype.bits // 8, batch)
        if tiles is None:
            return None
        return self._gemm(nest, r, X, Y, m_loops, n_loops, b_loops, M, N, K, tiles)

    def _gemm(self, nest, r, X, Y, m_loops, n_loops, b_loops, M, N, K, tl: Tiles) -> Launch:
        dt = r.body.dtype
        T = tl.threads
        if T % tl.tm or T % tl.tn or (tl.tk * tl.tm) % T or (tl.tk * tl.tn) % T:
            raise ValueError(f"GEMM tiles {tl}: the work-group ({T} work-items) must divide both tiles' rows "
                             f"and k-steps evenly")
        MT, NT = _ceil_div(M, tl.tm), _ceil_div(N, tl.tn)
        B = _prod([f.extent for f in b_loops])
        g, t = self.var("g"), self.var("t")
        nt, mt, bi = self.var("nt"), self.var("mt"), self.var("bi")
        tm, tn = self.var("tm"), self.var("tn")
        ar, br = self.var("ar"), self.var("br")
        kt, kk, q = self.var("kt"), self.var("kk"), self.var("q")
        i, j = self.var("ri"), self.var("rj")
        As = L.Buffer(self.var("As").name, dt, (tl.tk, tl.tm), scope="shared")
        Bs = L.Buffer(self.var("Bs").name, dt, (tl.tk, tl.tn), scope="shared")
        acc = L.Buffer(self.var("acc").name, dt, (tl.rm, tl.rn), scope="local")
        ra = L.Buffer(self.var("ra").name, dt, (tl.rm,), scope="local")
        rb = L.Buffer(self.var("rb").name, dt, (tl.rn,), scope="local")
        zero = L.const(0, dt)
        kaxes = list(r.axes)

        def at_k(expr, kg):
            return L.substitute(expr, {v.name: d for (v, _), d in zip(kaxes, _digits(kg, [x for _, x in kaxes]))})

        def tile_load(buf, span, row_ok, expr):
            """Fill ``buf[tk, span]`` for this k step: work-item t loads column ``t % span`` (its row of X
            or column of Y, whose indices are computed once, before the k loop) at k steps
            ``q * (T / span) + t / span``; zero past the edges."""
            kk_e = q * (T // span) + t // span
            kg = kt * tl.tk + kk_e
            col = t % span
            ok = L.binary("and", row_ok, L.binary("lt", kg, K))
            fill = L.If(ok, L.Store(buf, (kk_e, col), at_k(expr, kg)), L.Store(buf, (kk_e, col), zero))
            return L.For(q, L.Const(tl.tk * span // T), fill, "unrolled")

        a_ok, b_ok = L.Var(self.var("aok").name, L.BOOL), L.Var(self.var("bok").name, L.BOOL)
        load_a = tile_load(As, tl.tm, a_ok, X)
        load_b = tile_load(Bs, tl.tn, b_ok, Y)
        step = L.seq(
            L.For(i, L.Const(tl.rm), L.Store(ra, (i,), As[kk, tm * tl.rm + i]), "unrolled"),
            L.For(j, L.Const(tl.rn), L.Store(rb, (j,), Bs[kk, tn * tl.rn + j]), "unrolled"),
            L.For(i, L.Const(tl.rm), L.For(j, L.Const(tl.rn), L.Store(
                acc, (i, j), L.binary("add", acc[i, j], L.binary("mul", ra[i], rb[j]))), "unrolled"), "unrolled"))
        kloop = L.For(kt, _ceil_div(K, tl.tk), L.seq(
            load_a, load_b, L.Barrier(), L.For(kk, L.Const(tl.tk), step), L.Barrier()))
        init = L.For(i, L.Const(tl.rm), L.For(j, L.Const(tl.rn), L.Store(acc, (i, j), r.init), "unrolled"),
                     "unrolled")
        m_of = mt * tl.tm + tm * tl.rm + i
        n_of = nt * tl.tn + tn * tl.rn + j
        env = self._flatten(m_loops, m_of)
        env.update(self._flatten(n_loops, n_of))
        out_value = L.map_expr(nest.store.value, lambda x: acc[i, j] if x == r else None)
        store = L.Store(nest.store.buf, tuple(L.substitute(x, env) for x in nest.store.index),
                        L.substitute(out_value, env))
        ok = L.binary("and", L.binary("lt", m_of, M), L.binary("lt", n_of, N))
        epilogue = L.For(i, L.Const(tl.rm), L.For(j, L.Const(tl.rn), L.If(ok, store), "unrolled"), "unrolled")
        cols = tl.tn // tl.rn
        body: L.Stmt = L.Alloc(As, L.Alloc(Bs, L.Alloc(acc, L.Alloc(ra, L.Alloc(rb, L.seq(init, kloop, epilogue))))))
        # what stays fixed for this work-item, outermost first: its tile, batch index, register block, and
        # the indices of the X row and Y column it loads (the loop variables they stand for, bound once)
        binders = [(nt, g % NT), (mt, (g // NT) % MT), (bi, g // (NT * MT))]
        binders += [(f.var, self._flatten(b_loops, bi)[f.var.name]) for f in b_loops]
        binders += [(tm, t // cols), (tn, t % cols), (ar, mt * tl.tm + t % tl.tm)]
        binders += [(f.var, self._flatten(m_loops, ar)[f.var.name]) for f in m_loops]
        binders += [(br, nt * tl.tn + t % tl.tn)]
        binders += [(f.var, self._flatten(n_loops, br)[f.var.name]) for f in n_loops]
        binders += [(a_ok, L.binary("lt", ar, M)), (b_ok, L.binary("lt", br, N))]
        for v, val in reversed(binders):
            body = L.Let(v, L.simplify(val), body)
        ranges = {t.name: (0, T - 1), tm.name: (0, tl.tm // tl.rm - 1), tn.name: (0, cols - 1)}
        body = L.simplify_stmt(body, ranges)
        return self.launch(body, g, L.simplify(B * MT * NT), t, T, "gemm")


#: tile candidates, preferred first: (tm, tn, rm, rn)
TILE_CANDIDATES = ((128, 128, 8, 8), (128, 64, 8, 8), (64, 128, 8, 8), (64, 64, 8, 8), (64, 64, 4, 4),
                   (32, 64, 4, 8), (64, 32, 8, 4), (32, 32, 4, 4), (16, 64, 4, 4), (64, 16, 4, 4),
                   (16, 32, 4, 4), (32, 16, 4, 4), (16, 16, 4, 4))
#: a tile is taken only if it leaves at least this many work-groups (when a smaller one could)
MIN_GROUPS = 16


def _choose_tiles(M: int, N: int, max_threads: int, local_memory: int, itemsize: int, batch: int = 1):
    """The first candidate tile that fits (work-group size, shared memory, loads that divide evenly),
    is no wider than its dims (above 16) and leaves ``MIN_GROUPS`` work-groups; failing the last, the
    fitting one with the most work-groups. None when none fits."""
    best = None
    for tm, tn, rm, rn in TILE_CANDIDATES:
        t = Tiles(tm=tm, tn=tn, rm=rm, rn=rn)
        T = t.threads
        if T > max_threads or 2 * t.tk * (tm + tn) * itemsize > local_memory:
            continue
        if T % tm or T % tn or (t.tk * tm) % T or (t.tk * tn) % T:
            continue
        if (tm > 16 and M < tm) or (tn > 16 and N < tn):
            continue
        groups = batch * -(-M // tm) * -(-N // tn)
        if groups >= MIN_GROUPS:
            return t
        if best is None or groups > best[0]:
            best = (groups, t)
    return best[1] if best else None


def _fit_threads(n: int, max_threads: int) -> int:
    """The largest power of two <= both ``n`` and ``max_threads``."""
    p = 1
    while p * 2 <= min(n, max_threads):
        p *= 2
    return p


# ------------------------------------------------------------------------ work-group reductions
class _Coop:
    """Builds work-group reductions for one launch: shared scratch per dtype, allocated once."""

    def __init__(self, sched: _Scheduler, t: L.Var, threads: int):
        self.s = sched
        self.t = t
        self.threads = threads
        self.scratch: dict = {}   # dtype name -> shared Buffer [threads]

    def _buf(self, dt) -> L.Buffer:
        b = self.scratch.get(dt.name)
        if b is None:
            b = L.Buffer(self.s.var("red").name, dt, (self.threads,), scope="shared")
            self.scratch[dt.name] = b
        return b

    def wrap(self, body: L.Stmt) -> L.Stmt:
        for b in self.scratch.values():
            body = L.Alloc(b, body)
        return body

    def cooperative(self, r: L.Reduce) -> bool:
        if r.combiner not in ("sum", "prod", "max", "min", "argmax", "argmin"):
            return False
        n = 1
        for _, ext in r.axes:
            n *= _size(ext)
        return n >= COOP_MIN

    def bind(self, binders: list, tail: L.Stmt) -> L.Stmt:
        """``let v = value`` for each binder, outermost first, around ``tail``: each cooperative
        reduction inside a value computed by the whole group first."""
        if not binders:
            return tail
        (v, val), rest = binders[0], binders[1:]
        pre, val = self._extract(val)
        inner = L.Let(v, val, self.bind(rest, tail))
        return self._around(pre, inner)

    def _extract(self, val: L.Expr):
        pre = []
        for r in _reduces(val):
            if any(r is x or r == x for x, _ in pre):
                continue
            if not self.cooperative(r) or any(isinstance(n, L.Reduce) for n in L.walk(r.body) if n is not r):
                continue
            v = self.s.var("wr")
            v = L.Var(v.name, r.dtype)
            pre.append((r, v))
        if pre:
            val = L.map_expr(val, lambda x: next((v for r, v in pre if x == r), None) if isinstance(x, L.Reduce)
                             else None)
        return pre, val

    def _around(self, pre: list, inner: L.Stmt) -> L.Stmt:
        for r, v in reversed(pre):
            inner = self._reduce(r, v, inner)
        return inner

    def _reduce(self, r: L.Reduce, v: L.Var, rest: L.Stmt) -> L.Stmt:
        """Work-group reduction of ``r`` into ``v``, then ``rest``::

            part = (t == 0 ? init : identity); for jo: j = jo*T + t; if j < R: part = part (+) body(j)
            red[t] = part; barrier; for s = T/2 .. 1: if t < s: red[t] = red[t] (+) red[t + s]; barrier
            let v = red[0]; barrier; rest
        """
        if r.combiner in ("argmax", "argmin"):
            return self._arg_reduce(r, v, rest)
        t, T = self.t, self.threads
        dt = r.body.dtype
        red = self._buf(dt)
        part = L.Buffer(self.s.var("part").name, dt, (1,), scope="local")
        exts = [ext for _, ext in r.axes]
        R = _prod(exts)
        jo, j = self.s.var("jo"), self.s.var("j")
        env = {ax.name: d for (ax, _), d in zip(r.axes, _digits(j, exts))}
        op = {"sum": "add", "prod": "mul", "max": "max", "min": "min"}[r.combiner]
        body = L.substitute(r.body, env)
        accumulate = L.Store(part, (L.Const(0),), L.binary(op, part[L.Const(0)], body))
        st = _static(R)
        guarded = accumulate if st is not None and st % T == 0 else L.If(L.binary("lt", j, R), accumulate)
        first = L.select(L.binary("eq", t, L.Const(0)), L.cast(r.init, dt), _identity(r.combiner, dt))
        steps = []
        s = T // 2
        while s >= 1:
            steps.append(L.If(L.binary("lt", t, L.Const(s)),
                              L.Store(red, (t,), L.binary(op, red[t], red[t + s]))))
            steps.append(L.Barrier())
            s //= 2
        stmt = L.Alloc(part, L.seq(
            L.Store(part, (L.Const(0),), first),
            L.For(jo, _ceil_div(R, T), L.Let(j, L.simplify(jo * T + t), guarded)),
            L.Store(red, (t,), part[L.Const(0)]),
            L.Barrier(),
            *steps))
        return L.seq(stmt, L.Let(v, red[L.Const(0)], L.seq(L.Barrier(), rest)))

    def _arg_reduce(self, r: L.Reduce, v: L.Var, rest: L.Stmt) -> L.Stmt:
        """Work-group argmax / argmin: each work-item keeps (best value, its linear index or -1) over
        its strided elements, in increasing order; the tree keeps the better pair, a tie going to the
        smaller index (the larger with ``select_last``); NaN is the extreme, as in the serial form."""
        t, T = self.t, self.threads
        dt = r.body.dtype
        I64 = L.I64
        vals, idxs = self._buf(dt), self._buf(I64) if dt != I64 else None
        if idxs is None:  # an int64 argmax: values and indices need two buffers of one dtype
            idxs = L.Buffer(self.s.var("redi").name, I64, (T,), scope="shared")
            self.scratch["_argidx"] = idxs
        pv = L.Buffer(self.s.var("pv").name, dt, (1,), scope="local")
        pi = L.Buffer(self.s.var("pi").name, I64, (1,), scope="local")
        exts = [ext for _, ext in r.axes]
        R = _prod(exts)
        jo, j = self.s.var("jo"), self.s.var("j")
        env = {ax.name: d for (ax, _), d in zip(r.axes, _digits(j, exts))}
        x = L.substitute(r.body, env)
        zero = L.Const(0)
        gt = "gt" if r.combiner == "argmax" else "lt"

        def strictly(a, b):
            """a is a better extreme than b (NaN beats numbers)."""
            if dt.is_float:
                na, nb = L.unary("isnan", a), L.unary("isnan", b)
                return L.binary("or", L.binary("and", na, L.unary("not", nb)),
                                L.binary("and", L.unary("not", L.binary("or", na, nb)), L.binary(gt, a, b)))
            return L.binary(gt, a, b)

        def tie(a, b):
            if dt.is_float:
                return L.binary("or", L.binary("and", L.unary("isnan", a), L.unary("isnan", b)), L.binary("eq", a, b))
            return L.binary("eq", a, b)

        # in increasing order: replace when strictly better, or on a tie with select_last
        xv = L.Var(self.s.var("xv").name, dt)
        take = strictly(xv, pv[zero])
        if r.select_last:
            take = L.binary("or", take, tie(xv, pv[zero]))
        take = L.binary("or", L.binary("lt", pi[zero], zero), take)
        step = L.Let(xv, x, L.If(take, L.seq(L.Store(pv, (zero,), xv), L.Store(pi, (zero,), j))))
        st = _static(R)
        guarded = step if st is not None and st % T == 0 else L.If(L.binary("lt", j, R), step)
        tree = []
        s = T // 2
        c = self.s.var("c")
        c = L.Var(c.name, L.BOOL)
        while s >= 1:
            v1, v2, i1, i2 = vals[t], vals[t + s], idxs[t], idxs[t + s]
            earlier = L.binary("gt", i2, i1) if r.select_last else L.binary("lt", i2, i1)
            better = L.binary("or", strictly(v2, v1), L.binary("and", tie(v2, v1), earlier))
            cond = L.binary("and", L.binary("ge", i2, zero), L.binary("or", L.binary("lt", i1, zero), better))
            tree.append(L.If(L.binary("lt", t, L.Const(s)), L.Let(c, cond, L.If(c, L.seq(
                L.Store(vals, (t,), v2), L.Store(idxs, (t,), i2))))))
            tree.append(L.Barrier())
            s //= 2
        stmt = L.Alloc(pv, L.Alloc(pi, L.seq(
            L.Store(pv, (zero,), _identity("max" if r.combiner == "argmax" else "min", dt)),
            L.Store(pi, (zero,), L.Const(-1)),
            L.For(jo, _ceil_div(R, T), L.Let(j, L.simplify(jo * T + t), guarded)),
            L.Store(vals, (t,), pv[zero]),
            L.Store(idxs, (t,), pi[zero]),
            L.Barrier(),
            *tree)))
        result = L.select(L.binary("lt", idxs[zero], zero), L.Const(0), idxs[zero])
        return L.seq(stmt, L.Let(v, result, L.seq(L.Barrier(), rest)))
