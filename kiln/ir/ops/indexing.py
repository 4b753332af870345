"""Indexing ops: gathers and scatters driven by integer index tensors, and index generators.

Index operands are int32 or int64 and may be negative (counted from the end of the axis, as in
numpy); an index out of ``[-n, n)`` is an error. Results whose size depends on the data
(nonzero, range with run-time bounds) have run-time dims.
"""
from __future__ import annotations

import numpy as np

from .. import dims
from ..registry import Attr, op
from ..types import TensorType
from ._util import contiguous, norm_axis, require

REDUCTIONS = ("none", "add", "mul", "max", "min")
_UNKNOWN = dims.UNKNOWN


def _check_indices(where, t: TensorType):
    require(t.dtype.name in ("i32", "i64"), f"{where}: indices must be int32 or int64, got {t}")


def _norm_index(idx, n, where):
    idx = np.asarray(idx).astype(np.int64)
    require(np.all((idx >= -n) & (idx < n)), f"{where}: index out of range for an axis of size {n}")
    return np.where(idx < 0, idx + n, idx)


@op("gather", inputs=("x", "indices"), attrs={"axis": Attr("int", 0)}, traits=("injective",))
class Gather:
    """``numpy.take(x, indices, axis)``: result shape x[:axis] + indices + x[axis+1:]."""

    def infer(x: TensorType, indices: TensorType, axis):
        _check_indices("gather", indices)
        a = norm_axis(axis, x.rank)
        return TensorType(x.dtype, x.shape[:a] + indices.shape + x.shape[a + 1:])

    def reference(x, indices, axis):
        a = axis % x.ndim
        return contiguous(np.take(x, _norm_index(indices, x.shape[a], "gather"), axis=a))


@op("gather_elements", inputs=("x", "indices"), attrs={"axis": Attr("int", 0)}, traits=("injective",))
class GatherElements:
    """``numpy.take_along_axis``: out[i][j][k] = x[i][indices[i][j][k]][k] for axis 1 (shape of indices)."""

    def infer(x: TensorType, indices: TensorType, axis):
        _check_indices("gather_elements", indices)
        require(indices.rank == x.rank, f"gather_elements: ranks differ ({x}, {indices})")
        norm_axis(axis, x.rank)
        return TensorType(x.dtype, indices.shape)

    def reference(x, indices, axis):
        a = axis % x.ndim
        idx = _norm_index(indices, x.shape[a], "gather_elements")
        return contiguous(_take_along(x, idx, a))


def _take_along(x, idx, a):
    """take_along_axis where idx may be smaller than x on the other axes (ONNX allows it)."""
    x = x[tuple(slice(0, n) if i != a else slice(None) for i, n in enumerate(idx.shape))]
    return np.take_along_axis(x, idx, axis=a)


@op("gather_nd", inputs=("x", "indices"), attrs={"batch_dims": Attr("int", 0)}, traits=("injective",))
class GatherND:
    """ONNX GatherND: the last axis of ``indices`` indexes the leading dims of x after ``batch_dims``."""

    def infer(x: TensorType, indices: TensorType, batch_dims):
        _check_indices("gather_nd", indices)
        b = batch_dims
        require(indices.rank >= 1, "gather_nd: indices must have rank >= 1")
        k = indices.shape[-1]
        require(isinstance(k, int), f"gather_nd: the last dim of indices must be static, got {indices}")
        require(0 <= b < min(x.rank, indices.rank), f"gather_nd: batch_dims {b} out of range")
        require(b + k <= x.rank, f"gather_nd: indices {indices} index more dims than {x} has")
        return TensorType(x.dtype, indices.shape[:-1] + x.shape[b + k:])

    def reference(x, indices, batch_dims):
        b, k = batch_dims, indices.shape[-1]
        xb = x.reshape((-1,) + x.shape[b:])  # batch dims flattened into one
        ib = indices.reshape((xb.shape[0], -1, k))
        pos = tuple(_norm_index(ib[..., d], xb.shape[1 + d], "gather_nd") for d in range(k))
        out = xb[(np.arange(xb.shape[0])[:, None],) + pos]
        return contiguous(out.reshape(indices.shape[:-1] + x.shape[b + k:]))


_UFUNCS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter(out, where, updates, reduction):
    """out[where] = updates, or combined into it by ``reduction`` (repeated places accumulate)."""
    if reduction == "none":
        out[where] = updates  # with repeated places, the last update wins
    else:
        _UFUNCS[reduction].at(out, where, updates)
    return out


@op("scatter_elements", inputs=("x", "indices", "updates"),
    attrs={"axis": Attr("int", 0), "reduction": Attr("str", "none", REDUCTIONS)})
class ScatterElements:
    """A copy of x with ``updates`` written (or combined by ``reduction``) at ``indices`` along ``axis``.

    With reduction "none" and repeated indices, the last update wins.
    """

    def infer(x: TensorType, indices: TensorType, updates: TensorType, axis, reduction):
        _check_indices("scatter_elements", indices)
        require(updates.dtype == x.dtype, f"scatter_elements: updates {updates} must have dtype {x.dtype}")
        require(indices.rank == x.rank and updates.shape == indices.shape,
                f"scatter_elements: indices {indices} and updates {updates} must match in shape and rank {x.rank}")
        norm_axis(axis, x.rank)
        return x

    def reference(x, indices, updates, axis, reduction):
        a = axis % x.ndim
        idx = _norm_index(indices, x.shape[a], "scatter_elements")
        where = list(np.indices(idx.shape, sparse=True))
        where[a] = idx
        return _scatter(x.copy(), tuple(where), updates, reduction)


@op("scatter_nd", inputs=("x", "indices", "updates"), attrs={"reduction": Attr("str", "none", REDUCTIONS)})
class ScatterND:
    """A copy of x where each index tuple (last axis of ``indices``) receives a slice of ``updates``."""

    def infer(x: TensorType, indices: TensorType, updates: TensorType, reduction):
        _check_indices("scatter_nd", indices)
        require(updates.dtype == x.dtype, f"scatter_nd: updates {updates} must have dtype {x.dtype}")
        k = indices.shape[-1] if indices.rank else None
        require(isinstance(k, int) and k <= x.rank, f"scatter_nd: bad indices {indices} for {x}")
        require(updates.rank == indices.rank - 1 + x.rank - k,
                f"scatter_nd: updates {updates} must have shape indices[:-1] + x[{k}:]")
        return x

    def reference(x, indices, updates, reduction):
        k = indices.shape[-1]
        flat = indices.reshape(-1, k)
        ups = updates.reshape((flat.shape[0],) + x.shape[k:])
        where = tuple(_norm_index(flat[:, d], x.shape[d], "scatter_nd") for d in range(k))
        return _scatter(x.copy(), where, ups, reduction)


@op("nonzero", inputs=("x",))
class NonZero:
    """Indices of the non-zero elements, int64 of shape [rank, count] in row-major order."""

    def infer(x: TensorType):
        return TensorType("i64", [x.rank, dims.UNKNOWN])

    def reference(x):
        return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


@op("range", inputs=("start", "limit", "delta"), attrs={"dims": Attr("dims", None)})
class Range:
    """``start, start+delta, ...`` up to (excluding) limit; scalars of one numeric dtype.

    The length is a run-time dim unless ``dims`` states it (``[seq]`` when a frontend knows
    that limit - start is ``seq`` and delta is 1); the interpreter checks it.
    """

    def infer(start: TensorType, limit: TensorType, delta: TensorType, dims):
        for t in (start, limit, delta):
            require(t.rank == 0 or t.shape == (1,), f"range: operands must be scalars, got {t}")
            require(t.dtype == start.dtype, f"range: operand dtypes differ ({start}, {limit}, {delta})")
        require(start.dtype.kind != "bool", "range: bool is not supported")
        require(dims is None or (len(dims) == 1 and dims[0] != _UNKNOWN), f"range: dims {dims} must name one dim")
        return TensorType(start.dtype, [_UNKNOWN] if dims is None else dims)

    def reference(start, limit, delta, dims):
        s, l, d = (np.asarray(v).reshape(()) for v in (start, limit, delta))
        require(d != 0, "range: delta cannot be 0")
        n = max(int(np.ceil((float(l) - float(s)) / float(d))), 0)
        if s.dtype.kind in "iu":
            return (int(s) + int(d) * np.arange(n, dtype=np.int64)).astype(s.dtype)
        return (s.astype(np.float64) + d.astype(np.float64) * np.arange(n, dtype=np.float64)).astype(s.dtype)


@op("unique", inputs=("x",), attrs={"axis": Attr("int", None), "sorted": Attr("bool", True)}, outputs=4)
class Unique:
    """Distinct elements (or slices along ``axis``) of x, ascending or in order of first occurrence.

    Results: the unique values, the index of each one's first occurrence, for each element (slice)
    of x the position of its value among the unique ones, and how often each occurs (int64).
    Without ``axis`` x is flattened.
    """

    def infer(x: TensorType, axis, sorted):
        u = dims.UNKNOWN
        if axis is None:
            return (TensorType(x.dtype, [u]), TensorType("i64", [u]), TensorType("i64", [x.size]),
                    TensorType("i64", [u]))
        a = norm_axis(axis, x.rank)
        shape = list(x.shape)
        shape[a] = u
        return (TensorType(x.dtype, shape), TensorType("i64", [u]), TensorType("i64", [x.shape[a]]),
                TensorType("i64", [u]))

    def reference(x, axis, sorted):
        a = 0 if axis is None else axis % x.ndim
        data = x.reshape(-1) if axis is None else x
        narrow = data.dtype.type.__module__.startswith("ml_dtypes")  # bfloat16 etc. sort as float64
        key = data.astype(np.float64) if narrow else data
        _, first, inverse, counts = np.unique(key, True, True, True, axis=None if axis is None else a)
        inverse = inverse.reshape(-1)
        if not sorted:
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            first, counts, inverse = first[order], counts[order], rank[inverse]
        y = np.take(data, first, axis=a)
        return (contiguous(y), first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64))
