"""Indexing ATen ops: advanced indexing, index_select, gather, scatter, index_put, embedding.

``x[i, :, j]`` (``aten.index.Tensor``) follows numpy's rules: the index tensors broadcast
together; adjacent indexed dims are replaced in place by the broadcast index shape, separated
ones move it to the front. kiln's ``gather`` takes one axis, so several indexed dims are merged
into one (a reshape) and indexed by the flat position ``sum(i_k * stride_k)``.
"""
from __future__ import annotations

from ...errors import ConversionError
from ...ir import dims as _dims
from ...ir import dtypes as kd
from ._util import axis, reshape
from .registry import converts


def _index_tensor(cx, i, n):
    """An index tensor as int64 with negative entries counted from the end of an axis of size ``n``."""
    e = cx.e
    if e.dtype(i).kind == "bool":
        raise ConversionError("indexing with a boolean mask gives a data-dependent shape; use torch.where")
    i = e.cast(i, kd.int64)
    zero = cx.tensor(0, kd.int64)
    size = cx.tensor(n, kd.int64) if isinstance(n, int) else cx.conv.sym_tensor(n, kd.int64)
    return e.op("where", e.op("less", i, zero), e.op("add", i, size), i)


@converts("aten.index.Tensor", "aten._unsafe_index.Tensor")
def _index(cx, x, indices):
    e = cx.e
    rank = e.rank(x)
    idx = list(indices) + [None] * (rank - len(indices))
    picked = [k for k, i in enumerate(idx) if i is not None]
    if not picked:
        return x
    if len(picked) == 1:
        k = picked[0]
        i = idx[k]
        if e.dtype(i).kind == "bool":
            raise ConversionError("indexing with a boolean mask gives a data-dependent shape; use torch.where")
        return e.op("gather", x, e.cast(i, kd.int64), axis=k)
    adjacent = picked == list(range(picked[0], picked[-1] + 1))
    if not adjacent:  # the indexed dims go to the front (numpy's rule), then they are adjacent
        rest = [k for k in range(rank) if k not in picked]
        x = e.op("transpose", x, perm=picked + rest)
        idx = [idx[k] for k in picked] + [None] * len(rest)
        picked = list(range(len(picked)))
    shape = list(e.shape(x))
    sizes = [shape[k] for k in picked]
    flat = None
    stride = 1
    for k, n in reversed(list(zip(picked, sizes))):
        term = _index_tensor(cx, idx[k], n)
        if stride != 1:
            term = e.op("mul", term, cx.tensor(stride, kd.int64) if isinstance(stride, int)
                        else cx.conv.sym_tensor(stride, kd.int64))
        flat = term if flat is None else e.op("add", flat, term)
        stride = _dims.mul(stride, n)
    merged = shape[:picked[0]] + [_dims.prod(sizes)] + shape[picked[-1] + 1:]
    return e.op("gather", reshape(cx, x, merged), flat, axis=picked[0])


@converts("aten.index_select.default")
def _index_select(cx, x, dim, index):
    e = cx.e
    a = axis(dim, e.rank(x))
    i = e.cast(index, kd.int64)
    if e.rank(i) == 0:
        i = reshape(cx, i, [1])
    return e.op("gather", x, i, axis=a)


@converts("aten.gather.default")
def _gather(cx, x, dim, index, sparse_grad=False):
    e = cx.e
    return e.op("gather_elements", x, e.cast(index, kd.int64), axis=axis(dim, e.rank(x)))


_REDUCE = {"sum": "add", "add": "add", "prod": "mul", "multiply": "mul", "amax": "max", "amin": "min"}


def _scatter(cx, x, dim, index, src, reduction):
    e = cx.e
    a = axis(dim, e.rank(x))
    index = e.cast(index, kd.int64)
    if not isinstance(src, str) or e.rank(src) == 0 and e.rank(index) > 0:
        src = e.op("broadcast", cx.tensor(src, e.dtype(x)), shape=list(e.shape(index)))
    src = e.cast(src, e.dtype(x))
    if list(e.shape(src)) != list(e.shape(index)):  # torch uses the leading part of a larger src
        src = e.op("slice", src, starts=[0] * e.rank(src), ends=[d if isinstance(d, int) else 2**63 - 1
                                                                  for d in e.shape(index)],
                   axes=list(range(e.rank(src))), steps=[1] * e.rank(src))
    return e.op("scatter_elements", x, index, src, axis=a, reduction=reduction)


@converts("aten.scatter.src", "aten.scatter.value")
def _scatter_plain(cx, x, dim, index, src):
    return _scatter(cx, x, dim, index, src, "none")


@converts("aten.scatter.reduce", "aten.scatter.value_reduce")
def _scatter_reduce_old(cx, x, dim, index, src, reduce):
    if reduce not in ("add", "multiply"):
        raise ConversionError(f"scatter reduce={reduce!r} is not supported")
    return _scatter(cx, x, dim, index, src, _REDUCE[reduce])


@converts("aten.scatter_add.default")
def _scatter_add(cx, x, dim, index, src):
    return _scatter(cx, x, dim, index, src, "add")


@converts("aten.scatter_reduce.two")
def _scatter_reduce(cx, x, dim, index, src, reduce, include_self=True):
    if reduce not in _REDUCE:
        raise ConversionError(f"scatter_reduce reduce={reduce!r} is not supported (sum, prod, amax, amin are)")
    if not include_self:
        raise ConversionError("scatter_reduce with include_self=False is not supported")
    return _scatter(cx, x, dim, index, src, _REDUCE[reduce])


@converts("aten.index_put.default", "aten._unsafe_index_put.default")
def _index_put(cx, x, indices, values, accumulate=False):
    """``x[i0, i1, ...] = values``: a scatter_nd whose index tuples are the broadcast index tensors."""
    e = cx.e
    rank = e.rank(x)
    idx = list(indices)
    if any(i is None for i in idx):
        first = next(k for k, i in enumerate(idx) if i is not None)
        if any(i is None for i in idx[first:]) or first > 0:
            raise ConversionError("index_put with a slice (None) between or before the index tensors is not "
                                  "supported")
    shape = list(e.shape(x))
    if any(e.dtype(i).kind == "bool" for i in idx):
        if len(idx) == 1 and list(e.shape(idx[0])) == shape:  # x[mask] = v
            v = cx.tensor(values, e.dtype(x))
            if e.rank(v) not in (0,) and not (e.rank(v) == 1 and e.shape(v)[0] == 1):
                raise ConversionError("x[mask] = tensor gives a data-dependent layout; use torch.where")
            v = reshape(cx, v, [])
            if accumulate:
                return e.op("add", x, e.op("where", idx[0], v, cx.tensor(0, e.dtype(x))))
            return e.op("where", idx[0], v, x)
        raise ConversionError("index_put with a boolean mask is data-dependent; use torch.where")
    k = len(idx)
    ints = [_index_tensor(cx, i, shape[n]) for n, i in enumerate(idx)]
    bshape = _broadcast(cx, [list(e.shape(i)) for i in ints])
    cols = [reshape(cx, e.op("broadcast", i, shape=bshape), bshape + [1]) for i in ints]
    nd = cols[0] if k == 1 else e.op("concat", *cols, axis=len(bshape))
    upd_shape = bshape + shape[k:]
    v = e.op("broadcast", cx.tensor(values, e.dtype(x)), shape=upd_shape)
    return e.op("scatter_nd", x, nd, v, reduction="add" if accumulate else "none")


def _broadcast(cx, shapes):
    rank = max(len(s) for s in shapes)
    out = []
    for k in range(rank):
        ds = [s[len(s) - rank + k] for s in shapes if len(s) - rank + k >= 0]
        big = [d for d in ds if d != 1]
        out.append(big[0] if big else 1)
    return out


@converts("aten.embedding.default")
def _embedding(cx, weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    return cx.e.op("gather", weight, cx.e.cast(indices, kd.int64), axis=0)


@converts("aten.bucketize.Tensor")
def _bucketize(cx, x, boundaries, out_int32=False, right=False):
    """The bucket of each x among 1-D sorted ``boundaries``: how many boundaries lie below it (or at it)."""
    e = cx.e
    if e.rank(boundaries) != 1:
        raise ConversionError("bucketize needs 1-D boundaries")
    dt = cx.promoted(cx.node.args[0], cx.node.args[1])
    xe = reshape(cx, e.cast(x, dt), list(e.shape(x)) + [1])
    below = e.op("less_equal" if right else "less", e.cast(boundaries, dt), xe)
    count = e.op("reduce_sum", e.cast(below, kd.int64), axes=[e.rank(xe) - 1], keepdims=False)
    return e.cast(count, cx.out_dtype)
