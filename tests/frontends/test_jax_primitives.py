"""JAX frontend, one primitive (or jnp idiom) at a time: converted, run by the interpreter, compared with JAX.

Each case is a small function of fixed random arrays; the converted graph must give JAX's result to
within 1e-5 relative + 1e-6 absolute (float32; the interpreter computes most math in float64), or
exactly for integers and bools. A compiled subset is at the end of the file.
"""
from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

import kiln  # noqa: E402
from kiln.frontends.jax import from_jax  # noqa: E402

RNG = np.random.default_rng(0)


def f32(*shape, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def i32(*shape, lo=-5, hi=5):
    return RNG.integers(lo, hi, shape).astype(np.int32)


def assert_close(got, want, rtol=1e-5, atol=1e-6, what="output"):
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def check(fn, *args, rtol=1e-5, atol=1e-6, input_shapes=None):
    """Convert ``fn`` at ``args``, interpret it and compare every output leaf with JAX."""
    graph = from_jax(fn, args, input_shapes=input_shapes)
    leaves = jax.tree_util.tree_leaves(args)
    got = list(kiln.interpret(graph, [np.asarray(x) for x in leaves]).values())
    want = jax.tree_util.tree_leaves(fn(*jax.tree_util.tree_map(jnp.asarray, args)))
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, rtol, atol, what=f"output {i}")
    return graph


X = f32(3, 4)
Y = f32(3, 4)
POS = f32(3, 4, lo=0.1, hi=3.0)
UNIT = f32(3, 4, lo=-0.95, hi=0.95)
I = i32(3, 4)
J = i32(3, 4, lo=1, hi=4)
B = X > 0

ELEMENTWISE = {
    "add": (lambda a, b: a + b, X, Y), "sub": (lambda a, b: a - b, X, Y), "mul": (lambda a, b: a * b, X, Y),
    "div": (lambda a, b: a / b, X, POS), "rem": (lambda a, b: lax.rem(a, b), X, POS),
    "int_div": (lambda a, b: lax.div(a, b), I, J), "int_rem": (lambda a, b: lax.rem(a, b), I, J),
    "floor_divide": (lambda a, b: a // b, I, J), "mod": (lambda a, b: a % b, X, POS),
    "pow": (lambda a, b: a ** b, POS, X), "integer_pow": (lambda a: a ** 3 + a ** -2 + a ** 0, POS),
    "int_integer_pow": (lambda a: a ** 3, I), "square": (lambda a: jnp.square(a), X),
    "max": (jnp.maximum, X, Y), "min": (jnp.minimum, X, Y), "bool_max": (jnp.maximum, B, ~B),
    "exp": (jnp.exp, X), "exp2": (jnp.exp2, X), "log": (jnp.log, POS), "log1p": (jnp.log1p, f32(3, 4, lo=-0.5)),
    "log1p_tiny": (jnp.log1p, f32(5, lo=-1e-6, hi=1e-6)), "expm1": (jnp.expm1, X),
    "expm1_tiny": (jnp.expm1, f32(5, lo=-1e-6, hi=1e-6)),
    "expm1_log1p_wide": (lambda a: (jnp.expm1(a), jnp.log1p(jnp.abs(a) * 1e28)),
                         np.array([30, -30, 88, 1e-10, 0, 0.7, -0.7], np.float32)), "tanh": (jnp.tanh, X),
    "logistic": (jax.nn.sigmoid, X), "erf": (lax.erf, X), "erfc": (lax.erfc, f32(3, 4, lo=-3, hi=8)),
    "erf_inv": (lax.erf_inv, UNIT), "rsqrt": (lax.rsqrt, POS), "sqrt": (jnp.sqrt, POS), "cbrt": (jnp.cbrt, X),
    "abs": (jnp.abs, X), "neg": (jnp.negative, X), "sign": (jnp.sign, X), "int_sign": (jnp.sign, I),
    "floor": (jnp.floor, X * 3), "ceil": (jnp.ceil, X * 3),
    "round_even": (jnp.round, np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999997, 2.3], np.float32)),
    "round_away": (lax.round, np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999997, 2.3], np.float32)),
    "is_finite": (jnp.isfinite, np.array([1.0, np.inf, -np.inf, np.nan], np.float32)),
    "sin": (jnp.sin, X), "cos": (jnp.cos, X), "tan": (jnp.tan, UNIT), "asin": (jnp.arcsin, UNIT),
    "acos": (jnp.arccos, UNIT), "atan": (jnp.arctan, X), "sinh": (jnp.sinh, X), "cosh": (jnp.cosh, X),
    "asinh": (jnp.arcsinh, X), "acosh": (jnp.arccosh, POS + 1), "atanh": (jnp.arctanh, UNIT),
    "atan2": (jnp.arctan2, np.array([1, -1, 1, -1, 0, 0, -0.0, 0, 2], np.float32),
              np.array([1, 1, -1, -1, 1, -1, -1, 0, 0], np.float32)),
    "nextafter": (jnp.nextafter, np.array([1, -1, 0, 0, 2, 3], np.float32),
                  np.array([2, 2, 1, -1, 2, -5], np.float32)),
    "compare": (lambda a, b: (a < b, a <= b, a > b, a >= b, a == b, a != b), X, jnp.where(B, X, Y)),
    "logic": (lambda a, b: (a & b, a | b, a ^ b, ~a), B, X < 0.5),
    "bitwise": (lambda a, b: (a & b, a | b, a ^ b, ~a, a << 2, a >> 1, lax.shift_right_logical(a, J)), I, J),
    "select_n": (lambda p, a, b: jnp.where(p, a, b), B, X, Y),
    "select_n_int": (lambda a, b, c: lax.select_n(jnp.clip(I, 0, 2), a, b, c), X, Y, X * 2),
    "clamp": (lambda a: lax.clamp(-0.5, a, 0.5), X), "clip": (lambda a: jnp.clip(a, 0, 1), X),
    "convert": (lambda a: (a.astype(jnp.int32), a.astype(jnp.bool_), I.astype(jnp.float32)), X * 4),
    "bitcast": (lambda a: lax.bitcast_convert_type(a, jnp.int32), X),
    "reduce_precision": (lambda a: lax.reduce_precision(a, 8, 7), X),
    "stop_gradient": (lambda a: lax.stop_gradient(a) * 2, X),
    "relu_gelu_silu": (lambda a: (jax.nn.relu(a), jax.nn.gelu(a), jax.nn.gelu(a, approximate=False),
                                  jax.nn.silu(a), jax.nn.softplus(a), jax.nn.elu(a), jax.nn.leaky_relu(a)), X),
    "softmax": (lambda a: (jax.nn.softmax(a), jax.nn.log_softmax(a, axis=0), jax.nn.logsumexp(a, -1)), X),
}

SHAPE = {
    "broadcast_in_dim": (lambda a: jnp.broadcast_to(a[:, None, :], (3, 5, 4)), X),
    "reshape": (lambda a: a.reshape(2, 6).T.reshape(-1), X), "squeeze": (lambda a: a[None, :, None].squeeze(), X),
    "expand_dims": (lambda a: jnp.expand_dims(a, (0, 2)), X), "transpose": (lambda a: a.T, X),
    "rev": (lambda a: (a[::-1], jnp.flip(a, (0, 1))), X),
    "slice": (lambda a: (a[1:, ::2], a[:2, 1:3], a[..., -1]), X),
    "strided": (lambda a: a[::2, 1::2], f32(7, 9)),
    "dynamic_slice": (lambda a, i: (lax.dynamic_slice(a, (i, 1), (2, 2)), lax.dynamic_slice(a, (i + 5, -3), (2, 2)),
                                    lax.dynamic_slice_in_dim(a, 1, 2, 1)), X, np.int32(1)),
    "dynamic_index": (lambda a, i: a[i], X, np.int32(-1)),
    "dynamic_update_slice": (lambda a, u, i: (lax.dynamic_update_slice(a, u, (i, 2)),
                                              lax.dynamic_update_slice(a, u, (1, 1)),
                                              lax.dynamic_update_slice(a, u, (7, -2))), X, f32(2, 2), np.int32(1)),
    "concatenate": (lambda a, b: (jnp.concatenate([a, b], 0), jnp.stack([a, b], -1)), X, Y),
    "pad": (lambda a: (jnp.pad(a, ((1, 2), (0, 3))), jnp.pad(a, 1, constant_values=-1.0),
                       lax.pad(a, 0.5, ((1, -1, 1), (-1, 2, 2)))), X),
    "pad_edge": (lambda a: jnp.pad(a, ((1, 1), (2, 0)), mode="edge"), X),
    "iota": (lambda a: a + jnp.arange(4, dtype=jnp.float32) + lax.broadcasted_iota(jnp.float32, (3, 4), 0), X),
    "tril": (lambda a: jnp.tril(a) + jnp.triu(a, 1) * 2, f32(4, 4)),
    "split": (lambda a: jnp.split(a, [1, 3], axis=1), X),
    "tile_repeat": (lambda a: (jnp.tile(a, (2, 1)), jnp.repeat(a, 2, axis=0)), X),
}

REDUCE = {
    "sum_mean": (lambda a: (a.sum(), a.mean(0), a.sum(1, keepdims=True)), X),
    "max_min_prod": (lambda a: (a.max(1), a.min(0), a.prod(1)), X),
    "var_std": (lambda a: (a.var(-1), a.std(0)), X),
    "int_sum": (lambda a: (a.sum(0), a.max(), a.min(1), a.prod(0)), I),
    "any_all": (lambda a: (a.any(0), a.all(1), jnp.logical_xor.reduce(a, axis=0)), B),
    "argmax": (lambda a: (jnp.argmax(a, 1), jnp.argmin(a, 0), jnp.argmax(a)), X),
    "cumsum": (lambda a: (jnp.cumsum(a, 0), jnp.cumprod(a, 1), lax.cumsum(a, 1, reverse=True)), X),
    "cummax": (lambda a: (lax.cummax(a, 1), lax.cummin(a, 0), lax.cummax(a, 1, reverse=True)), f32(3, 7)),
    "int_cummax": (lambda a: lax.cummax(a, 1), i32(3, 9)),
    "sort": (lambda a: (jnp.sort(a, 1), jnp.sort(a, 0), jnp.argsort(a, 1)), X),
    "sort_ties": (lambda a: (jnp.argsort(a), jnp.sort(a)), np.array([3, 1, 2, 1, 3, 0], np.int32)),
    "top_k": (lambda a: lax.top_k(a, 2), X),
}

INDEXING = {
    "take": (lambda a, i: a[i], X, np.array([2, 0, -1], np.int32)),
    "take_col": (lambda a, i: a[:, i], X, np.array([3, 0, 3, 1], np.int32)),
    "take_2d_idx": (lambda a, i: a[i], f32(5, 2, 3), np.array([[0, 4], [2, 2]], np.int32)),
    "take_pair": (lambda a, i, j: a[i, j], X, np.array([0, 2, 1], np.int32), np.array([3, 0, -2], np.int32)),
    "take_mid": (lambda a, i: a[:, i, :], f32(2, 5, 3), np.array([4, 1], np.int32)),
    "take_scalar": (lambda a: (a[1], a[:, 2], a[-1, -1]), X),
    "jnp_take_fill": (lambda a, i: jnp.take(a, i, axis=1), X, np.array([0, 3, 9, -9], np.int32)),
    "take_clip": (lambda a, i: jnp.take(a, i, axis=0, mode="clip"), X, np.array([0, 5, -7], np.int32)),
    "take_along_axis": (lambda a: jnp.take_along_axis(a, jnp.argsort(a, axis=1), axis=1), X),
    "take_along_axis0": (lambda a, i: jnp.take_along_axis(a, i, axis=0), X, i32(2, 4, lo=0, hi=3)),
    "embedding": (lambda t, i: t[i], f32(10, 4), np.array([[1, 9, 0], [3, 3, 2]], np.int32)),
    "at_set": (lambda a, i: a.at[i].set(9.0), X, np.array([0, 2], np.int32)),
    "at_add": (lambda a, i: a.at[:, i].add(1.0), X, np.array([1, 1, 3], np.int32)),
    "at_mul_min_max": (lambda a, i: (a.at[i].multiply(2.0), a.at[i].min(0.0), a.at[i].max(0.5)), X,
                       np.array([1, 0], np.int32)),
    "at_set_oob_dropped": (lambda a, i: a.at[i].set(5.0), X, np.array([1, 7], np.int32)),
    "at_set_scalar": (lambda a: a.at[1, 2].set(-3.0), X),
    "at_set_pairs": (lambda a, i, j: a.at[i, j].add(1.0), X, np.array([0, 2, 0], np.int32),
                     np.array([3, 1, 3], np.int32)),
    "at_set_rows_values": (lambda a, i, u: a.at[i].set(u), X, np.array([2, 0], np.int32), f32(2, 4)),
}

NN = {
    "dot": (lambda a, b: a @ b, X, f32(4, 5)), "matvec": (lambda a, b: a @ b, X, f32(4)),
    "vecvec": (lambda a, b: a @ b, f32(4), f32(4)),
    "batched": (lambda a, b: jnp.einsum("bij,bjk->bik", a, b), f32(2, 3, 4), f32(2, 4, 5)),
    "einsum_mixed": (lambda a, b: jnp.einsum("bhqd,bkhd->bhqk", a, b), f32(2, 3, 4, 5), f32(2, 6, 3, 5)),
    "einsum_two_contract": (lambda a, b: jnp.einsum("ijk,jkl->il", a, b), f32(2, 3, 4), f32(3, 4, 5)),
    "tensordot_free_first": (lambda a, b: jnp.einsum("ki,kj->ij", a, b), f32(4, 3), f32(4, 5)),
    "int_dot": (lambda a, b: a @ b, I, J.T),
}


def _conv(dn, strides=None, padding="SAME", groups=1, lhs_dil=None, rhs_dil=None):
    return lambda x, w: lax.conv_general_dilated(x, w, strides or (1,) * (x.ndim - 2), padding, lhs_dilation=lhs_dil,
                                                 rhs_dilation=rhs_dil, dimension_numbers=dn,
                                                 feature_group_count=groups)


def _pool(op, init, window, strides, padding, base=None, wdil=None):
    return lambda x: lax.reduce_window(x, init, op, window, strides, padding, base_dilation=base,
                                       window_dilation=wdil)


CONV = {
    "nchw": (_conv(None), f32(2, 3, 7, 7), f32(4, 3, 3, 3)),
    "nhwc_strided": (_conv(("NHWC", "HWIO", "NHWC"), (2, 2)), f32(2, 8, 8, 3), f32(3, 3, 3, 6)),
    "nhwc_groups": (_conv(("NHWC", "HWIO", "NHWC"), (1, 2), "VALID", groups=3), f32(1, 7, 9, 6), f32(3, 2, 2, 6)),
    "depthwise": (_conv(("NHWC", "HWIO", "NHWC"), groups=4), f32(1, 6, 6, 4), f32(3, 3, 1, 4)),
    "explicit_pads": (_conv(None, padding=((2, 0), (1, -1))), f32(1, 2, 6, 6), f32(3, 2, 3, 3)),
    "rhs_dilated": (_conv(None, rhs_dil=(2, 1)), f32(1, 2, 9, 7), f32(2, 2, 3, 3)),
    "conv1d": (_conv(("NWC", "WIO", "NWC")), f32(2, 10, 3), f32(5, 3, 4)),
    "conv3d": (_conv(("NDHWC", "DHWIO", "NDHWC"), (1, 2, 1)), f32(1, 4, 6, 5, 2), f32(2, 3, 2, 2, 3)),
    "lhs_dilated": (_conv(None, padding=((1, 2), (2, 1)), lhs_dil=(2, 3)), f32(1, 2, 4, 4), f32(3, 2, 3, 3)),
    "lhs_dilated_strided": (_conv(None, (2, 1), ((0, 0), (1, 1)), lhs_dil=(2, 2)), f32(1, 2, 4, 4),
                            f32(3, 2, 3, 3)),
    "lhs_dilated_neg_pad": (_conv(None, padding=((-1, 0), (0, 0)), lhs_dil=(2, 1)), f32(1, 2, 5, 4),
                            f32(3, 2, 2, 2)),
    "conv_transpose": (lambda x, w: lax.conv_transpose(x, w, (2, 2), "SAME",
                                                       dimension_numbers=("NHWC", "HWIO", "NHWC")),
                       f32(1, 5, 5, 3), f32(3, 3, 3, 4)),
    "conv_transpose_groups": (_conv(None, padding=((2, 2), (2, 2)), groups=2, lhs_dil=(2, 2)), f32(1, 4, 3, 3),
                              f32(6, 2, 3, 3)),
    "max_pool_same": (_pool(lax.max, -jnp.inf, (1, 3, 3, 1), (1, 2, 2, 1), "SAME"), f32(2, 7, 7, 3)),
    "avg_pool_valid": (lambda x: _pool(lax.add, 0.0, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")(x) / 4, f32(2, 6, 6, 3)),
    "sum_pool_padded": (_pool(lax.add, 0.0, (1, 1, 3, 3), (1, 1, 1, 1), ((0, 0), (0, 0), (1, 1), (2, 0))),
                        f32(1, 2, 5, 5)),
    "min_pool": (_pool(lax.min, jnp.inf, (2, 2), (1, 1), "VALID"), f32(5, 6)),
    "int_max_pool": (_pool(lax.max, np.iinfo(np.int32).min, (3,), (2,), "SAME"), i32(9)),
    "pool_base_window_dilation": (_pool(lax.max, -jnp.inf, (1, 2, 2), (1, 1, 1), "VALID", (1, 2, 1), (1, 1, 2)),
                                  f32(2, 4, 6)),
    "pool_all_axes": (_pool(lax.add, 0.0, (2, 2, 2), (1, 2, 1), "VALID"), f32(3, 4, 5)),
    "pool_init": (_pool(lax.max, 0.5, (2, 2), (2, 2), "VALID"), f32(4, 4)),
}

MISC = {
    "resize": (lambda a: (jax.image.resize(a, (2, 9, 5, 3), "bilinear"), jax.image.resize(a, (2, 3, 12, 3), "nearest")),
               f32(2, 6, 6, 3)),
    "one_hot": (lambda i: jax.nn.one_hot(i, 7), np.array([1, 3, 6, 0, 9], np.int32)),
    "dot_product_attention": (lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True),
                              f32(2, 5, 2, 4), f32(2, 5, 2, 4), f32(2, 5, 2, 4)),
    "median_roll": (lambda a: (jnp.median(a, axis=1), jnp.roll(a, 2, axis=1)), f32(5, 8)),
    "triu_indices": (lambda a: a[jnp.triu_indices(5, 1)], f32(5, 5)),
    "diag_trace_eye": (lambda a: (jnp.diag(a), jnp.trace(a), jnp.eye(5) * a), f32(5, 5)),  # platform_index
    "searchsorted": (lambda a, q: (jnp.searchsorted(a, q), jnp.searchsorted(a, q, side="right")),  # le_to/lt_to
                     np.array([-np.inf, -1, -0.0, 0, 0, 2, np.nan], np.float32),
                     np.array([-0.0, 0.0, 2, 3, np.nan, -5], np.float32)),
    "bf16_dot": (lambda a, b: jnp.dot(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16),
                                      preferred_element_type=jnp.float32), f32(5, 8), f32(8, 3)),
    "int8_dot": (lambda a, b: lax.dot(a.astype(jnp.int8), b.astype(jnp.int8), preferred_element_type=jnp.int32),
                 I, J.T),
    "matmul_broadcast": (jnp.matmul, f32(2, 1, 3, 4), f32(5, 4, 2)),
    "logaddexp_norm": (lambda a, b: (jnp.logaddexp(a, b), jnp.linalg.norm(a, axis=-1)), X, Y),
}

CASES = {**{f"ew_{k}": v for k, v in ELEMENTWISE.items()}, **{f"shape_{k}": v for k, v in SHAPE.items()},
         **{f"reduce_{k}": v for k, v in REDUCE.items()}, **{f"index_{k}": v for k, v in INDEXING.items()},
         **{f"nn_{k}": v for k, v in NN.items()}, **{f"conv_{k}": v for k, v in CONV.items()},
         **{f"misc_{k}": v for k, v in MISC.items()}}


@pytest.mark.parametrize("name", sorted(CASES))
def test_primitive_interpreted(name):
    fn, *args = CASES[name]
    rtol = 1e-4 if name.startswith(("conv_", "nn_", "misc_")) else 1e-5
    check(fn, *args, rtol=rtol, atol=1e-5 if rtol > 1e-5 else 1e-6)


def test_call_primitives_are_inlined():
    """jit, checkpoint (remat), custom_jvp, custom_vjp and closed_call bodies are converted in place."""
    @jax.custom_vjp
    def triple(x):
        return x * 3

    triple.defvjp(lambda x: (triple(x), None), lambda _, g: (g * 3,))

    @jax.custom_jvp
    def softclip(x):
        return jnp.tanh(x) * 2

    softclip.defjvp(lambda p, t: (softclip(p[0]), t[0]))

    def fn(x):
        y = jax.jit(lambda v: jnp.sin(v) + 1)(x)
        y = jax.checkpoint(lambda v: v * v)(y)
        return triple(softclip(y)) + jax.nn.relu(x)

    graph = check(fn, X)
    assert {n.op for n in graph.nodes} >= {"sin", "tanh"}


def test_closed_over_constants_become_graph_constants():
    w = jnp.asarray(f32(4, 2))
    graph = check(lambda x: jnp.tanh(x @ w), X)
    assert any(c.shape == (4, 2) for c in graph.constants.values())


def test_pytree_inputs_and_outputs():
    params = {"w": f32(4, 3), "b": f32(3)}

    def fn(x, params):
        y = x @ params["w"] + params["b"]
        return {"y": y, "stats": (y.mean(), y.max())}

    graph = check(fn, X, params)
    assert graph.inputs == ["x", "params_0", "params_1"]  # dict leaves in key order: b, w
    assert graph.outputs == ["output_0", "output_1", "output_2"]


def test_keyword_example_inputs_name_the_inputs():
    """A dict of keyword arguments: graph inputs named by key, in sorted key order (jax's flattening order)."""
    x, scale = f32(3, 4), f32(4)
    graph = from_jax(lambda x, scale: x * scale, {"x": x, "scale": scale})
    assert graph.inputs == ["scale", "x"]
    assert graph.types["x"].shape == (3, 4)
    (got,) = kiln.interpret(graph, {"x": x, "scale": scale}).values()
    assert_close(got, x * scale)


SYM_W = f32(4, 6)
SYM_IDX = np.array([0, 5], np.int32)


def symbolic_fn(x, idx):
    h = jnp.tanh(x @ SYM_W)
    h = h - h.mean(0) + jnp.arange(x.shape[0], dtype=jnp.float32)[:, None]
    order = jnp.argsort(h[:, :4], axis=1)  # take_along_axis: a gather with batching dims over 'batch'
    return (h[1:], h[:, idx], jnp.cumsum(h[::-1], 0), jnp.pad(h, ((0, 1), (1, 0))), h.reshape(-1)[:3],
            jnp.take_along_axis(h, order, axis=1), h.at[idx[:1]].add(1.0), h[0])


@pytest.fixture(scope="module")
def symbolic_graph_and_model():
    graph = from_jax(symbolic_fn, (f32(3, 4), SYM_IDX), input_shapes={"x": ["batch", 4]})
    return graph, kiln.compile(graph)


@pytest.mark.parametrize("batch", [1, 5])
def test_symbolic_batch(symbolic_graph_and_model, batch):
    """One graph with a 'batch' dim serves every batch size, interpreted and compiled."""
    graph, model = symbolic_graph_and_model
    assert graph.types["x"].shape == ("batch", 4)
    assert graph.types[graph.outputs[0]].shape == ("batch-1", 6)
    x = f32(batch + 1, 4)
    want = symbolic_fn(jnp.asarray(x), SYM_IDX)
    for how, got in (("interpreted", list(kiln.interpret(graph, [x, SYM_IDX]).values())),
                     ("compiled", model(x, SYM_IDX))):
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, 1e-5, 1e-5, what=f"{how} output {i}")


def test_symbolic_dims_named_across_inputs():
    graph = from_jax(lambda a, b: (a[:, :, None] * b[:, None, :]).sum(0), (f32(2, 3), f32(2, 5)),
                     input_shapes={"a": ["n", 3], "b": ["n", None]})
    assert graph.types["a"].shape == ("n", 3) and graph.types["b"].shape == ("n", 5)
    a, b = f32(4, 3), f32(4, 5)
    (got,) = kiln.interpret(graph, [a, b]).values()
    assert_close(got, (a[:, :, None] * b[:, None, :]).sum(0), 1e-5, 1e-5)


@pytest.mark.parametrize("name", ["ew_relu_gelu_silu", "shape_pad", "reduce_cummax", "reduce_sort", "index_take_col",
                                  "index_at_add", "nn_einsum_mixed", "conv_nhwc_groups", "conv_conv_transpose",
                                  "conv_max_pool_same", "conv_sum_pool_padded", "shape_dynamic_update_slice"])
def test_primitive_compiled(name):
    fn, *args = CASES[name]
    graph = from_jax(fn, args)
    model = kiln.compile(graph)
    got = model(*[np.asarray(x) for x in jax.tree_util.tree_leaves(args)])
    want = jax.tree_util.tree_leaves(fn(*jax.tree_util.tree_map(jnp.asarray, args)))
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, 1e-4, 1e-5, what=f"output {i}")


def test_control_flow_cond_switch_and_scan():
    """cond/switch convert every branch and select; scan (and fori_loop with static bounds) unrolls."""
    def fn(x, i):
        a = lax.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, x)
        b = lax.switch(i, [jnp.sin, jnp.cos, lambda v: v + 1], x)
        c = lax.cond(True, lambda v: v + 3, lambda v: v, x)
        carry, ys = lax.scan(lambda c, r: (c + r, c * r), jnp.zeros(4, jnp.float32), x, reverse=True)
        f = lax.fori_loop(0, 3, lambda k, v: v * 1.5 + k, x)
        return a, b, c, carry, ys, f

    for i in (0, 2, 7):
        check(fn, X, np.int32(i))
    check(fn, -np.abs(X), np.int32(1))
