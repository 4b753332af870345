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


def _register_scan(name, fn, identity, what):
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

    register(OpDef(name, ("x",), _SCAN_ATTRS, 1, infer, reference, doc=f"running {what} along axis"))
    register(OpDef(f"{name}_dynamic", ("x", "axis"), _DYN_ATTRS, 1, infer_dynamic, reference_dynamic,
                   doc=f"{name} along a run-time axis (an integer scalar operand)"))


_register_scan("cumsum", np.cumsum, 0, "sum")
_register_scan("cumprod", np.cumprod, 1, "product")


def _topk(x, k, axis, largest):
    """Values and int64 indices of the k largest/smallest along axis; ties keep index order."""
    a = axis % x.ndim
    n = x.shape[a]
    require(0 <= k <= n, f"topk: k={k} is out of range for an axis of length {n}")
    if largest:
        # a stable ascending sort of the reversed axis, read backwards: values descending,
        # equal values in ascending index order
        order = np.argsort(np.flip(x, a), axis=a, kind="stable")
        idx = n - 1 - np.flip(order, a)
    else:
        idx = np.argsort(x, axis=a, kind="stable")
    idx = np.take(idx, range(k), axis=a).astype(np.int64)
    return np.ascontiguousarray(np.take_along_axis(x, idx, axis=a)), np.ascontiguousarray(idx)


def _topk_check(name, x: TensorType, axis):
    require(x.rank >= 1, f"{name}: operand must have rank >= 1, got {x}")
    require(x.dtype.kind in ("float", "int", "uint"), f"{name} does not accept dtype {x.dtype}")
    return norm_axis(axis, x.rank)


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
