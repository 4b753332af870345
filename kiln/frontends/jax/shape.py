"""Shape and movement primitives: broadcast_in_dim, reshape, squeeze, transpose, rev, slices (static and
dynamic, with XLA's clamping of start indices), dynamic_update_slice, concatenate, pad (negative and
interior padding), iota and split.

Helpers here (``slice_axis``, ``dynamic_slice``, ``dilate``) are shared with the indexing and
windowed converters. A slice along a symbolic dim stays symbolic where its length is (``x[1:]`` of
a ``batch`` axis is ``batch-1`` long); a fixed-length slice of a symbolic axis gathers constant
positions instead.
"""
from __future__ import annotations

import numpy as np

from ...ir import dims as _dims
from .registry import converter

_BIG = 2**62  # a slice end past any axis


# --- helpers ------------------------------------------------------------------------------------

def slice_axis(cx, x, axis, start: int, size, step: int = 1):
    """``x`` along ``axis`` from ``start`` (an int), ``size`` elements ``step`` (> 0) apart."""
    d = cx.shape(x)[axis]
    if size == d and start == 0 and step == 1:
        return x
    if isinstance(size, int):
        if isinstance(d, int):
            end = start + (size - 1) * step + 1 if size else start
            return cx.op("slice", x, starts=[start], ends=[end], axes=[axis], steps=[step])
        # a fixed number of positions on a symbolic axis: gather them
        idx = cx.const(np.arange(start, start + size * step, step, dtype=np.int64)[:size])
        return cx.op("gather", x, idx, axis=axis)
    rest = _dims.sub(_dims.sub(d, start), size)
    if step != 1 or not isinstance(rest, int) or rest < 0:
        raise cx.error(f"slice [{start}:{start}+{size}] of the axis of size {d} is not expressible with symbolic "
                       f"dims (give the input fixed sizes in input_shapes)")
    return cx.op("slice", x, starts=[start], ends=[-rest if rest else _BIG], axes=[axis], steps=[1])


def clamp_index(cx, v, hi):
    """Integer scalar/tensor ``v`` clamped into ``[0, hi]`` (``hi`` a dim: int or symbolic), as int64."""
    v = cx.cast(v, "i64")
    v = cx.op("max", v, cx.const(0, "i64"))
    return cx.op("min", v, cx.dim_value(hi, "i64"))


def dynamic_slice(cx, x, starts: dict, sizes):
    """``x[s_a : s_a + sizes[a]]`` on each axis ``a`` in ``starts`` (scalar values, clamped like XLA:
    into ``[0, dim - size]``)."""
    for a, start in starts.items():
        d, size = cx.shape(x)[a], sizes[a]
        if size == d:
            continue  # the start clamps to 0
        room = _dims.sub(d, size)
        c = cx.const_of(start)
        if c is not None and (isinstance(room, int) or int(c) <= 0):
            x = slice_axis(cx, x, a, int(np.clip(int(c), 0, room if isinstance(room, int) else 0)), size)
            continue
        if not isinstance(size, int):
            raise cx.error(f"a slice of symbolic size {size} at a start computed at run time")
        s = clamp_index(cx, cx.op("reshape", start, shape=[]), room)
        idx = cx.op("add", s, cx.const(np.arange(size, dtype=np.int64)))
        x = cx.op("gather", x, idx, axis=a)
    return x


def dilate(cx, x, factors, value):
    """Insert ``factor - 1`` copies of the scalar value ``value`` between neighbours on each axis."""
    for a, f in enumerate(factors):
        f = int(f)
        if f == 1:
            continue
        shape = list(cx.shape(x))
        n = shape[a]
        y = cx.op("reshape", x, shape=shape[:a + 1] + [1] + shape[a + 1:])
        pads = [0] * (2 * (len(shape) + 1))
        pads[len(shape) + 1 + a + 1] = f - 1
        y = cx.op("pad", y, value, pads=pads)
        y = cx.op("reshape", y, shape=shape[:a] + [_dims.mul(n, f)] + shape[a + 1:])
        x = cx.op("slice", y, starts=[0], ends=[-(f - 1)], axes=[a], steps=[1])
    return x


# --- primitives ----------------------------------------------------------------------------------

@converter("broadcast_in_dim")
def broadcast_in_dim(cx, x, *dyn):
    if dyn:
        raise cx.error("broadcast_in_dim with dynamic shape operands is not supported")
    target = list(cx.dims(cx.params["shape"]))
    bd = [int(d) for d in cx.params["broadcast_dimensions"]]
    xs = cx.shape(x)
    inter = [1] * len(target)
    for i, d in enumerate(bd):
        inter[d] = xs[i]
    if list(xs) != inter:
        x = cx.op("reshape", x, shape=inter)
    return x if inter == target else cx.op("broadcast", x, shape=target)


@converter("reshape")
def reshape(cx, x, *dyn):
    if dyn:
        raise cx.error("reshape with dynamic shape operands is not supported")
    if cx.params.get("dimensions") is not None:
        x = cx.op("transpose", x, perm=[int(d) for d in cx.params["dimensions"]])
    shape = list(cx.dims(cx.params["new_sizes"]))
    return x if list(cx.shape(x)) == shape else cx.op("reshape", x, shape=shape)


@converter("squeeze")
def squeeze(cx, x):
    drop = {int(d) % cx.rank(x) for d in cx.params["dimensions"]}
    return cx.op("reshape", x, shape=[d for i, d in enumerate(cx.shape(x)) if i not in drop])


@converter("expand_dims")
def expand_dims(cx, x):
    shape = list(cx.shape(x))
    for d in sorted(int(d) for d in cx.params["dimensions"]):
        shape.insert(d, 1)
    return cx.op("reshape", x, shape=shape)


@converter("transpose")
def transpose(cx, x):
    perm = [int(p) for p in cx.params["permutation"]]
    return x if perm == list(range(len(perm))) else cx.op("transpose", x, perm=perm)


def reverse(cx, x, axes):
    for a in axes:
        d = cx.shape(x)[a]
        if isinstance(d, int):
            x = cx.op("slice", x, starts=[-1], ends=[-_BIG], axes=[a], steps=[-1])
        else:  # positions d-1 .. 0, counted at run time
            n = cx.dim_value(d, "i64")
            idx = cx.op("range", cx.op("sub", n, cx.const(1, "i64")), cx.const(-1, "i64"), cx.const(-1, "i64"),
                        dims=[d])
            x = cx.op("gather", x, idx, axis=a)
    return x


@converter("rev")
def rev(cx, x):
    return reverse(cx, x, [int(d) for d in cx.params["dimensions"]])


@converter("slice")
def slice_(cx, x):
    starts, limits = cx.params["start_indices"], cx.params["limit_indices"]
    strides = cx.params.get("strides") or [1] * len(starts)
    out = cx.out_shape()
    for a, (s, lim, st) in enumerate(zip(starts, limits, strides)):
        s = cx.dim(s)
        if not isinstance(s, int):
            raise cx.error(f"slice starting at the symbolic position {s}")
        x = slice_axis(cx, x, a, s, out[a], int(st))
    return x


@converter("dynamic_slice")
def dynamic_slice_(cx, x, *starts):
    sizes = cx.dims(cx.params["slice_sizes"])
    return dynamic_slice(cx, x, dict(enumerate(starts)), sizes)


@converter("dynamic_update_slice")
def dynamic_update_slice(cx, x, upd, *starts):
    xs, us = cx.shape(x), cx.shape(upd)
    consts = [cx.const_of(s) for s in starts]
    if all(c is not None for c in consts):
        return _update_static(cx, x, upd, [int(c) for c in consts], 0)
    # run-time starts: scatter the update at the positions it covers
    k = max(a for a in range(len(xs)) if us[a] != xs[a] or cx.const_of(starts[a]) is None) + 1
    if any(not isinstance(us[a], int) for a in range(k)):
        raise cx.error(f"an update of shape {list(us)} at run-time start indices into {list(xs)}: the updated "
                       f"axes need static sizes")
    comps = []
    for a in range(k):
        s = clamp_index(cx, cx.op("reshape", starts[a], shape=[]), _dims.sub(xs[a], us[a]))
        pos = cx.op("add", s, cx.const(np.arange(us[a], dtype=np.int64)))
        shape = [1] * k
        shape[a] = us[a]
        comps.append(cx.op("broadcast", cx.op("reshape", pos, shape=shape + [1]), shape=list(us[:k]) + [1]))
    idx = cx.op("concat", *comps, axis=-1) if len(comps) > 1 else comps[0]
    return cx.op("scatter_nd", x, idx, upd)


def _update_static(cx, x, upd, starts, a):
    """x with ``upd`` written at the constant ``starts`` (clamped), axis ``a`` onwards: slices + concat."""
    xs, us = cx.shape(x), cx.shape(upd)
    while a < len(xs) and us[a] == xs[a]:
        a += 1
    if a == len(xs):
        return upd
    if not (isinstance(xs[a], int) and isinstance(us[a], int)):
        raise cx.error(f"an update of shape {list(us)} into {list(xs)}: axis {a} needs static sizes")
    s = int(np.clip(starts[a], 0, xs[a] - us[a]))
    middle = _update_static(cx, slice_axis(cx, x, a, s, us[a]), upd, starts, a + 1)
    parts = []
    if s > 0:
        parts.append(slice_axis(cx, x, a, 0, s))
    parts.append(middle)
    if s + us[a] < xs[a]:
        parts.append(slice_axis(cx, x, a, s + us[a], xs[a] - s - us[a]))
    return parts[0] if len(parts) == 1 else cx.op("concat", *parts, axis=a)


@converter("concatenate")
def concatenate(cx, *xs):
    return cx.op("concat", *xs, axis=int(cx.params["dimension"]))


@converter("pad")
def pad(cx, x, value):
    config = [(int(lo), int(hi), int(inner)) for lo, hi, inner in cx.params["padding_config"]]
    value = cx.op("reshape", value, shape=[]) if cx.rank(value) else value
    if any(inner for _, _, inner in config):
        x = dilate(cx, x, [inner + 1 for _, _, inner in config], value)
    pads = [lo for lo, _, _ in config] + [hi for _, hi, _ in config]
    return x if not any(pads) else cx.op("pad", x, value, pads=pads)


def iota(cx, dt, shape, axis):
    """Positions along ``axis`` broadcast to ``shape`` (dims may be symbolic), dtype ``dt``."""
    shape = list(shape)
    n = shape[axis]
    if isinstance(n, int):
        line = cx.const(np.arange(n), dt)
    else:
        line = cx.cast(cx.op("range", cx.const(0, "i64"), cx.dim_value(n, "i64"), cx.const(1, "i64"), dims=[n]), dt)
    inter = [1] * len(shape)
    inter[axis] = n
    line = cx.op("reshape", line, shape=inter)
    if inter == shape:
        return line
    if all(isinstance(d, int) for d in shape) and int(np.prod(shape)) > 1 << 16:
        return cx.e.b.op("broadcast", line, shape=shape, name=cx.e.hint)  # big: computed, not stored
    return cx.op("broadcast", line, shape=shape)


@converter("iota")
def iota_(cx):
    return iota(cx, cx.out_dtype(), cx.dims(cx.params["shape"]), int(cx.params["dimension"]))


@converter("split")
def split(cx, x):
    axis = int(cx.params["axis"]) % cx.rank(x)
    outs, start = [], 0
    for size in cx.params["sizes"]:
        size = cx.dim(size)
        if not isinstance(start, int):
            raise cx.error("split at a symbolic position")
        outs.append(slice_axis(cx, x, axis, start, size))
        start = _dims.add(start, size)
    return outs


@converter("stack")
def stack(cx, *xs):
    axis = int(cx.params["axis"])
    parts = []
    for x in xs:
        shape = list(cx.shape(x))
        shape.insert(axis, 1)
        parts.append(cx.op("reshape", x, shape=shape))
    return parts[0] if len(parts) == 1 else cx.op("concat", *parts, axis=axis)


@converter("unstack")
def unstack(cx, x):
    axis = int(cx.params["axis"]) % cx.rank(x)
    n = cx.static_dim(cx.shape(x)[axis], "the length of the unstacked axis")
    shape = [d for i, d in enumerate(cx.shape(x)) if i != axis]
    return [cx.op("reshape", slice_axis(cx, x, axis, i, 1), shape=shape) for i in range(n)]


@converter("tile")
def tile(cx, x):
    for a, r in enumerate(int(r) for r in cx.params["reps"]):
        if r == 1:
            continue
        shape = list(cx.shape(x))
        y = cx.op("reshape", x, shape=shape[:a] + [1] + shape[a:])
        y = cx.op("broadcast", y, shape=shape[:a] + [r] + shape[a:])
        x = cx.op("reshape", y, shape=shape[:a] + [_dims.mul(r, shape[a])] + shape[a + 1:])
    return x


@converter("dim_as_value")
def dim_as_value(cx):
    return cx.dim_value(cx.params["dim"], cx.out_dtype())


@converter("tie")
def tie(cx, x, y):
    return y


@converter("platform_index")
def platform_index(cx):
    """``lax.platform_dependent``'s branch choice: kiln takes the CPU (generic) branch, else the default."""
    groups = list(cx.params["platforms"])
    for i, ps in enumerate(groups):
        if ps is not None and "cpu" in ps:
            return cx.const(i, "i32")
    for i, ps in enumerate(groups):
        if ps is None:
            return cx.const(i, "i32")
    raise cx.error(f"lax.platform_dependent has no CPU or default branch (platforms {groups})")
