"""Converters for ONNX shape, data-movement and indexing ops, constants and identity.

Resampling (Resize, Upsample, GridSample, Col2Im, AffineGrid) lives in :mod:`.image`.

Most of these ops are decompositions: Flatten/Squeeze/Unsqueeze are reshapes, Expand is a
broadcast, Split is slices, Tile is reshape + broadcast + reshape, DepthToSpace is reshape +
transpose + reshape, Trilu/EyeLike/OneHot are ``where``/``equal`` over constants or iotas,
AffineGrid is a matmul with a base grid, TensorScatter is a scatter.

Shape operands known at import time become attributes; run-time ones go to the core op's
``*_dynamic`` twin. Symbolic dims flow through shape arithmetic this way (the choice asked for):
``Shape`` of a tensor with a symbolic dim emits the core ``shape`` op (a run-time value), and
:func:`known_dims` reads a shape operand back *symbolically* by walking the core ops that
computed it (``shape``, ``gather``, ``concat``, ``slice``, ``reshape``, ``cast``, ``add``/``sub``/
``mul``/``div``, ``reduce_prod``, ``equal``/``where``, ``floor``) over object arrays of dims. So on
an input ``[batch, 3, 4]`` the chain Shape -> Gather -> Unsqueeze -> Concat -> Reshape yields
``reshape(shape=[batch, 12])``; the run-time shape nodes it leaves behind are dead code.

The numpy reference of ``reshape`` can bind only one symbolic dim at run time (it sees arrays,
not symbol bindings), so a target with two or more symbols (``[batch, seq, 4, 16]``) becomes
``reshape_dynamic`` on a shape computed at run time from ``shape(x)``, carrying the symbolic dims
as its ``dims`` hint; the result type keeps ``batch`` and ``seq`` (see :func:`reshape_to`).
"""
from __future__ import annotations

import numpy as np

from ....ir import dims as D
from ..registry import converter


# --- helpers -----------------------------------------------------------------------------------

def _const_ints(ctx, i, what):
    return [int(v) for v in np.asarray(ctx.require_const(i, what)).reshape(-1)]


_SYMBOLIC_BINARY = {"add": D.add, "sub": D.sub, "mul": D.mul}


def _obj(v):
    """v as an object ndarray (numpy hands single elements back unwrapped)."""
    if isinstance(v, np.ndarray):
        return v
    out = np.empty((), dtype=object)
    out[()] = v
    return out


def _trace(graph, value, producers, depth=0):
    """The value of an integer tensor as an object array of dims, or None when not derivable."""
    if value in graph.constants:
        arr = graph.constants[value]
        if arr.dtype.kind not in "iubf" or arr.size > 64:
            return None
        if arr.dtype.kind == "f":  # whole numbers only: dims are integers
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.floor(arr)):
                return None
            arr = arr.astype(np.int64)
        return np.array(arr.tolist(), dtype=object).reshape(arr.shape)
    node = producers.get(value)
    if node is None or depth > 64 or len(node.outputs) != 1:
        return None
    a = node.attrs

    def arg(k):
        return _trace(graph, node.inputs[k], producers, depth + 1) if node.inputs[k] else None

    op = node.op
    if op == "shape":
        return np.array(graph.types[node.inputs[0]].shape[slice(a["start"], a["end"])], dtype=object)
    if op in ("identity", "reshape", "cast", "gather", "slice", "concat", "floor", "ceil", "round"):
        if op == "cast" and a["to"].kind == "bool":
            return None
        args = [arg(k) for k in range(len(node.inputs))] if op == "concat" else [arg(0)]
        if any(x is None for x in args):
            return None
        x = args[0]
        if op in ("identity", "cast", "floor", "ceil", "round"):  # the values are whole numbers already
            return x
        if op == "reshape":
            return x.reshape([int(d) for d in a["shape"]]) if all(isinstance(d, int) for d in a["shape"]) else None
        if op == "concat":
            return np.concatenate(args, axis=a["axis"])
        if op == "slice":
            idx = [slice(None)] * x.ndim
            for s, e, ax, st in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
                idx[ax % x.ndim] = slice(s, e, st)
            return x[tuple(idx)]
        if op == "gather":
            ind = graph.constants.get(node.inputs[1])
            return None if ind is None else _obj(np.take(x, ind.astype(np.int64), axis=a["axis"]))
    if op in _SYMBOLIC_BINARY or op == "div":
        x, y = arg(0), arg(1)
        if x is None or y is None:
            return None
        xb, yb = np.broadcast_arrays(x, y)
        is_float = graph.types[node.outputs[0]].dtype.is_float  # float division must come out whole
        out = np.empty(xb.shape, dtype=object)
        for k in np.ndindex(*xb.shape):
            if op == "div":
                a_, b_ = xb[k], yb[k]
                if isinstance(a_, int) and isinstance(b_, int) and b_ and not is_float:
                    q = abs(a_) // abs(b_) * (1 if (a_ < 0) == (b_ < 0) else -1)  # truncating, as ONNX Div
                else:
                    q = D.div_exact(a_, b_)
                if q is None:
                    return None
                out[k] = q
            else:
                out[k] = _SYMBOLIC_BINARY[op](xb[k], yb[k])
        return out
    if op in ("equal", "where", "not"):
        args = [arg(k) for k in range(len(node.inputs))]
        if any(x is None for x in args):
            return None
        return _trace_select(op, args)
    if op == "reduce_prod" and node.inputs and a.get("axes") is not None:
        x = arg(0)
        if x is None or x.ndim != 1 or not a["axes"]:
            return None
        p = D.prod(list(x))
        return np.array([p] if a["keepdims"] else p, dtype=object)
    return None


def _dims_equal(a, b):
    """Whether two dims are equal, when that is known at import time (a symbol is never negative)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return None
    if a == b:
        return True
    if isinstance(a, int) and isinstance(b, int):
        return False
    other = a if isinstance(a, int) else b
    return False if isinstance(other, int) and other < 0 else None


def _trace_select(op, args):
    """equal / not / where over traced dims (the ``expand(-1, ...)`` idiom of exporters)."""
    bs = np.broadcast_arrays(*args)
    out = np.empty(bs[0].shape, dtype=object)
    for k in np.ndindex(*out.shape):
        vals = [b[k] for b in bs]
        if op == "equal":
            v = _dims_equal(*vals)
        elif op == "not":
            v = None if not isinstance(vals[0], bool) else not vals[0]
        else:
            v = None if not isinstance(vals[0], bool) else (vals[1] if vals[0] else vals[2])
        if v is None:
            return None
        out[k] = v
    return out


def known_dims(ctx, i):
    """Input ``i`` (a 1-D integer shape operand) as a list of dims (ints or symbols), or None."""
    v = ctx.input(i)
    if v is None:
        return None
    g = ctx.graph
    r = _trace(g, v, {} if v in g.constants else g.producers())
    if r is None:
        return None
    flat = r.reshape(-1).tolist()
    if any(isinstance(d, bool) for d in flat):
        return None
    return [D.canonical(d) if isinstance(d, (int, str)) else None for d in flat]


def _static_reshape_ok(dims):
    """The numpy reference of ``reshape`` binds at most one run-time dim."""
    return sum(not isinstance(d, int) for d in dims) <= 1


def runtime_shape(ctx, x, dims):
    """An int64 1-D value holding ``dims`` at run time, read off ``shape(x)``; None if it cannot.

    A symbolic dim must be one of x's dims or the product of a run of them (as after a Flatten);
    one other dim may become -1 (for reshape).
    """
    xs = ctx.type_of(x).shape
    plan, minus = [], False
    for d in dims:
        run = None if isinstance(d, int) else _find_run(xs, d)
        if not isinstance(d, int) and run is None:
            if minus:
                return None
            minus, d = True, -1
        plan.append((d, run))
    parts = []
    for d, run in plan:
        if run is None:
            parts.append(ctx.const(np.array([d], np.int64)))
        else:
            dim = ctx.op("shape", x, start=run[0], end=run[1])
            parts.append(ctx.op("reduce_prod", dim, axes=[0], keepdims=True) if run[1] - run[0] > 1 else dim)
    if not parts:
        return ctx.const(np.zeros([0], np.int64))
    return parts[0] if len(parts) == 1 else ctx.op("concat", *parts, axis=0)


def _find_run(xs, d):
    """(i, j) with prod(xs[i:j]) == d, shortest first, or None."""
    for length in range(1, len(xs) + 1):
        for i in range(len(xs) - length + 1):
            if D.prod(xs[i:i + length]) == d:
                return i, i + length
    return None


def reshape_to(ctx, x, dims, fallback=None, allowzero=False):
    """reshape x to ``dims`` (ints or symbolic dims); x itself when it already has that shape.

    With two or more symbolic dims the numpy reference cannot bind them, so the result is a
    ``reshape_dynamic`` on a run-time shape built from x's dims, else on ``fallback`` (a run-time
    ONNX shape operand, read with ``allowzero``), carrying ``dims`` as its hint.
    """
    dims = [D.canonical(d) for d in dims]
    t = ctx.type_of(x)
    if list(t.shape) == dims:
        return x
    if _static_reshape_ok(dims):
        return ctx.op("reshape", x, shape=dims)
    shape = runtime_shape(ctx, x, dims)
    if shape is None:
        if fallback is None:
            ctx.fail(f"cannot reshape {t} to {dims}: the dims cannot be computed at run time")
        shape = fallback
    else:
        allowzero = False
    return ctx.op("reshape_dynamic", x, shape, allowzero=allowzero, dims=dims)


def _resolve_target(ctx, target, in_shape, allowzero):
    """ONNX Reshape placeholders (0 copies, -1 infers) over symbolic dims; None if unresolvable."""
    out = []
    for i, d in enumerate(target):
        if d is None:
            return None
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                ctx.fail(f"shape {target} copies dim {i} (0) but the input has rank {len(in_shape)}")
            d = in_shape[i]
        out.append(d)
    if out.count(-1) > 1:
        ctx.fail(f"shape {target} has more than one -1")
    if -1 in out:
        known = D.prod([d for d in out if d != -1])
        rest = D.div_exact(D.prod(in_shape), known)
        if rest is None:
            return None
        out[out.index(-1)] = rest
    return out


def _axis(ctx, axis, rank, what="axis"):
    if not -rank <= axis < max(rank, 1):
        ctx.fail(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def _i64(ctx, v):
    """v cast to int64 (when it is another integer type)."""
    if ctx.type_of(v).dtype.name == "i64":
        return v
    return ctx.op("cast", v, to="i64", saturate=True)


def _scalar(ctx, v):
    return reshape_to(ctx, v, [])


# --- constants and identity ----------------------------------------------------------------------

@converter("Identity", since=1)
def identity(ctx):
    return ctx.input(0)


@converter("Constant", since=1)
def constant(ctx):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if ctx.has_attr(key):
            v = ctx.attr(key)
            if key in ("value_float", "value_floats"):
                return ctx.const(np.asarray(v, dtype=np.float32))
            if key in ("value_int", "value_ints"):
                return ctx.const(np.asarray(v, dtype=np.int64))
            return ctx.const(v)
    if ctx.has_attr("sparse_value"):
        return ctx.const(_sparse_to_dense(ctx.attr("sparse_value")))
    if ctx.has_attr("value_string") or ctx.has_attr("value_strings"):
        ctx.fail("string constants are not supported")
    ctx.fail("the node has no value attribute")


def _sparse_to_dense(sp):
    from onnx import numpy_helper

    values = numpy_helper.to_array(sp.values)
    idx = numpy_helper.to_array(sp.indices).astype(np.int64)
    shape = tuple(sp.dims)
    dense = np.zeros(int(np.prod(shape)), dtype=values.dtype)
    flat = idx if idx.ndim == 1 else np.ravel_multi_index(tuple(idx.T), shape)
    dense[flat] = values
    return dense.reshape(shape)


# --- shape queries -------------------------------------------------------------------------------

@converter("Shape", since=1)
def shape(ctx):
    s = ctx.shape(0)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    sel = s[slice(start, end)]
    if all(isinstance(d, int) for d in sel):
        return ctx.const(np.array(sel, dtype=np.int64))
    return ctx.op("shape", ctx.input(0), start=start, end=end)


@converter("Size", since=1)
def size(ctx):
    n = D.prod(ctx.shape(0))
    if isinstance(n, int):
        return ctx.const(np.array(n, dtype=np.int64))
    return ctx.op("reduce_prod", ctx.op("shape", ctx.input(0)), axes=[0], keepdims=False)


# --- reshapes --------------------------------------------------------------------------------------

@converter("Reshape", since=5)
def reshape(ctx):
    x, in_shape = ctx.input(0), ctx.shape(0)
    allowzero = bool(ctx.attr("allowzero", 0))
    target = known_dims(ctx, 1)
    if target is not None:
        out = _resolve_target(ctx, target, in_shape, allowzero)
        if out is not None:
            return reshape_to(ctx, x, out, fallback=ctx.input(1), allowzero=allowzero)
    if ctx.type(1).rank != 1 or not isinstance(ctx.shape(1)[0], int):
        ctx.fail(f"the shape operand must be 1-D of static length to know the result rank, got {ctx.type(1)}")
    return ctx.op("reshape_dynamic", x, ctx.input(1), allowzero=allowzero)


@converter("Flatten", since=1)
def flatten(ctx):
    s = ctx.shape(0)
    axis = ctx.attr("axis", 1)
    if not -len(s) <= axis <= len(s):
        ctx.fail(f"axis {axis} is out of range for rank {len(s)}")
    axis = axis + len(s) if axis < 0 else axis
    return reshape_to(ctx, ctx.input(0), [D.prod(s[:axis]), D.prod(s[axis:])])


def _squeeze(ctx, axes):
    s = ctx.shape(0)
    if axes is None:  # every dim of size 1; a symbolic dim is taken not to be 1 (the rank must be static)
        axes = [i for i, d in enumerate(s) if d == 1]
    axes = {_axis(ctx, a, len(s)) for a in axes}
    for a in axes:
        if isinstance(s[a], int) and s[a] != 1:
            ctx.fail(f"cannot squeeze axis {a} of size {s[a]}")
    return reshape_to(ctx, ctx.input(0), [d for i, d in enumerate(s) if i not in axes])


def _unsqueeze(ctx, axes):
    s = list(ctx.shape(0))
    r = len(s) + len(axes)
    axes = sorted({_axis(ctx, a, r) for a in axes})
    if len(axes) != len(set(axes)) or len(axes) != r - len(s):
        ctx.fail(f"axes {axes} repeat an axis")
    out = []
    it = iter(s)
    for i in range(r):
        out.append(1 if i in axes else next(it))
    return reshape_to(ctx, ctx.input(0), out)


@converter("Squeeze", since=1)
def squeeze_v1(ctx):
    return _squeeze(ctx, ctx.attr("axes", None))


@converter("Squeeze", since=13)
def squeeze_v13(ctx):
    if ctx.has_input(1) and ctx.const_value(1) is None:
        return _squeeze_unsqueeze_dynamic(ctx, squeeze=True)
    return _squeeze(ctx, _const_ints(ctx, 1, "the axes") if ctx.has_input(1) else None)


@converter("Unsqueeze", since=1)
def unsqueeze_v1(ctx):
    return _unsqueeze(ctx, ctx.attr("axes"))


@converter("Unsqueeze", since=13)
def unsqueeze_v13(ctx):
    if ctx.const_value(1) is None:
        return _squeeze_unsqueeze_dynamic(ctx, squeeze=False)
    return _unsqueeze(ctx, _const_ints(ctx, 1, "the axes"))


def _axes_count(ctx, i):
    n = ctx.shape(i)
    if ctx.rank(i) > 1 or (n and not isinstance(n[0], int)):
        ctx.fail(f"run-time axes must be a 1-D tensor of static length, got {ctx.type(i)}")
    return n[0] if n else 1


def _norm_axes_rt(ctx, axes, rank, i=1):
    """Run-time axes (input ``i``, int64) with negative values counted from the end of ``rank`` dims."""
    axes = reshape_to(ctx, _i64(ctx, axes), [_axes_count(ctx, i)])
    neg = ctx.op("less", axes, ctx.const(np.array(0, np.int64)))
    return ctx.op("where", neg, ctx.op("add", axes, ctx.const(np.array(rank, np.int64))), axes)


def _place(ctx, axes_n, vals, rank):
    """A run-time [rank] int64 vector holding vals[j] at position axes_n[j] and 0 elsewhere."""
    k = ctx.type_of(axes_n).shape[0]
    hit = ctx.op("equal", ctx.const(np.arange(rank, dtype=np.int64)[:, None]), reshape_to(ctx, axes_n, [1, k]))
    m = ctx.op("matmul", ctx.op("cast", hit, to="i64"), reshape_to(ctx, vals, [k, 1]))
    return reshape_to(ctx, m, [rank])


def _squeeze_unsqueeze_dynamic(ctx, squeeze):
    """Squeeze/Unsqueeze with run-time axes: compute the result shape at run time.

    With ``marked`` (1 at the listed axes) over the longer of the two shapes, the kept positions
    are numbered by a running sum, and a 0/1 selection matrix times the dims picks them.
    """
    x, r = ctx.input(0), ctx.rank(0)
    k = _axes_count(ctx, 1)
    big, small = (r, r - k) if squeeze else (r + k, r)
    axes_n = _norm_axes_rt(ctx, ctx.input(1), big)
    marked = _place(ctx, axes_n, ctx.const(np.ones([k], np.int64)), big)
    keep = ctx.op("sub", ctx.const(np.ones([big], np.int64)), marked)
    pos = ctx.op("sub", ctx.op("cumsum", keep, axis=0), ctx.const(np.array(1, np.int64)))
    sel = ctx.op("mul", ctx.op("cast", ctx.op("equal", reshape_to(ctx, pos, [1, big]),
                                              ctx.const(np.arange(small, dtype=np.int64)[:, None])), to="i64"),
                 reshape_to(ctx, keep, [1, big]))  # sel[i, j]: kept position j is the i-th kept one
    if small == 0 or (not squeeze and r == 0):
        shape = ctx.const(np.ones([small if squeeze else big], np.int64))
    elif squeeze:
        xs = reshape_to(ctx, ctx.op("shape", x), [r, 1])
        shape = reshape_to(ctx, ctx.op("matmul", sel, xs), [small])
    else:
        xs = reshape_to(ctx, ctx.op("shape", x), [1, r])
        picked = reshape_to(ctx, ctx.op("matmul", xs, sel), [big])
        shape = ctx.op("add", picked, marked)
    return ctx.op("reshape_dynamic", x, shape)


# --- permutations, concatenation, splitting --------------------------------------------------------

@converter("Transpose", since=1)
def transpose(ctx):
    perm = ctx.attr("perm", None)
    if perm is None:
        perm = list(range(ctx.rank(0)))[::-1]
    return ctx.op("transpose", ctx.input(0), perm=perm)


@converter("Concat", since=4)
def concat(ctx):
    ins = [ctx.input(i) for i in range(ctx.num_inputs) if ctx.has_input(i)]
    if not ctx.has_attr("axis"):
        ctx.fail("the axis attribute is required")
    axis = _axis(ctx, ctx.attr("axis"), ctx.rank(0))
    return ctx.op("concat", *ins, axis=axis)


def _split(ctx, split, num_outputs=None):
    x, s = ctx.input(0), ctx.shape(0)
    axis = _axis(ctx, ctx.attr("axis", 0), len(s))
    n = ctx.num_outputs
    dim = s[axis]
    if split is None:
        k = num_outputs or n
        if not isinstance(dim, int):
            if dim == 0 or k == 1:
                return [x]
            ctx.fail(f"cannot split the run-time dim {dim} into {k} parts")
        if num_outputs is not None:
            part = -(-dim // k)
            split = [min(part, dim - part * j) for j in range(k)]
        else:
            if dim % k:
                ctx.fail(f"dim {dim} does not split evenly into {k} outputs")
            split = [dim // k] * k
    if len(split) != n:
        ctx.fail(f"split {split} gives {len(split)} parts for {n} outputs")
    if isinstance(dim, int) and sum(split) != dim:
        ctx.fail(f"split {split} does not add up to dim {dim}")
    outs, start = [], 0
    for p in split:
        outs.append(ctx.op("slice", x, starts=[start], ends=[start + p], axes=[axis], steps=[1]))
        start += p
    return outs


def _split_dynamic(ctx):
    """Split with a run-time ``split`` operand: slices from its running sum."""
    x = ctx.input(0)
    axis = _axis(ctx, ctx.attr("axis", 0), ctx.rank(0))
    sizes = _i64(ctx, ctx.input(1))
    ends = ctx.op("cumsum", sizes, axis=0)
    starts = ctx.op("sub", ends, sizes)
    outs = []
    for j in range(ctx.num_outputs):
        k = ctx.const(np.array([j], np.int64))
        outs.append(ctx.op("slice_dynamic", x, ctx.op("gather", starts, k), ctx.op("gather", ends, k), None, None,
                           axes=[axis]))
    return outs


@converter("Split", since=2)
def split_v2(ctx):
    return _split(ctx, ctx.attr("split", None))


@converter("Split", since=13)
def split_v13(ctx):
    if not ctx.has_input(1):
        return _split(ctx, None)
    if ctx.const_value(1) is None:
        return _split_dynamic(ctx)
    return _split(ctx, _const_ints(ctx, 1, "the split sizes"))


@converter("Split", since=18)
def split_v18(ctx):
    if ctx.has_input(1) and ctx.has_attr("num_outputs"):
        ctx.fail("give either the split input or the num_outputs attribute, not both")
    if ctx.has_input(1):
        return split_v13(ctx)
    k = ctx.attr("num_outputs", None)
    if k is None:
        ctx.fail("needs the split input or the num_outputs attribute")
    return _split(ctx, None, num_outputs=k)


# --- slicing ---------------------------------------------------------------------------------------

def _slice(ctx, starts, ends, axes, steps):
    r = ctx.rank(0)
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        ctx.fail("starts, ends, axes and steps must have the same length")
    axes = [_axis(ctx, a, r) for a in axes]
    if len(set(axes)) != len(axes):
        ctx.fail(f"axes {axes} repeat an axis")
    if 0 in steps:
        ctx.fail("a step cannot be 0")
    return ctx.op("slice", ctx.input(0), starts=starts, ends=ends, axes=axes, steps=steps)


@converter("Slice", since=1)
def slice_v1(ctx):
    return _slice(ctx, ctx.attr("starts"), ctx.attr("ends"), ctx.attr("axes", None), None)


@converter("Slice", since=10)
def slice_v10(ctx):
    def opt(i):
        v = ctx.const_value(i)
        return None if v is None else [int(e) for e in v.reshape(-1)]

    given = [i for i in (1, 2, 3, 4) if ctx.has_input(i)]
    if all(ctx.const_value(i) is not None for i in given):
        return _slice(ctx, opt(1), opt(2), opt(3), opt(4))
    # run-time bounds: slice_dynamic, with the axes as an attribute when they are known
    axes = opt(3)
    axes_in = ctx.input(3) if ctx.has_input(3) and axes is None else None
    if axes is not None:
        axes = [_axis(ctx, a, ctx.rank(0)) for a in axes]
    elif axes_in is None:
        axes = list(range(ctx.shape(1)[0]))
    return ctx.op("slice_dynamic", ctx.input(0), ctx.input(1), ctx.input(2), axes_in, ctx.input(4), axes=axes)


# --- gathers and scatters ----------------------------------------------------------------------

@converter("Gather", since=1)
def gather(ctx):
    axis = _axis(ctx, ctx.attr("axis", 0), ctx.rank(0))
    return ctx.op("gather", ctx.input(0), ctx.input(1), axis=axis)


@converter("GatherElements", since=11)
def gather_elements(ctx):
    return ctx.op("gather_elements", ctx.input(0), ctx.input(1), axis=_axis(ctx, ctx.attr("axis", 0), ctx.rank(0)))


@converter("GatherND", since=11)
def gather_nd(ctx):
    return ctx.op("gather_nd", ctx.input(0), ctx.input(1), batch_dims=ctx.attr("batch_dims", 0))


@converter("Scatter", since=9)
def scatter(ctx):
    return ctx.op("scatter_elements", ctx.input(0), ctx.input(1), ctx.input(2),
                  axis=_axis(ctx, ctx.attr("axis", 0), ctx.rank(0)))


@converter("ScatterElements", since=11)
def scatter_elements(ctx):
    red = ctx.attr("reduction", "none")
    if red not in ("none", "add", "mul", "max", "min"):
        ctx.fail(f"reduction '{red}' is not supported")
    return ctx.op("scatter_elements", ctx.input(0), ctx.input(1), ctx.input(2),
                  axis=_axis(ctx, ctx.attr("axis", 0), ctx.rank(0)), reduction=red)


@converter("ScatterND", since=11)
def scatter_nd(ctx):
    red = ctx.attr("reduction", "none")
    if red not in ("none", "add", "mul", "max", "min"):
        ctx.fail(f"reduction '{red}' is not supported")
    return ctx.op("scatter_nd", ctx.input(0), ctx.input(1), ctx.input(2), reduction=red)


@converter("NonZero", since=9)
def nonzero(ctx):
    return ctx.op("nonzero", ctx.input(0))


@converter("Compress", since=9)
def compress(ctx):
    x = ctx.input(0)
    cond = ctx.input(1)
    idx = ctx.op("nonzero", cond)
    idx = reshape_to(ctx, idx, [ctx.type_of(idx).shape[1]])
    axis = ctx.attr("axis", None)
    if axis is None:
        x = reshape_to(ctx, x, [D.prod(ctx.shape(0))])
        axis = 0
    return ctx.op("gather", x, idx, axis=_axis(ctx, axis, ctx.type_of(x).rank))


@converter("Unique", since=11)
def unique(ctx):
    axis = ctx.attr("axis", None)
    if axis is not None:
        axis = _axis(ctx, axis, ctx.rank(0))
    return list(ctx.op("unique", ctx.input(0), axis=axis, sorted=bool(ctx.attr("sorted", 1))))


@converter("TensorScatter", since=24)
def tensor_scatter(ctx):
    """Write ``update`` into a cache along ``axis`` from each batch row's write index: a scatter."""
    cache, upd = ctx.input(0), ctx.input(1)
    s, us = ctx.shape(0), ctx.shape(1)
    r = len(s)
    axis = _axis(ctx, ctx.attr("axis", -2), r)
    mode = ctx.attr("mode", "linear")
    if mode not in ("linear", "circular"):
        ctx.fail(f"mode '{mode}' is not supported")
    if axis == 0:
        ctx.fail("axis 0 is the batch axis")
    seq = us[axis]
    if not isinstance(seq, int):
        ctx.fail(f"the update's sequence length must be static, got {list(us)}")
    pos = ctx.const(np.arange(seq, dtype=np.int64).reshape([seq if i == axis else 1 for i in range(r)]))
    if ctx.has_input(2):
        start = reshape_to(ctx, _i64(ctx, ctx.input(2)), [us[0]] + [1] * (r - 1))
        pos = ctx.op("add", pos, start)
    if mode == "circular":
        pos = ctx.op("mod", pos, ctx.const(np.array(s[axis], np.int64)))
    if all(isinstance(d, int) for d in us):
        idx = ctx.op("broadcast", pos, shape=list(us))
    else:
        idx = ctx.op("broadcast_dynamic", pos, ctx.op("shape", upd), dims=list(us))
    return ctx.op("scatter_elements", cache, idx, upd, axis=axis)


# --- broadcasting, tiling, generated tensors ---------------------------------------------------

def _broadcast_result(ctx, xs, target):
    r = max(len(xs), len(target))
    xs = (1,) * (r - len(xs)) + tuple(xs)
    target = [1] * (r - len(target)) + list(target)
    out = []
    for a, b in zip(xs, target):
        if b is None:
            out.append(a if a != 1 else None)
        elif a == 1:
            out.append(b)
        elif b == 1 or a == b:
            out.append(a)
        elif isinstance(a, int) and isinstance(b, int):
            ctx.fail(f"cannot expand a dim of {a} to {b}")
        elif isinstance(a, int) or isinstance(b, int):
            out.append(a if isinstance(a, int) else b)  # the other one must be 1 or equal to it
        else:
            out.append(None)  # two different symbols: known only at run time
    return out, xs


def broadcast_to(ctx, x, shape_value):
    """Expand semantics: x broadcast both ways against the shape held by ``shape_value``."""
    target = known_dims(ctx, shape_value) if isinstance(shape_value, int) else None
    xv = ctx.input(0) if x is None else x
    xs = ctx.type_of(xv).shape
    sv = ctx.input(shape_value) if isinstance(shape_value, int) else shape_value
    if target is None:
        return ctx.op("broadcast_dynamic", xv, sv)
    out, xfull = _broadcast_result(ctx, xs, target)
    if None not in out and all(isinstance(d, int) or d == a for d, a in zip(out, xfull)):
        return xv if list(out) == list(xs) else ctx.op("broadcast", xv, shape=out)
    return ctx.op("broadcast_dynamic", xv, sv, dims=None if None in out else out)


@converter("Expand", since=8)
def expand(ctx):
    return broadcast_to(ctx, None, 1)


@converter("ConstantOfShape", since=9)
def constant_of_shape(ctx):
    v = ctx.attr("value", None)
    v = np.zeros([], np.float32) if v is None else np.asarray(v).reshape(())
    target = known_dims(ctx, 0)
    if target is not None and all(isinstance(d, int) for d in target):
        return ctx.const(np.full(target, v, dtype=v.dtype))
    return broadcast_to(ctx, ctx.const(v), 0)


@converter("Tile", since=6)
def tile(ctx):
    x, s = ctx.input(0), list(ctx.shape(0))
    reps = known_dims(ctx, 1)
    if reps is not None and all(isinstance(d, int) for d in reps):
        if len(reps) != len(s):
            ctx.fail(f"repeats {reps} must have one entry per dim of {s}")
        inter = [d for p in s for d in (1, p)]
        y = reshape_to(ctx, x, inter)
        y = ctx.op("broadcast", y, shape=[d for r, p in zip(reps, s) for d in (r, p)])
        return reshape_to(ctx, y, [D.mul(r, p) for r, p in zip(reps, s)])
    # run-time repeats: interleave them with the input dims
    reps = _i64(ctx, ctx.input(1))
    xshape = ctx.op("shape", x)
    parts = []
    for i in range(len(s)):
        k = ctx.const(np.array([i], np.int64))
        parts += [ctx.op("gather", reps, k), ctx.op("gather", xshape, k)]
    y = reshape_to(ctx, x, [d for p in s for d in (1, p)])
    y = ctx.op("broadcast_dynamic", y, ctx.op("concat", *parts, axis=0))
    return ctx.op("reshape_dynamic", y, ctx.op("mul", reps, xshape))


@converter("Range", since=11)
def range_(ctx):
    ends = [known_dims(ctx, i) for i in range(3)]
    length = None
    if all(e is not None and len(e) == 1 and e[0] is not None for e in ends):
        (start,), (limit,), (delta,) = ends
        if delta == 1 and not isinstance(limit, int) and isinstance(start, int):
            length = [D.sub(limit, start)]  # e.g. position ids 0 .. seq-1 (taking seq >= start)
    return ctx.op("range", _scalar(ctx, ctx.input(0)), _scalar(ctx, ctx.input(1)), _scalar(ctx, ctx.input(2)),
                  dims=length)


def _static_shape(ctx, i, what):
    s = ctx.shape(i)
    if not all(isinstance(d, int) for d in s):
        ctx.fail(f"{what} needs a static input shape, got {list(s)}")
    return s


@converter("EyeLike", since=9)
def eye_like(ctx):
    from ..importer import onnx_dtype

    s = _static_shape(ctx, 0, "EyeLike")
    if len(s) != 2:
        ctx.fail(f"the input must be 2-D, got {list(s)}")
    dt = onnx_dtype(ctx.attr("dtype"), "EyeLike dtype") if ctx.has_attr("dtype") else ctx.dtype(0)
    return ctx.const(np.eye(s[0], s[1], ctx.attr("k", 0), dtype=dt.np))


def _iota(ctx, x, axis):
    """0, 1, ... along dim ``axis`` of x as an int64 vector typed with that dim (symbolic or not)."""
    d = ctx.type_of(x).shape[axis]
    if isinstance(d, int):
        return ctx.const(np.arange(d, dtype=np.int64))
    n = _scalar(ctx, ctx.op("shape", x, start=axis, end=axis + 1))
    return ctx.op("range", ctx.const(np.array(0, np.int64)), n, ctx.const(np.array(1, np.int64)), dims=[d])


@converter("Trilu", since=14)
def trilu(ctx):
    x, s = ctx.input(0), ctx.shape(0)
    if len(s) < 2:
        ctx.fail(f"the input must have rank >= 2, got {list(s)}")
    rows = reshape_to(ctx, _iota(ctx, x, len(s) - 2), [s[-2], 1])
    cols = reshape_to(ctx, _iota(ctx, x, len(s) - 1), [1, s[-1]])
    diff = ctx.op("sub", cols, rows)  # column - row: 0 on the main diagonal
    k = _scalar(ctx, _i64(ctx, ctx.input(1))) if ctx.has_input(1) else ctx.const(np.array(0, np.int64))
    upper = bool(ctx.attr("upper", 1))
    mask = ctx.op("greater_equal" if upper else "less_equal", diff, k)
    return ctx.op("where", mask, x, ctx.const(np.zeros([], ctx.dtype(0).np)))


@converter("OneHot", since=9)
def one_hot(ctx):
    idx = _i64(ctx, ctx.input(0))
    r = ctx.rank(0) + 1
    axis = _axis(ctx, ctx.attr("axis", -1), r)
    dv = ctx.const_value(1)
    if dv is not None:
        depth_n = int(np.asarray(dv).reshape(()))
        depth = ctx.const(np.array(depth_n, np.int64))
        iota = ctx.const(np.arange(depth_n, dtype=np.int64))
    else:
        d = _scalar(ctx, ctx.input(1))
        if ctx.type_of(d).dtype.is_float:
            d = ctx.op("floor", d)
        depth = ctx.op("cast", d, to="i64", saturate=True)
        iota = ctx.op("range", ctx.const(np.array(0, np.int64)), depth, ctx.const(np.array(1, np.int64)))
    idx = ctx.op("where", ctx.op("less", idx, ctx.const(np.array(0, np.int64))), ctx.op("add", idx, depth), idx)
    n = ctx.type_of(iota).shape[0]
    iota = reshape_to(ctx, iota, [n] + [1] * (r - axis - 1))
    ishape = list(ctx.type_of(idx).shape)
    idx = reshape_to(ctx, idx, ishape[:axis] + [1] + ishape[axis:])
    hit = ctx.op("equal", idx, iota)
    values = ctx.input(2)
    k = [ctx.const(np.array(j, np.int64)) for j in (0, 1)]
    values = reshape_to(ctx, values, [2])
    return ctx.op("where", hit, ctx.op("gather", values, k[1]), ctx.op("gather", values, k[0]))


# --- block rearrangements ------------------------------------------------------------------------

def _nchw(ctx):
    if ctx.rank(0) != 4:
        ctx.fail(f"the input must be 4-D (N, C, H, W), got {ctx.type(0)}")
    if not isinstance(ctx.attr("blocksize"), int) or ctx.attr("blocksize") < 1:
        ctx.fail(f"blocksize must be a positive int, got {ctx.attr('blocksize')}")
    return ctx.shape(0)


@converter("DepthToSpace", since=1)
def depth_to_space(ctx):
    n, c, h, w = _nchw(ctx)
    b = ctx.attr("blocksize")
    if ctx.attr("mode", "DCR") not in ("DCR", "CRD"):
        ctx.fail(f"mode '{ctx.attr('mode')}' is not supported")
    cb = D.div_exact(c, b * b)
    if cb is None:
        ctx.fail(f"channels {c} are not divisible by blocksize^2 = {b * b}")
    if ctx.attr("mode", "DCR") == "DCR":
        y = reshape_to(ctx, ctx.input(0), [n, b, b, cb, h, w])
        y = ctx.op("transpose", y, perm=[0, 3, 4, 1, 5, 2])
    else:
        y = reshape_to(ctx, ctx.input(0), [n, cb, b, b, h, w])
        y = ctx.op("transpose", y, perm=[0, 1, 4, 2, 5, 3])
    return reshape_to(ctx, y, [n, cb, D.mul(h, b), D.mul(w, b)])


@converter("SpaceToDepth", since=1)
def space_to_depth(ctx):
    n, c, h, w = _nchw(ctx)
    b = ctx.attr("blocksize")
    hb, wb = D.div_exact(h, b), D.div_exact(w, b)
    if hb is None or wb is None:
        ctx.fail(f"spatial dims {h}, {w} are not divisible by blocksize {b}")
    y = reshape_to(ctx, ctx.input(0), [n, c, hb, b, wb, b])
    mode = ctx.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        ctx.fail(f"mode '{mode}' is not supported")
    y = ctx.op("transpose", y, perm=[0, 3, 5, 1, 2, 4] if mode == "DCR" else [0, 1, 3, 5, 2, 4])
    return reshape_to(ctx, y, [n, D.mul(c, b * b), hb, wb])


@converter("ReverseSequence", since=10)
def reverse_sequence(ctx):
    s = _static_shape(ctx, 0, "ReverseSequence")
    r = len(s)
    bax, tax = _axis(ctx, ctx.attr("batch_axis", 1), r), _axis(ctx, ctx.attr("time_axis", 0), r)
    t = ctx.const(np.arange(s[tax], dtype=np.int64).reshape([s[tax] if i == tax else 1 for i in range(r)]))
    lens = reshape_to(ctx, _i64(ctx, ctx.input(1)), [s[bax] if i == bax else 1 for i in range(r)])
    one = ctx.const(np.array(1, np.int64))
    src = ctx.op("where", ctx.op("less", t, lens), ctx.op("sub", ctx.op("sub", lens, one), t), t)
    src = ctx.op("broadcast", src, shape=s)
    return ctx.op("gather_elements", ctx.input(0), src, axis=tax)


# --- padding ---------------------------------------------------------------------------------------

@converter("Pad", since=2)
def pad_v2(ctx):
    mode = ctx.attr("mode", "constant")
    pads = ctx.attr("pads", None) or ctx.attr("paddings", None)
    if mode not in ("constant", "reflect", "edge"):
        ctx.fail(f"mode '{mode}' is not supported")
    value = ctx.const(np.array(ctx.attr("value", 0.0), dtype=ctx.dtype(0).np))
    return ctx.op("pad", ctx.input(0), value, pads=pads, mode=mode)


@converter("Pad", since=11)
def pad_v11(ctx):
    mode = ctx.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap") or (mode == "wrap" and ctx.opset < 19):
        ctx.fail(f"mode '{mode}' is not supported")
    r = ctx.rank(0)
    value = ctx.input(2) if ctx.has_input(2) and mode == "constant" else None
    if value is not None:
        value = _scalar(ctx, value)
    if ctx.has_input(3) and ctx.const_value(3) is None:
        return _pad_runtime_axes(ctx, mode, value)
    axes = _const_ints(ctx, 3, "the axes") if ctx.has_input(3) else list(range(r))
    axes = [_axis(ctx, a, r) for a in axes]
    pv = ctx.const_value(1)
    if pv is not None:
        p = [int(v) for v in pv.reshape(-1)]
        if len(p) != 2 * len(axes):
            ctx.fail(f"pads {p} must have 2 entries per padded axis ({len(axes)})")
        full = [0] * (2 * r)
        for j, a in enumerate(axes):
            full[a], full[a + r] = p[j], p[j + len(axes)]
        return ctx.op("pad", ctx.input(0), value, pads=full, mode=mode)
    pads = _i64(ctx, ctx.input(1))
    if axes != list(range(r)):
        pads = _full_pads(ctx, ctx.const(np.array(axes, np.int64)), pads, r)
    return ctx.op("pad_dynamic", ctx.input(0), pads, value, mode=mode)


def _full_pads(ctx, axes, pads, rank):
    """Run-time [begins.., ends..] for the given axes -> the same for every dim (0 elsewhere)."""
    k = ctx.type_of(axes).shape[0]
    halves = [ctx.op("slice", pads, starts=[o], ends=[o + k], axes=[0], steps=[1]) for o in (0, k)]
    return ctx.op("concat", *[_place(ctx, axes, h, rank) for h in halves], axis=0)


def _pad_runtime_axes(ctx, mode, value):
    axes = _norm_axes_rt(ctx, ctx.input(3), ctx.rank(0), 3)
    full = _full_pads(ctx, axes, _i64(ctx, ctx.input(1)), ctx.rank(0))
    return ctx.op("pad_dynamic", ctx.input(0), full, value, mode=mode)


@converter("CenterCropPad", since=18)
def center_crop_pad(ctx):
    s = ctx.shape(0)
    r = len(s)
    axes = [_axis(ctx, a, r) for a in ctx.attr("axes", list(range(r)))]
    target = known_dims(ctx, 1)
    if target is not None and all(isinstance(d, int) for d in target) and all(isinstance(s[a], int) for a in axes):
        full = [0] * (2 * r)
        for a, t in zip(axes, target):
            diff = t - s[a]
            begin = diff // 2 if diff >= 0 else -((-diff) // 2)
            full[a], full[a + r] = begin, diff - begin
        return ctx.op("pad", ctx.input(0), None, pads=full, mode="constant")
    # run-time target: the same arithmetic on int64 tensors
    tgt = _i64(ctx, ctx.input(1))
    dims = ctx.op("gather", ctx.op("shape", ctx.input(0)), ctx.const(np.array(axes, np.int64)))
    diff = ctx.op("sub", tgt, dims)
    two, zero = ctx.const(np.array(2, np.int64)), ctx.const(np.array(0, np.int64))
    begin = ctx.op("where", ctx.op("less", diff, zero), ctx.op("neg", ctx.op("div", ctx.op("neg", diff), two)),
                   ctx.op("div", diff, two))
    end = ctx.op("sub", diff, begin)
    ax = ctx.const(np.array(axes, np.int64))
    full = ctx.op("concat", _place(ctx, ax, begin, r), _place(ctx, ax, end, r), axis=0)
    return ctx.op("pad_dynamic", ctx.input(0), full, None, mode="constant")
