"""Scans and selections along one axis: cumulative sum / product, and top-k.

``cumsum`` / ``cumprod`` keep the operand's shape. ``exclusive`` leaves out the element itself
(the first result is the identity), ``reverse`` scans from the end of the axis. Their
``*_dynamic`` twins take the axis as a run-time integer operand (ONNX's ``axis`` input).

``topk`` returns the ``k`` largest (or smallest) elements along an axis and their int64
indices, sorted; equal values keep their original order (lower index first). ``topk_dynamic``
takes ``k`` as a run-time operand; the selected axis then has a run-time length.
"""
from __future__ import annotations

import numpy as np

from .. import dims
from .. import loops as L
from ..dtypes import dtype as _dtype
from ..lowering import _parallelize
from ..registry import Attr, OpDef, op, register
from ..types import TensorType
from ._util import norm_axis, require


def _scan_check(name, x: TensorType):
    require(x.rank >= 1, f"{name}: operand must have rank >= 1, got {x}")
    require(x.dtype.kind in ("float", "int", "uint"), f"{name} does not accept dtype {x.dtype}")


def _scan(fn, identity, x, axis, exclusive, reverse):
    """Cumulative ``fn`` (np.cumsum or np.cumprod) of ``x`` along ``axis``."""
    a = axis % x.ndim
    wide = x if x.dtype.kind in "iu" else x.astype(np.float64)  # floats accumulate in float64
    if reverse:
        wide = np.flip(wide, a)
    with np.errstate(all="ignore"):
        r = fn(wide, axis=a)
    if exclusive:
        first = np.full_like(np.take(r, [0], axis=a), identity)
        r = np.concatenate([first, np.take(r, range(r.shape[a] - 1), axis=a)], axis=a)
    if reverse:
        r = np.flip(r, a)
    return np.ascontiguousarray(r).astype(x.dtype)


def _axis_of(axis) -> int:
    a = np.asarray(axis).reshape(-1)
    require(a.size == 1, f"axis operand must hold one value, got {a.size}")
    return int(a[0])


_SCAN_ATTRS = {"axis": Attr("int"), "exclusive": Attr("bool", False), "reverse": Attr("bool", False)}
_DYN_ATTRS = {"exclusive": Attr("bool", False), "reverse": Attr("bool", False)}


def _dyn_check(name, x: TensorType, axis: TensorType):
    _scan_check(name, x)
    require(axis.dtype.is_int and axis.rank <= 1 and axis.shape in ((), (1,)),
            f"{name}: axis operand must be an integer scalar, got {axis}")


# ------------------------------------------------------------------------------------------ lowering
# Scans and top-k are written as loop IR over buffers (``b.extern``): one row along the axis is a
# sequential loop, the other dims are loops around it, the outermost of them parallel when there is
# enough work (outer loops fused first when short, as for every kernel).
PARALLEL_MIN = 1 << 14


def _rows(kb, shape, axis: int, row_body, extra_work: int = 1) -> L.Stmt:
    """Loops over every dim of ``shape`` but ``axis`` around ``row_body(index)``, where ``index(p)``
    is the full index of position ``p`` along the axis in the current row."""
    ivars = {d: kb.var("i") for d in range(len(shape)) if d != axis}

    def index(p):
        return tuple(p if d == axis else ivars[d] for d in range(len(shape)))

    body = row_body(index)
    loops = [(ivars[d], shape[d]) for d in range(len(shape)) if d != axis]
    for v, n in reversed(loops):
        body = L.For(v, n, body)
    work = loops + [(kb.var("w"), shape[axis]), (kb.var("w"), L.Const(extra_work))]
    return L.simplify_stmt(_parallelize(body, work, PARALLEL_MIN, kb))


def _scan_body(combiner: str, axis: int, exclusive: bool, reverse: bool):
    """The statement body of a cumulative ``combiner`` (add or mul) along ``axis``: a running
    accumulator (f64 for floats, as the reference accumulates; ints wrap in their own width)."""

    def body(kb, outs, ins):
        (out,), (src,) = outs, ins
        dt = src.dtype
        acc_dt = _dtype("f64") if dt.is_float else dt
        n = src.shape[axis]

        def row(index):
            acc = L.Buffer(kb.var("acc").name, acc_dt, [1], scope="local")
            k = kb.var("k")
            pos = (n - 1 - k) if reverse else k
            cur = acc[0]
            nxt = L.binary(combiner, cur, L.cast(src[index(pos)], acc_dt))
            if exclusive:  # the result leaves the element itself out: store, then accumulate
                step = L.seq(L.Store(out, index(pos), L.cast(cur, dt)), L.Store(acc, (L.Const(0),), nxt))
            else:
                t = kb.var("s", acc_dt)
                step = L.Let(t, nxt, L.seq(L.Store(acc, (L.Const(0),), t), L.Store(out, index(pos), L.cast(t, dt))))
            start = L.const(0 if combiner == "add" else 1, acc_dt)
            return L.Alloc(acc, L.seq(L.Store(acc, (L.Const(0),), start), L.For(k, n, step)))

        return _rows(kb, src.shape, axis, row)

    return body


def _lower_scan(combiner: str):
    def lower(b, x, axis, exclusive, reverse):
        a = axis % x.ndim
        return b.extern([(x.shape, x.dtype)], [x], _scan_body(combiner, a, exclusive, reverse))[0]
    return lower


def constant_scalar(t):
    """The value of a one-element tensor when it is a compile-time constant, else None."""
    try:
        e = t[tuple(L.Const(0) for _ in t.shape)]
    except RuntimeError:  # an extern's result: known only once computed
        return None
    return int(e.value) if isinstance(e, L.Const) else None


def _lower_scan_dynamic(name, combiner):
    def lower(b, x, axis, exclusive, reverse):
        a = constant_scalar(axis)
        if a is None:
            raise NotImplementedError(
                f"{name}: the scan axis is a run-time value; compiled kernels need it at compile time "
                f"(make the axis operand a constant, or use {name[:-len('_dynamic')]})")
        if not -x.ndim <= a < x.ndim:
            raise NotImplementedError(f"{name}: axis {a} is out of range for rank {x.ndim}")
        return _lower_scan(combiner)(b, x, a, exclusive, reverse)
    return lower


def _register_scan(name, fn, identity, what, combiner):
    """``name`` (axis attribute) and ``name_dynamic`` (axis operand) for one cumulative op."""

    def infer(x: TensorType, axis, exclusive, reverse):
        _scan_check(name, x)
        norm_axis(axis, x.rank)
        return x

    def reference(x, axis, exclusive, reverse):
        return _scan(fn, identity, x, axis, exclusive, reverse)

    def infer_dynamic(x: TensorType, axis: TensorType, exclusive, reverse):
        _dyn_check(f"{name}_dynamic", x, axis)
        return x

    def reference_dynamic(x, axis, exclusive, reverse):
        return _scan(fn, identity, x, _axis_of(axis), exclusive, reverse)

    register(OpDef(name, ("x",), _SCAN_ATTRS, 1, infer, reference, lower=_lower_scan(combiner),
                   doc=f"running {what} along axis"))
    register(OpDef(f"{name}_dynamic", ("x", "axis"), _DYN_ATTRS, 1, infer_dynamic, reference_dynamic,
                   lower=_lower_scan_dynamic(f"{name}_dynamic", combiner),
                   doc=f"{name} along a run-time axis (an integer scalar operand)"))


_register_scan("cumsum", np.cumsum, 0, "sum", "add")
_register_scan("cumprod", np.cumprod, 1, "product", "mul")


def _topk(x, k, axis, largest):
    """Values and int64 indices of the k largest/smallest along axis; ties keep index order."""
    a = axis % x.ndim
    n = x.shape[a]
    require(0 <= k <= n, f"topk: k={k} is out of range for an axis of length {n}")
    # numpy sorts NaN last; its sort of the ml_dtypes formats (bfloat16, float8, int4) does not
    # order NaN at all, so those sort by their exact widening
    keys = x
    if x.dtype.kind == "V":
        keys = x.astype(np.int64 if "int" in x.dtype.name else np.float64)
    if largest:
        # a stable ascending sort of the reversed axis, read backwards: values descending (NaN
        # first), equal values in ascending index order
        order = np.argsort(np.flip(keys, a), axis=a, kind="stable")
        idx = n - 1 - np.flip(order, a)
    else:
        idx = np.argsort(keys, axis=a, kind="stable")
    idx = np.take(idx, range(k), axis=a).astype(np.int64)
    return np.ascontiguousarray(np.take_along_axis(x, idx, axis=a)), np.ascontiguousarray(idx)


def _topk_check(name, x: TensorType, axis):
    require(x.rank >= 1, f"{name}: operand must have rank >= 1, got {x}")
    require(x.dtype.kind in ("float", "int", "uint"), f"{name} does not accept dtype {x.dtype}")
    return norm_axis(axis, x.rank)


def _topk_before(largest: bool):
    """``before(v, w)``: v comes strictly before w in the result order. Largest: NaN first, then
    descending; smallest: ascending, NaN last (numpy's argsort order, read from either end)."""

    def before(v, w):
        if not v.dtype.is_float:
            return L.binary("gt" if largest else "lt", v, w)
        vn, wn = L.unary("isnan", v), L.unary("isnan", w)
        if largest:
            return L.binary("or", L.binary("gt", v, w), L.binary("and", vn, L.unary("not", wn)))
        return L.binary("or", L.binary("lt", v, w), L.binary("and", L.unary("not", vn), wn))

    return before


def _topk_body(k: int, axis: int, largest: bool):
    """Per row, an insertion selection into the (sorted) results: element i enters when fewer than
    k are kept or it comes before the last kept one, after every kept element it does not come
    before; visiting elements by index makes equal values keep index order, as the reference does."""
    before = _topk_before(largest)

    def body(kb, outs, ins):
        (vals, idx), (src,) = outs, ins
        n = src.shape[axis]
        if k == 0:
            return L.Seq([])

        def row(index):
            i, t, j = kb.var("i"), kb.var("t"), kb.var("r")
            v, m, p, top, q = (kb.var("v", src.dtype), kb.var("m"), kb.var("p"), kb.var("top"), kb.var("q"))
            kk = L.Const(k)
            # where v goes: after the kept elements it does not come before (a prefix, kept sorted)
            pos = L.Reduce("sum", L.Const(0), ((j, m),),
                           L.select(before(v, vals[index(j)]), L.Const(0), L.Const(1)))
            # move kept elements p..top-1 one place down (the last of k falls off), from the end
            shift = L.For(t, top - p, L.Let(q, top - 1 - t, L.seq(
                L.Store(vals, index(q + 1), vals[index(q)]),
                L.Store(idx, index(q + 1), idx[index(q)]))))
            insert = L.Let(m, L.minimum(i, kk), L.Let(p, pos, L.Let(top, L.minimum(m, kk - 1), L.seq(
                shift, L.Store(vals, index(p), v), L.Store(idx, index(p), i)))))
            enters = L.binary("or", L.binary("lt", i, kk), before(v, vals[index(kk - 1)]))
            return L.For(i, n, L.Let(v, src[index(i)], L.If(enters, insert)))

        return _rows(kb, src.shape, axis, row, extra_work=k)

    return body


_TOPK_ATTRS = {"axis": Attr("int", -1), "largest": Attr("bool", True), "sorted": Attr("bool", True)}


@op("topk", inputs=("x",), attrs={"k": Attr("int"), **_TOPK_ATTRS}, outputs=2)
class TopK:
    """The k largest (smallest with largest=False) elements along ``axis`` and their indices.

    Results are always sorted (``sorted=False`` allows any order, so sorted is a valid one).
    """

    def infer(x: TensorType, k, axis, largest, sorted):
        a = _topk_check("topk", x, axis)
        require(k >= 0, f"topk: k must be >= 0, got {k}")
        d = x.shape[a]
        require(not isinstance(d, int) or k <= d, f"topk: k={k} exceeds the axis length {d} of {x}")
        shape = list(x.shape)
        shape[a] = k
        return TensorType(x.dtype, shape), TensorType("i64", shape)

    def reference(x, k, axis, largest, sorted):
        return _topk(x, k, axis, largest)

    def lower(b, x, k, axis, largest, sorted):
        a = axis % x.ndim
        shape = list(x.shape)
        shape[a] = L.Const(k)
        vals, idx = b.extern([(shape, x.dtype), (shape, "i64")], [x], _topk_body(k, a, largest))
        return vals, idx


@op("topk_dynamic", inputs=("x", "k"), attrs=_TOPK_ATTRS, outputs=2)
class TopKDynamic:
    """topk with ``k`` a run-time integer operand (a scalar or a 1-element tensor)."""

    def infer(x: TensorType, k: TensorType, axis, largest, sorted):
        a = _topk_check("topk_dynamic", x, axis)
        require(k.dtype.is_int and k.shape in ((), (1,)),
                f"topk_dynamic: k operand must be an integer scalar or 1-element tensor, got {k}")
        shape = list(x.shape)
        shape[a] = dims.UNKNOWN
        return TensorType(x.dtype, shape), TensorType("i64", shape)

    def reference(x, k, axis, largest, sorted):
        return _topk(x, int(np.asarray(k).reshape(-1)[0]), axis, largest)

    def lower(b, x, k, axis, largest, sorted):
        raise NotImplementedError(
            "topk_dynamic: k is a run-time operand, so the length of the selected axis is known only at "
            "run time and compiled kernels need it at compile time; use topk with a constant k")
