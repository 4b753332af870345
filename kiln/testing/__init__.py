"""Property-based testing for kiln graphs: hypothesis strategies and an equivalence check.

    from hypothesis import given
    import kiln.testing as kt

    @given(kt.graphs())
    def test_pass_preserves_semantics(g):
        kt.check_pass(MyPass(), g)   # verifies, checks the input is untouched, compares outputs

Importing this module imports hypothesis (``import kiln`` does not).
"""
from .equivalence import (assert_equivalent, assert_rewrites, check_compiled, check_pass, compare_outputs,
                          signature_diff)
from .strategies import DEFAULT_DTYPES, RECIPES, graphs, inputs_for, random_inputs, supported_ops

__all__ = ["graphs", "inputs_for", "random_inputs", "assert_equivalent", "assert_rewrites", "check_pass", "check_compiled", "compare_outputs", "signature_diff",
           "supported_ops", "RECIPES", "DEFAULT_DTYPES"]
