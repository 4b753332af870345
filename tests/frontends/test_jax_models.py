"""A small JAX model zoo (plain jnp / lax, no flax) compiled by kiln and compared with JAX.

Each model is compiled once (module-scoped fixture) through ``kiln.compile(fn, example_inputs=...)``
with a symbolic batch dim, run at two batch sizes, and once more through ``@kiln.jax.jit``.
Criterion: every output element within ``1e-4 * max|JAX output| + 1e-4 * |JAX output|`` of JAX's
float32 result (jax.jit on CPU), i.e. 1e-4 relative to the output's scale.
"""
from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

import kiln  # noqa: E402
import kiln.jax  # noqa: E402

RTOL = 1e-4


def _params(seed, shapes):
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(s) / np.sqrt(np.prod(s[:-1]) if len(s) > 1 else 1)).astype(np.float32)
            for k, s in shapes.items()}


def _bn(x, p, name):
    """Batch norm, inference formula (running statistics folded in as constants)."""
    return (x - p[f"{name}_mean"]) / jnp.sqrt(p[f"{name}_var"] + 1e-5) * p[f"{name}_g"] + p[f"{name}_b"]


def _bn_params(name, c, rng):
    return {f"{name}_mean": rng.normal(size=c).astype(np.float32) * 0.1,
            f"{name}_var": rng.uniform(0.5, 1.5, c).astype(np.float32),
            f"{name}_g": rng.uniform(0.5, 1.5, c).astype(np.float32),
            f"{name}_b": rng.normal(size=c).astype(np.float32) * 0.1}


def _layer_norm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * lax.rsqrt(var + 1e-5) * g + b


# --- the zoo -------------------------------------------------------------------------------------

def make_mlp():
    p = _params(1, {"w1": (32, 64), "b1": (64,), "w2": (64, 64), "b2": (64,), "w3": (64, 10), "b3": (10,)})

    def mlp(x, p=p):
        h = jax.nn.relu(x @ p["w1"] + p["b1"])
        h = jax.nn.gelu(h @ p["w2"] + p["b2"])
        return jax.nn.softmax(h @ p["w3"] + p["b3"])

    return mlp, (32,), p


def make_cnn_bn():
    rng = np.random.default_rng(2)
    p = _params(2, {"c1": (3, 3, 3, 8), "c2": (3, 3, 8, 16), "fc": (16, 5)})
    p.update(_bn_params("bn1", 8, rng))
    p.update(_bn_params("bn2", 16, rng))
    dn = ("NHWC", "HWIO", "NHWC")

    def cnn(x, p=p):
        h = lax.conv_general_dilated(x, p["c1"], (1, 1), "SAME", dimension_numbers=dn)
        h = jax.nn.relu(_bn(h, p, "bn1"))
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        h = lax.conv_general_dilated(h, p["c2"], (1, 1), "SAME", dimension_numbers=dn)
        h = jax.nn.relu(_bn(h, p, "bn2"))
        h = lax.reduce_window(h, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0
        return h.mean((1, 2)) @ p["fc"]

    return cnn, (12, 12, 3), p


def _mha(x, p, heads, mask=None):
    b, t, d = x.shape
    q, k, v = (jnp.einsum("btd,de->bte", x, p[n]).reshape(b, t, heads, d // heads) for n in ("wq", "wk", "wv"))
    s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d // heads).astype(np.float32)
    if mask is not None:
        s = jnp.where(mask, s, -1e9)
    a = jax.nn.softmax(s, axis=-1)
    o = jnp.einsum("bhqk,bkhd->bqhd", a, v).reshape(b, t, d)
    return o @ p["wo"]


def make_transformer():
    d, f = 32, 64
    p = _params(3, {"wq": (d, d), "wk": (d, d), "wv": (d, d), "wo": (d, d), "w1": (d, f), "b1": (f,),
                    "w2": (f, d), "b2": (d,)})
    p.update(g1=np.ones(d, np.float32), be1=np.zeros(d, np.float32), g2=np.full(d, 1.1, np.float32),
             be2=np.full(d, 0.1, np.float32))

    def encoder_layer(x, p=p):
        h = x + _mha(_layer_norm(x, p["g1"], p["be1"]), p, heads=4)
        m = jax.nn.gelu(_layer_norm(h, p["g2"], p["be2"]) @ p["w1"] + p["b1"], approximate=False)
        return h + m @ p["w2"] + p["b2"]

    return encoder_layer, (8, d), p


def make_causal_attention():
    d = 16
    p = _params(4, {"wq": (d, d), "wk": (d, d), "wv": (d, d), "wo": (d, d)})

    def causal_attention(x, p=p):
        t = x.shape[1]
        mask = jnp.tril(jnp.ones((t, t), bool))[None, None]
        return _mha(x, p, heads=2, mask=mask)

    return causal_attention, (6, d), p


def make_grouped_convnet():
    p = _params(5, {"c1": (3, 3, 4, 8), "c2": (3, 3, 2, 8), "c3": (1, 1, 8, 12), "fc": (12, 3)})
    dn = ("NHWC", "HWIO", "NHWC")

    def convnet(x, p=p):
        h = jax.nn.relu(lax.conv_general_dilated(x, p["c1"], (2, 2), "SAME", dimension_numbers=dn))
        h = jax.nn.relu(lax.conv_general_dilated(h, p["c2"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn,
                                                 feature_group_count=4))
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")
        h = lax.conv_general_dilated(h, p["c3"], (1, 1), "VALID", dimension_numbers=dn)
        h = lax.reduce_window(h, 0.0, lax.add, (1, 2, 2, 1), (1, 1, 1, 1), "VALID") / 4.0
        return jnp.tanh(h.mean((1, 2)) @ p["fc"])

    return convnet, (16, 16, 4), p


ZOO = {"mlp": make_mlp, "cnn_bn": make_cnn_bn, "transformer": make_transformer,
       "causal_attention": make_causal_attention, "grouped_convnet": make_grouped_convnet}


def _x(shape, batch, seed):
    return np.random.default_rng(seed).standard_normal((batch,) + shape).astype(np.float32)


def assert_matches(got, want):
    want = np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = float(np.max(np.abs(want))) or 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale)


@pytest.fixture(scope="module", params=sorted(ZOO))
def compiled(request):
    fn, shape, _ = ZOO[request.param]()
    model = kiln.compile(fn, example_inputs=(_x(shape, 2, 0),), input_shapes={"x": ["batch", *shape]})
    return request.param, fn, shape, model


@pytest.mark.parametrize("batch", [1, 3])
def test_zoo_compiled_symbolic_batch(compiled, batch):
    name, fn, shape, model = compiled
    assert model.graph.types[model.graph.inputs[0]].shape[0] == "batch"
    x = _x(shape, batch, 10 + batch)
    (got,) = model(x)
    assert_matches(got, jax.jit(fn)(x))


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_kiln_jax_jit_with_pytree_params(name):
    """Every model through @kiln.jax.jit, its parameters passed as a pytree (dict) argument."""
    fn, shape, p = ZOO[name]()
    jitted = kiln.jax.jit(lambda x, params: fn(x, params))
    x = _x(shape, 2, 7)
    assert_matches(jitted(x, p), jax.jit(fn)(x, p))
    assert_matches(jitted(2 * x, p), jax.jit(fn)(2 * x, p))
    assert jitted.cache_size() == 1
