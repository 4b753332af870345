"""Compile a JAX function with kiln: trace -> kiln IR -> native code -> a .kiln artifact -> kiln.load.

    python examples/jax_example.py

A small convnet written with jax.numpy / jax.lax (no flax) is compiled once with a symbolic batch
dim, saved, loaded back and compared with ``jax.jit`` at two batch sizes, with the median latency
of each. Then the same function through the ``@kiln.jax.jit`` decorator, which compiles on the
first call per input shape.
"""
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import kiln
import kiln.jax

DN = ("NHWC", "HWIO", "NHWC")  # the layout JAX/flax code usually uses


def init_params(seed=0):
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))).astype(np.float32)

    return {"conv1": w(3, 3, 3, 16), "conv2": w(3, 3, 16, 32), "dense": w(32, 10), "bias": np.zeros(10, np.float32)}


def convnet(params, x):
    """[batch, 32, 32, 3] images -> [batch, 10] class probabilities."""
    h = jax.nn.relu(lax.conv_general_dilated(x, params["conv1"], (1, 1), "SAME", dimension_numbers=DN))
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")  # 2x2 max pool
    h = jax.nn.relu(lax.conv_general_dilated(h, params["conv2"], (2, 2), "SAME", dimension_numbers=DN))
    h = h.mean(axis=(1, 2))  # global average pool
    return jax.nn.softmax(h @ params["dense"] + params["bias"])


def median_ms(fn, x, runs=30):
    fn(x)  # warm up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main():
    params = init_params()
    predict = lambda x: convnet(params, x)  # noqa: E731  (weights closed over: compiled in as constants)
    rng = np.random.default_rng(1)
    example = rng.standard_normal((2, 32, 32, 3)).astype(np.float32)

    t0 = time.perf_counter()
    model = kiln.compile(predict, example_inputs=(example,), input_shapes={"x": ["batch", 32, 32, 3]})
    print(f"kiln.compile: {time.perf_counter() - t0:.2f} s, input {model.graph.types['x']}")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "convnet.kiln"
        model.save(path)
        print(f"saved {path.name}: {path.stat().st_size / 1e3:.1f} kB")
        loaded = kiln.load(path)

    jax_fn = jax.jit(predict)
    for batch in (1, 8):
        x = rng.standard_normal((batch, 32, 32, 3)).astype(np.float32)
        (y,) = loaded(x)
        want = np.asarray(jax_fn(x))
        err = np.abs(y - want).max()
        t_kiln = median_ms(lambda v: loaded(v), x)
        t_jax = median_ms(lambda v: jax_fn(v).block_until_ready(), x)
        print(f"batch {batch}: max |kiln - jax| = {err:.1e}  top-1 {y.argmax(-1).tolist()[:8]}  "
              f"median latency: kiln {t_kiln:.3f} ms, jax.jit {t_jax:.3f} ms")
        assert err < 1e-4, "kiln and JAX disagree"

    # the decorator: compiles on the first call per input signature (shapes, dtypes, pytree structure)
    @kiln.jax.jit
    def classify(params, x):
        return jnp.argmax(convnet(params, x), axis=-1)

    x = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    labels = classify(params, x)
    assert np.array_equal(labels, np.asarray(jnp.argmax(jax_fn(x), -1)))
    classify(params, x + 1)  # same signature: no recompilation
    print(f"@kiln.jax.jit: labels {labels.tolist()}, {classify.cache_size()} compiled signature(s)")


if __name__ == "__main__":
    main()
