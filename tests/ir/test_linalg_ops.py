"""Core contractions and windowed ops: inference agrees with the reference, and the reference
agrees with a direct loop-nest definition of each op."""
import itertools

import numpy as np
import pytest

from kiln.ir import interpret
from kiln.ir.builder import GraphBuilder
from kiln.ir.registry import get
from kiln.ir.types import TensorType

RNG = np.random.default_rng(0)


def run(op_name, *arrays, **attrs):
    """Build a one-op graph (inputs as graph inputs), interpret it; returns the results and types."""
    b = GraphBuilder("t")
    names = [b.input(f"x{i}", str(a.dtype) if a.dtype != np.float32 else "f32", a.shape) if a is not None else None
             for i, a in enumerate(arrays)]
    out = b.op(op_name, *names, **attrs)
    outs = list(out) if isinstance(out, tuple) else [out]
    g = b.build(outs)
    res = interpret(g, [a for a in arrays if a is not None])
    return [res[o] for o in outs], [g.types[o] for o in outs]


# --- direct definitions ---------------------------------------------------------------------------

def naive_conv(x, w, bias, strides, dilations, pads, group):
    n = x.shape[0]
    m, cg = w.shape[:2]
    k = w.shape[2:]
    ns = len(k)
    outs = [(x.shape[2 + i] + pads[i] + pads[ns + i] - dilations[i] * (k[i] - 1) - 1) // strides[i] + 1
            for i in range(ns)]
    y = np.zeros((n, m, *outs))
    for b, oc in itertools.product(range(n), range(m)):
        g = oc // (m // group)
        for o in itertools.product(*map(range, outs)):
            acc = 0.0 if bias is None else float(bias[oc])
            for ic in range(cg):
                for t in itertools.product(*map(range, k)):
                    pos = [o[i] * strides[i] - pads[i] + t[i] * dilations[i] for i in range(ns)]
                    if all(0 <= p < x.shape[2 + i] for i, p in enumerate(pos)):
                        acc += x[(b, g * cg + ic, *pos)] * w[(oc, ic, *t)]
            y[(b, oc, *o)] = acc
    return y


def naive_conv_transpose(x, w, strides, dilations, pads, opad, group):
    n, c = x.shape[:2]
    mg = w.shape[1]
    k = w.shape[2:]
    ns = len(k)
    full = [(x.shape[2 + i] - 1) * strides[i] + dilations[i] * (k[i] - 1) + 1 + opad[i] for i in range(ns)]
    y = np.zeros((n, mg * group, *full))
    cg = c // group
    for b, ic in itertools.product(range(n), range(c)):
        g = ic // cg
        for i_pos in itertools.product(*[range(s) for s in x.shape[2:]]):
            for t in itertools.product(*map(range, k)):
                o = tuple(i_pos[d] * strides[d] + t[d] * dilations[d] for d in range(ns))
                for oc in range(mg):
                    y[(b, g * mg + oc, *o)] += x[(b, ic, *i_pos)] * w[(ic, oc, *t)]
    crop = tuple(slice(pads[i], full[i] - pads[ns + i]) for i in range(ns))
    return y[(slice(None), slice(None)) + crop]


def naive_pool(x, kernel, strides, dilations, pads, ceil_mode, kind, count_include_pad=False):
    ns = len(kernel)
    sizes = []
    for i in range(ns):
        span = dilations[i] * (kernel[i] - 1) + 1
        room = x.shape[2 + i] + pads[i] + pads[ns + i] - span
        o = (-(-room // strides[i]) if ceil_mode else room // strides[i]) + 1
        if ceil_mode and (o - 1) * strides[i] >= x.shape[2 + i] + pads[i]:
            o -= 1
        sizes.append(o)
    y = np.zeros(x.shape[:2] + tuple(sizes))
    for b, c in itertools.product(*map(range, x.shape[:2])):
        for o in itertools.product(*map(range, sizes)):
            vals, count = [], 0
            for t in itertools.product(*map(range, kernel)):
                pos = [o[i] * strides[i] - pads[i] + t[i] * dilations[i] for i in range(ns)]
                inside = all(0 <= p < x.shape[2 + i] for i, p in enumerate(pos))
                in_pads = all(-pads[i] <= p < x.shape[2 + i] + pads[ns + i] for i, p in enumerate(pos))
                if inside:
                    vals.append(x[(b, c, *pos)])
                count += inside or (count_include_pad and in_pads)
            y[(b, c, *o)] = max(vals) if kind == "max" else sum(vals) / count
    return y


# --- conv -------------------------------------------------------------------------------------------

CONV_CASES = [
    # (x shape, w shape, strides, dilations, pads, group)
    ((1, 2, 7), (3, 2, 3), (1,), (1,), (0, 0), 1),
    ((2, 4, 6, 5), (6, 2, 3, 2), (2, 1), (1, 2), (1, 0, 2, 1), 2),
    ((1, 3, 5, 5), (3, 1, 3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 3),  # depthwise
    ((1, 2, 4, 4, 3), (2, 2, 2, 2, 2), (1, 2, 1), (1, 1, 1), (0, 1, 0, 1, 0, 1), 1),
    ((1, 32, 5, 4), (4, 16, 3, 2), (2, 1), (1, 2), (1, 1, 0, 1), 2),  # many channels: per-tap products
    ((2, 16, 6), (3, 16, 1), (1,), (1,), (0, 0), 1),
]


@pytest.mark.parametrize("xs, ws, strides, dilations, pads, group", CONV_CASES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv_matches_loops(xs, ws, strides, dilations, pads, group, with_bias):
    x = RNG.standard_normal(xs).astype(np.float32)
    w = RNG.standard_normal(ws).astype(np.float32)
    bias = RNG.standard_normal(ws[0]).astype(np.float32) if with_bias else None
    (y,), (t,) = run("conv", x, w, bias, strides=strides, dilations=dilations, pads=pads, group=group)
    assert t.shape == y.shape
    np.testing.assert_allclose(y, naive_conv(x, w, bias, strides, dilations, pads, group), rtol=1e-4, atol=1e-4)


def test_conv_int32_is_exact():
    x = RNG.integers(-100, 100, (1, 2, 5, 5)).astype(np.int32)
    w = RNG.integers(-100, 100, (2, 2, 3, 3)).astype(np.int32)
    (y,), _ = run("conv", x, w, pads=(1, 1, 1, 1))
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, naive_conv(x, w, None, (1, 1), (1, 1), (1, 1, 1, 1), 1).astype(np.int32))


def test_conv_symbolic_dims():
    opdef = get("conv")
    x = TensorType("f32", ("n", 3, "h", 10))
    w = TensorType("f32", (8, 3, 3, 3))
    t = opdef.infer(x, w, None, strides=(1, 2), dilations=(), pads=(1, 1, 1, 1), group=1)
    assert t.shape == ("n", 8, "h", 5)


@pytest.mark.parametrize("x, w, attrs, msg", [
    (("f32", (1, 4, 5, 5)), ("f32", (2, 3, 3, 3)), {}, "channels"),
    (("f32", (1, 4, 5, 5)), ("f32", (3, 2, 3, 3)), {"group": 2}, "groups"),
    (("f32", (1, 3, 2, 2)), ("f32", (2, 3, 3, 3)), {}, "does not fit"),
    (("f32", (1, 3, 5, 5)), ("f32", (2, 3, 3, 3)), {"pads": (1, 1)}, "pads"),
    (("f32", (1, 3, 5, 5)), ("i32", (2, 3, 3, 3)), {}, "dtypes differ"),
])
def test_conv_rejects_bad_operands(x, w, attrs, msg):
    b = GraphBuilder("t")
    xi, wi = b.input("x", *x), b.input("w", *w)
    with pytest.raises(ValueError, match=msg):
        b.op("conv", xi, wi, **attrs)


# --- conv_transpose ---------------------------------------------------------------------------------

CONVT_CASES = [
    # (x shape, w shape, strides, dilations, pads, output_padding, group)
    ((1, 2, 4), (2, 3, 3), (2,), (1,), (0, 0), (1,), 1),
    ((2, 4, 3, 3), (4, 1, 3, 2), (2, 1), (1, 2), (1, 0, 0, 1), (0, 0), 2),
    ((1, 1, 2, 2, 2), (1, 2, 2, 2, 2), (1, 1, 2), (1, 1, 1), (0,) * 6, (0, 0, 1), 1),
]


@pytest.mark.parametrize("xs, ws, strides, dilations, pads, opad, group", CONVT_CASES)
def test_conv_transpose_matches_loops(xs, ws, strides, dilations, pads, opad, group):
    x = RNG.standard_normal(xs).astype(np.float32)
    w = RNG.standard_normal(ws).astype(np.float32)
    (y,), (t,) = run("conv_transpose", x, w, strides=strides, dilations=dilations, pads=pads,
                     output_padding=opad, group=group)
    assert t.shape == y.shape
    np.testing.assert_allclose(y, naive_conv_transpose(x, w, strides, dilations, pads, opad, group),
                               rtol=1e-4, atol=1e-4)


def test_conv_transpose_is_the_adjoint_of_conv():
    # <conv(x, w), y> == <x, conv_transpose(y, w)>
    x = RNG.standard_normal((1, 3, 7, 6))
    w = RNG.standard_normal((4, 3, 3, 2))
    attrs = dict(strides=(2, 1), dilations=(1, 2), pads=(1, 0, 1, 1))
    (cx,), _ = run("conv", x, w, **attrs)
    y = RNG.standard_normal(cx.shape)
    (ty,), _ = run("conv_transpose", y, w, output_padding=(0, 0), **attrs)
    assert ty.shape == x.shape
    np.testing.assert_allclose((cx * y).sum(), (x * ty).sum(), rtol=1e-10)


# --- pooling ----------------------------------------------------------------------------------------

POOL_CASES = [
    # (x shape, kernel, strides, dilations, pads, ceil_mode)
    ((1, 2, 7), (3,), (2,), (1,), (1, 1), False),
    ((2, 1, 6, 5), (3, 2), (2, 2), (1, 1), (1, 0, 1, 1), True),
    ((1, 2, 5, 5), (2, 2), (3, 3), (2, 1), (0, 0, 0, 0), True),
    ((1, 1, 4, 4, 4), (2, 2, 2), (2, 1, 2), (1, 1, 1), (1, 0, 0, 0, 1, 1), False),
]


@pytest.mark.parametrize("xs, kernel, strides, dilations, pads, ceil_mode", POOL_CASES)
def test_max_pool_matches_loops(xs, kernel, strides, dilations, pads, ceil_mode):
    x = RNG.standard_normal(xs).astype(np.float32)
    (y,), (t,) = run("max_pool", x, kernel=kernel, strides=strides, dilations=dilations, pads=pads,
                     ceil_mode=ceil_mode)
    assert t.shape == y.shape
    np.testing.assert_array_equal(y, naive_pool(x, kernel, strides, dilations, pads, ceil_mode, "max"))


@pytest.mark.parametrize("xs, kernel, strides, dilations, pads, ceil_mode", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_avg_pool_matches_loops(xs, kernel, strides, dilations, pads, ceil_mode, count_include_pad):
    x = RNG.standard_normal(xs).astype(np.float32)
    (y,), (t,) = run("avg_pool", x, kernel=kernel, strides=strides, dilations=dilations, pads=pads,
                     ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    assert t.shape == y.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, naive_pool(x, kernel, strides, dilations, pads, ceil_mode, "avg",
                                             count_include_pad), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices(storage_order):
    x = RNG.permutation(2 * 3 * 5 * 4).reshape(2, 3, 5, 4).astype(np.float32)
    (y, idx), (_, it) = run("max_pool", x, kernel=(2, 2), strides=(2, 1), pads=(0, 0, 1, 0),
                            with_indices=True, storage_order=storage_order)
    assert it.dtype.name == "i64" and idx.shape == y.shape
    flat = x.ravel() if storage_order == 0 else np.transpose(x, (0, 1, 3, 2)).ravel()
    np.testing.assert_array_equal(flat[idx], y)


def test_max_pool_int8_pads_never_win():
    x = np.full((1, 1, 3, 3), -128, np.int8)
    (y,), _ = run("max_pool", x, kernel=(2, 2), pads=(1, 1, 1, 1))
    assert y.dtype == np.int8 and (y == -128).all()


def test_pool_rejects_bad_kernel():
    b = GraphBuilder("t")
    x = b.input("x", "f32", (1, 1, 4, 4))
    with pytest.raises(ValueError, match="spatial dims"):
        b.op("max_pool", x, kernel=(2,))
    with pytest.raises(ValueError, match="strides must be >= 1"):
        b.op("avg_pool", x, kernel=(2, 2), strides=(0, 1))


def test_matmul_bf16_and_int():
    import ml_dtypes

    a = RNG.standard_normal((2, 3, 4)).astype(ml_dtypes.bfloat16)
    bm = RNG.standard_normal((4, 5)).astype(ml_dtypes.bfloat16)
    ref = get("matmul").reference
    y = ref(a, bm)
    assert y.dtype == a.dtype and y.shape == (2, 3, 5)
    ai = RNG.integers(-5, 5, (3, 4)).astype(np.int32)
    assert ref(ai, ai.T).dtype == np.int32


def test_window_count_symbolic_agrees_with_static():
    from kiln.ir import dims
    from kiln.ir.ops.linalg import window_count

    for size, k, pb, pe, ceil in itertools.product(range(1, 8), (1, 2, 3), range(3), range(5), (False, True)):
        if size + pb + pe < k:
            continue
        sym = window_count("n", k, 1, 1, pb, pe, ceil)
        assert dims.evaluate(sym, {"n": size}) == window_count(size, k, 1, 1, pb, pe, ceil)
    assert window_count("n", 3, 2, 1, 1, 1) == dims.UNKNOWN  # stride 2 over a symbol: known only at run time
