"""Data movement ops whose result is a rearrangement of the input's elements.

Shapes and axes are attributes. Where a frontend only knows them at run time it uses the op's
``*_dynamic`` twin, defined beside it, which takes them as an int64 operand and whose result dims
are symbols bound at run time.
"""
from __future__ import annotations

import numpy as np

from .. import dims
from .. import loops as L
from ..registry import Attr, op
from ..types import TensorType
from ._util import contiguous, norm_axis, require

_UNKNOWN = dims.UNKNOWN


@op("identity", inputs=("x",), traits=("injective", "view"))
class Identity:
    """The operand itself; passes remove it except where a graph output needs its own name."""

    def infer(x: TensorType):
        return x

    def reference(x):
        return x.copy()

    def lower(b, x):
        return b.compute(x.shape, lambda *i: x[i], dtype=x.dtype)


@op("reshape", inputs=("x",), attrs={"shape": Attr("dims")}, traits=("injective", "view"))
class Reshape:
    """Same elements, row-major, in a new shape (no -1 or 0 placeholders: frontends resolve those)."""

    def infer(x: TensorType, shape):
        for d in shape:
            require(not isinstance(d, int) or d >= 0, f"reshape: negative dim in {shape}")
        a, b = dims.prod(x.shape), dims.prod(shape)
        if isinstance(a, int) and isinstance(b, int):
            require(a == b, f"reshape: cannot reshape {x} ({a} elements) to {list(shape)} ({b} elements)")
        return TensorType(x.dtype, shape)

    def reference(x, shape):
        return x.reshape(_concrete(shape, x.size))

    def lower(b, x, shape):
        return reshape_tensor(b, x, b.dims(shape))


def _concrete(shape, size):
    """Bind symbolic dims of a target shape at run time (at most one symbol left is inferred)."""
    out, unknown = [], None
    for i, d in enumerate(shape):
        if isinstance(d, int):
            out.append(d)
        else:
            require(unknown is None, f"reshape: target shape {list(shape)} has more than one run-time dim")
            unknown = i
            out.append(-1)
    return tuple(out)


@op("reshape_dynamic", inputs=("x", "shape"),
    attrs={"allowzero": Attr("bool", False), "dims": Attr("dims", None)}, traits=("injective", "view"))
class ReshapeDynamic:
    """reshape to a run-time int64 shape.

    In the shape operand, -1 is inferred from the element count and 0 copies the input dim at
    the same position (unless ``allowzero``, where 0 is a zero-sized dim). ``dims`` optionally
    states the result dims a frontend already knows (ints or symbols, every one); the
    interpreter checks them against the run-time result.
    """

    def infer(x: TensorType, shape: TensorType, allowzero, dims):
        require(shape.rank == 1 and isinstance(shape.shape[0], int),
                f"reshape_dynamic: shape operand must be a 1-D tensor of static length, got {shape}")
        require(shape.dtype.is_int, f"reshape_dynamic: shape operand must be integer, got {shape}")
        n = shape.shape[0]
        if dims is not None:
            require(len(dims) == n and _UNKNOWN not in dims,
                    f"reshape_dynamic: dims {list(dims)} must name all {n} result dims")
            return TensorType(x.dtype, dims)
        return TensorType(x.dtype, [_UNKNOWN] * n)

    def reference(x, shape, allowzero, dims):
        return x.reshape(resolve_shape(shape, x.shape, allowzero))

    def lower(b, x, shape, allowzero, dims):
        if dims is None:
            raise NotImplementedError("reshape_dynamic without the 'dims' attribute: the result shape comes from "
                                      "the run-time values of the shape operand (data-dependent)")
        return reshape_tensor(b, x, b.dims(dims))


def resolve_shape(target, in_shape, allowzero=False) -> tuple:
    """ONNX-style target shape with 0 (copy) and -1 (infer) placeholders -> concrete dims."""
    out = [int(d) for d in target]
    if not allowzero:
        out = [in_shape[i] if d == 0 and i < len(in_shape) else d for i, d in enumerate(out)]
    require(out.count(-1) <= 1, f"reshape: more than one -1 in {list(target)}")
    require(all(d >= -1 for d in out), f"reshape: negative dim in {list(target)}")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        size = int(np.prod(in_shape))
        require(known != 0 and size % known == 0,
                f"reshape: cannot infer -1 in {list(target)} for input shape {list(in_shape)}")
        out[out.index(-1)] = size // known
    return tuple(out)


@op("shape", inputs=("x",), attrs={"start": Attr("int", 0), "end": Attr("int", None)})
class Shape:
    """The dims ``x.shape[start:end]`` as a 1-D int64 tensor (for shapes known only at run time)."""

    def infer(x: TensorType, start, end):
        return TensorType("i64", [len(range(x.rank)[slice(start, end)])])

    def reference(x, start, end):
        return np.array(x.shape[slice(start, end)], dtype=np.int64)

    def lower(b, x, start, end):
        picked = x.shape[slice(start, end)]  # constants, or expressions over the symbols

        def element(i):
            v = L.Const(0)
            for k in reversed(range(len(picked))):
                v = picked[k] if k == len(picked) - 1 else L.select(L.binary("eq", i, L.Const(k)), picked[k], v)
            return v

        return b.compute([len(picked)], element, dtype="i64")


@op("transpose", inputs=("x",), attrs={"perm": Attr("ints")}, traits=("injective",))
class Transpose:
    def infer(x: TensorType, perm):
        require(sorted(perm) == list(range(x.rank)),
                f"transpose: perm {list(perm)} is not a permutation of rank {x.rank}")
        return TensorType(x.dtype, [x.shape[p] for p in perm])

    def reference(x, perm):
        return contiguous(np.transpose(x, perm))

    def lower(b, x, perm):
        inv = [list(perm).index(j) for j in range(len(perm))]  # output axis of each input axis
        return b.compute([x.shape[p] for p in perm], lambda *i: x[tuple(i[k] for k in inv)], dtype=x.dtype)


@op("broadcast", inputs=("x",), attrs={"shape": Attr("dims")}, traits=("injective",))
class Broadcast:
    """Numpy broadcast of x to exactly ``shape`` (x's rank <= len(shape)).

    A symbolic dim of ``shape`` is x's dim at that position (the reference has no symbol
    bindings); to broadcast to a size x does not have, use ``broadcast_dynamic``.
    """

    def infer(x: TensorType, shape):
        require(x.rank <= len(shape), f"broadcast: cannot broadcast {x} to lower rank {list(shape)}")
        for xd, d in zip(x.shape[::-1], shape[::-1]):
            require(xd == 1 or xd == d or not isinstance(xd, int) or not isinstance(d, int),
                    f"broadcast: cannot broadcast {x} to {list(shape)}")
        return TensorType(x.dtype, shape)

    def reference(x, shape):
        lead = len(shape) - x.ndim
        target = []
        for i, d in enumerate(shape):
            if not isinstance(d, int):  # a symbolic dim must be x's own dim there (else: broadcast_dynamic)
                require(i >= lead, f"broadcast: symbolic dim {d} of {list(shape)} has no dim of the operand "
                                   f"{list(x.shape)} to take its size from")
                d = x.shape[i - lead]
            target.append(d)
        return contiguous(np.broadcast_to(x, target))

    def lower(b, x, shape):
        return broadcast_tensor(b, x, b.dims(shape))


@op("broadcast_dynamic", inputs=("x", "shape"), attrs={"dims": Attr("dims", None)}, traits=("injective",))
class BroadcastDynamic:
    """Numpy broadcast of x against a run-time int64 shape, both ways (ONNX Expand).

    The result has rank ``max(x.rank, len(shape))``; a dim of x that is not 1 stays, a dim of 1
    takes the run-time value. ``dims`` optionally states every result dim, when a frontend knows them.
    """

    def infer(x: TensorType, shape: TensorType, dims):
        require(shape.rank == 1 and isinstance(shape.shape[0], int),
                f"broadcast_dynamic: shape operand must be a 1-D tensor of static length, got {shape}")
        require(shape.dtype.is_int, f"broadcast_dynamic: shape operand must be integer, got {shape}")
        r = max(x.rank, shape.shape[0])
        if dims is not None:
            require(len(dims) == r and _UNKNOWN not in dims,
                    f"broadcast_dynamic: dims {list(dims)} must name all {r} result dims")
            return TensorType(x.dtype, dims)
        xs = (1,) * (r - x.rank) + x.shape
        return TensorType(x.dtype, [d if d != 1 else _UNKNOWN for d in xs])

    def reference(x, shape, dims):
        target = np.broadcast_shapes(x.shape, tuple(int(d) for d in shape))
        return contiguous(np.broadcast_to(x, target))

    def lower(b, x, shape, dims):
        if dims is not None:
            return broadcast_tensor(b, x, b.dims(dims))
        n = L.simplify(shape.shape[0])
        if not isinstance(n, L.Const) or int(n.value) > x.ndim or any(_is_one(d) for d in x.shape):
            raise NotImplementedError("broadcast_dynamic without the 'dims' attribute: where the operand has a "
                                      "dim of 1 (or fewer dims than the shape operand), the result dim is a "
                                      "run-time value of the shape operand (data-dependent)")
        return broadcast_tensor(b, x, x.shape)  # every dim of x stays: a copy


@op("slice", inputs=("x",), attrs={"starts": Attr("ints"), "ends": Attr("ints"), "axes": Attr("ints"),
                                   "steps": Attr("ints")}, traits=("injective",))
class Slice:
    """Python slicing ``x[start:end:step]`` on each listed axis (bounds need not be clamped).

    On a symbolic dim ``d`` with step 1, bounds counted from the end give symbolic sizes, taking
    the dim to be at least as long as the bounds reach: ``[s:]`` is ``d-s``, ``[s:-k]`` is
    ``d-k-s``, ``[-k:]`` is ``k``; other slices of a symbolic dim are run-time dims.
    """

    def infer(x: TensorType, starts, ends, axes, steps):
        require(len(starts) == len(ends) == len(axes) == len(steps),
                "slice: starts, ends, axes and steps must have the same length")
        shape = list(x.shape)
        for s, e, a, st in zip(starts, ends, axes, steps):
            a = norm_axis(a, x.rank)
            require(st != 0, "slice: step cannot be 0")
            d = shape[a]
            if isinstance(d, int):
                shape[a] = len(range(*slice(s, e, st).indices(d)))
            else:
                shape[a] = _symbolic_slice_len(d, s, e, st)
        return TensorType(x.dtype, shape)

    def reference(x, starts, ends, axes, steps):
        idx = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            idx[a % x.ndim] = slice(s, e, st)
        return contiguous(x[tuple(idx)])

    def lower(b, x, starts, ends, axes, steps):
        per_axis = {}  # axis -> (start, end, step)
        for s, e, a, st in zip(starts, ends, axes, steps):
            per_axis[a % x.ndim] = (s, e, st)
        shape, first = list(x.shape), {}
        for a, (s, e, st) in per_axis.items():
            d = x.shape[a]
            if isinstance(d, L.Const):
                lo, hi, step = slice(s, e, st).indices(int(d.value))
                shape[a], first[a] = L.Const(len(range(lo, hi, step))), (L.Const(lo), step)
                continue
            n = _symbolic_slice_len(_dim(d), s, e, st) if _dim(d) is not None else _UNKNOWN
            if n == _UNKNOWN:
                raise NotImplementedError(f"slice [{s}:{e}:{st}] of the symbolic dim {L.fmt_expr(d)} has a length "
                                          f"known only at run time")
            shape[a] = L.dim_expr(n)
            first[a] = (L.simplify(d + s) if s < 0 else L.Const(s), 1)

        def element(*i):
            return x[tuple(first[a][0] + i[a] * first[a][1] if a in first else i[a] for a in range(x.ndim))]

        return b.compute(shape, element, dtype=x.dtype)


def _symbolic_slice_len(d, s, e, st):
    big = 2**62
    if st != 1:
        return _UNKNOWN
    if s >= 0 and e >= big:
        return dims.sub(d, s)
    if s >= 0 and e < 0:
        return dims.sub(dims.add(d, e), s)
    if s < 0 and (e >= big or e < 0):
        return max((e if e < 0 else 0) - s, 0)
    return _UNKNOWN


@op("slice_dynamic", inputs=("x", "starts", "ends", "axes?", "steps?"), attrs={"axes": Attr("ints", None)},
    traits=("injective",))
class SliceDynamic:
    """slice with run-time int starts/ends (and steps, default 1), python/ONNX clamping.

    The axes are the ``axes`` attribute when the frontend knows them (then sliced dims alone
    become run-time dims), else the ``axes`` operand (every dim becomes a run-time dim), else
    the leading ``len(starts)`` axes.
    """

    def infer(x: TensorType, starts: TensorType, ends: TensorType, axes_in, steps, axes):
        for name, t in (("starts", starts), ("ends", ends), ("axes", axes_in), ("steps", steps)):
            require(t is None or (t.rank == 1 and t.dtype.is_int),
                    f"slice_dynamic: {name} must be a 1-D integer tensor, got {t}")
        n = starts.shape[0]
        require(axes is None or axes_in is None, "slice_dynamic: axes given both as attribute and operand")
        shape = list(x.shape)
        if axes_in is not None:
            return TensorType(x.dtype, [_UNKNOWN] * x.rank)
        if axes is None:
            require(isinstance(n, int) and n <= x.rank, f"slice_dynamic: starts {starts} do not fit rank {x.rank}")
            axes = range(n)
        for a in axes:
            shape[norm_axis(a, x.rank)] = _UNKNOWN
        return TensorType(x.dtype, shape)

    def reference(x, starts, ends, axes_in, steps, axes):
        if axes is None:
            axes = axes_in if axes_in is not None else range(len(starts))
        steps = steps if steps is not None else [1] * len(starts)
        idx = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            require(int(st) != 0, "slice: step cannot be 0")
            idx[int(a) % x.ndim] = slice(int(s), int(e), int(st))
        return contiguous(x[tuple(idx)])

    def lower(b, x, starts, ends, axes_in=None, steps=None, *, axes):
        n = L.simplify(starts.shape[0])
        if axes_in is None and (axes is not None and len(axes) == 0 or axes is None and _is_zero(n)):
            return b.compute(x.shape, lambda *i: x[i], dtype=x.dtype)  # nothing sliced: a copy
        raise NotImplementedError("slice_dynamic: the sliced dims depend on the run-time values of starts/ends "
                                  "(data-dependent result shape)")


@op("concat", inputs=("*xs",), attrs={"axis": Attr("int")}, traits=("injective",))
class Concat:
    def infer(*xs: TensorType, axis):
        require(len(xs) >= 1, "concat: needs at least one input")
        r = xs[0].rank
        a = norm_axis(axis, r)
        total = 0
        for t in xs:
            require(t.rank == r, f"concat: ranks differ ({', '.join(str(t) for t in xs)})")
            require(t.dtype == xs[0].dtype, f"concat: dtypes differ ({', '.join(str(t) for t in xs)})")
            total = dims.add(total, t.shape[a])
        shape = list(xs[0].shape)
        shape[a] = total
        return TensorType(xs[0].dtype, shape)

    def reference(*xs, axis):
        return np.concatenate(xs, axis=axis)

    def lower(b, *xs, axis):
        a = axis % xs[0].ndim
        total = L.Const(0)
        for t in xs:
            total = L.simplify(total + t.shape[a])
        shape = list(xs[0].shape)
        shape[a] = total
        parts, offset = [], L.Const(0)
        for t in xs:
            if not _is_zero(t.shape[a]):
                parts.append((t, offset))
            offset = L.simplify(offset + t.shape[a])
        if len(parts) > 1:
            # a select evaluates every side: an operand that is more than a load is computed once, first
            parts = [(operand_buffer(b, t, "concat_operand"), off) for t, off in parts]
        if not parts:
            return b.compute(shape, lambda *i: L.const(0, xs[0].dtype), dtype=xs[0].dtype)

        def element(*i):
            j = i[a]

            def read(k):  # part k at the concat position j, its index clamped into range: select reads both sides
                t, off = parts[k]
                pos = j - off
                if k + 1 < len(parts):
                    pos = L.minimum(pos, t.shape[a] - 1)
                if k > 0:
                    pos = L.maximum(pos, L.Const(0))
                return t[tuple(pos if d == a else i[d] for d in range(len(i)))]

            v = read(len(parts) - 1)
            for k in range(len(parts) - 2, -1, -1):
                v = L.select(L.binary("lt", j, parts[k + 1][1]), read(k), v)
            return v

        return b.compute(shape, element, dtype=xs[0].dtype)


PAD_MODES = ("constant", "reflect", "edge", "wrap")


@op("pad", inputs=("x", "value?"), attrs={"pads": Attr("ints"), "mode": Attr("str", "constant", PAD_MODES)},
    traits=("injective",))
class Pad:
    """Pad (or, with negative pads, crop) every axis: ``pads`` is [begin_0.., end_0..] (ONNX order).

    ``value`` (a scalar of x's dtype, default 0) fills in constant mode; reflect mirrors without
    repeating the edge, edge repeats it, wrap tiles the axis.
    """

    def infer(x: TensorType, value: TensorType, pads, mode):
        require(len(pads) == 2 * x.rank, f"pad: pads {list(pads)} must have 2 * rank = {2 * x.rank} entries")
        require(value is None or (value.dtype == x.dtype and (value.rank == 0 or value.shape == (1,))),
                f"pad: value must be a scalar of {x.dtype}, got {value}")
        r = x.rank
        shape = [dims.add(d, pads[i] + pads[i + r]) for i, d in enumerate(x.shape)]
        require(all(not isinstance(d, int) or d >= 0 for d in shape),
                f"pad: pads {list(pads)} crop {x} to a negative size")
        return TensorType(x.dtype, shape)

    def reference(x, value, pads, mode):
        return pad_array(x, value, pads, mode)

    def lower(b, x, value=None, *, pads, mode):
        return pad_tensor(b, x, value, pads, mode)


@op("pad_dynamic", inputs=("x", "pads", "value?"), attrs={"mode": Attr("str", "constant", PAD_MODES)},
    traits=("injective",))
class PadDynamic:
    """pad with run-time int64 pads [begin_0.., end_0..]; every result dim is a run-time dim."""

    def infer(x: TensorType, pads: TensorType, value: TensorType, mode):
        require(pads.rank == 1 and pads.dtype.is_int, f"pad_dynamic: pads must be a 1-D integer tensor, got {pads}")
        return TensorType(x.dtype, [_UNKNOWN] * x.rank)

    def reference(x, pads, value, mode):
        return pad_array(x, value, [int(p) for p in pads], mode)

    def lower(b, x, pads, value=None, *, mode):
        if x.ndim:
            raise NotImplementedError("pad_dynamic: every result dim depends on the run-time pads "
                                      "(data-dependent result shape)")
        return b.compute((), lambda: x[()], dtype=x.dtype)


def pad_array(x, value, pads, mode):
    r = x.ndim
    require(len(pads) == 2 * r, f"pad: pads {list(pads)} must have 2 * rank = {2 * r} entries")
    crop = tuple(slice(max(-pads[i], 0), x.shape[i] - max(-pads[i + r], 0)) for i in range(r))
    x = x[crop]
    width = [(max(pads[i], 0), max(pads[i + r], 0)) for i in range(r)]
    if mode == "constant":
        v = np.zeros((), x.dtype) if value is None else np.asarray(value).reshape(())
        return contiguous(np.pad(x, width, mode="constant", constant_values=v))
    require(x.size > 0 or not any(w != (0, 0) for w in width), f"pad: cannot {mode}-pad an empty tensor")
    return contiguous(np.pad(x, width, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode]))


# ------------------------------------------------------------------------------------------ lowering
# Helpers shared by the movement, indexing and image lowerings. A select evaluates both sides, so
# every load stays in bounds: indices are clamped into range (the unused side reads a valid element).
def _is_one(e) -> bool:
    return isinstance(e, L.Const) and e.value == 1


def _is_zero(e) -> bool:
    return isinstance(e, L.Const) and e.value == 0


def _dim(e):
    """A loop-IR dim expression back to a kiln dim (int or polynomial string), or None."""
    e = L.simplify(e)
    if isinstance(e, L.Const):
        return int(e.value)
    if isinstance(e, L.Var):
        return e.name
    if isinstance(e, L.Bin) and e.op in ("add", "sub", "mul"):
        a, c = _dim(e.a), _dim(e.b)
        if a is None or c is None:
            return None
        return {"add": dims.add, "sub": dims.sub, "mul": dims.mul}[e.op](a, c)
    return None


def operand_buffer(b, t, name: str = "operand", cheap: int = 3):
    """``t`` itself when reading an element is cheap (a load and a little arithmetic), else ``t`` computed
    into a buffer first: for operands read several times per result element."""
    if t.kind == "buffer":
        return t
    try:
        e = t[tuple(L.Var(f"_p{k}") for k in range(t.ndim))]
    except Exception:  # noqa: BLE001 - an extern's result: it has its own buffer once emitted
        return b.buffer(t, name)
    cost = 0
    for n in L.walk(e):
        if isinstance(n, L.Reduce):
            return b.buffer(t, name)
        if isinstance(n, L.Un):
            cost += 1 if n.op in ("neg", "abs", "not") else 4
        elif isinstance(n, (L.Load, L.Select, L.Cast)) or isinstance(n, (L.Bin, L.Cmp)) and not n.dtype.is_int:
            cost += 1
    return t if cost <= cheap else b.buffer(t, name)


def clamp(e, lo, hi):
    """``e`` clamped into [lo, hi] (lo wins when the range is empty)."""
    return L.maximum(L.minimum(e, L.as_expr(hi)), L.as_expr(lo))


def wrap_index(e, n):
    """An index operand (any int dtype) as an int64 position on an axis of size ``n``: negatives count
    from the end, as in the references; out of range clamps to the nearest end (never a wild load)."""
    i = L.cast(e, "i64")
    i = L.select(L.binary("lt", i, L.Const(0)), i + n, i)
    return clamp(i, L.Const(0), L.simplify(n - 1))


def scalar_of(t):
    """The one element of a scalar-like tensor (rank 0 or shape [1, ...])."""
    return t[tuple(L.Const(0) for _ in range(t.ndim))]


def broadcast_index(x, out_shape, idx) -> tuple:
    """Index of ``x`` read for output index ``idx`` when x broadcasts to ``out_shape`` (trailing dims align).
    A dim of x that is neither 1 nor provably the output's dim decides at run time."""
    lead = len(out_shape) - x.ndim
    out = []
    for j, xd in enumerate(x.shape):
        od, i = out_shape[lead + j], idx[lead + j]
        if _is_one(xd):
            out.append(L.Const(0))
        elif xd == od or _dim(xd) is not None and _dim(xd) == _dim(od):
            out.append(i)
        else:
            out.append(L.select(L.binary("eq", xd, L.Const(1)), L.Const(0), i))
    return tuple(out)


def broadcast_tensor(b, x, shape):
    shape = tuple(shape)
    return b.compute(shape, lambda *i: x[broadcast_index(x, shape, i)], dtype=x.dtype)


def _reshape_groups(ins, outs):
    """Pair runs of input and output dims (1s left out) whose products are equal, as lists of positions:
    a merge or a split stays within its run, so most dims keep plain (affine) indices. None if the dims
    do not pair up that way."""
    ii = [k for k, d in enumerate(ins) if d != 1]
    oo = [k for k, d in enumerate(outs) if d != 1]
    groups, i, j = [], 0, 0
    while i < len(ii) and j < len(oo):
        gi, go, pi, po = [ii[i]], [oo[j]], ins[ii[i]], outs[oo[j]]
        i, j = i + 1, j + 1
        while pi != po:
            if dims.div_exact(po, pi) is not None and i < len(ii):
                gi.append(ii[i])
                pi, i = dims.mul(pi, ins[ii[i]]), i + 1
            elif dims.div_exact(pi, po) is not None and j < len(oo):
                go.append(oo[j])
                po, j = dims.mul(po, outs[oo[j]]), j + 1
            else:
                return None
        groups.append((gi, go))
    if i < len(ii) or j < len(oo) or 0 in ins or 0 in outs:
        return None
    return groups


def _regroup(out_idx, out_dims, in_dims) -> list:
    """Row-major: the input indices (over ``in_dims``) of the element at ``out_idx`` (over ``out_dims``)."""
    lin = L.Const(0)
    for o, d in zip(out_idx, out_dims):
        lin = lin * d + o
    res, stride = [], L.Const(1)
    for k in range(len(in_dims) - 1, -1, -1):
        v = lin if _is_one(stride) else L.binary("floordiv", lin, stride)
        res.append(v if k == 0 else L.binary("mod", v, in_dims[k]))
        stride = L.simplify(stride * in_dims[k])
    return res[::-1]


def reshape_tensor(b, x, shape):
    """x's elements, row-major, in ``shape`` (loop-IR dims)."""
    shape = tuple(shape)
    ins, outs = [_dim(d) for d in x.shape], [_dim(d) for d in shape]
    groups = None if None in ins or None in outs else _reshape_groups(ins, outs)
    if groups is None:
        groups = [(list(range(x.ndim)), list(range(len(shape))))]

    def element(*i):
        idx = [L.Const(0)] * x.ndim
        for gi, go in groups:
            for k, v in zip(gi, _regroup([i[k] for k in go], [shape[k] for k in go], [x.shape[k] for k in gi])):
                idx[k] = v
        return x[tuple(idx)]

    return b.compute(shape, element, dtype=x.dtype)


def pad_tensor(b, x, value, pads, mode):
    r = x.ndim
    fill = L.const(0, x.dtype) if value is None else scalar_of(value)
    shape = [L.simplify(x.shape[k] + (pads[k] + pads[k + r])) for k in range(r)]

    def element(*o):
        idx, inside = [], None
        for k in range(r):
            lo, hi = pads[k], pads[k + r]
            cut_lo, pad_lo, pad_hi = max(-lo, 0), max(lo, 0), max(hi, 0)
            n = L.simplify(x.shape[k] - cut_lo - max(-hi, 0))  # the cropped length
            t = o[k] - pad_lo  # position in the cropped axis
            if pad_lo == 0 and pad_hi == 0:
                pass
            elif mode == "constant":
                conds = ([L.binary("ge", t, L.Const(0))] if pad_lo else []) + \
                        ([L.binary("lt", t, n)] if pad_hi else [])
                for c in conds:
                    inside = c if inside is None else L.binary("and", inside, c)
                t = L.minimum(t, L.simplify(n - 1)) if pad_hi else t
                t = L.maximum(t, L.Const(0)) if pad_lo else t
            elif mode == "edge":
                t = L.maximum(L.minimum(t, L.simplify(n - 1)), L.Const(0))
            elif mode == "wrap":
                t = L.binary("mod", t, n)
            elif _is_one(n):  # reflect of a single element
                t = L.Const(0)
            else:  # reflect: period 2 * (n - 1), mirrored without repeating the edge
                p = L.simplify(2 * (n - 1))
                m = L.binary("mod", t, p)
                t = L.select(L.binary("lt", m, n), m, p - m)
            idx.append(t + cut_lo)
        v = x[tuple(idx)]
        return v if inside is None else L.select(inside, v, fill)

    return b.compute(shape, element, dtype=x.dtype)
