"""``kiln.jax.jit``: compile per input signature, cache, pytrees in and out, static arguments."""
from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import kiln  # noqa: E402
import kiln.jax  # noqa: E402

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 3)).astype(np.float32)


def test_decorator_without_arguments_compiles_once_per_signature():
    @kiln.jax.jit
    def f(x):
        return jnp.tanh(x @ W) * 2

    x = RNG.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(f(x), jnp.tanh(x @ W) * 2, rtol=1e-5, atol=1e-6)
    assert f.cache_size() == 1
    f(x + 1)
    f(jnp.asarray(x))  # a JAX array of the same shape and dtype: the same signature
    assert f.cache_size() == 1
    y = f(RNG.standard_normal((5, 4)).astype(np.float32))  # a new shape compiles once more
    assert y.shape == (5, 3) and isinstance(y, np.ndarray)
    assert f.cache_size() == 2
    f(np.zeros((5, 4), np.float32))
    assert f.cache_size() == 2
    assert f.__name__ == "f"


def test_decorator_with_options_and_pytree_output():
    @kiln.jax.jit(target="cpu", opt_level=1)
    def f(params, x):
        h = x @ params["w"] + params["b"]
        return {"h": h, "parts": (h.sum(), jnp.argmax(h, -1))}

    params = {"w": W, "b": np.ones(3, np.float32)}
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    out = f(params, x)
    assert set(out) == {"h", "parts"} and isinstance(out["parts"], tuple)
    h = x @ W + 1
    np.testing.assert_allclose(out["h"], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["parts"][0], h.sum(), rtol=1e-5)
    np.testing.assert_array_equal(out["parts"][1], np.argmax(h, -1).astype(np.int32))
    f({"w": W[:, :2], "b": np.ones(2, np.float32)}, x)  # another leaf shape: another signature
    assert f.cache_size() == 2


def test_dtype_is_part_of_the_signature_and_inputs_follow_jax_dtypes():
    @kiln.jax.jit
    def f(x):
        return x * 2

    assert f(np.arange(3, dtype=np.int32)).dtype == np.int32
    assert f(np.arange(3, dtype=np.float32)).dtype == np.float32
    assert f.cache_size() == 2
    out = f(np.arange(3, dtype=np.float64))  # JAX (without x64) computes float64 inputs in float32
    assert out.dtype == np.float32


def test_static_argnums_and_keyword_arrays():
    @kiln.jax.jit(static_argnums=1)
    def f(x, n, *, scale):
        return (x ** n) * scale

    x = RNG.uniform(0.5, 1.5, (3,)).astype(np.float32)
    s = np.float32(2.0) * np.ones((), np.float32)
    np.testing.assert_allclose(f(x, 3, scale=s), x ** 3 * 2, rtol=1e-5)
    np.testing.assert_allclose(f(x, 2, scale=s), x ** 2 * 2, rtol=1e-5)
    assert f.cache_size() == 2
    f(x, 3, scale=s)
    assert f.cache_size() == 2


def test_non_array_argument_is_a_clear_error():
    @kiln.jax.jit
    def f(x, n):
        return x * n

    with pytest.raises(kiln.ConversionError, match=r"argument leaf 1 is a int, not an array.*static_argnums"):
        f(np.ones(3, np.float32), 3)
    assert f.cache_size() == 0
