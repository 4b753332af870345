"""Schedule primitives: transformations of a loop-IR statement tree (:mod:`kiln.ir.loops`).

Every primitive is a pure function: it takes a statement (or a :class:`~kiln.ir.loops.Kernel`, whose
body it transforms) and returns a new tree, never mutating its input. Loops are addressed by the name
of their variable, and a primitive that does not apply raises a :class:`ValueError` naming the loop
(or buffer) and the reason.

=====================================  ==========================================================
``split(s, v, f)``                     ``for v < n`` -> ``for v_o < n // f: for v_i < f`` with
                                       ``v = v_o*f + v_i``; when ``f`` does not divide ``n`` the rest
                                       runs in a remainder loop over the original ``v``
                                       (``tail="loop"``), or under ``if v_o*f + v_i < n``
                                       (``tail="guard"``). Returns ``(stmt, "v_o", "v_i")``.
``reorder(s, a, b)``                   swap loops ``a`` and ``b`` of a perfect nest (``a`` outside)
``fuse(s, a, b)``                      ``for a: for b`` (``b`` directly inside) -> one loop over the
                                       product; ``a = f // nb``, ``b = f % nb``. Returns
                                       ``(stmt, "a_b")``.
``vectorize(s, v, lanes=None)``        mark ``v`` vectorized (split by ``lanes`` first, when given
                                       and ``v``'s extent is not exactly ``lanes``)
``unroll(s, v)``, ``parallelize(s, v)``  mark ``v`` unrolled / parallel
``cache_read(s, buf, v)``              copy the box of ``buf`` that loop ``v`` reads (over all its
                                       iterations) into a local buffer just before the loop, and
                                       read that instead
``pack(s, buf, v, perm)``              the same, the local copy's dims permuted by ``perm``
``compute_at(prod, cons, v)``          move the producer nest ``prod`` into loop ``v`` of ``cons``,
                                       computing per iteration only the box of the produced buffer
                                       that ``v``'s body reads (affine region inference)
``inline(s, buf)``                     replace every load of ``buf`` by the expression its single
                                       simple store computes (the store goes when ``s`` allocates
                                       ``buf``)
=====================================  ==========================================================

A split then a vectorized inner loop::

    for i in range(10):                         for i_o in range(2):
      y[i] = mul(x[i], 2.0:f32)        ->         vectorized for i_i in range(4):
                                                    y[(i_i + (i_o * 4))] = mul(x[(i_i + (i_o * 4))], 2.0:f32)
                                                for i in range(8, 10):
                                                  y[i] = mul(x[i], 2.0:f32)

    s = vectorize(s, "i", lanes=4)              # split(s, "i", 4), then the inner loop vectorized
    s, i_o, i_i = split(s0, "i", 4)             # the same without vectorizing
    s = parallelize(s, i_o)

The primitives check what the loop structure needs (perfect nesting, extents independent of the
loops they move across, constant extents where a target needs them); they do not analyse data
dependences beyond :func:`parallelize` refusing a loop whose iterations store to one element.
:mod:`kiln.ir.loops_eval` runs a statement before and after a schedule to check it.
"""
from __future__ import annotations

from typing import Callable, Sequence

from . import loops as L

__all__ = ["split", "reorder", "fuse", "vectorize", "unroll", "parallelize", "cache_read", "pack",
           "compute_at", "inline", "loop_names", "fuse_chain"]


# ------------------------------------------------------------------------------------------- helpers
def _unwrap(s):
    """(statement, rewrap): a Kernel's body and how to put a new body back in a new Kernel."""
    if isinstance(s, L.Kernel):
        return s.body, lambda b: L.Kernel(s.name, list(s.params), b, list(s.syms), list(s.ops))
    if isinstance(s, L.Stmt):
        return s, lambda b: b
    raise TypeError(f"expected a statement or a Kernel, got {type(s).__name__}")


def loop_names(s) -> list:
    """The loop variable names of ``s`` in program order (outer first)."""
    body, _ = _unwrap(s)
    return [x.var.name for x in L.walk_stmts(body) if isinstance(x, L.For)]


def _find(s: L.Stmt, var: str, prim: str) -> L.For:
    hits = [x for x in L.walk_stmts(s) if isinstance(x, L.For) and x.var.name == var]
    if not hits:
        names = ", ".join(loop_names(s)) or "none"
        raise ValueError(f"{prim}: no loop {var!r} (loops: {names})")
    if len(hits) > 1:
        raise ValueError(f"{prim}: loop name {var!r} is ambiguous ({len(hits)} loops)")
    return hits[0]


def _ancestors(s: L.Stmt, target: L.Stmt) -> list:
    """The statements enclosing ``target`` inside ``s``, outermost first."""
    path: list = []

    def go(x):
        if x is target:
            return True
        path.append(x)
        for c in L.stmt_children(x):
            if go(c):
                return True
        path.pop()
        return False

    if not go(s):
        raise ValueError("statement not found")
    return list(path)


def _ranges(ancestors) -> dict:
    """Static inclusive ranges of the loop vars among ``ancestors`` (for the simplifier)."""
    out: dict = {}
    for a in ancestors:
        if isinstance(a, L.For):
            e = L.bounds(L.simplify(a.extent, out), out)
            st = L.bounds(L.simplify(a.start, out), out)
            if e and st:
                out[a.var.name] = (st[0], st[1] + e[1] - 1)
    return out


def _rebuild(s: L.Stmt, fn: Callable) -> L.Stmt:
    """A fresh copy of ``s``; ``fn(node)`` may return a replacement for a node (None: copy it)."""
    r = fn(s)
    if r is not None:
        return r
    if isinstance(s, L.For):
        return L.For(s.var, s.extent, _rebuild(s.body, fn), s.kind, s.start)
    if isinstance(s, L.Store):
        return L.Store(s.buf, tuple(s.index), s.value)
    if isinstance(s, L.Let):
        return L.Let(s.var, s.value, _rebuild(s.body, fn))
    if isinstance(s, L.Alloc):
        return L.Alloc(s.buf, _rebuild(s.body, fn))
    if isinstance(s, L.If):
        return L.If(s.cond, _rebuild(s.then, fn), _rebuild(s.else_, fn) if s.else_ is not None else None)
    if isinstance(s, L.Seq):
        return L.seq(*[_rebuild(x, fn) for x in s.body]) if s.body else L.Seq([])
    raise TypeError(f"not a statement: {s!r}")


def _copy(s: L.Stmt) -> L.Stmt:
    return _rebuild(s, lambda x: None)


def _replace(root: L.Stmt, target: L.Stmt, new: L.Stmt) -> L.Stmt:
    """``root`` with ``target`` replaced by ``new``; ``new`` is simplified under the enclosing loops."""
    new = L.simplify_stmt(new, _ranges(_ancestors(root, target)))
    return _rebuild(root, lambda x: new if x is target else None)


def _subst(s: L.Stmt, env: dict) -> L.Stmt:
    return L.map_stmt(s, lambda e: L.substitute(e, env))


def _all_names(s: L.Stmt) -> set:
    names = set(L.stmt_free_vars(s))
    for x in L.walk_stmts(s):
        if isinstance(x, (L.For, L.Let)):
            names.add(x.var.name)
        for e in _stmt_exprs(x):
            for n in L.walk(e):
                if isinstance(n, L.Var):
                    names.add(n.name)
                elif isinstance(n, L.Reduce):
                    names.update(v.name for v, _ in n.axes)
    return names


def _fresh(taken: set, base: str) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}{k}", k + 1
    taken.add(name)
    return name


def _stmt_exprs(s: L.Stmt) -> list:
    """The expressions directly in one statement (not in its children)."""
    if isinstance(s, L.For):
        return [s.extent, s.start]
    if isinstance(s, L.Store):
        return [*s.index, s.value]
    if isinstance(s, L.Let):
        return [s.value]
    if isinstance(s, L.If):
        return [s.cond]
    return []


def _static(e: L.Expr):
    e = L.simplify(e)
    return int(e.value) if isinstance(e, L.Const) else None


def _nonempty(f: L.For):
    n = _static(f.extent)
    return None if n is not None and n <= 0 else f


def _stores(s: L.Stmt) -> list:
    return [x for x in L.walk_stmts(s) if isinstance(x, L.Store)]


def _loaded(e: L.Expr) -> set:
    return {n.buf.name for n in L.walk(e) if isinstance(n, L.Load)}


def _stmt_loaded(s: L.Stmt) -> set:
    out: set = set()
    for x in L.walk_stmts(s):
        for e in _stmt_exprs(x):
            out |= _loaded(e)
    return out


def _fmt_store(st: L.Store) -> str:
    return f"{st.buf.name}[{', '.join(map(L.fmt_expr, st.index))}]"


# --------------------------------------------------------------------------------- loop structure
def split(s, var: str, factor: int, *, tail: str = "loop"):
    """Split loop ``var`` by ``factor``: returns ``(stmt, outer_name, inner_name)``.

    ``var = start + outer*factor + inner``. When the extent is not a static multiple of ``factor``,
    ``tail="loop"`` adds a serial remainder loop over ``var`` itself (starting after the main part;
    the loops inside its copy of the body are renamed ``name_r`` so loop names stay unique) and
    ``tail="guard"`` runs ``ceil(extent / factor)`` outer steps with the body under an ``If``.
    A parallel (or GPU) loop's kind goes to the outer loop, a vectorized or unrolled one's to the
    inner loop."""
    root, wrap = _unwrap(s)
    f = _find(root, var, "split")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"split: the factor for loop {var!r} must be a positive int, got {factor!r}")
    if tail not in ("loop", "guard"):
        raise ValueError(f"split: tail must be 'loop' or 'guard', got {tail!r}")
    taken = _all_names(root)
    on, inn = _fresh(taken, f"{var}_o"), _fresh(taken, f"{var}_i")
    vo, vi = L.Var(on), L.Var(inn)
    inner_kind = f.kind if f.kind in ("vectorized", "unrolled") else "serial"
    outer_kind = "serial" if f.kind in ("vectorized", "unrolled") else f.kind
    ext = L.simplify(f.extent)
    n = _static(ext)
    body = _subst(f.body, {var: f.start + vo * factor + vi})
    if n is not None and n % factor == 0:
        new = L.For(vo, L.Const(n // factor), L.For(vi, L.Const(factor), body, inner_kind), outer_kind)
    elif tail == "guard":
        cond = L.binary("lt", vo * factor + vi, ext)
        new = L.For(vo, (ext + (factor - 1)) // factor, L.For(vi, L.Const(factor), L.If(cond, body), inner_kind),
                    outer_kind)
    elif n is not None and n < factor:
        raise ValueError(f"split: loop {var!r} runs {n} times, fewer than the factor {factor} "
                         f"(tail='guard' pads it to one step)")
    else:
        full = L.simplify(ext // factor)
        main = _nonempty(L.For(vo, full, L.For(vi, L.Const(factor), body, inner_kind), outer_kind))
        rest = _nonempty(L.For(f.var, L.simplify(ext % factor), _renamed(f.body, taken), "serial",
                               f.start + full * factor))
        new = L.seq(main, rest)
    return wrap(_replace(root, f, new)), on, inn


def _renamed(s: L.Stmt, taken: set) -> L.Stmt:
    """A copy of ``s`` whose loops have fresh names ``name_r`` (loop names stay unique)."""
    env = {x.var.name: L.Var(_fresh(taken, f"{x.var.name}_r"), x.var.dtype)
           for x in L.walk_stmts(s) if isinstance(x, L.For)}

    def fn(x):
        if isinstance(x, L.For) and x.var.name in env:
            return L.For(env[x.var.name], x.extent, _rebuild(x.body, fn), x.kind, x.start)
        return None

    return _subst(_rebuild(s, fn), env)


def _chain(root, outer: str, inner: str, prim: str) -> list:
    """The perfect nest of loops from ``outer`` down to ``inner`` (both included)."""
    fo, fi = _find(root, outer, prim), _find(root, inner, prim)
    if fo is fi:
        raise ValueError(f"{prim}: {outer!r} and {inner!r} are the same loop")
    if not any(x is fi for x in L.walk_stmts(fo)):
        raise ValueError(f"{prim}: loop {inner!r} is not inside loop {outer!r}")
    chain = [fo]
    while chain[-1] is not fi:
        b = chain[-1].body
        if not isinstance(b, L.For):
            raise ValueError(f"{prim}: loops {outer!r} and {inner!r} are not perfectly nested "
                             f"(the body of {chain[-1].var.name!r} is not a single loop)")
        chain.append(b)
    names = {c.var.name for c in chain}
    for c in chain:
        dep = (L.free_vars(c.extent) | L.free_vars(c.start)) & names
        if dep:
            raise ValueError(f"{prim}: the range of loop {c.var.name!r} depends on loop {sorted(dep)[0]!r}")
    return chain


def reorder(s, outer: str, inner: str):
    """Swap loops ``outer`` and ``inner`` of a perfect nest (loops between them stay in place)."""
    root, wrap = _unwrap(s)
    chain = _chain(root, outer, inner, "reorder")
    order = [chain[-1], *chain[1:-1], chain[0]]
    body = _copy(chain[-1].body)
    for c in reversed(order):
        body = L.For(c.var, c.extent, body, c.kind, c.start)
    return wrap(_replace(root, chain[0], body))


def fuse(s, outer: str, inner: str):
    """Fuse loop ``outer`` with the loop ``inner`` directly inside it: returns ``(stmt, fused_name)``.

    The fused loop has ``outer``'s kind; ``outer = f // n_inner`` and ``inner = f % n_inner``."""
    root, wrap = _unwrap(s)
    fo, fi = _chain(root, outer, inner, "fuse")[0], _find(root, inner, "fuse")
    if fo.body is not fi:
        raise ValueError(f"fuse: loop {inner!r} is not directly inside loop {outer!r}")
    name = _fresh(_all_names(root), f"{outer}_{inner}")
    fv = L.Var(name)
    env = {outer: fo.start + fv // fi.extent, inner: fi.start + fv % fi.extent}
    new = L.For(fv, fo.extent * fi.extent, _subst(fi.body, env), fo.kind)
    return wrap(_replace(root, fo, new)), name


def fuse_chain(chain: Sequence[L.For], name: str, kind: str = "serial") -> L.For:
    """Fuse a perfect nest ``chain`` (outer first, starts 0) into one loop ``name`` over the product
    (the helper :func:`kiln.ir.lowering.fuse_loops` computes the same thing)."""
    total: L.Expr = L.Const(1)
    for c in chain:
        total = total * c.extent
    fv = L.Var(name)
    env, rest = {}, fv
    for c in reversed(chain):
        env[c.var.name] = c.start + (rest if c is chain[0] else L.simplify(rest % c.extent))
        rest = rest // c.extent
    return L.For(fv, L.simplify(total), _subst(chain[-1].body, env), kind)


def _set_kind(root, f, kind):
    return _rebuild(root, lambda x: L.For(x.var, x.extent, _copy(x.body), kind, x.start) if x is f else None)


def _widenable(s: L.Stmt) -> bool:
    if isinstance(s, L.Store):
        return True
    if isinstance(s, L.Let):
        return _widenable(s.body)
    if isinstance(s, L.Seq):
        return all(_widenable(x) for x in s.body)
    if isinstance(s, L.For):
        return s.kind == "unrolled" and _static(s.extent) is not None and _widenable(s.body)
    return False


def _inside_kind(root, f, kinds) -> L.For | None:
    for a in _ancestors(root, f):
        if isinstance(a, L.For) and a.kind in kinds:
            return a
    return None


def vectorize(s, var: str, lanes: int | None = None):
    """Mark loop ``var`` vectorized. With ``lanes`` and an extent above ``lanes`` (or not constant),
    split by ``lanes`` first (remainder loop) and vectorize the inner loop ``var_i``.

    The targets widen a vectorized loop of constant extent whose body is straight-line stores and
    lets (unrolled inner loops allowed); anything else is refused here rather than run serially."""
    root, wrap = _unwrap(s)
    f = _find(root, var, "vectorize")
    outer = _inside_kind(root, f, ("vectorized",))
    if outer is not None:
        raise ValueError(f"vectorize: loop {var!r} is inside the vectorized loop {outer.var.name!r}")
    if not _widenable(f.body):
        raise ValueError(f"vectorize: the body of loop {var!r} has a loop or an if; only straight-line "
                         f"stores and lets (and unrolled loops of constant extent) are vectorized")
    n = _static(f.extent)
    if lanes is None:
        if n is None:
            raise ValueError(f"vectorize: loop {var!r} has a non-constant extent {f.extent}; give lanes")
        return wrap(_set_kind(root, f, "vectorized"))
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"vectorize: lanes for loop {var!r} must be a positive int, got {lanes!r}")
    if n is not None and n <= lanes:  # one vector (of n lanes) holds the whole loop
        return wrap(_set_kind(root, f, "vectorized"))
    if f.kind != "serial":
        raise ValueError(f"vectorize: loop {var!r} is {f.kind}; split a serial loop")
    out, _, inner = split(root, var, lanes)
    return wrap(_set_kind(out, _find(out, inner, "vectorize"), "vectorized"))


def unroll(s, var: str):
    """Mark loop ``var`` unrolled (its extent must be constant: the targets emit it per iteration)."""
    root, wrap = _unwrap(s)
    f = _find(root, var, "unroll")
    if _static(f.extent) is None:
        raise ValueError(f"unroll: loop {var!r} has a non-constant extent {f.extent}")
    return wrap(_set_kind(root, f, "unrolled"))


def parallelize(s, var: str):
    """Mark loop ``var`` parallel. Refused when an iteration stores to an element that does not
    depend on ``var`` (other than to buffers allocated inside the loop): the iterations would race."""
    root, wrap = _unwrap(s)
    f = _find(root, var, "parallelize")
    outer = _inside_kind(root, f, ("vectorized",))
    if outer is not None:
        raise ValueError(f"parallelize: loop {var!r} is inside the vectorized loop {outer.var.name!r}")
    private = {id(x.buf) for x in L.walk_stmts(f.body) if isinstance(x, L.Alloc)}
    dep = {var}  # names whose value depends on var
    for x in L.walk_stmts(f.body):
        if isinstance(x, L.Let) and L.free_vars(x.value) & dep:
            dep.add(x.var.name)
    for st in _stores(f.body):
        if id(st.buf) in private:
            continue
        if not any(L.free_vars(i) & dep for i in st.index):
            raise ValueError(f"parallelize: loop {var!r}: the store to {_fmt_store(st)} does not depend on "
                             f"{var!r}, so iterations would race")
    return wrap(_set_kind(root, f, "parallel"))


# ---------------------------------------------------------------------------------- region analysis
def _range_of(e: L.Expr, ranges: dict, what: str):
    """Inclusive (lo, hi) expressions of the int index ``e`` over the vars in ``ranges`` (name ->
    (lo, hi) expressions); other vars stay symbolic. Affine in the ranged vars, else static bounds."""
    e = L.simplify(e)
    t = L.affine(e)
    if t is None:
        raise ValueError(f"{what}: index {e} is not an int64 expression")
    lo: L.Expr = L.Const(t.get(None, 0))
    hi: L.Expr = lo
    numeric = {}
    for k, (a, b) in ranges.items():
        if isinstance(a, L.Const) and isinstance(b, L.Const):
            numeric[k] = (int(a.value), int(b.value))
    for atom, c in t.items():
        if atom is None:
            continue
        fv = L.free_vars(atom) & ranges.keys()
        if not fv:
            lo, hi = lo + atom * c, hi + atom * c
        elif isinstance(atom, L.Var):
            a, b = ranges[atom.name]
            lo, hi = (lo + a * c, hi + b * c) if c > 0 else (lo + b * c, hi + a * c)
        else:
            nb = L.bounds(atom, numeric) if fv <= numeric.keys() and not (L.free_vars(atom) - fv) else None
            if nb is None:
                raise ValueError(f"{what}: index {e} is not affine in the loop variables ({L.fmt_expr(atom)})")
            a, b = nb
            lo, hi = (lo + a * c, hi + b * c) if c > 0 else (lo + b * c, hi + a * c)
    return L.simplify(lo), L.simplify(hi)


def _reads(s: L.Stmt, buf: L.Buffer, ranges: dict, what: str) -> list:
    """Every load of ``buf`` in ``s`` as (index expressions with inner lets substituted, ranges of the
    loop and reduction vars of ``s`` in scope there)."""
    out: list = []

    def expr(e, rng, lets):
        def go(x, rng):
            if isinstance(x, L.Reduce):
                go(x.init, rng)
                inner = dict(rng)
                for v, n in x.axes:
                    go(n, rng)
                    inner[v.name] = (L.Const(0), _range_of(n - 1, rng, what)[1])
                go(x.body, inner)
                return
            if isinstance(x, L.Load) and x.buf is buf:
                out.append((tuple(L.substitute(i, lets) for i in x.index), rng))
            for c in L.children(x):
                go(c, rng)

        go(e, rng)

    def stmt(x, rng, lets):
        for e in _stmt_exprs(x):
            expr(e, rng, lets)
        if isinstance(x, L.For):
            lo = _range_of(L.substitute(x.start, lets), rng, what)[0]
            hi = _range_of(L.substitute(x.start + x.extent - 1, lets), rng, what)[1]
            stmt(x.body, {**rng, x.var.name: (lo, hi)}, lets)
        elif isinstance(x, L.Let):
            stmt(x.body, rng, {**lets, x.var.name: L.substitute(x.value, lets)})
        else:
            for c in L.stmt_children(x):
                stmt(c, rng, lets)

    stmt(s, dict(ranges), {})
    return out


def _region(reads, buf: L.Buffer, what: str):
    """The bounding box of ``reads``: per dim (lo expression, hi expression)."""
    box = []
    for d in range(len(buf.shape)):
        los, his = [], []
        for index, rng in reads:
            lo, hi = _range_of(index[d], rng, what)
            los.append(lo)
            his.append(hi)
        box.append((_hull(los, min, L.minimum), _hull(his, max, L.maximum)))
    return box


def _hull(es: list, pick, combine) -> L.Expr:
    """min/max of ``es``: an offset from the first when they differ by constants, else min()/max()."""
    offs = [L.simplify(e - es[0]) for e in es]
    if all(isinstance(o, L.Const) for o in offs):
        return L.simplify(es[0] + pick(int(o.value) for o in offs))
    out = es[0]
    for e in es[1:]:
        if e != out:
            out = combine(out, e)
    return L.simplify(out)


def _resolve_buf(s: L.Stmt, buf, what: str) -> L.Buffer:
    if isinstance(buf, L.Buffer):
        return buf
    found = {}
    for x in L.walk_stmts(s):
        if isinstance(x, L.Store) and x.buf.name == buf:
            found[id(x.buf)] = x.buf
        for e in _stmt_exprs(x):
            for n in L.walk(e):
                if isinstance(n, L.Load) and n.buf.name == buf:
                    found[id(n.buf)] = n.buf
    if not found:
        raise ValueError(f"{what}: no buffer {buf!r} is read or written here")
    if len(found) > 1:
        raise ValueError(f"{what}: buffer name {buf!r} is ambiguous")
    return next(iter(found.values()))


# ------------------------------------------------------------------------------------- cache / pack
def cache_read(s, buf, at_var: str, *, name: str | None = None):
    """Copy the box of ``buf`` that loop ``at_var`` reads into a local buffer just before the loop."""
    return pack(s, buf, at_var, None, name=name, _prim="cache_read")


def pack(s, buf, at_var: str, perm: Sequence[int] | None = None, *, name: str | None = None, _prim="pack"):
    """:func:`cache_read` into a local buffer whose dims are ``buf``'s permuted by ``perm``
    (``local[c[perm[0]], c[perm[1]], ...] = buf[base + c]``).

    The box is inferred from the affine indices of every load of ``buf`` in the loop, over all the
    loop's iterations (its extent must come out constant: a local buffer has a static size). Box
    elements outside ``buf``'s shape (a padded read under a condition) are set to zero."""
    root, wrap = _unwrap(s)
    f = _find(root, at_var, _prim)
    b = _resolve_buf(f, buf, _prim)
    rank = len(b.shape)
    perm = tuple(range(rank)) if perm is None else tuple(perm)
    if sorted(perm) != list(range(rank)):
        raise ValueError(f"{_prim}: {perm} is not a permutation of the {rank} dims of {b.name}")
    if any(st.buf is b for st in _stores(f)):
        raise ValueError(f"{_prim}: {b.name} is written inside loop {at_var!r}")
    reads = _reads(f, b, {}, _prim)
    if not reads:
        raise ValueError(f"{_prim}: loop {at_var!r} does not read {b.name}")
    box = _region(reads, b, _prim)
    shape = []
    for d, (lo, hi) in enumerate(box):
        n = L.simplify(hi - lo + 1)
        if not isinstance(n, L.Const):
            raise ValueError(f"{_prim}: the region of {b.name} that loop {at_var!r} reads has a non-constant "
                             f"extent {n} along dim {d}")
        shape.append(int(n.value))
    taken = _all_names(root)
    local = L.Buffer(_fresh(taken, name or f"{b.name}_local"), b.dtype, [shape[p] for p in perm], scope="local")
    cvars = [L.Var(_fresh(taken, f"{local.name}_c{d}")) for d in range(rank)]
    src = tuple(L.simplify(lo + c) for (lo, _), c in zip(box, cvars))
    dst = tuple(cvars[p] for p in perm)
    copy: L.Stmt = L.Store(local, dst, L.Load(b, src))
    conds = [c for d, i in enumerate(src)
             for c in (L.binary("ge", i, 0), L.binary("lt", i, b.shape[d]))]
    rng = _ranges(_ancestors(root, f) + [f])
    rng.pop(f.var.name, None)
    rng.update({c.name: (0, n - 1) for c, n in zip(cvars, shape)})
    conds = [c for c in (L.simplify(x, rng) for x in conds) if not (isinstance(c, L.Const) and c.value)]
    if conds:
        cond = conds[0]
        for c in conds[1:]:
            cond = L.Bin("and", cond, c, L.BOOL)
        copy = L.If(cond, copy, L.Store(local, dst, L.const(0, b.dtype)))
    for p in reversed(perm):  # loops in the local layout's order: the copy writes it contiguously
        copy = L.For(cvars[p], L.Const(shape[p]), copy)

    def rewrite(x):
        if isinstance(x, L.Load) and x.buf is b:
            rel = [x.index[d] - box[d][0] for d in range(rank)]
            return L.Load(local, tuple(rel[p] for p in perm))
        return None

    loop = L.map_stmt(f, lambda e: L.map_expr(e, rewrite))
    return wrap(_replace(root, f, L.Alloc(local, L.seq(copy, loop))))


# -------------------------------------------------------------------------------- compute-at / inline
def _producer(prod: L.Stmt, what: str):
    """(loops outer first, store) of a perfect nest storing each element of its box once."""
    loops = []
    x = prod
    while isinstance(x, L.For):
        loops.append(x)
        x = x.body
    if not isinstance(x, L.Store):
        raise ValueError(f"{what}: the producer must be a perfect loop nest around one store")
    names = [lp.var.name for lp in loops]
    idx = [i.name if isinstance(i, L.Var) else None for i in x.index]
    if sorted(n for n in idx if n is not None) != sorted(names) or None in idx or len(idx) != len(names):
        raise ValueError(f"{what}: the store {_fmt_store(x)} must index {x.buf.name} by its loop "
                         f"variables ({', '.join(names) or 'none'}), each once")
    for lp in loops:
        if (L.free_vars(lp.extent) | L.free_vars(lp.start)) & set(names):
            raise ValueError(f"{what}: the range of producer loop {lp.var.name!r} depends on another producer loop")
    if x.buf.name in _loaded(x.value):
        raise ValueError(f"{what}: the value stored to {x.buf.name} reads {x.buf.name} itself")
    return loops, x


def _bound_names(s: L.Stmt) -> set:
    out = set()
    for x in L.walk_stmts(s):
        if isinstance(x, (L.For, L.Let)):
            out.add(x.var.name)
    return out


def compute_at(producer: L.Stmt, consumer, var: str):
    """Move ``producer`` (a perfect nest storing buffer P by its loop vars) into loop ``var`` of
    ``consumer`` (a statement or Kernel): each iteration of ``var`` first computes the box of P its
    body reads (inferred from affine indices, clipped to the producer's own range). Returns the new
    consumer; the producer nest is no longer needed. P keeps its full size.
    """
    loops, store = _producer(producer, "compute_at")
    P = store.buf
    consumer, wrap = _unwrap(consumer)
    f = _find(consumer, var, "compute_at")
    outside = [r for r in _reads(consumer, P, {}, "compute_at")]
    inside = _reads(f.body, P, {}, "compute_at")
    if len(outside) != len(inside):
        raise ValueError(f"compute_at: the consumer reads {P.name} outside loop {var!r}")
    if not inside:
        raise ValueError(f"compute_at: loop {var!r} does not read {P.name}")
    written = {st.buf.name for st in _stores(consumer)}
    if P.name in written:
        raise ValueError(f"compute_at: the consumer writes {P.name}")
    clash = _loaded(store.value) & written
    if clash:
        raise ValueError(f"compute_at: the producer reads {sorted(clash)[0]}, which the consumer writes")
    bound = _bound_names(consumer)
    free = L.free_vars(store.value) - {lp.var.name for lp in loops}
    for lp in loops:
        free |= L.free_vars(lp.extent) | L.free_vars(lp.start)
    if free & bound:
        raise ValueError(f"compute_at: the producer uses {sorted(free & bound)[0]!r}, "
                         f"a variable the consumer binds")
    box = _region(inside, P, "compute_at")
    taken = _all_names(consumer) | _all_names(producer)
    dim_of = {i.name: d for d, i in enumerate(store.index)}
    env, new_loops = {}, []
    for lp in loops:
        d = dim_of[lp.var.name]
        lo, hi = box[d]
        nv = L.Var(lp.var.name if lp.var.name not in bound else _fresh(taken, lp.var.name))
        env[lp.var.name] = nv
        start = L.maximum(lo, lp.start)
        stop = L.minimum(hi + 1, lp.start + lp.extent)
        new_loops.append((nv, start, stop - start, lp.kind))
    body: L.Stmt = L.Store(P, tuple(L.substitute(i, env) for i in store.index), L.substitute(store.value, env))
    for nv, start, ext, kind in reversed(new_loops):
        body = L.For(nv, ext, body, kind if kind != "vectorized" else "serial", start)
    new_f = L.For(f.var, f.extent, L.seq(body, _copy(f.body)), f.kind, f.start)
    return wrap(_replace(consumer, f, new_f))


def inline(s, buf):
    """Replace every load of ``buf`` by the value of its single producing store.

    ``buf`` must be stored exactly once, by a store ``buf[v1, ..., vn] = value`` directly inside a
    perfect nest over ``v1..vn`` (any order) covering ``buf``'s shape from 0, whose value reads no
    buffer written elsewhere in ``s`` and no variable bound in ``s`` other than ``v1..vn``. When ``s``
    allocates ``buf`` the producer nest and the allocation go; otherwise (a kernel parameter) the
    producer stays, as the buffer is still an output."""
    root, wrap = _unwrap(s)
    b = _resolve_buf(root, buf, "inline")
    stores = [st for st in _stores(root) if st.buf is b]
    if len(stores) != 1:
        raise ValueError(f"inline: {b.name} is stored {len(stores)} times; inline needs exactly one store")
    st = stores[0]
    anc = _ancestors(root, st)
    nest = []
    for a in reversed(anc):
        if isinstance(a, L.For) and (not nest and a.body is st or nest and a.body is nest[0]):
            nest.insert(0, a)
        else:
            break
    if not nest:
        raise ValueError(f"inline: the store {_fmt_store(st)} is not directly inside a loop nest over {b.name}")
    loops, _ = _producer(nest[0], "inline")
    for d, i in enumerate(st.index):
        lp = next(lp for lp in loops if lp.var.name == i.name)
        if not (L.simplify(lp.start) == L.Const(0) and L.simplify(lp.extent - b.shape[d]) == L.Const(0)):
            raise ValueError(f"inline: the loop {lp.var.name!r} storing {b.name} does not cover dim {d} "
                             f"({lp.extent} from {lp.start}, dim {b.shape[d]})")
    names = {lp.var.name for lp in loops}
    bad = (L.free_vars(st.value) - names) & _bound_names(root)
    if bad:
        raise ValueError(f"inline: the value stored to {b.name} uses {sorted(bad)[0]!r}, bound around the store")
    others = {x.buf.name for x in _stores(root) if x is not st}
    clash = _loaded(st.value) & others
    if clash:
        raise ValueError(f"inline: the value stored to {b.name} reads {sorted(clash)[0]}, "
                         f"which is written elsewhere (inline that first)")
    local = any(isinstance(x, L.Alloc) and x.buf is b for x in L.walk_stmts(root))
    top = nest[0]

    def rewrite(x):
        if isinstance(x, L.Load) and x.buf is b:
            return L.substitute(st.value, {i.name: j for i, j in zip(st.index, x.index)})
        return None

    def fn(x):
        if x is top and local:
            return L.Seq([])
        if isinstance(x, L.Alloc) and x.buf is b:
            return _rebuild(x.body, fn)
        if x is top:
            return _copy(x)
        return None

    out = _rebuild(root, fn)
    out = L.map_stmt(out, lambda e: L.map_expr(e, rewrite))
    return wrap(L.simplify_stmt(out))
