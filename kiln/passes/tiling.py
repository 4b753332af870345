"""Tiling of contractions: matmul and convolution (in GEMM form) as a register-blocked micro-kernel.

For ``C[b, m, n] = sum_k A(b, m, k) * B(b, k, n)`` with an elementwise epilogue (bias, activation,
residual add) the schedule is::

    parallel for (b, nt) in batch x N/nr:          # one panel of nr columns per task
      for mt in M/mr:                               # the panel stays in cache across row tiles
        acc[mr, nr] = 0                             # mr x nr/lanes vector registers
        for k in K:
          vectorized for j in nr:
            let bk = B(b, k, nt*nr + j)             # one vector load per k
            unrolled for i in mr:
              acc[i, j] += A(b, mt*mr + i, k) * bk  # broadcast x vector FMA
        C[...] = epilogue(acc)                      # bias, relu, residual: fused in the store

Constant operands are packed at compile time into the layout the micro-kernel reads: B into panels
``[N/nr, K, nr]`` and A into ``[M/mr, K, mr]``, so every k step reads contiguous memory. Rows and
columns left over by the tiles run through the generic path. ``choose_tiles`` is the heuristic; an
autotuner would replace it (the ``tiles`` argument of :func:`gemm_kernel`).
"""
from __future__ import annotations

import numpy as np

from ..ir import loops as L
from ..ir.lowering import fuse_loops, static


def lanes_of(nr: int) -> int:
    for lanes in (16, 8, 4):
        if nr % lanes == 0:
            return lanes
    return 1


def choose_tiles(spec, caps):
    """(mr, nr) from the vector width: as many accumulators as the register file holds."""
    lanes = caps.lanes(spec.dtype)
    if caps.vector_bits >= 512:
        nvec, mr_max = 3, 8
    elif caps.vector_bits >= 256:
        nvec, mr_max = 2, 6
    else:
        nvec, mr_max = 4, 6
    N, M = static(spec.N), static(spec.M)
    nr = nvec * lanes
    if N is not None:
        for nv in range(nvec, 0, -1):
            if N % (nv * lanes) == 0:
                nr = nv * lanes
                break
        if N < nr:
            nr = max(lanes, (N // lanes) * lanes)
    # rows: as many as keep about 24 accumulators (16 with one vector per row), dividing M when possible
    regs = 32 if caps.vector_bits >= 512 else 16
    mr_max = max(4, min((regs - 8) // max(1, nr // lanes), 16))
    mr = mr_max
    if M is not None:
        for cand in range(mr_max, 3, -1):
            if M % cand == 0:
                mr = cand
                break
        mr = max(1, min(mr, M))
    return mr, nr


def find_gemm(value: L.Expr, b):
    """The one GEMM reduction of an expression, or None (several reductions, or none)."""
    reds = [n for n in L.walk(value) if isinstance(n, L.Reduce)]
    if len(reds) != 1 or reds[0] not in b.gemms:
        return None
    return reds[0]


def gemm_kernel(t, out_buf: L.Buffer, b, caps, tiles=None):
    """The tiled loop nest storing tensor ``t`` (a contraction with an elementwise epilogue) into
    ``out_buf``, or None when ``t`` is not of that form."""
    ivars = [b.var("i") for _ in t.shape]
    value = t[tuple(ivars)]
    r = find_gemm(value, b)
    if r is None:
        return None
    spec, bidx, m_e, n_e = b.gemms[r]
    if spec.dtype.name != "f32" or static(spec.K) is None:
        return None
    # the epilogue must be elementwise over the contraction's own index space
    if spec.out_shape is None or len(spec.out_shape) != len(t.shape) or any(
            L.simplify(x - y) != L.Const(0) for x, y in zip(spec.out_shape, t.shape)):
        return None
    lanes = caps.lanes(spec.dtype)
    if lanes < 4:
        return None
    Ms, Ns = static(spec.M), static(spec.N)
    if Ns is not None and Ms is not None and Ns % lanes and not Ms % lanes:
        # n does not fill vectors but m does (a 7x7 convolution: 49 positions, 512 channels): swap the
        # roles so the vector side runs along m; only the epilogue's stores become strided
        spec, m_e, n_e = swapped(spec), n_e, m_e
    mr, nr = tiles or choose_tiles(spec, caps)
    # the materialised index space must be the GEMM's: ivars = out_index(b, m, n) inverts (bidx, m, n)
    bv = [b.var("b") for _ in spec.batch]
    mv, nv = b.var("m"), b.var("n")
    ranges = {v.name: (0, _hi(e)) for v, e in zip(bv, spec.batch)}
    ranges.update({mv.name: (0, _hi(spec.M)), nv.name: (0, _hi(spec.N))})
    out_idx = spec.out_index(tuple(bv), mv, nv)
    if len(out_idx) != len(ivars):
        return None
    env = {iv.name: e for iv, e in zip(ivars, out_idx)}
    unit = {v.name: L.Const(0) for v, e in zip(bv, spec.batch) if static(e) == 1}  # extent-1 batch dims
    back = [L.simplify(L.substitute(L.substitute(e, env), unit), ranges) for e in list(bidx) + [m_e, n_e]]
    want = [L.substitute(e, unit) for e in list(bv) + [mv, nv]]
    if any(x != y for x, y in zip(back, want)):
        return None
    if any(isinstance(n, L.Reduce) and n is not r for n in L.walk(value)):
        return None
    M, N, K = spec.M, spec.N, spec.K
    a_fn, b_fn = _packed_accessors(spec, b, mr, nr)
    full = _tiles(spec, b, value, r, ivars, out_buf, bv, mr, nr, a_fn, b_fn)
    # leftovers: rows past the last full row tile, columns past the last full panel: one reduction per
    # element, vectorised along n (packed operands cover only full tiles: the originals are read there)
    nt_end = L.simplify((N // nr) * nr)
    mt_end = L.simplify((M // mr) * mr)
    rest = []
    if static(N) is None or static(N) % nr:
        rest.append(_generic(spec, b, value, r, ivars, out_buf, (L.Const(0), M), (nt_end, N), spec.a, spec.bv, caps))
    if static(M) is None or static(M) % mr:
        rest.append(_generic(spec, b, value, r, ivars, out_buf, (mt_end, M), (L.Const(0), nt_end), spec.a, b_fn, caps))
    return L.simplify_stmt(L.seq(full, *rest))


def swapped(spec):
    """The same contraction with m and n exchanged: C^T = B^T A^T."""
    from ..ir.lowering import GemmSpec

    s = GemmSpec(spec.batch, spec.N, spec.M, spec.K,
                 lambda bidx, n, k: spec.bv(bidx, k, n), lambda bidx, k, m: spec.a(bidx, m, k),
                 lambda bidx, n, m: spec.out_index(bidx, m, n), spec.dtype)
    s.out_shape = spec.out_shape
    aarr = getattr(spec, "a_array", None)
    if aarr is not None and aarr.shape[0] == 1:
        s.bv_array = np.ascontiguousarray(aarr[0].T)  # [K, M]
    barr = getattr(spec, "bv_array", None)
    if barr is not None and barr.ndim == 2:
        s.a_array = np.ascontiguousarray(barr.T)[None]  # [1, N, K]
    return s


def _hi(e):
    s = static(e)
    return (s - 1) if s is not None else (1 << 40)


def _packed_accessors(spec, b, mr, nr):
    """Accessors reading compile-time packed copies of constant operands (or the originals)."""
    a_fn, b_fn = spec.a, spec.bv
    K = static(spec.K)
    barr = getattr(spec, "bv_array", None)
    if barr is not None and barr.ndim == 2 and static(spec.N) is not None:
        N = static(spec.N)
        panels = N // nr
        if panels:
            wt = _packed(b, ("b", barr, nr), lambda: np.ascontiguousarray(
                barr[:, :panels * nr].reshape(K, panels, nr).transpose(1, 0, 2)), spec.dtype)
            if wt is not None:
                def b_fn(bidx, k, n, wt=wt):
                    return wt[(n // nr, k, n % nr)]
    aarr = getattr(spec, "a_array", None)
    if aarr is not None and static(spec.M) is not None:
        G, Mg, KK = aarr.shape
        tiles = Mg // mr
        if tiles:
            wa = _packed(b, ("a", aarr, mr), lambda: np.ascontiguousarray(
                aarr[:, :tiles * mr, :].reshape(G, tiles, mr, KK).transpose(0, 1, 3, 2)), spec.dtype)
            if wa is not None:
                def a_fn(bidx, m, k, wa=wa, G=G):
                    return wa[(bidx[-1] if G > 1 else L.Const(0), m // mr, k, m % mr)]
    return a_fn, b_fn


def _packed(b, key, make, dtype):
    """One packed copy per constant and tile size, shared by every kernel that reads it. The cache
    holds the source array too, so its id cannot be reused by another array while the entry lives."""
    cache = b.__dict__.setdefault("_packed_weights", {})
    kind, src, size = key
    entry = cache.get((kind, id(src), size))
    if entry is None or entry[0] is not src:
        entry = (src, b.weight(make(), dtype))
        cache[(kind, id(src), size)] = entry
    return entry[1]


def _tiles(spec, b, value, r, ivars, out_buf, bv, mr, nr, a_fn, b_fn):
    M, N, K = spec.M, spec.N, spec.K
    NT, MT = L.simplify(N // nr), L.simplify(M // mr)
    nt, mt, k = b.var("nt"), b.var("mt"), b.var("kk")
    i, jo, ji = b.var("ii"), b.var("jo"), b.var("ji")
    lanes = lanes_of(nr)
    nvec = nr // lanes
    j = jo * lanes + ji
    acc = L.Buffer("acc", spec.dtype, (mr, nr), scope="local")
    m_of = mt * mr + i
    n_of = nt * nr + j
    bidx = tuple(bv)
    zero = L.const(0, spec.dtype)

    def over_tile(body, i_inside=False):
        """unrolled rows x unrolled vectors x vectorized lanes (rows innermost when i_inside)"""
        if i_inside:
            return L.For(jo, L.Const(nvec), L.For(ji, L.Const(lanes), body, "vectorized"), "unrolled")
        return L.For(i, L.Const(mr), L.For(jo, L.Const(nvec), L.For(ji, L.Const(lanes), body, "vectorized"),
                                           "unrolled"), "unrolled")

    init = over_tile(L.Store(acc, (i, j), zero))
    bk = b.var("bk", spec.dtype)
    fma = L.Store(acc, (i, j), L.binary("add", acc[i, j], L.binary("mul", a_fn(bidx, m_of, k), bk)))
    step = over_tile(L.Let(bk, b_fn(bidx, k, n_of), L.For(i, L.Const(mr), fma, "unrolled")), i_inside=True)
    kloop = L.For(k, K, step)
    env = {iv.name: e for iv, e in zip(ivars, spec.out_index(bidx, m_of, n_of))}
    epi_value = L.map_expr(value, lambda x: acc[i, j] if x == r else None)
    epi_value = L.substitute(epi_value, env)
    out_index = tuple(L.substitute(iv, env) for iv in ivars)
    store = over_tile(L.Store(out_buf, out_index, epi_value))
    tile = L.Alloc(acc, L.seq(init, kloop, store))
    body = L.For(mt, MT, tile)
    # the parallel loop: batch dims and column panels fused
    fors = []
    inner = body
    for v, e in reversed(list(zip(bv, spec.batch)) + [(nt, NT)]):
        inner = L.For(v, e, inner)
        fors.insert(0, inner)
    if len(fors) == 1:
        fors[0].kind = "parallel"
        return fors[0]
    return fuse_loops(fors, b, kind="parallel")


def _generic(spec, b, value, r, ivars, out_buf, m_range, n_range, a_fn, b_fn, caps):
    """Loops over a rectangle of the output, one reduction per element, the n loop vectorised."""
    from ..ir.lowering import _vector_loop

    bv = [b.var("gb") for _ in spec.batch]
    mv, nn = b.var("gm"), b.var("gn")
    n = nn + n_range[0]
    kv = b.var("gk")
    r2 = L.Reduce("sum", L.const(0, spec.dtype), ((kv, spec.K),),
                  L.binary("mul", a_fn(tuple(bv), mv, kv), b_fn(tuple(bv), kv, n)))
    env = {iv.name: e for iv, e in zip(ivars, spec.out_index(tuple(bv), mv, n))}
    val = L.substitute(L.map_expr(value, lambda x: r2 if x == r else None), env)
    idx = tuple(L.substitute(iv, env) for iv in ivars)
    body: L.Stmt = L.Store(out_buf, idx, val)
    width = L.simplify(n_range[1] - n_range[0])
    lanes = caps.lanes(spec.dtype)
    w = static(width)
    if w is not None and w >= lanes:
        body = _vector_loop(nn, width, body, lanes, b)
    else:
        body = L.For(nn, width, body)
    body = L.For(mv, L.simplify(m_range[1] - m_range[0]), body, start=m_range[0])
    for v, e in reversed(list(zip(bv, spec.batch))):
        body = L.For(v, e, body)
    body.kind = "parallel"
    return body
