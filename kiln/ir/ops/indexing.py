"""Indexing ops: gathers and scatters driven by integer index tensors, and index generators.

Index operands are int32 or int64 and may be negative (counted from the end of the axis, as in
numpy); an index out of ``[-n, n)`` is an error. Results whose size depends on the data
(nonzero, range with run-time bounds) have run-time dims.
"""
from __future__ import annotations

import numpy as np

from .. import dims
from .. import loops as L
from ..registry import Attr, op
from ..types import TensorType
from ._util import contiguous, norm_axis, require
from .movement import scalar_of, wrap_index

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

    def lower(b, x, indices, axis):
        a, k = axis % x.ndim, indices.ndim
        shape = x.shape[:a] + indices.shape + x.shape[a + 1:]

        def element(*i):
            pos = wrap_index(indices[i[a:a + k]], x.shape[a])
            return x[i[:a] + (pos,) + i[a + k:]]

        return b.compute(shape, element, dtype=x.dtype)


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

    def lower(b, x, indices, axis):
        a = axis % x.ndim

        def element(*i):
            return x[i[:a] + (wrap_index(indices[i], x.shape[a]),) + i[a + 1:]]

        return b.compute(indices.shape, element, dtype=x.dtype)


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

    def lower(b, x, indices, batch_dims):
        nb, q = batch_dims, indices.ndim - 1
        k = int(L.simplify(indices.shape[-1]).value)

        def element(*i):
            head = i[:q]  # position in indices[..., :]; its first nb entries are the batch indices
            pos = tuple(wrap_index(indices[head + (L.Const(d),)], x.shape[nb + d]) for d in range(k))
            return x[head[:nb] + pos + i[q:]]

        return b.compute(indices.shape[:-1] + x.shape[nb + k:], element, dtype=x.dtype)


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

    def lower(b, x, indices, updates, axis, reduction):
        a = axis % x.ndim

        def body(kb, outs, ins):
            out, xb, ib, ub = outs[0], *ins
            ivars = [kb.var("s") for _ in ib.shape]
            pos = list(ivars)
            pos[a] = wrap_index(L.Load(ib, tuple(ivars)), out.shape[a])
            scatter = _scatter_store(out, tuple(pos), L.Load(ub, tuple(ivars)), reduction)
            return L.seq(_copy(kb, xb, out), _serial(zip(ivars, ib.shape), scatter))

        return b.extern([(x.shape, x.dtype)], [x, indices, updates], body)[0]


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

    def lower(b, x, indices, updates, reduction):
        k, q = int(L.simplify(indices.shape[-1]).value), indices.ndim - 1

        def body(kb, outs, ins):
            out, xb, ib, ub = outs[0], *ins
            qv = [kb.var("s") for _ in range(q)]
            rv = [kb.var("r") for _ in range(x.ndim - k)]
            pv = [kb.var("p") for _ in range(k)]  # the index tuple, read once per update slice
            store = _scatter_store(out, tuple(pv + rv), L.Load(ub, tuple(qv + rv)), reduction)
            inner = _serial(zip(rv, out.shape[k:]), store)
            for d in reversed(range(k)):
                inner = L.Let(pv[d], wrap_index(L.Load(ib, tuple(qv) + (L.Const(d),)), out.shape[d]), inner)
            return L.seq(_copy(kb, xb, out), _serial(zip(qv, ib.shape[:q]), inner))

        return b.extern([(x.shape, x.dtype)], [x, indices, updates], body)[0]


@op("nonzero", inputs=("x",))
class NonZero:
    """Indices of the non-zero elements, int64 of shape [rank, count] in row-major order."""

    def infer(x: TensorType):
        return TensorType("i64", [x.rank, dims.UNKNOWN])

    def reference(x):
        return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)

    def lower(b, x):
        raise NotImplementedError("nonzero: the number of results depends on the data (data-dependent shape)")


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

    def lower(b, start, limit, delta, dims):
        if dims is None:
            raise NotImplementedError("range without the 'dims' attribute: its length depends on the run-time "
                                      "values of start, limit and delta (data-dependent shape)")
        dt = start.dtype
        wide = "f64" if dt.is_float else "i64"
        s, d = L.cast(scalar_of(start), wide), L.cast(scalar_of(delta), wide)

        def element(i):
            return L.cast(s + d * L.cast(i, wide), dt)

        return b.compute(b.dims(dims), element, dtype=dt)


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

    def lower(b, x, axis, sorted):
        raise NotImplementedError("unique: the number of distinct values depends on the data (data-dependent shape)")


# ------------------------------------------------------------------------------------------ lowering
_COMBINE = {"add": "add", "mul": "mul", "max": "max", "min": "min"}


def _serial(loops, body):
    """A serial loop nest (outer first) around ``body``: scatters keep the reference's order."""
    for v, n in reversed(list(loops)):
        body = L.For(v, n, body)
    return body


def _copy(kb, src, dst):
    ivars = [kb.var("c") for _ in dst.shape]
    return _serial(zip(ivars, dst.shape), L.Store(dst, tuple(ivars), L.Load(src, tuple(ivars))))


def _scatter_store(out, pos, value, reduction):
    """out[pos] = value, or combined with what is there; run in index order, so a repeated position
    keeps the last update (reduction "none") or accumulates them all, as the reference does."""
    if reduction != "none":
        value = L.binary(_COMBINE[reduction], L.Load(out, pos), value)
    return L.Store(out, pos, value)
