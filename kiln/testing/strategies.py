"""Hypothesis strategies: random well-typed graphs over the core ops, and inputs for them.

    from hypothesis import given
    import kiln.testing as kt

    @given(kt.graphs())
    def test_my_pass(g):
        kt.assert_equivalent(g, MyPass().run(g))

:func:`graphs` builds each graph with :class:`kiln.ir.GraphBuilder`, so every drawn graph is
verified by construction. Each supported op has a *recipe* in :data:`RECIPES`: how to pick operands
of the right dtype and shape from the values defined so far (making constants where needed) and how
to draw attributes valid for it. A recipe that cannot apply returns ``None`` and another is tried,
so the table stays robust as ops are added; an op with no recipe is simply not drawn (unless named
in ``ops=``, where a generic recipe is tried for simple elementwise ops).

Recipes come in families (elementwise, unary, movement, reduce, linalg, indexing, control flow,
and *patterns*: duplicated subexpressions, ``x + 0``, transpose and reshape chains, no-op casts,
which the passes rewrite); a family is drawn first, then a recipe in it. ``if`` nodes get branch
regions drawn the same way.

Two shape rules keep the graphs meaningful at run time: operands broadcast only when each pair of
aligned dims is equal or one of them is the literal 1 (the type checker also accepts a symbol
against a size, which may fail at run time), and constants and input values are small numbers
(floats in [-2, 2], ints in [-4, 4]) so that results rarely overflow. Numerically unstable ops
(``log``, ``exp``, ``pow``, ...) are drawn less often.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from hypothesis import strategies as st

from ..ir import GraphBuilder, all_ops, dims as _dims
from ..ir.dtypes import DType, dtype as _dtype
from ..ir.graph import Graph
from ..ir.printer import INLINE_LIMIT
from ..ir.registry import REQUIRED
from ..ir.types import TensorType

__all__ = ["graphs", "inputs_for", "random_inputs", "RECIPES", "supported_ops", "DEFAULT_DTYPES"]

DEFAULT_DTYPES = ("f32", "f64", "i32", "i64", "bool")
SLICE_END = 2**63 - 1  # "to the end of the axis", as frontends write it


# --------------------------------------------------------------------------------------------
# array values
# --------------------------------------------------------------------------------------------
def array_of(rng: np.random.Generator, dt: DType, shape, kind: str = "random") -> np.ndarray:
    """Small, safe values of kiln dtype ``dt``: floats in [-2, 2], ints in [-4, 4] (uints [0, 8])."""
    shape = tuple(int(d) for d in shape)
    if kind == "zeros":
        return np.zeros(shape, dt.np)
    if kind == "ones":
        return np.ones(shape, dt.np)
    if dt.kind == "bool":
        return rng.random(shape) < 0.5
    if dt.kind == "float":
        a = rng.uniform(-2.0, 2.0, shape)
        if kind == "positive":
            a = np.abs(a) + 0.25
        return np.asarray(a).astype(dt.np)
    lo = 0 if dt.kind == "uint" or kind == "positive" else -4
    lo = max(lo, int(np.iinfo(np.int64).min if dt.bits >= 64 else -(2 ** (dt.bits - 1))))
    hi = min(8 if dt.kind == "uint" else 4, 2 ** (dt.bits - (1 if dt.kind == "int" else 0)) - 1)
    if kind == "positive":
        lo = 1
    return np.asarray(rng.integers(lo, hi + 1, shape)).astype(dt.np)


# --------------------------------------------------------------------------------------------
# the drawing context
# --------------------------------------------------------------------------------------------
@dataclass
class DrawCtx:
    """What a recipe sees: the hypothesis ``draw``, the builder, the values defined so far."""

    draw: Callable
    b: GraphBuilder
    dtypes: tuple
    max_rank: int
    max_dim: int
    symbols: tuple
    allowed: frozenset
    max_nodes: int = 1 << 30
    #: regions keep constants small enough to print inline: ``parse(str(g), constants=g.constants)``
    #: only restores the outer graph's large constants
    max_const_elements: int | None = None
    values: list = field(default_factory=list)  # every value, in definition order

    # --- queries -----------------------------------------------------------------------------
    def type(self, v: str) -> TensorType:
        return self.b.graph.types[v]

    def pick(self, pred=lambda t: True, *, avoid=()) -> str | None:
        """A defined value whose type satisfies ``pred``; recent values are favoured."""
        # empty tensors (an empty axes operand, say) are not offered as operands
        cands = [v for v in self.values if v not in avoid and 0 not in self.type(v).shape and pred(self.type(v))]
        if not cands:
            return None
        if len(cands) > 1 and self.draw(st.booleans()):
            return cands[-1]  # the newest: makes chains (transpose of transpose, ...)
        return cands[self.draw(st.integers(0, len(cands) - 1))]

    def choice(self, seq):
        seq = list(seq)
        return seq[self.draw(st.integers(0, len(seq) - 1))]

    def int(self, lo, hi) -> int:
        return self.draw(st.integers(lo, hi))

    def flag(self) -> bool:
        return self.draw(st.booleans())

    # --- definitions -------------------------------------------------------------------------
    def const(self, dt, shape, kind: str | None = None, name: str = "c") -> str:
        if kind is None:
            kind = self.choice(("random", "random", "random", "zeros", "ones"))
        seed = self.draw(st.integers(0, 2**32 - 1))
        arr = array_of(np.random.default_rng(seed), _dtype(dt), shape, kind)
        v = self.b.const(arr, name)
        self.values.append(v)
        return v

    def apply(self, op_name: str, *inputs, **attrs):
        """Append a node; returns its first output, or None when the op rejects the operands."""
        if op_name not in self.allowed or len(self.b.graph.nodes) >= self.max_nodes:
            return None
        try:
            out = self.b.op(op_name, *inputs, **attrs)
        except ValueError:
            return None
        outs = out if isinstance(out, tuple) else (out,)
        self.values.extend(outs)
        return outs[0]


# --------------------------------------------------------------------------------------------
# shape helpers
# --------------------------------------------------------------------------------------------
def broadcastable(*shapes) -> bool:
    """Strict numpy broadcasting: aligned dims equal, or one of them the literal 1."""
    rank = max((len(s) for s in shapes), default=0)
    for i in range(1, rank + 1):
        ds = {s[-i] for s in shapes if len(s) >= i} - {1}
        if len(ds) > 1:
            return False
    return True


def _partner_shape(ctx: DrawCtx, shape) -> tuple:
    """A static shape that broadcasts strictly against ``shape``: a suffix, some dims set to 1."""
    n = ctx.int(0, len(shape))
    suffix = shape[len(shape) - n:]
    out = [d if isinstance(d, int) and ctx.draw(st.booleans()) else 1 for d in suffix]
    if ctx.max_const_elements is not None:
        for i in range(len(out)):
            if int(np.prod(out, dtype=np.int64)) <= ctx.max_const_elements:
                break
            out[i] = 1
    return tuple(out)


def _runtime_dims(shape) -> int:
    return sum(1 for d in shape if not isinstance(d, int))


# dtype classes
def _is_float(t):
    return t.dtype.is_float


def _is_num(t):
    return t.dtype.kind in ("float", "int", "uint")


def _is_signed(t):
    return t.dtype.kind in ("float", "int")


def _is_int(t):
    return t.dtype.is_int


def _is_bool(t):
    return t.dtype.kind == "bool"


def _any(t):
    return True


_CLASS = {"float": _is_float, "num": _is_num, "signed": _is_signed, "int": _is_int, "bool": _is_bool,
          "any": _any}


# --------------------------------------------------------------------------------------------
# recipes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """How to draw one valid application. ``ops``: the ops it may emit (all must be allowed)."""

    ops: tuple
    draw: Callable  # (ctx) -> value name | None
    weight: int = 4


RECIPES: dict[str, Recipe] = {}


def recipe(name, ops=None, weight=4):
    def deco(fn):
        RECIPES[name] = Recipe(tuple(ops if ops is not None else (name,)), fn, weight)
        return fn
    return deco


# ops whose reference cannot take a 0-d array (none now; erf could not, once)
_NEEDS_RANK1: set = set()


def _unary(name, cls):
    pred = _CLASS[cls]
    if name in _NEEDS_RANK1:
        pred = lambda t, _p=pred: _p(t) and t.rank >= 1  # noqa: E731

    def fn(ctx):
        x = ctx.pick(pred)
        return None if x is None else ctx.apply(name, x)
    return fn


# name -> (dtype class, weight). Low weights: ops whose domain or range is easily left.
UNARY = {
    "abs": ("num", 4), "neg": ("signed", 4), "relu": ("signed", 6), "sign": ("num", 2),
    "floor": ("float", 2), "ceil": ("float", 2), "round": ("float", 2),
    "exp": ("float", 2), "log": ("float", 1), "sqrt": ("float", 1), "rsqrt": ("float", 1),
    "reciprocal": ("float", 1), "sin": ("float", 2), "cos": ("float", 2), "tan": ("float", 1),
    "asin": ("float", 1), "acos": ("float", 1), "atan": ("float", 2), "sinh": ("float", 1),
    "cosh": ("float", 1), "tanh": ("float", 4), "asinh": ("float", 1), "acosh": ("float", 1),
    "atanh": ("float", 1), "sigmoid": ("float", 4), "erf": ("float", 2), "not": ("bool", 2),
    "bitwise_not": ("int", 1), "isnan": ("float", 1), "isinf": ("float", 1), "identity": ("any", 3),
}
for _n, (_c, _w) in UNARY.items():
    recipe(_n, weight=_w)(_unary(_n, _c))


def _binary(name, cls, rhs_kind=None):
    def fn(ctx):
        a = ctx.pick(_CLASS[cls])
        if a is None:
            return None
        ta = ctx.type(a)
        how = ctx.int(0, 2)
        b = None
        if how == 0:  # another value of the same dtype that broadcasts with a
            b = ctx.pick(lambda t: t.dtype == ta.dtype and broadcastable(t.shape, ta.shape), avoid=(a,))
        elif how == 1:
            b = a
        if b is None:
            b = ctx.const(ta.dtype, _partner_shape(ctx, ta.shape), rhs_kind)
        if rhs_kind is None and ctx.flag():
            a, b = b, a
        return ctx.apply(name, a, b)
    return fn


# name -> (dtype class, weight, kind of constant operand when one is made)
BINARY = {
    "add": ("num", 6, None), "sub": ("num", 5, None), "mul": ("num", 6, None), "div": ("num", 3, None),
    "pow": ("float", 1, "positive"), "max": ("num", 3, None), "min": ("num", 3, None),
    "mod": ("num", 1, "positive"), "equal": ("any", 2, None), "less": ("num", 2, None),
    "less_equal": ("num", 1, None), "greater": ("num", 2, None), "greater_equal": ("num", 1, None),
    "and": ("bool", 2, None), "or": ("bool", 2, None), "xor": ("bool", 1, None),
    "bitwise_and": ("int", 1, None), "bitwise_or": ("int", 1, None), "bitwise_xor": ("int", 1, None),
}
for _n, (_c, _w, _k) in BINARY.items():
    recipe(_n, weight=_w)(_binary(_n, _c, _k))


def _shift(name):
    def fn(ctx):
        a = ctx.pick(_is_int)
        if a is None:
            return None
        ta = ctx.type(a)
        seed = ctx.int(0, 2**32 - 1)
        amount = np.random.default_rng(seed).integers(0, min(ta.dtype.bits, 8), _partner_shape(ctx, ta.shape))
        c = ctx.b.const(amount.astype(ta.dtype.np), "shift")
        ctx.values.append(c)
        return ctx.apply(name, a, c)
    return fn


for _n in ("shift_left", "shift_right"):
    recipe(_n, weight=1)(_shift(_n))


@recipe("mod_fmod", ops=("mod",), weight=1)
def _fmod(ctx):
    a = ctx.pick(_is_num)
    if a is None:
        return None
    ta = ctx.type(a)
    c = ctx.const(ta.dtype, _partner_shape(ctx, ta.shape), "positive")
    return ctx.apply("mod", a, c, fmod=True)


@recipe("where", weight=3)
def _where(ctx):
    a = ctx.pick()
    if a is None:
        return None
    ta = ctx.type(a)
    cond = ctx.pick(lambda t: _is_bool(t) and broadcastable(t.shape, ta.shape))
    if cond is None or ctx.flag():
        cond = ctx.const("bool", _partner_shape(ctx, ta.shape), "random")
    b = ctx.pick(lambda t: t.dtype == ta.dtype and broadcastable(t.shape, ta.shape, ctx.type(cond).shape),
                 avoid=(a,))
    if b is None:
        b = ctx.const(ta.dtype, _partner_shape(ctx, ta.shape))
    if ctx.flag():
        a, b = b, a
    return ctx.apply("where", cond, a, b)


@recipe("cast", weight=3)
def _cast(ctx):
    x = ctx.pick()
    if x is None:
        return None
    to = ctx.choice(ctx.dtypes)
    return ctx.apply("cast", x, to=to)


def _reduce(name):
    def fn(ctx):
        x = ctx.pick(lambda t: t.rank >= 1 and (t.dtype.kind != "bool" or name in ("reduce_max", "reduce_min")))
        if x is None:
            return None
        r = ctx.type(x).rank
        axes = [a for a in range(r) if ctx.flag()] or [ctx.int(0, r - 1)]
        axes = [a - r if ctx.flag() else a for a in axes]
        return ctx.apply(name, x, axes=axes, keepdims=ctx.flag())
    return fn


for _n, _w in (("reduce_sum", 3), ("reduce_mean", 2), ("reduce_max", 2), ("reduce_min", 1), ("reduce_prod", 1)):
    recipe(_n, weight=_w)(_reduce(_n))


def _argreduce(name):
    def fn(ctx):
        x = ctx.pick(lambda t: t.rank >= 1 and _is_num(t))
        if x is None:
            return None
        r = ctx.type(x).rank
        return ctx.apply(name, x, axis=ctx.int(-r, r - 1), keepdims=ctx.flag(), select_last_index=ctx.flag())
    return fn


for _n in ("argmax", "argmin"):
    recipe(_n, weight=2)(_argreduce(_n))


def _matmul_fits(ta, tb) -> bool:
    sa = ta.shape if ta.rank > 1 else (1,) + ta.shape
    sb = tb.shape if tb.rank > 1 else tb.shape + (1,)
    return sa[-1] == sb[-2] and broadcastable(sa[:-2], sb[:-2])


@recipe("matmul", weight=3)
def _matmul(ctx):
    a = ctx.pick(lambda t: t.rank >= 1 and _is_num(t))
    if a is None:
        return None
    ta = ctx.type(a)
    left = ctx.flag()  # a is the left operand
    b = None
    if ctx.flag():
        b = ctx.pick(lambda t: t.dtype == ta.dtype and t.rank >= 1
                     and (_matmul_fits(ta, t) if left else _matmul_fits(t, ta)))
    if b is None:
        if left:
            k = ta.shape[-1]
            if not isinstance(k, int):
                return None
            shape = (k,) if ctx.int(0, 3) == 0 else (k, ctx.int(1, ctx.max_dim))
        else:
            k = ta.shape[0] if ta.rank == 1 else ta.shape[-2]
            if not isinstance(k, int):
                return None
            shape = (k,) if ctx.int(0, 3) == 0 else (ctx.int(1, ctx.max_dim), k)
        b = ctx.const(ta.dtype, shape, "random")
    return ctx.apply("matmul", a, b) if left else ctx.apply("matmul", b, a)


def _factor(ctx, n: int, max_parts: int) -> list:
    """Random factors of n (each > 1 except when n == 1), at most max_parts of them."""
    parts = []
    while n > 1 and len(parts) < max_parts - 1:
        divs = [d for d in range(2, n + 1) if n % d == 0]
        d = ctx.choice(divs)
        parts.append(d)
        n //= d
        if ctx.flag():
            break
    if n > 1 or not parts:
        parts.append(n)
    return parts


def _reshape_target(ctx, shape) -> list:
    static = int(np.prod([d for d in shape if isinstance(d, int)], dtype=np.int64))
    syms = [d for d in shape if not isinstance(d, int)]
    target = _factor(ctx, static, max(1, ctx.max_rank - (1 if syms else 0)))
    if syms:
        target.insert(ctx.int(0, len(target)), _dims.prod(syms))
    if len(target) < ctx.max_rank and ctx.int(0, 3) == 0:
        target.insert(ctx.int(0, len(target)), 1)
    return target


@recipe("reshape", weight=3)
def _reshape(ctx):
    x = ctx.pick(lambda t: 0 not in t.shape)
    if x is None:
        return None
    return ctx.apply("reshape", x, shape=_reshape_target(ctx, ctx.type(x).shape))


def _perm(ctx, r):
    perm = list(range(r))
    for i in range(r - 1, 0, -1):  # Fisher-Yates, shrinking towards the identity
        j = ctx.int(0, i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


@recipe("transpose", weight=3)
def _transpose(ctx):
    x = ctx.pick(lambda t: t.rank >= 2)
    if x is None:
        return None
    return ctx.apply("transpose", x, perm=_perm(ctx, ctx.type(x).rank))


@recipe("broadcast", weight=2)
def _broadcast(ctx):
    x = ctx.pick()
    if x is None:
        return None
    t = ctx.type(x)
    extra = ctx.int(0, max(0, ctx.max_rank - t.rank))
    shape = [ctx.int(1, ctx.max_dim) for _ in range(extra)]
    shape += [ctx.int(1, ctx.max_dim) if d == 1 and ctx.flag() else d for d in t.shape]
    return ctx.apply("broadcast", x, shape=shape)


@recipe("slice", weight=3)
def _slice(ctx):
    x = ctx.pick(lambda t: t.rank >= 1 and 0 not in t.shape)
    if x is None:
        return None
    t = ctx.type(x)
    axes = [a for a in range(t.rank) if ctx.flag()] or [ctx.int(0, t.rank - 1)]
    starts, ends, steps = [], [], []
    for a in axes:
        d = t.shape[a]
        if not isinstance(d, int):
            # whole axis (keeps the symbol), or the first element (a run-time dim)
            s, e, st_ = (0, SLICE_END, 1) if ctx.flag() else (0, 1, 1)
        else:
            st_ = ctx.choice((1, 1, 2, -1))
            if st_ > 0:
                s = ctx.int(0, d - 1)
                e = ctx.int(s + 1, d)
                if e == d and ctx.flag():
                    e = SLICE_END
                if ctx.flag():
                    s -= d  # negative start
            else:
                s = ctx.int(0, d - 1)
                e = ctx.int(-1, s - 1)  # -1 here: through index 0
                e = -d - 1 if e == -1 else e
        starts.append(s)
        ends.append(e)
        steps.append(st_)
    axes = [a - t.rank if ctx.flag() else a for a in axes]
    return ctx.apply("slice", x, starts=starts, ends=ends, axes=axes, steps=steps)


@recipe("concat", weight=2)
def _concat(ctx):
    x = ctx.pick(lambda t: t.rank >= 1)
    if x is None:
        return None
    t = ctx.type(x)
    axis = ctx.int(0, t.rank - 1)

    def fits(u):
        return u.dtype == t.dtype and u.rank == t.rank and all(
            i == axis or a == b for i, (a, b) in enumerate(zip(u.shape, t.shape)))

    xs = [x]
    for _ in range(ctx.int(1, 2)):
        how = ctx.int(0, 2)
        y = None
        if how == 0:
            y = ctx.pick(fits)
        elif how == 1 and all(isinstance(d, int) for i, d in enumerate(t.shape) if i != axis):
            shape = list(t.shape)
            shape[axis] = ctx.int(1, ctx.max_dim)
            y = ctx.const(t.dtype, shape)
        xs.append(y or x)
    return ctx.apply("concat", *xs, axis=axis - t.rank if ctx.flag() else axis)


def _scan(name):
    def fn(ctx):
        x = ctx.pick(lambda t: t.rank >= 1 and _is_num(t))
        if x is None:
            return None
        r = ctx.type(x).rank
        return ctx.apply(name, x, axis=ctx.int(-r, r - 1), exclusive=ctx.flag(), reverse=ctx.flag())
    return fn


recipe("cumsum", weight=1)(_scan("cumsum"))


@recipe("topk", weight=1)
def _topk(ctx):
    x = ctx.pick(lambda t: t.rank >= 1 and _is_num(t) and all(isinstance(d, int) for d in t.shape))
    if x is None:
        return None
    t = ctx.type(x)
    axis = ctx.int(-t.rank, t.rank - 1)
    k = ctx.int(1, t.shape[axis])
    return ctx.apply("topk", x, k=k, axis=axis, largest=ctx.flag(), sorted=True)


recipe("cumprod", weight=1)(_scan("cumprod"))


def _index_const(ctx, shape, n, dt=None) -> str:
    """An int index constant of ``shape`` with values valid for an axis of size ``n`` (negatives too)."""
    seed = ctx.int(0, 2**32 - 1)
    dt = dt or ctx.choice(("i64", "i32"))
    vals = np.random.default_rng(seed).integers(-n, n, shape) if n else np.zeros(shape, np.int64)
    c = ctx.b.const(np.asarray(vals).astype(_dtype(dt).np), "idx")
    ctx.values.append(c)
    return c


def _axis_size(t, axis) -> int:
    d = t.shape[axis]
    return d if isinstance(d, int) else 1  # a symbol is >= 1: index 0 (or -1) is always valid


@recipe("gather", weight=2)
def _gather(ctx):
    x = ctx.pick(lambda t: t.rank >= 1 and 0 not in t.shape)
    if x is None:
        return None
    t = ctx.type(x)
    axis = ctx.int(-t.rank, t.rank - 1)
    shape = [ctx.int(1, 3) for _ in range(ctx.int(0, 2))]
    return ctx.apply("gather", x, _index_const(ctx, shape, _axis_size(t, axis)), axis=axis)


@recipe("gather_elements", weight=1)
def _gather_elements(ctx):
    x = ctx.pick(lambda t: t.rank >= 1 and 0 not in t.shape)
    if x is None:
        return None
    t = ctx.type(x)
    axis = ctx.int(-t.rank, t.rank - 1)
    shape = [ctx.int(1, d) if isinstance(d, int) else 1 for d in t.shape]
    if isinstance(t.shape[axis], int):
        shape[axis] = ctx.int(1, ctx.max_dim)  # along the axis, any length
    return ctx.apply("gather_elements", x, _index_const(ctx, shape, _axis_size(t, axis)), axis=axis)


@recipe("scatter_elements", weight=1)
def _scatter_elements(ctx):
    x = ctx.pick(lambda t: t.rank >= 1 and 0 not in t.shape and t.dtype.kind != "bool")
    if x is None:
        return None
    t = ctx.type(x)
    axis = ctx.int(-t.rank, t.rank - 1)
    shape = [ctx.int(1, d) if isinstance(d, int) else 1 for d in t.shape]
    idx = _index_const(ctx, shape, _axis_size(t, axis))
    upd = ctx.pick(lambda u: u.dtype == t.dtype and u.shape == tuple(shape)) if ctx.flag() else None
    if upd is None:
        upd = ctx.const(t.dtype, shape, "random")
    return ctx.apply("scatter_elements", x, idx, upd, axis=axis,
                     reduction=ctx.choice(("none", "none", "add", "mul", "max", "min")))


@recipe("pad", weight=2)
def _pad(ctx):
    x = ctx.pick(lambda t: t.rank >= 1 and 0 not in t.shape)
    if x is None:
        return None
    t = ctx.type(x)
    mode = ctx.choice(("constant", "constant", "edge", "reflect", "wrap"))
    pads = []
    for side in range(2):
        for d in t.shape:
            lo = -1 if isinstance(d, int) and d >= 3 else 0  # crop a little where there is room
            pads.append(ctx.int(lo, 2 if mode == "constant" else 1))
    value = None
    if mode == "constant" and ctx.flag():
        value = ctx.const(t.dtype, (), "random")
    return ctx.apply("pad", x, value, pads=pads, mode=mode)


def _spatial_ok(t) -> bool:
    return 3 <= t.rank <= 4 and _is_num(t) and all(isinstance(d, int) for d in t.shape[1:])


def _window(ctx, t, allow_pads=True):
    """kernel, strides, dilations, pads that fit the spatial dims of t (static)."""
    kernel, strides, dilations, begins, ends = [], [], [], [], []
    for d in t.shape[2:]:
        k = ctx.int(1, min(3, d))
        dil = 2 if ctx.int(0, 4) == 0 and 2 * (k - 1) + 1 <= d else 1
        kernel.append(k)
        dilations.append(dil)
        strides.append(ctx.int(1, 2))
        begins.append(ctx.int(0, k - 1) if allow_pads and k > 1 else 0)
        ends.append(ctx.int(0, k - 1) if allow_pads and k > 1 else 0)
    return kernel, strides, dilations, begins + ends


@recipe("max_pool", weight=1)
def _max_pool(ctx):
    x = ctx.pick(_spatial_ok)
    if x is None:
        return None
    kernel, strides, dilations, pads = _window(ctx, ctx.type(x))
    return ctx.apply("max_pool", x, kernel=kernel, strides=strides, dilations=dilations, pads=pads,
                     ceil_mode=ctx.flag(), with_indices=ctx.flag(), storage_order=ctx.int(0, 1))


@recipe("avg_pool", weight=1)
def _avg_pool(ctx):
    x = ctx.pick(_spatial_ok)
    if x is None:
        return None
    kernel, strides, dilations, pads = _window(ctx, ctx.type(x))
    return ctx.apply("avg_pool", x, kernel=kernel, strides=strides, dilations=dilations, pads=pads,
                     ceil_mode=ctx.flag(), count_include_pad=ctx.flag())


def _conv_like(name):
    def fn(ctx):
        x = ctx.pick(lambda t: _spatial_ok(t) and t.dtype.is_float)
        if x is None:
            return None
        t = ctx.type(x)
        c = t.shape[1]
        group = ctx.choice([g for g in range(1, c + 1) if c % g == 0])
        per = ctx.int(1, 2)
        kernel, strides, dilations, pads = _window(ctx, t)
        if name == "conv":
            m = group * per
            w = ctx.const(t.dtype, [m, c // group, *kernel], "random")
            attrs = {}
        else:
            m = group * per
            w = ctx.const(t.dtype, [c, per, *kernel], "random")
            attrs = {"output_padding": [ctx.int(0, s - 1) for s in strides]}
        bias = ctx.const(t.dtype, [m], "random") if ctx.flag() else None
        return ctx.apply(name, x, w, bias, strides=strides, dilations=dilations, pads=pads, group=group, **attrs)
    return fn


recipe("conv", weight=1)(_conv_like("conv"))
recipe("conv_transpose", weight=1)(_conv_like("conv_transpose"))


@recipe("shape", weight=1)
def _shape(ctx):
    x = ctx.pick(lambda t: t.rank >= 1)
    if x is None:
        return None
    r = ctx.type(x).rank
    start = ctx.int(-r, r - 1)
    end = ctx.choice((None, r, ctx.int(-r, r)))
    return ctx.apply("shape", x, start=start, end=end)


@recipe("bitcast", weight=1)
def _bitcast(ctx):
    x = ctx.pick(lambda t: t.dtype.kind != "bool")
    if x is None:
        return None
    bits = ctx.type(x).dtype.bits
    same = [d for d in ctx.dtypes if d.bits == bits and d.kind != "bool"]
    return ctx.apply("bitcast", x, to=ctx.choice(same)) if same else None


@recipe("nonzero", weight=1)
def _nonzero(ctx):
    x = ctx.pick(lambda t: t.rank >= 1)
    if x is None:
        return None
    y = ctx.apply("nonzero", x)
    if y is not None:
        ctx.values.remove(y)  # its count may be 0 at run time: not an operand for indexing ops
    return y


def _reduce_dynamic(name):
    def fn(ctx):
        x = ctx.pick(lambda t: t.rank >= 1 and t.dtype.kind != "bool")
        if x is None:
            return None
        r = ctx.type(x).rank
        axes = [a - r if ctx.flag() else a for a in range(r) if ctx.flag()]
        c = ctx.b.const(np.array(axes, np.int64), "axes")
        ctx.values.append(c)
        return ctx.apply(name, x, c, keepdims=ctx.flag(), noop_with_empty_axes=ctx.flag())
    return fn


for _n in ("reduce_sum_dynamic", "reduce_max_dynamic", "reduce_mean_dynamic"):
    recipe(_n, weight=1)(_reduce_dynamic(_n))


@recipe("reshape_dynamic", weight=1)
def _reshape_dynamic(ctx):
    x = ctx.pick(lambda t: t.is_static and 0 not in t.shape)
    if x is None:
        return None
    target = _reshape_target(ctx, ctx.type(x).shape)
    c = ctx.b.const(np.array(target, np.int64), "shape")
    ctx.values.append(c)
    return ctx.apply("reshape_dynamic", x, c)


@recipe("topk_dynamic", weight=1)
def _topk_dynamic(ctx):
    x = ctx.pick(lambda t: t.rank >= 1 and _is_num(t) and t.is_static and 0 not in t.shape)
    if x is None:
        return None
    t = ctx.type(x)
    axis = ctx.int(-t.rank, t.rank - 1)
    c = ctx.b.const(np.array([ctx.int(1, t.shape[axis])], np.int64), "k")
    ctx.values.append(c)
    return ctx.apply("topk_dynamic", x, c, axis=axis, largest=ctx.flag(), sorted=True)


# --- control flow ---------------------------------------------------------------------------
_REGION_FAMILIES = ("unary", "elementwise", "pattern")


def _draw_region(ctx, name: str, capture_types, n_nodes: int):
    """A body graph over the captures: a few elementwise recipes, drawn like the outer graph."""
    b = GraphBuilder(name, reserved=ctx.b.graph.types)  # names unique across the nesting
    sub = DrawCtx(ctx.draw, b, ctx.dtypes, ctx.max_rank, ctx.max_dim, ctx.symbols,
                  frozenset(ctx.allowed - {"if"}), n_nodes, INLINE_LIMIT)
    for i, t in enumerate(capture_types):
        sub.values.append(b.input(f"x{i}", t.dtype, t.shape))
    names = sorted(k for k, r in RECIPES.items() if _family(k) in _REGION_FAMILIES and r.ops
                   and all(o in sub.allowed for o in r.ops))
    for _ in range(2 * n_nodes + 2):
        if len(b.graph.nodes) >= n_nodes or not names:
            break
        RECIPES[sub.choice(names)].draw(sub)
    return b, sub


@recipe("if", weight=2)
def _if(ctx):
    if ctx.max_nodes - len(ctx.b.graph.nodes) < 1:
        return None
    caps = []
    for _ in range(ctx.int(1, 2)):
        v = ctx.pick(avoid=tuple(caps))
        if v is not None:
            caps.append(v)
    if not caps:
        return None
    cond = ctx.pick(lambda t: _is_bool(t) and t.size == 1)
    if cond is None or ctx.flag():
        cond = ctx.const("bool", (), "random")
    types = [ctx.type(v) for v in caps]
    then_b, then_ctx = _draw_region(ctx, "then", types, ctx.int(1, 3))
    then_vals = [o for n in then_b.graph.nodes for o in n.outputs] or list(then_b.graph.inputs)
    outs = [then_vals[-1]]
    if ctx.flag() and len(then_vals) > 1:
        outs.append(then_ctx.choice(then_vals[:-1]))
    then_g = then_b.build(outs)
    else_b, else_ctx = _draw_region(ctx, "else", types, ctx.int(0, 3))
    else_outs = []
    for o in outs:
        t = then_g.types[o]
        v = else_ctx.pick(lambda u: u.dtype == t.dtype and u.rank == t.rank)
        if v is None:
            return None
        else_outs.append(v)
    return ctx.apply("if", cond, *caps, then_branch=then_g, else_branch=else_b.build(else_outs))


# --- patterns the passes look for -----------------------------------------------------------
@recipe("duplicate", ops=(), weight=3)
def _duplicate(ctx):
    """Apply an existing node's op again to the same operands (swapped, when commutative)."""
    nodes = [n for n in ctx.b.graph.nodes if n.op in ctx.allowed]
    if not nodes:
        return None
    n = ctx.choice(nodes)
    ins = list(n.inputs)
    # swapped operands: the same value for commutative ops, a different one for sub, div, ...
    # (elementwise ops only: swapping data and indices of a gather is no valid program)
    if len(ins) == 2 and all(ins) and "elementwise" in all_ops()[n.op].traits and ctx.flag():
        ins.reverse()
    return ctx.apply(n.op, *ins, **dict(n.attrs))


@recipe("neutral", ops=("add", "sub", "mul", "div"), weight=3)
def _neutral(ctx):
    """x + 0, x - 0, x * 1, x / 1, x * 0: the identities the simplifier removes."""
    x = ctx.pick(_is_num)
    if x is None:
        return None
    t = ctx.type(x)
    op_name, kind = ctx.choice((("add", "zeros"), ("sub", "zeros"), ("mul", "ones"), ("div", "ones"),
                                ("mul", "zeros")))
    c = ctx.const(t.dtype, _partner_shape(ctx, t.shape), kind)
    if op_name in ("add", "mul") and ctx.flag():
        return ctx.apply(op_name, c, x)
    return ctx.apply(op_name, x, c)


@recipe("transpose_pair", ops=("transpose",), weight=2)
def _transpose_pair(ctx):
    x = ctx.pick(lambda t: t.rank >= 2)
    if x is None:
        return None
    r = ctx.type(x).rank
    y = ctx.apply("transpose", x, perm=_perm(ctx, r))
    if y is None:
        return None
    if ctx.flag():  # undo it exactly
        p = ctx.b.graph.nodes[-1].attrs["perm"]
        return ctx.apply("transpose", y, perm=[p.index(i) for i in range(r)])
    return ctx.apply("transpose", y, perm=_perm(ctx, r))


@recipe("reshape_pair", ops=("reshape",), weight=2)
def _reshape_pair(ctx):
    x = ctx.pick(lambda t: 0 not in t.shape)
    if x is None:
        return None
    shape = ctx.type(x).shape
    y = ctx.apply("reshape", x, shape=_reshape_target(ctx, shape))
    if y is None:
        return None
    back = _runtime_dims(shape) <= 1 and ctx.flag()  # reshape binds at most one run-time dim
    target = list(shape) if back else _reshape_target(ctx, shape)
    return ctx.apply("reshape", y, shape=target)


@recipe("noop_movement", ops=("reshape", "cast", "broadcast", "transpose"), weight=2)
def _noop(ctx):
    """reshape to its own shape, cast to its own dtype, broadcast to its own shape, identity perm."""
    x = ctx.pick()
    if x is None:
        return None
    t = ctx.type(x)
    which = ctx.int(0, 3)
    if which == 0:
        if _runtime_dims(t.shape) > 1:
            return None
        return ctx.apply("reshape", x, shape=list(t.shape))
    if which == 1:
        return ctx.apply("cast", x, to=t.dtype)
    if which == 2:
        return ctx.apply("broadcast", x, shape=list(t.shape))
    return ctx.apply("transpose", x, perm=list(range(t.rank)))


def _generic(name):
    """For an op named in ``ops=`` without a recipe: try it on one or two existing values."""
    opdef = all_ops()[name]

    def fn(ctx):
        if any(a.default is REQUIRED for a in opdef.attrs.values()):
            return None
        n = opdef.min_inputs
        if n == 0 or n > 3:
            return None
        x = ctx.pick()
        if x is None:
            return None
        others = [ctx.pick(lambda t: t.dtype == ctx.type(x).dtype and broadcastable(t.shape, ctx.type(x).shape))
                  for _ in range(n - 1)]
        return ctx.apply(name, x, *[o or x for o in others])
    return fn


#: how often each family of recipes is drawn, relative to the others
FAMILY_WEIGHTS = {"elementwise": 4, "unary": 3, "movement": 3, "reduce": 2, "linalg": 2, "indexing": 2,
                  "pattern": 2, "control": 1, "other": 1}


def _family(name: str) -> str:
    if name in UNARY:
        return "unary"
    if name in BINARY or name in ("shift_left", "shift_right", "mod_fmod", "where", "cast", "bitcast"):
        return "elementwise"
    if name.startswith(("reduce_", "arg")):
        return "reduce"
    if name in ("matmul", "conv", "conv_transpose", "max_pool", "avg_pool"):
        return "linalg"
    if name in ("reshape", "transpose", "broadcast", "slice", "concat", "pad", "reshape_dynamic", "shape"):
        return "movement"
    if name in ("gather", "gather_elements", "scatter_elements", "nonzero", "topk", "topk_dynamic",
                "cumsum", "cumprod"):
        return "indexing"
    if name in ("duplicate", "neutral", "transpose_pair", "reshape_pair", "noop_movement"):
        return "pattern"
    if name in ("if",):
        return "control"
    return "other"


def supported_ops() -> set:
    """The registered ops some recipe can draw."""
    registered = set(all_ops())
    return {o for r in RECIPES.values() for o in r.ops if o in registered}


# --------------------------------------------------------------------------------------------
# the graph strategy
# --------------------------------------------------------------------------------------------
def _input_shape(ctx: DrawCtx, template) -> tuple:
    """A suffix of the graph's template shape with some dims set to 1, so inputs broadcast."""
    r = ctx.int(0, len(template))
    if r == 0 and ctx.int(0, 3):  # rank 0 is allowed but rare
        r = len(template)
    suffix = list(template[len(template) - r:])
    return tuple(1 if ctx.int(0, 4) == 0 else d for d in suffix)


def graphs(ops: Sequence[str] | None = None, dtypes: Sequence | None = None, max_nodes: int = 12,
           min_nodes: int = 1, max_rank: int = 4, max_dim: int = 5, symbolic_dims: bool = True,
           max_inputs: int = 3, max_outputs: int = 3, symbols: Sequence[str] = ("batch",),
           name: str = "g") -> st.SearchStrategy[Graph]:
    """A strategy for random well-typed graphs over the core ops.

    ``ops`` restricts the ops drawn (default: every registered op with a recipe); ``dtypes`` the
    input and cast dtypes (default f32, f64, i32, i64, bool). Graphs have ``min_nodes`` to
    ``max_nodes`` nodes, up to ``max_inputs`` inputs with dims ``1..max_dim`` and rank up to
    ``max_rank``; with ``symbolic_dims`` an input's leading dim may be a symbol (``batch``).
    Constants appear as operands; up to ``max_outputs`` values are returned, so some nodes are dead.
    """
    registered = set(all_ops())
    if ops is None:
        allowed = frozenset(supported_ops())
        recipes = {k: r for k, r in RECIPES.items() if all(o in allowed for o in r.ops)}
    else:
        allowed = frozenset(ops)
        unknown = allowed - registered
        if unknown:
            raise ValueError(f"graphs(ops=...): unknown op(s) {', '.join(sorted(unknown))}")
        recipes = {k: r for k, r in RECIPES.items() if all(o in allowed for o in r.ops)
                   and (r.ops or k == "duplicate")}
        for o in allowed - {op_ for r in recipes.values() for op_ in r.ops}:
            recipes[f"generic:{o}"] = Recipe((o,), _generic(o), 3)
    dts = tuple(_dtype(d) for d in (dtypes or DEFAULT_DTYPES))
    if not dts:
        raise ValueError("graphs(dtypes=...): needs at least one dtype")
    if not recipes:
        raise ValueError("graphs(): no recipe can draw the requested ops")
    # Two-level choice, a family then a recipe: hypothesis' draws from a long list are far from
    # uniform. Heaviest first: hypothesis favours (and shrinks towards) the first choice.
    by_family: dict = {}
    for k in sorted(recipes, key=lambda k: (-recipes[k].weight, k)):
        by_family.setdefault(_family(k), []).extend([k] * recipes[k].weight)
    families = [f for f in sorted(by_family, key=lambda f: -FAMILY_WEIGHTS.get(f, 1))
                for _ in range(FAMILY_WEIGHTS.get(f, 1))]
    input_dts = [d for d in dts if d.kind != "bool"] or list(dts)
    first_dts = [d for d in input_dts if d.is_float] or input_dts

    @st.composite
    def draw_graph(draw):
        b = GraphBuilder(name)
        ctx = DrawCtx(draw, b, dts, max_rank, max_dim, tuple(symbols) if symbolic_dims else (), allowed,
                      max(min_nodes, max_nodes))
        rank = draw(st.integers(1, max_rank)) if max_rank >= 1 else 0
        template = [draw(st.integers(1, max_dim)) for _ in range(rank)]
        if ctx.symbols and rank and draw(st.booleans()):
            # a batch-like symbol, usually leading
            first = 0 if draw(st.integers(0, 3)) else draw(st.integers(0, rank - 1))
            template[first] = ctx.symbols[0] if len(ctx.symbols) == 1 else ctx.choice(ctx.symbols)
            others = [s for s in ctx.symbols if s != template[first]]
            if others and rank >= 2 and draw(st.booleans()):  # a second symbol (seq, say)
                template[draw(st.integers(0, rank - 1))] = ctx.choice(others)
        n_inputs = draw(st.integers(1, max(1, max_inputs)))
        for i in range(n_inputs):
            dt = ctx.choice(first_dts if i == 0 else (input_dts + list(dts)))
            v = b.input(_INPUT_NAMES[i] if i < len(_INPUT_NAMES) else f"x{i}", dt, _input_shape(ctx, template))
            ctx.values.append(v)
        hi = max(min_nodes, max_nodes)
        big = draw(st.booleans())  # half the graphs are in the upper half of the size range
        target = draw(st.integers(max(min_nodes, (min_nodes + hi) // 2) if big else min_nodes, hi))
        attempts = 0
        while len(b.graph.nodes) < target and attempts < 4 * target + 8:
            attempts += 1
            if len(b.graph.nodes) >= max_nodes:
                break
            r = recipes[ctx.choice(by_family[ctx.choice(families)])]
            r.draw(ctx)
            # a recipe may add more than one node (pairs); never exceed max_nodes by much
        if len(b.graph.nodes) < min_nodes:
            for v in list(ctx.values):
                if len(b.graph.nodes) >= min_nodes:
                    break
                for fallback in ("identity", *sorted(allowed)):
                    if fallback in allowed and _generic_once(ctx, fallback, v):
                        break
            if len(b.graph.nodes) < min_nodes:
                from hypothesis import reject

                reject()
        node_outs = [o for n in b.graph.nodes for o in n.outputs]
        outs = [node_outs[-1]] if node_outs else [b.graph.inputs[0]]
        for _ in range(draw(st.integers(0, max(0, max_outputs - 1)))):
            pool = node_outs or b.graph.inputs
            v = pool[draw(st.integers(0, len(pool) - 1))]
            if v not in outs:
                outs.append(v)
        if draw(st.integers(0, 9)) == 0:  # now and then an input is passed straight through
            v = b.graph.inputs[draw(st.integers(0, len(b.graph.inputs) - 1))]
            if v not in outs:
                outs.append(v)
        if draw(st.integers(0, 9)) == 0:
            outs.reverse()
        return b.build(outs)

    return draw_graph()


_INPUT_NAMES = ("x", "y", "z", "w")


def _generic_once(ctx, op_name, v) -> bool:
    return ctx.apply(op_name, v) is not None


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def input_symbols(graph: Graph) -> list:
    """The symbols of the graph's input shapes, in first-appearance order."""
    out = []
    for i in graph.inputs:
        for d in graph.types[i].shape:
            for s in sorted(_dims.symbols(d)):
                if s not in out:
                    out.append(s)
    return out


def _bind(graph, symbols, pick) -> dict:
    env = dict(symbols or {})
    for s in input_symbols(graph):
        if s not in env:
            env[s] = pick(s)
    return env


def _concrete_shape(graph, name, env):
    shape = []
    for d in graph.types[name].shape:
        v = _dims.evaluate(d, env)
        if v is None or v < 0:
            raise ValueError(f"input '{name}': cannot bind dim {d!r} with {env}")
        shape.append(v)
    return tuple(shape)


def random_inputs(graph: Graph, seed: int = 0, symbols: dict | None = None, max_dim: int = 4) -> list:
    """Seeded random arrays for ``graph.inputs`` (symbols bound to ``1..max_dim`` unless given)."""
    rng = np.random.default_rng(seed)
    env = _bind(graph, symbols, lambda s: int(rng.integers(1, max_dim + 1)))
    return [array_of(rng, graph.types[i].dtype, _concrete_shape(graph, i, env)) for i in graph.inputs]


def inputs_for(graph: Graph, symbols: dict | None = None, max_dim: int = 4) -> st.SearchStrategy[list]:
    """A strategy for a list of input arrays matching ``graph.inputs`` (symbolic dims bound).

    ``symbols`` fixes some symbols (name -> size); the others are drawn from ``1..max_dim``.
    """

    @st.composite
    def draw_inputs(draw):
        env = _bind(graph, symbols, lambda s: draw(st.integers(1, max_dim), label=f"symbol {s}"))
        out = []
        for i in graph.inputs:
            t = graph.types[i]
            shape = _concrete_shape(graph, i, env)
            n = int(np.prod(shape, dtype=np.int64))
            dt = t.dtype
            if dt.kind == "bool":
                elems = st.booleans()
            elif dt.kind == "float":
                elems = st.floats(-2.0, 2.0, allow_nan=False)
            elif dt.kind == "uint":
                elems = st.integers(0, 8)
            else:
                elems = st.integers(-4, 4)
            data = draw(st.lists(elems, min_size=n, max_size=n))
            out.append(np.array(data, dtype=np.float64 if dt.kind == "float" else None).astype(dt.np).reshape(shape)
                       if n else np.zeros(shape, dt.np))
        return out

    return draw_inputs()

