"""JAX functions that must fail to convert, with the message checked: the primitive, the line of user code."""
import inspect
import re

import numpy as np
import pytest

import kiln

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from kiln.frontends.jax import from_jax  # noqa: E402

X = np.ones((4, 4), np.float32)


def _line(fn, text):
    """The file line number of the line of ``fn``'s source containing ``text``."""
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_every_unsupported_primitive_listed_once_with_its_source_line():
    def model(x):
        inv = jnp.linalg.inv(x)
        spec = jnp.fft.fft(x).real
        again = jnp.fft.fft(x * 2).real  # fft a second time: still listed once
        loop = lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2), (0, x))[1]
        return inv + spec + again + loop

    with pytest.raises(kiln.UnsupportedOperatorError) as info:
        from_jax(model, (X,))
    err = info.value
    names = [u[0] for u in err.unsupported]
    assert names == ["lu", "custom_linear_solve", "fft", "real", "while"]
    where = {u[0]: u[3] for u in err.unsupported}
    assert where["lu"].startswith(f"test_jax_errors.py:{_line(model, 'jnp.linalg.inv')} in ")
    assert where["fft"].startswith(f"test_jax_errors.py:{_line(model, 'spec = ')} in ")
    assert where["while"].startswith(f"test_jax_errors.py:{_line(model, 'lax.while_loop')} in ")
    assert all(re.fullmatch(r"eqn \d+", u[2]) for u in err.unsupported)
    msg = str(err)
    assert "JAX function 'model' uses 5 unsupported operator(s)" in msg
    assert "fft, first at node 'eqn" in msg and "inv = jnp.linalg.inv(x)" in msg


def test_kiln_compile_reports_unsupported_primitives_before_compiling():
    def spectrum(x):
        return jnp.abs(jnp.fft.rfft(x))

    with pytest.raises(kiln.UnsupportedOperatorError, match=r"fft, first at node 'eqn \d+', from "
                                                            r"test_jax_errors.py:\d+ in spectrum"):
        kiln.compile(spectrum, example_inputs=(X,))


def test_supported_primitive_with_unsupported_arguments_names_it_and_the_line():
    def lexsort(a, b):
        return lax.sort((a, b), num_keys=2)

    with pytest.raises(kiln.ConversionError) as info:
        from_jax(lexsort, (X, X))
    msg = str(info.value)
    assert "JAX primitive 'sort'" in msg and "2 keys" in msg
    assert f"test_jax_errors.py:{_line(lexsort, 'lax.sort')} in lexsort" in msg


def test_scatter_with_its_own_update_function_is_refused_not_miscomputed():
    with pytest.raises(kiln.ConversionError, match=r"'scatter'.*\.at\[\.\.\.\]\.apply"):
        from_jax(lambda a: jnp.asarray(a).at[1].apply(jnp.sin), (X,))


def test_symbolic_dim_a_primitive_cannot_take():
    with pytest.raises(kiln.ConversionError, match=r"'sort'.*symbolic dim 'n'.*input_shapes"):
        from_jax(lambda a: jnp.sort(a, 0), (X,), input_shapes={"a": ["n", 4]})


def test_symbolic_dim_expression_kiln_cannot_express():
    with pytest.raises(kiln.ConversionError, match=r"floordiv\(n, 2\).*not a polynomial"):
        from_jax(lambda a: a[: a.shape[0] // 2], (X,), input_shapes={"a": ["n", 4]})


def test_function_that_cannot_trace_with_symbolic_dims():
    with pytest.raises(kiln.ConversionError, match=r"tracing JAX function '<lambda>' with symbolic dims "
                                                   r"a=\['n', '4'\] failed: InconclusiveDimensionOperation"):
        from_jax(lambda a: a.reshape(a.shape[0] // 2, -1), (X,), input_shapes={"a": ["n", 4]})


def test_non_array_argument():
    with pytest.raises(kiln.ConversionError, match=r"argument 'n' of the JAX function is a int, not an array"):
        from_jax(lambda x, n: x * n, (X, 3))
    with pytest.raises(kiln.ConversionError, match=r"argument 'cfg_1' of the JAX function is a str"):
        from_jax(lambda x, cfg: x, (X, {"a": X, "b": "relu"}))


def test_bad_input_shapes():
    with pytest.raises(ValueError, match=r"input_shapes names 'b', which the function does not take \(its inputs: a\)"):
        from_jax(lambda a: a, (X,), input_shapes={"b": ["n", 4]})
    with pytest.raises(ValueError, match=r"input_shapes\['a'\] = \['n'\] has 1 dims"):
        from_jax(lambda a: a, (X,), input_shapes={"a": ["n"]})
    with pytest.raises(ValueError, match=r"a dim is an int, None or a symbol name"):
        from_jax(lambda a: a, (X,), input_shapes={"a": ["2*n", 4]})


def test_missing_example_inputs():
    with pytest.raises(ValueError, match="example_inputs"):
        kiln.compile(lambda a: a)


def test_error_inside_the_users_function_is_reported_as_a_tracing_failure():
    def broken(x):
        return x @ np.ones((3, 3), np.float32)  # 4 columns @ 3 rows

    with pytest.raises(kiln.ConversionError, match=r"tracing JAX function 'broken' failed: TypeError"):
        from_jax(broken, (X,))
