"""CompiledModel's input checks, symbol binding and executor registry.

The dims tests use a numpy executor registered from the test, which also shows CompiledModel has no
cpu specifics.
"""
import numpy as np
import pytest

import kiln
from kiln.compiler.artifact import build_manifest
from kiln.runtime import CompiledModel, register_executor
from kiln.runtime import module as runtime_module
from runtime_cases import expected, toy_artifact, toy_lib  # noqa: F401


@pytest.fixture()
def toy(toy_artifact):
    return kiln.load(toy_artifact)


@pytest.mark.parametrize("call, message", [
    (lambda m: m(), r"missing input\(s\) 'x'"),
    (lambda m: m(np.ones((1, 4), np.float32), np.ones(1)), r"takes 1 input\(s\) \(x\), got 2"),
    (lambda m: m.run({}), r"missing input\(s\) 'x'; the model's inputs are x: f32\[batch,4\]"),
    (lambda m: m.run({"x": np.ones((1, 4), np.float32), "z": 1}), r"unexpected input\(s\) 'z'"),
    (lambda m: m(np.ones((1, 4), np.float32), x=np.ones((1, 4), np.float32)), "'x' given both"),
    (lambda m: m(np.ones((2, 4))), r"input 'x': expected f32 \(float32\), got float64"),
    (lambda m: m(np.ones((2, 4), np.int32)), "input 'x': expected f32 .*got int32"),
    (lambda m: m(np.ones(4, np.float32)), r"input 'x': expected rank 2 \(shape \[batch, 4\]\), got rank 1"),
    (lambda m: m(np.ones((2, 3), np.float32)), "input 'x' dim 1: expected 4, got 3"),
    (lambda m: m([["a", "b", "c", "d"]]), "input 'x': expected f32"),
    (lambda m: m([[1.0, 2.0], [3.0]]), "input 'x': cannot read it as an array"),
])
def test_input_errors(toy, call, message):
    with pytest.raises(ValueError, match=message):
        call(toy)


def test_run_takes_a_dict(toy):
    with pytest.raises(TypeError, match="dict"):
        toy.run(np.ones((1, 4), np.float32))


def test_python_lists_and_scalars_convert(toy):
    x = [[1, 2, 3, 4], [0.5, 0.25, 0, -1]]
    np.testing.assert_array_equal(toy(x)[0], expected(np.array(x, np.float32)))


def test_non_contiguous_and_foreign_byte_order_inputs(toy):
    base = np.arange(32, dtype=np.float32).reshape(4, 8)
    x = base[:, ::2]  # strided view
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(toy(x)[0], expected(np.ascontiguousarray(x)))
    xt = np.arange(12, dtype=np.float32).reshape(4, 3).T  # transposed, shape (3, 4)
    np.testing.assert_array_equal(toy(xt)[0], expected(np.ascontiguousarray(xt)))
    big = np.arange(8, dtype=">f4").reshape(2, 4)
    np.testing.assert_array_equal(toy(big)[0], expected(big.astype(np.float32)))


def test_array_likes_are_strict_about_dtype(toy):
    class Tensor:  # stands in for a torch tensor: has __array__ and a dtype
        dtype = "float64"

        def __array__(self, dtype=None, copy=None):
            return np.ones((1, 4))

    with pytest.raises(ValueError, match="expected f32 .*got float64"):
        toy(Tensor())
    with pytest.raises(ValueError, match="got float64"):
        toy(np.float64(1.0).reshape(()) * np.ones((1, 4)))


# ---- symbolic dims, through a numpy executor ---------------------------------------------------


class NumpyExecutor:
    """out = concat of every input, flattened, into the first output: enough to check shapes and syms."""

    calls = []

    def __init__(self, manifest, members, num_threads, device):
        self.manifest = manifest

    def run(self, inputs, outputs, syms):
        NumpyExecutor.calls.append((tuple(a.shape for a in inputs), tuple(o.shape for o in outputs), syms.tolist()))
        for a in inputs:
            assert a.flags.c_contiguous and a.flags.aligned
        for o in outputs:
            o[...] = 0


def numpy_load(manifest, members, *, num_threads=None, device=None):
    return NumpyExecutor(manifest, members, num_threads, device)


@pytest.fixture()
def numpy_executor():
    register_executor("numpy-test", numpy_load)
    NumpyExecutor.calls.clear()
    yield NumpyExecutor.calls
    runtime_module._EXECUTORS.pop("numpy-test", None)


def _model(inputs, outputs, symbols=None):
    manifest = build_manifest({"name": "numpy", "executor": "numpy-test"}, inputs, outputs, symbols=symbols,
                              weights_size=None, header=None)
    return CompiledModel(manifest, {"model.so": b""})


def test_symbols_bind_in_manifest_order(numpy_executor):
    m = _model([("a", "f32", ["seq", "batch"]), ("b", "i64", ["batch"])],
               [("y", "f32", ["batch*seq", "batch+seq", 3])], symbols=["batch", "seq"])
    (y,) = m(np.zeros((5, 2), np.float32), np.zeros(2, np.int64))
    assert y.shape == (10, 7, 3)
    assert numpy_executor[-1][2] == [2, 5]  # batch, seq: the manifest's order, not the inputs'


def test_symbolic_dim_inconsistent(numpy_executor):
    m = _model([("x", "f32", ["batch", 4]), ("y", "f32", ["batch"])], [("z", "f32", ["batch"])])
    with pytest.raises(ValueError, match=r"input 'y' dim 0 is 'batch' = 2 from input 'x', got 3"):
        m(np.zeros((2, 4), np.float32), np.zeros(3, np.float32))


def test_polynomial_dims_checked_after_binding(numpy_executor):
    m = _model([("x", "f32", ["2*n"]), ("y", "f32", ["n", "n-1"])], [("z", "f32", ["n+1"])])
    (z,) = m(np.zeros(6, np.float32), np.zeros((3, 2), np.float32))
    assert z.shape == (4,)
    with pytest.raises(ValueError, match=r"input 'x' dim 0 is '2\*n' = 6 \(with n = 3\), got 7"):
        m(np.zeros(7, np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"input 'y' dim 1 is 'n-1' = 2 \(with n = 3\), got 5"):
        m(np.zeros(6, np.float32), np.zeros((3, 5), np.float32))


def test_symbols_solved_from_linear_dims(numpy_executor):
    m = _model([("x", "f32", ["2*n", "k+1"])], [("z", "f32", ["n", "k"])])
    (z,) = m(np.zeros((8, 3), np.float32))
    assert z.shape == (4, 2)
    assert numpy_executor[-1][2] == [4, 2]  # symbols in order of first appearance: n, k
    with pytest.raises(ValueError, match=r"input 'x' dim 0 is '2\*n': cannot determine n from a size of 7"):
        m(np.zeros((7, 3), np.float32))


def test_negative_output_size(numpy_executor):
    m = _model([("x", "f32", ["n"])], [("z", "f32", ["n-1"])])
    with pytest.raises(ValueError, match=r"output 'z' dim 0 is 'n-1' = -1 .*n = 0"):
        m(np.zeros(0, np.float32))


def test_static_model_without_symbols(numpy_executor):
    m = _model([("x", "i8", [2, 3])], [("z", "bool", [])])
    (z,) = m([[1, 2, 3], [4, 5, 6]])
    assert z.shape == () and z.dtype == np.bool_
    with pytest.raises(ValueError, match="input 'x': expected i8, and the values given do not fit it"):
        m([[1, 2, 3], [4, 5, 300]])
    with pytest.raises(ValueError, match="input 'x': expected i8 .*got float64"):
        m([[1.5, 2, 3], [4, 5, 6]])


def test_registered_executor_by_module_path(tmp_path, monkeypatch):
    (tmp_path / "my_kiln_executor.py").write_text(
        "from types import SimpleNamespace\n"
        "def load(manifest, members, *, num_threads=None, device=None):\n"
        "    return SimpleNamespace(run=lambda i, o, s: [x.fill(7) for x in o])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register_executor("mine", "my_kiln_executor")
    try:
        manifest = build_manifest({"executor": "mine"}, [("x", "f32", [2])], [("y", "f32", [2])],
                                  weights_size=None, header=None)
        model = CompiledModel(manifest, {"model.so": b""})
        np.testing.assert_array_equal(model([1.0, 2.0])[0], [7, 7])
        assert "mine" in repr(model)
    finally:
        runtime_module._EXECUTORS.pop("mine", None)


def test_register_executor_checks_its_arguments():
    with pytest.raises(TypeError, match="executor factory"):
        register_executor("bad", 42)
    with pytest.raises(ValueError):
        register_executor("", "x")


def test_gpu_executors_are_not_imported_for_cpu(toy_artifact):
    """In a fresh process (this one may have run the OpenCL tests): a cpu artifact loads and runs
    without importing the GPU executors or their device libraries."""
    import subprocess
    import sys

    code = ("import sys, numpy as np, kiln\n"
            f"m = kiln.load({str(toy_artifact)!r})\n"
            "heavy = [n for n in ('kiln.runtime.opencl', 'kiln.runtime.cuda', 'pyopencl', 'cuda') if n in sys.modules]\n"
            "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
