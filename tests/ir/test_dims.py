"""kiln.ir.dims helpers: upper_bound_max."""
from hypothesis import given, strategies as st

from kiln.ir import dims


def test_upper_bound_max_examples():
    assert dims.upper_bound_max(3, 5) == 5
    assert dims.upper_bound_max(-3, -5) == 0
    assert dims.upper_bound_max("4*n-4", "2*n+8") == "4*n+8"
    assert dims.upper_bound_max("batch", 64) == "batch+64"
    assert dims.upper_bound_max("2*batch*seq", "3*batch") == "3*batch+2*batch*seq"
    assert dims.upper_bound_max("n-1", 0) == "n"  # negative terms dropped
    assert dims.upper_bound_max("7*n", "7*n") == "7*n"


_MONOS = ["n", "m", "n*m", "n*n"]


@st.composite
def polys(draw):
    d = draw(st.integers(-50, 50))
    for mono in draw(st.lists(st.sampled_from(_MONOS), max_size=3, unique=True)):
        d = dims.add(d, dims.mul(draw(st.integers(-20, 20)), mono))
    return d


@given(polys(), polys(), st.integers(1, 100), st.integers(1, 100))
def test_upper_bound_max_bounds_both_for_symbols_at_least_one(a, b, n, m):
    env = {"n": n, "m": m}
    ub = dims.upper_bound_max(a, b)
    assert dims.evaluate(ub, env) >= max(dims.evaluate(a, env), dims.evaluate(b, env), 0)
    assert dims.upper_bound_max(a, b) == dims.upper_bound_max(b, a)
    assert dims.upper_bound_max(ub, a) == ub  # idempotent on its own result
