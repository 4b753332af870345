"""gather and scatter in the forms jnp indexing produces.

A JAX gather picks, for each index vector (the last axis of ``indices``), a slice of the operand.
The forms handled:

* *point* gathers: every indexed operand dim has slice size 1 (``x[i]``, ``x[:, idx]``,
  ``x[idx_array]``, ``x[i, j]``, ``take_along_axis`` through its batching dims), other dims taken
  whole -> ``gather`` (one indexed dim) or ``gather_nd`` on the operand transposed to put the
  indexed dims first, then the result transposed into JAX's output order;
* *window* gathers at one index vector (``x[1:]`` of a symbolic axis, ``dynamic_slice``-like)
  -> slices at clamped starts.

Scatters (``.at[...].set/add/mul/min/max``) of the point form become ``scatter_nd``. Modes: ``clip``
and ``promise_in_bounds`` clamp indices into range; ``fill`` gathers return the fill value for an
out-of-range index vector; ``fill``/``drop`` scatters drop out-of-range updates (they land in an extra
row that is cut off). Other forms raise a ConversionError naming the dimension numbers.
"""
from __future__ import annotations

import numpy as np

from ...ir import dims as _dims
from .registry import converter
from .shape import dynamic_slice, iota, slice_axis


def _mode(cx):
    mode = cx.params.get("mode")
    name = getattr(mode, "name", str(mode)).upper()
    for m in ("CLIP", "FILL_OR_DROP", "PROMISE_IN_BOUNDS"):
        if m in name:
            return m
    raise cx.error(f"gather/scatter mode {mode} is not supported")


def _with_batching(cx, idx, obd, ibd, index_map, collapsed):
    """Turn batching dims into explicit index components: operand dim ``ob`` is indexed by the position
    along the indices' dim ``ib``."""
    if not obd:
        return idx, list(index_map), list(collapsed)
    batch = list(cx.shape(idx)[:-1])
    comps = [idx]
    for ib in ibd:
        comps.append(iota(cx, cx.dtype(idx), batch + [1], int(ib)))
    idx = cx.op("concat", *comps, axis=-1)
    return idx, list(index_map) + [int(o) for o in obd], list(collapsed) + [int(o) for o in obd]


def _bounds(cx, x_shape, index_map):
    """The int64 vector of the largest valid index of each indexed dim."""
    his = [_dims.sub(x_shape[a], 1) for a in index_map]
    if all(isinstance(h, int) for h in his):
        return cx.const(np.array(his, np.int64))
    return cx.op("concat", *[cx.op("reshape", cx.dim_value(h, "i64"), shape=[1]) for h in his], axis=0)


def _in_range(cx, idx, hi):
    """bool [batch...]: every component of each index vector is in [0, hi]."""
    ok = cx.op("and", cx.op("greater_equal", idx, cx.const(0, "i64")), cx.op("less_equal", idx, hi))
    return cx.op("reduce_min", cx.cast(ok, "i32"), axes=[cx.rank(idx) - 1], keepdims=False)


def _all_true(cx, v):
    c = cx.const_of(v)
    return c is not None and bool(np.all(c))


def _fill_value(cx, dt):
    fill = cx.params.get("fill_value")
    if fill is not None:
        return fill
    if dt.kind == "float":
        return np.nan
    if dt.kind == "bool":
        return True
    info = np.iinfo(dt.np)
    return info.min if dt.kind == "int" else info.max


@converter("gather")
def gather(cx, x, idx):
    dn = cx.params["dimension_numbers"]
    sizes = list(cx.dims(cx.params["slice_sizes"]))
    xs, r = list(cx.shape(x)), cx.rank(x)
    idx, index_map, collapsed = _with_batching(cx, idx, dn.operand_batching_dims, dn.start_indices_batching_dims,
                                               dn.start_index_map, dn.collapsed_slice_dims)
    offset_dims = [int(d) for d in dn.offset_dims]
    batch = list(cx.shape(idx)[:-1])
    mode = _mode(cx)
    for a in range(r):  # dims taken from position 0 (not indexed) but not whole: slice them first
        if a not in index_map and sizes[a] != xs[a]:
            x = slice_axis(cx, x, a, 0, sizes[a])
    xs = list(cx.shape(x))
    single = all(isinstance(d, int) for d in batch) and int(np.prod(batch)) == 1
    const = cx.const_of(idx)
    in_range = const is not None and all(0 <= int(c) <= _dims.sub(xs[a], sizes[a]) if isinstance(
        _dims.sub(xs[a], sizes[a]), int) else int(c) == 0 for c, a in zip(np.reshape(const, -1), index_map))
    if all(sizes[a] == 1 for a in index_map) and not (single and const is not None and in_range):
        return _point_gather(cx, x, idx, index_map, collapsed, offset_dims, batch, mode)
    if single and (mode != "FILL_OR_DROP" or in_range):
        # one window (dynamic_slice-like): slice at the clamped starts, then lay out like JAX
        comps = cx.op("reshape", idx, shape=[len(index_map)])
        starts = {}
        for k, a in enumerate(index_map):
            starts[a] = cx.op("reshape", cx.op("slice", comps, starts=[k], ends=[k + 1], axes=[0], steps=[1]),
                              shape=[])
        y = dynamic_slice(cx, x, starts, sizes)
        return cx.op("reshape", y, shape=list(cx.out_shape())) if list(cx.shape(y)) != list(cx.out_shape()) else y
    raise cx.error(f"gather with slice sizes {[str(s) for s in sizes]} over several index vectors "
                   f"({dn}) is not supported: only point gathers (jnp indexing with integer arrays) or a single "
                   f"window")


def _point_gather(cx, x, idx, index_map, collapsed, offset_dims, batch, mode):
    xs, r = list(cx.shape(x)), cx.rank(x)
    idx = cx.cast(idx, "i64")
    hi = _bounds(cx, xs, index_map)
    ok = _in_range(cx, idx, hi) if mode == "FILL_OR_DROP" else None
    idx = cx.op("min", cx.op("max", idx, cx.const(0, "i64")), hi)
    if len(index_map) == 1:  # gather along that axis: [x dims before, batch..., x dims after]
        (a,) = index_map
        g = cx.op("gather", x, cx.op("reshape", idx, shape=batch), axis=a)
        layout = [("o", d) for d in range(a)] + [("b", i) for i in range(len(batch))] + [
            ("o", d) for d in range(a + 1, r)]
    else:  # gather_nd over the indexed dims moved to the front: [batch..., other x dims]
        rest = [d for d in range(r) if d not in index_map]
        xt = cx.op("transpose", x, perm=index_map + rest) if index_map + rest != list(range(r)) else x
        g = cx.op("gather_nd", xt, idx, batch_dims=0)
        layout = [("b", i) for i in range(len(batch))] + [("o", d) for d in rest]
    # JAX's result: offset dims (the non-collapsed operand dims, in order) at offset_dims, batch dims
    # elsewhere; an indexed dim that is not collapsed is an offset dim of size 1
    offsets = [d for d in range(r) if d not in collapsed]
    out_rank = len(batch) + len(offsets)
    want, b = [], 0
    for p in range(out_rank):
        if p in offset_dims:
            want.append(("o", offsets[offset_dims.index(p)]))
        else:
            want.append(("b", b))
            b += 1
    present = [w for w in want if w in layout]
    perm = [layout.index(w) for w in present]
    if perm != list(range(len(perm))):
        g = cx.op("transpose", g, perm=perm)
    out_shape = list(cx.out_shape())
    if list(cx.shape(g)) != out_shape:
        g = cx.op("reshape", g, shape=out_shape)
    if ok is not None and not _all_true(cx, ok):
        mshape = [1] * out_rank
        for p, w in enumerate(want):
            if w[0] == "b":
                mshape[p] = batch[w[1]]
        mask = cx.op("reshape", cx.cast(ok, "bool"), shape=mshape)
        g = cx.op("where", mask, g, cx.scalar_like(_fill_value(cx, cx.dtype(g)), g))
    return g


def _writes_update(jaxpr) -> bool:
    """True for a plain scatter's update computation: none, or one returning the update itself."""
    if jaxpr is None:
        return True
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    return not jaxpr.eqns and len(jaxpr.invars) == 2 and list(jaxpr.outvars) == [jaxpr.invars[1]]


_SCATTERS = {"scatter": "none", "scatter-add": "add", "scatter_add": "add", "scatter-mul": "mul",
             "scatter_mul": "mul", "scatter-min": "min", "scatter_min": "min", "scatter-max": "max",
             "scatter_max": "max", "scatter-sub": "sub", "scatter_sub": "sub"}


@converter(*_SCATTERS)
def scatter(cx, x, idx, upd):
    reduction = _SCATTERS[cx.name]
    if reduction == "none" and not _writes_update(cx.params.get("update_jaxpr")):
        raise cx.error("scatter with its own update computation (.at[...].apply) is not supported")
    if reduction == "sub":
        upd, reduction = cx.op("neg", upd), "add"
    dn = cx.params["dimension_numbers"]
    xs, r = list(cx.shape(x)), cx.rank(x)
    idx, index_map, inserted = _with_batching(cx, idx, dn.operand_batching_dims, dn.scatter_indices_batching_dims,
                                              dn.scatter_dims_to_operand_dims, dn.inserted_window_dims)
    uwd = [int(d) for d in dn.update_window_dims]
    us = list(cx.shape(upd))
    window_operand_dims = [a for a in range(r) if a not in inserted]
    wsize = dict(zip(window_operand_dims, [us[d] for d in uwd]))
    for a in window_operand_dims:
        if a in index_map and wsize[a] != 1 or a not in index_map and wsize[a] != xs[a]:
            raise cx.error(f"scatter of windows {[str(us[d]) for d in uwd]} into {list(map(str, xs))} ({dn}) is "
                           f"not supported: only point scatters (.at[int arrays]) with whole other dims")
    batch_dims = [d for d in range(len(us)) if d not in uwd]
    rest = [a for a in range(r) if a not in index_map]
    # updates as [batch..., rest...] (window dims of indexed operand dims have size 1: dropped)
    upd = cx.op("transpose", upd, perm=batch_dims + uwd) if batch_dims + uwd != list(range(len(us))) else upd
    batch = [us[d] for d in batch_dims]
    shape = batch + [xs[a] for a in rest]
    if list(cx.shape(upd)) != shape:
        upd = cx.op("reshape", upd, shape=shape)
    perm = index_map + rest
    xt = cx.op("transpose", x, perm=perm) if perm != list(range(r)) else x
    idx = cx.cast(idx, "i64")
    hi = _bounds(cx, xs, index_map)
    mode = _mode(cx)
    drop = None
    if mode == "FILL_OR_DROP":
        ok = _in_range(cx, idx, hi)
        if not _all_true(cx, ok):
            drop = cx.op("not", cx.cast(ok, "bool"))
    idx = cx.op("min", cx.op("max", idx, cx.const(0, "i64")), hi)
    if drop is not None:  # out-of-range updates go to an extra row past the end, cut off afterwards
        k = len(index_map)
        extra = np.zeros(k, np.int64)
        row = cx.op("concat", cx.op("reshape", cx.dim_value(xs[index_map[0]], "i64"), shape=[1]),
                    cx.const(extra[1:]), axis=0) if k > 1 else cx.op("reshape", cx.dim_value(
                        xs[index_map[0]], "i64"), shape=[1])
        idx = cx.op("where", cx.op("reshape", drop, shape=batch + [1]), row, idx)
        pads = [0] * (2 * r)
        pads[r] = 1
        xt = cx.op("pad", xt, pads=pads)
    y = cx.op("scatter_nd", xt, idx, upd, reduction=reduction)
    if drop is not None:
        y = slice_axis(cx, y, 0, 0, xs[index_map[0]])
    inv = [int(i) for i in np.argsort(perm)]
    return cx.op("transpose", y, perm=inv) if inv != list(range(r)) else y
