"""Movement ATen ops: views, permutes, slices, concatenation, splits, padding, repeat, flip, roll.

A view's result shape is the one torch computed for the node (its ``-1`` resolved, its SymInts
already sizes), so every reshape-like op is one ``reshape`` to that shape.
"""
from __future__ import annotations

import numpy as np

from ...errors import ConversionError
from ...ir import dims as _dims
from ...ir import dtypes as kd
from ._util import BIG, axis, dim_tensor, reshape, static_int
from .registry import converts


@converts("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default", "aten.view_copy.default",
          "aten.flatten.using_ints", "aten.unflatten.int", "aten.squeeze.default", "aten.squeeze.dim",
          "aten.squeeze.dims", "aten.unsqueeze.default", "aten._reshape_alias.default", "aten.squeeze_copy.dims",
          "aten.unsqueeze_copy.default", "aten._reshape_copy.default")
def _view(cx, x, *_, **__):
    return reshape(cx, x, cx.out_shape)


@converts("aten.permute.default", "aten.permute_copy.default")
def _permute(cx, x, dims):
    rank = cx.e.rank(x)
    perm = [axis(d, rank) for d in dims]
    if perm == list(range(rank)):
        return x
    return cx.e.op("transpose", x, perm=perm)


@converts("aten.transpose.int", "aten.transpose_copy.int")
def _transpose(cx, x, d0, d1):
    rank = cx.e.rank(x)
    perm = list(range(rank))
    a, b = axis(d0, rank), axis(d1, rank)
    perm[a], perm[b] = perm[b], perm[a]
    return x if a == b else cx.e.op("transpose", x, perm=perm)


@converts("aten.t.default", "aten.numpy_T.default")
def _t(cx, x):
    rank = cx.e.rank(x)
    return x if rank < 2 else cx.e.op("transpose", x, perm=list(reversed(range(rank))))


@converts("aten.expand.default", "aten.expand_copy.default", "aten.broadcast_to.default")
def _expand(cx, x, size, implicit=False):
    shape = cx.out_shape
    if list(cx.e.shape(x)) == [_dims.canonical(d) for d in shape]:
        return x
    return cx.e.op("broadcast", x, shape=shape)


class _RunTimeBound(Exception):
    """A slice bound that is a symbolic size kiln's static slice cannot express."""


def _bound(cx, b, d, default):
    """A slice bound (int, SymDim or None) of an axis of size ``d``, as an int kiln's slice takes."""
    if b is None:
        return default
    b = cx.dim(b)
    if isinstance(b, int):
        return b
    # a symbolic bound: only ``d + k`` (k <= 0) is expressible, as the index -k from the end
    diff = _dims.sub(b, d)
    if isinstance(diff, int) and diff <= 0:
        return diff if diff < 0 else BIG
    raise _RunTimeBound(b)


def slice_axis(cx, x, a, start, end, step=1):
    d = cx.e.shape(x)[a]
    if step is None:
        step = 1
    step = static_int(cx, step, "a slice step")
    if step <= 0:
        raise ConversionError(f"slice step {step} must be positive")
    try:
        s = _bound(cx, start, d, 0)
        t = _bound(cx, end, d, BIG)
    except _RunTimeBound:
        return _gather_slice(cx, x, a, start, end, step)
    if s == 0 and t >= BIG // 2 and step == 1 or isinstance(d, int) and s == 0 and t >= d and step == 1:
        return x
    if isinstance(d, int):  # clamp (kiln slices any bounds; exact numbers keep the IR readable)
        lo, hi, _ = slice(s, t, step).indices(d)
        s, t = lo, max(hi, lo)
    elif s >= 0 and 0 <= t < BIG // 2:
        # a fixed window [s:t] of a symbolic dim (``hidden[:, :4]``): torch checked the dim is long
        # enough; kiln's slice gives such a window a run-time length, a gather of fixed positions does not
        return cx.e.op("gather", x, cx.e.const(np.arange(s, t, step, dtype=np.int64)), axis=a)
    return cx.e.op("slice", x, starts=[s], ends=[t], axes=[a], steps=[step])


def _gather_slice(cx, x, a, start, end, step):
    """``x[start:end]`` along axis ``a`` where a bound is a symbolic size (``pos_ids[:, :seq]``): a gather
    of ``range(start, end)``, whose length ``end - start`` is then a symbolic dim."""
    e = cx.e
    if step != 1:
        raise ConversionError("a slice with a step and a symbolic bound has a length kiln cannot express")
    s = 0 if start is None else cx.dim(start)
    t = cx.dim(end)
    for b in (s, t):
        if isinstance(b, int) and b < 0:
            raise ConversionError("a slice mixing a symbolic bound with one counted from the end is not supported")
    n = _dims.sub(t, s)
    idx = e.op("range", dim_tensor(cx, s, kd.int64), dim_tensor(cx, t, kd.int64), cx.tensor(1, kd.int64), dims=[n])
    return e.op("gather", x, idx, axis=a)


@converts("aten.slice.Tensor", "aten.slice_copy.Tensor")
def _slice(cx, x, dim=0, start=None, end=None, step=1):
    return slice_axis(cx, x, axis(dim, cx.e.rank(x)), start, end, step)


@converts("aten.narrow.default")
def _narrow(cx, x, dim, start, length):
    a = axis(dim, cx.e.rank(x))
    s = cx.dim(start)
    return slice_axis(cx, x, a, start, _dims.add(s, cx.dim(length)) if isinstance(s, int) else None, 1)


def select(cx, x, dim, index):
    e = cx.e
    rank = e.rank(x)
    a = axis(dim, rank)
    i = static_int(cx, index, "a select index")
    d = e.shape(x)[a]
    if isinstance(d, int):
        if not -d <= i < d:
            raise ConversionError(f"index {i} is out of range for dim {dim} of size {d}")
        i %= d
    elif i >= 0:  # a fixed position of a symbolic dim (``hidden[:, 0]``): see slice_axis
        return e.op("gather", x, e.const(np.array(i, np.int64)), axis=a)
    end = i + 1 if i != -1 else BIG
    s = e.op("slice", x, starts=[i], ends=[end], axes=[a], steps=[1])
    return reshape(cx, s, [n for k, n in enumerate(e.shape(s)) if k != a])


@converts("aten.select.int", "aten.select_copy.int")
def _select(cx, x, dim, index):
    return select(cx, x, dim, index)


@converts("aten.cat.default", "aten.concat.default")
def _cat(cx, tensors, dim=0):
    dt = cx.out_dtype
    xs = [cx.tensor(t, dt) for t in tensors]
    # torch skips 1-D empty tensors in cat (legacy behaviour)
    xs = [x for x in xs if not (cx.e.rank(x) == 1 and cx.e.shape(x)[0] == 0)] or xs[:1]
    if len(xs) == 1:
        return xs[0]
    return cx.e.op("concat", *xs, axis=axis(dim, cx.e.rank(xs[0])))


@converts("aten.stack.default")
def _stack(cx, tensors, dim=0):
    dt = cx.out_dtype
    xs = [cx.tensor(t, dt) for t in tensors]
    rank = cx.e.rank(xs[0]) + 1
    a = axis(dim, rank)
    ups = [reshape(cx, x, list(cx.e.shape(x))[:a] + [1] + list(cx.e.shape(x))[a:]) for x in xs]
    return ups[0] if len(ups) == 1 else cx.e.op("concat", *ups, axis=a)


def _split_at(cx, x, a, sizes):
    out, start = [], 0
    for n in sizes:
        end = _dims.add(start, n)
        out.append(_range(cx, x, a, start, end))
        start = end
    return out


def _range(cx, x, a, start, end):
    d = cx.e.shape(x)[a]
    if _dims.canonical(start) == 0 and _dims.canonical(end) == _dims.canonical(d):
        return x
    s = start if isinstance(start, int) else _bound_expr(start, d)
    t = end if isinstance(end, int) else _bound_expr(end, d)
    return cx.e.op("slice", x, starts=[s], ends=[t], axes=[a], steps=[1])


def _bound_expr(b, d):
    diff = _dims.sub(b, d)
    if isinstance(diff, int) and diff <= 0:
        return diff if diff < 0 else BIG
    raise ConversionError(f"a split point at {b} of a dim of size {d} is known only at run time")


@converts("aten.split_with_sizes.default", "aten.split_with_sizes_copy.default")
def _split_with_sizes(cx, x, sizes, dim=0):
    a = axis(dim, cx.e.rank(x))
    return _split_at(cx, x, a, [cx.dim(s) for s in sizes])


@converts("aten.split.Tensor", "aten.split_copy.Tensor")
def _split(cx, x, split_size, dim=0):
    a = axis(dim, cx.e.rank(x))
    sizes = [cx.shape_of(t)[a] for t in cx.val]
    return _split_at(cx, x, a, sizes)


@converts("aten.unbind.int", "aten.unbind_copy.int")
def _unbind(cx, x, dim=0):
    a = axis(dim, cx.e.rank(x))
    n = static_int(cx, cx.e.shape(x)[a], "the unbound dim")
    return [select(cx, x, a, i) for i in range(n)]


@converts("aten.chunk.default")
def _chunk(cx, x, chunks, dim=0):
    a = axis(dim, cx.e.rank(x))
    return _split_at(cx, x, a, [cx.shape_of(t)[a] for t in cx.val])


# --- padding -------------------------------------------------------------------------------------

def _pads(rank, pad):
    """torch's pad list (last dim first, begin/end pairs) as kiln's [begins..., ends...]."""
    if len(pad) % 2 or len(pad) // 2 > rank:
        raise ConversionError(f"pad {list(pad)} does not fit a tensor of rank {rank}")
    begins, ends = [0] * rank, [0] * rank
    for k in range(len(pad) // 2):
        begins[rank - 1 - k] = int(pad[2 * k])
        ends[rank - 1 - k] = int(pad[2 * k + 1])
    return begins + ends


@converts("aten.constant_pad_nd.default")
def _constant_pad(cx, x, pad, value=0):
    e = cx.e
    pads = _pads(e.rank(x), [static_int(cx, p, "a pad width") for p in pad])
    if not any(pads):
        return x
    return e.op("pad", x, cx.tensor(value, e.dtype(x)), pads=pads, mode="constant")


def _mode_pad(mode, nd):
    def conv(cx, x, padding):
        rank = cx.e.rank(x)
        pad = [static_int(cx, p, "a pad width") for p in padding]
        if len(pad) != 2 * nd:
            raise ConversionError(f"{mode} padding of {nd} dim(s) takes {2 * nd} widths, got {pad}")
        return cx.e.op("pad", x, pads=_pads(rank, pad), mode=mode)
    return conv


for _nd in (1, 2, 3):
    converts(f"aten.reflection_pad{_nd}d.default")(_mode_pad("reflect", _nd))
    converts(f"aten.replication_pad{_nd}d.default")(_mode_pad("edge", _nd))


@converts("aten._pad_circular.default")
def _pad_circular(cx, x, pad):
    return cx.e.op("pad", x, pads=_pads(cx.e.rank(x), [static_int(cx, p, "a pad width") for p in pad]), mode="wrap")


@converts("aten.pad.default")
def _pad(cx, x, pad, mode="constant", value=None):
    modes = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
    if mode not in modes:
        raise ConversionError(f"pad mode {mode!r} is not one of {sorted(modes)}")
    pads = _pads(cx.e.rank(x), [static_int(cx, p, "a pad width") for p in pad])
    if mode == "constant":
        return cx.e.op("pad", x, cx.tensor(value or 0, cx.e.dtype(x)), pads=pads, mode="constant")
    return cx.e.op("pad", x, pads=pads, mode=modes[mode])


# --- repeat, flip, roll, scatter of slices ------------------------------------------------------------

@converts("aten.repeat.default")
def _repeat(cx, x, repeats):
    e = cx.e
    reps = [cx.dim(r) for r in repeats]
    shape = [1] * (len(reps) - e.rank(x)) + list(e.shape(x))
    inter, big, final = [], [], []
    for r, d in zip(reps, shape):
        inter += [1, d]
        big += [r, d]
        final.append(_dims.mul(r, d))
    v = reshape(cx, x, inter)
    v = e.op("broadcast", v, shape=big)
    return reshape(cx, v, final)


@converts("aten.flip.default")
def _flip(cx, x, dims):
    e = cx.e
    rank = e.rank(x)
    axes = sorted({axis(d, rank) for d in dims})
    for a in axes:
        if not isinstance(e.shape(x)[a], int):
            raise ConversionError(f"flip of the symbolic dim {e.shape(x)[a]} is not supported")
    if not axes:
        return x
    return e.op("slice", x, starts=[-1] * len(axes), ends=[-BIG] * len(axes), axes=axes, steps=[-1] * len(axes))


@converts("aten.roll.default")
def _roll(cx, x, shifts, dims=()):
    e = cx.e
    shifts = [static_int(cx, s, "a roll shift") for s in (shifts if isinstance(shifts, (list, tuple)) else [shifts])]
    dims = list(dims) if isinstance(dims, (list, tuple)) else [dims]
    if not dims:  # roll of the flattened tensor
        shape = list(e.shape(x))
        flat = reshape(cx, x, [_dims.prod(shape)])
        return reshape(cx, _roll_axis(cx, flat, 0, shifts[0]), shape)
    for s, d in zip(shifts, dims):
        x = _roll_axis(cx, x, axis(d, e.rank(x)), s)
    return x


def _roll_axis(cx, x, a, shift):
    e = cx.e
    n = static_int(cx, e.shape(x)[a], "a rolled dim")
    shift %= max(n, 1)
    if shift == 0:
        return x
    tail = e.op("slice", x, starts=[n - shift], ends=[n], axes=[a], steps=[1])
    head = e.op("slice", x, starts=[0], ends=[n - shift], axes=[a], steps=[1])
    return e.op("concat", tail, head, axis=a)


@converts("aten.slice_scatter.default")
def _slice_scatter(cx, dst, src, dim=0, start=None, end=None, step=1):
    e = cx.e
    a = axis(dim, e.rank(dst))
    d = e.shape(dst)[a]
    src = cx.tensor(src, e.dtype(dst))
    if step not in (None, 1):
        raise ConversionError(f"slice_scatter with step {step} is not supported")
    s = _bound(cx, start, d, 0)
    t = _bound(cx, end, d, BIG)
    if isinstance(d, int):
        s, t, _ = slice(s, t, 1).indices(d)
        t = max(t, s)
    elif s < 0:
        raise ConversionError("slice_scatter starting from the end of a symbolic dim is not supported")
    parts = []
    if s != 0:
        parts.append(e.op("slice", dst, starts=[0], ends=[s], axes=[a], steps=[1]))
    parts.append(src)
    if not (t >= BIG // 2 or isinstance(d, int) and t >= d):
        parts.append(e.op("slice", dst, starts=[t], ends=[BIG], axes=[a], steps=[1]))
    return parts[0] if len(parts) == 1 else e.op("concat", *parts, axis=a)


@converts("aten.select_scatter.default")
def _select_scatter(cx, dst, src, dim, index):
    e = cx.e
    a = axis(dim, e.rank(dst))
    i = static_int(cx, index, "a select_scatter index")
    d = e.shape(dst)[a]
    if isinstance(d, int):
        i %= d
    elif i < 0:
        raise ConversionError("select_scatter counting from the end of a symbolic dim is not supported")
    shape = list(e.shape(src))
    src = reshape(cx, cx.tensor(src, e.dtype(dst)), shape[:a] + [1] + shape[a:])
    return _slice_scatter(cx, dst, src, a, i, i + 1, 1)
