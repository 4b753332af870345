"""Data movement ops whose result is a rearrangement of the input's elements.

Shapes and axes are attributes. Where a frontend only knows them at run time it uses the op's
``*_dynamic`` twin, defined beside it, which takes them as an int64 operand and whose result dims
are symbols bound at run time.
"""
from __future__ import annotations

import numpy as np

from .. import dims
from ..registry import Attr, op
from ..types import TensorType
from ._util import contiguous, norm_axis, require


@op("identity", inputs=("x",), traits=("injective", "view"))
class Identity:
    """The operand itself; passes remove it except where a graph output needs its own name."""

    def infer(x: TensorType):
        return x

    def reference(x):
        return x.copy()


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


@op("reshape_dynamic", inputs=("x", "shape"), traits=("injective", "view"))
class ReshapeDynamic:
    """reshape to a run-time int64 shape (no -1 or 0 placeholders)."""

    def infer(x: TensorType, shape: TensorType):
        require(shape.rank == 1 and isinstance(shape.shape[0], int),
                f"reshape_dynamic: shape operand must be a 1-D tensor of static length, got {shape}")
        return TensorType(x.dtype, [dims.UNKNOWN] * shape.shape[0])

    def reference(x, shape):
        return x.reshape(tuple(int(d) for d in shape))


@op("transpose", inputs=("x",), attrs={"perm": Attr("ints")}, traits=("injective",))
class Transpose:
    def infer(x: TensorType, perm):
        require(sorted(perm) == list(range(x.rank)), f"transpose: perm {list(perm)} is not a permutation of rank {x.rank}")
        return TensorType(x.dtype, [x.shape[p] for p in perm])

    def reference(x, perm):
        return contiguous(np.transpose(x, perm))


@op("broadcast", inputs=("x",), attrs={"shape": Attr("dims")}, traits=("injective",))
class Broadcast:
    """Numpy broadcast of x to exactly ``shape`` (x's rank <= len(shape))."""

    def infer(x: TensorType, shape):
        require(x.rank <= len(shape), f"broadcast: cannot broadcast {x} to lower rank {list(shape)}")
        for xd, d in zip(x.shape[::-1], shape[::-1]):
            require(xd == 1 or xd == d or not isinstance(xd, int) or not isinstance(d, int),
                    f"broadcast: cannot broadcast {x} to {list(shape)}")
        return TensorType(x.dtype, shape)

    def reference(x, shape):
        target = [d if isinstance(d, int) else x.shape[i - (len(shape) - x.ndim)]
                  for i, d in enumerate(shape)]
        return contiguous(np.broadcast_to(x, target))


@op("slice", inputs=("x",), attrs={"starts": Attr("ints"), "ends": Attr("ints"), "axes": Attr("ints"),
                                   "steps": Attr("ints")}, traits=("injective",))
class Slice:
    """Python slicing ``x[start:end:step]`` on each listed axis (bounds already clamped is not required)."""

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
            elif s == 0 and st == 1 and e >= 2**62:
                pass  # whole axis
            else:
                shape[a] = dims.UNKNOWN
        return TensorType(x.dtype, shape)

    def reference(x, starts, ends, axes, steps):
        idx = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            idx[a % x.ndim] = slice(s, e, st)
        return contiguous(x[tuple(idx)])


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
