"""ONNX signal processing: DFT, STFT, Hann/Hamming/Blackman windows and MelWeightMatrix.

Each case builds a one-node model, converts it with ``from_onnx``, runs it with
``kiln.interpret`` and compares with onnxruntime, or with numpy's FFT where onnxruntime lacks the
behaviour (the inverse real FFT, run-time axes). Static sizes must fold into constants; sizes fed
at run time must still work.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto  # noqa: E402

import kiln  # noqa: E402
from kiln.errors import ConversionError  # noqa: E402
from kiln.frontends.onnx import from_onnx  # noqa: E402
import onnx_cases  # noqa: E402
from onnx_cases import make_model, run_ort  # noqa: E402

RNG = np.random.default_rng(0)


check = functools.partial(onnx_cases.check, rtol=1e-4, atol=1e-4)


def as_pairs(z):
    """A complex array as ONNX's [..., 2] real/imaginary layout (float32)."""
    return np.stack([z.real, z.imag], axis=-1).astype(np.float32)


# --- DFT ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inverse,onesided,complex_in", [(0, 0, False), (0, 1, False), (0, 0, True),
                                                         (1, 0, True)])
@pytest.mark.parametrize("opset", [17, 20])
def test_dft_matches_onnxruntime(opset, inverse, onesided, complex_in):
    x = RNG.standard_normal((2, 12, 3, 2 if complex_in else 1)).astype(np.float32)
    inputs = {"x": x}
    if opset >= 20:
        inputs.update({"": None, "axis": np.array(1, np.int64)})
        check("DFT", inputs, opset, initializers=("axis",), inverse=inverse, onesided=onesided)
    else:
        check("DFT", inputs, opset, inverse=inverse, onesided=onesided, axis=1)


@pytest.mark.parametrize("length", [7, 12, 16])
def test_dft_length_cuts_or_pads(length):
    x = RNG.standard_normal((3, 12, 1)).astype(np.float32)
    inputs = {"x": x, "n": np.array(length, np.int64)}
    (got,) = check("DFT", inputs, 17, initializers=("n",), axis=1)
    np.testing.assert_allclose(got, as_pairs(np.fft.fft(x[..., 0], n=length, axis=1)), rtol=1e-4, atol=1e-4)


def test_dft_20_default_axis_and_negative_axis():
    x = RNG.standard_normal((2, 5, 6, 2)).astype(np.float32)
    z = x[..., 0] + 1j * x[..., 1]
    want = as_pairs(np.fft.fft(z, axis=2))
    check("DFT", {"x": x}, 20, expected=[want])
    check("DFT", {"x": x, "": None, "axis": np.array(-3, np.int64)}, 20, initializers=("axis",),
          expected=[as_pairs(np.fft.fft(z, axis=1))])


def test_inverse_real_fft():
    sig = RNG.standard_normal((4, 10))
    spec = np.fft.rfft(sig, axis=1)
    x = as_pairs(spec)
    check("DFT", {"x": x}, 17, expected=[sig[..., None].astype(np.float32)], axis=1, inverse=1, onesided=1)
    # an odd length given explicitly: bins 0 .. 4 of a 9-point spectrum
    want = np.fft.irfft(spec, n=9, axis=1)[..., None].astype(np.float32)
    check("DFT", {"x": x, "n": np.array(9, np.int64)}, 17, initializers=("n",), expected=[want],
          axis=1, inverse=1, onesided=1)


def test_dft_folds_to_matrix_constants():
    x = RNG.standard_normal((1, 8, 1)).astype(np.float32)
    g = from_onnx(make_model("DFT", {"x": x}, 17, axis=1))
    assert {n.op for n in g.nodes} <= {"matmul", "concat", "transpose", "slice", "sub", "add"}
    assert sum(n.op == "matmul" for n in g.nodes) == 2


def test_dft_symbolic_batch():
    x = RNG.standard_normal((3, 8, 2)).astype(np.float32)
    model = make_model("DFT", {"x": x}, 17, shapes={"x": ["N", 8, 2]}, axis=1)
    g = from_onnx(model)
    assert kiln.ir.dims.UNKNOWN not in g.types[g.outputs[0]].shape
    got = list(kiln.interpret(g, [x]).values())[0]
    np.testing.assert_allclose(got, run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_dft_20_run_time_axis():
    x = RNG.standard_normal((2, 6, 5, 2)).astype(np.float32)
    z = x[..., 0] + 1j * x[..., 1]
    model = make_model("DFT", {"x": x, "": None, "axis": np.array(0, np.int64)}, 20)
    g = from_onnx(model)
    assert any(n.op == "if" for n in g.nodes)
    for axis in (0, 1, 2, -2, -3):
        got = list(kiln.interpret(g, [x, np.array(axis, np.int64)]).values())[0]
        np.testing.assert_allclose(got, as_pairs(np.fft.fft(z, axis=axis % 4)), rtol=1e-4, atol=1e-4)
    # one-sided: the output length depends on the axis, so that dim is known only at run time
    model = make_model("DFT", {"x": x[..., :1], "": None, "axis": np.array(0, np.int64)}, 20, onesided=1)
    g = from_onnx(model)
    got = list(kiln.interpret(g, [x[..., :1].copy(), np.array(2, np.int64)]).values())[0]
    np.testing.assert_allclose(got, as_pairs(np.fft.rfft(x[..., 0], axis=2)), rtol=1e-4, atol=1e-4)


def test_dft_run_time_length():
    x = RNG.standard_normal((2, 8, 1)).astype(np.float32)
    g = from_onnx(make_model("DFT", {"x": x, "n": np.array(8, np.int64)}, 17, axis=1))
    for n in (5, 8, 11):
        got = list(kiln.interpret(g, [x, np.array(n, np.int64)]).values())[0]
        np.testing.assert_allclose(got, as_pairs(np.fft.fft(x[..., 0], n=n, axis=1)), rtol=1e-4, atol=1e-4)


def test_dft_float64_and_float16():
    x = RNG.standard_normal((2, 16, 2))
    z = x[..., 0] + 1j * x[..., 1]
    want = np.stack([np.fft.fft(z, axis=1).real, np.fft.fft(z, axis=1).imag], -1)
    (got,) = check("DFT", {"x": x}, 17, expected=[want], rtol=1e-10, atol=1e-10, axis=1)
    assert got.dtype == np.float64
    h = x.astype(np.float16)
    (got,) = check("DFT", {"x": h}, 17, expected=[as_pairs(np.fft.fft(z, axis=1)).astype(np.float16)],
                   rtol=2e-2, atol=2e-2, axis=1)


@pytest.mark.parametrize("x,attrs,match", [
    (np.zeros((2, 4, 3), np.float32), {"axis": 1}, "last dim"),
    (np.zeros((2, 4, 1), np.float32), {"axis": 2}, "out of range"),
    (np.zeros((2, 4, 1), np.int32), {"axis": 1}, "float"),
])
def test_dft_errors(x, attrs, match):
    with pytest.raises(ConversionError, match=match):
        from_onnx(make_model("DFT", {"x": x}, 17, **attrs))


# --- STFT -----------------------------------------------------------------------------------------


def _stft_numpy(x, step, window, length, onesided=True):
    frames = [x[:, s:s + length] for s in range(0, x.shape[1] - length + 1, step)]
    w = np.ones(length) if window is None else window
    if not frames:
        return np.zeros((x.shape[0], 0, length), np.complex128)
    spec = np.stack([np.fft.fft(f * w, axis=1) for f in frames], axis=1)
    return spec[:, :, :length // 2 + 1] if onesided else spec


@pytest.mark.parametrize("const_sizes", [True, False])
def test_stft_matches_onnxruntime(const_sizes):
    x = RNG.standard_normal((2, 64, 1)).astype(np.float32)
    inputs = {"x": x, "step": np.array(6, np.int64), "": None, "length": np.array(16, np.int64)}
    (got,) = check("STFT", inputs, 17, initializers=("step", "length") if const_sizes else ())
    np.testing.assert_allclose(got, as_pairs(_stft_numpy(x[..., 0], 6, None, 16)), rtol=1e-4, atol=1e-4)


def test_stft_with_window_and_two_sided():
    x = RNG.standard_normal((1, 50, 1)).astype(np.float32)
    window = np.hanning(10).astype(np.float32)
    inputs = {"x": x, "step": np.array(4, np.int64), "w": window}
    check("STFT", inputs, 17, initializers=("step",))
    check("STFT", inputs, 17, initializers=("step",), onesided=0)


def test_stft_complex_signal():
    x = RNG.standard_normal((2, 40, 2)).astype(np.float32)
    z = x[..., 0] + 1j * x[..., 1]
    window = np.hamming(8).astype(np.float32)
    want = as_pairs(_stft_numpy(z, 5, window, 8, onesided=False))
    check("STFT", {"x": x, "step": np.array(5, np.int64), "w": window}, 17, initializers=("step", "w"),
          expected=[want], onesided=0)


def test_stft_errors():
    x = np.zeros((2, 40), np.float32)
    with pytest.raises(ConversionError, match=r"\[batch, length, 1 or 2\]"):
        from_onnx(make_model("STFT", {"x": x, "step": np.array(4, np.int64)}, 17, 
                             initializers=("step",)))
    x = np.zeros((2, 40, 1), np.float32)
    with pytest.raises(ConversionError, match="differs from the window"):
        from_onnx(make_model("STFT", {"x": x, "step": np.array(4, np.int64), "w": np.ones(8, np.float32),
                                      "n": np.array(6, np.int64)}, 17,
                             initializers=("step", "n")))


# --- windows ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("op_type", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.DOUBLE])
def test_windows_match_onnxruntime(op_type, periodic, dtype):
    size = np.array(11, np.int64)
    check(op_type, {"size": size}, 17, periodic=periodic, output_datatype=dtype, rtol=1e-6, atol=1e-6)


def test_window_with_constant_size_is_a_constant():
    g = from_onnx(make_model("HannWindow", {"size": np.array(8, np.int32)}, 17,
                             initializers=("size",)))
    assert not g.nodes
    (value,) = g.constants.values()
    np.testing.assert_allclose(value, np.hanning(9)[:8], atol=1e-6)


# --- MelWeightMatrix ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n_mel,dft_length,rate,lo,hi", [(8, 16, 8192, 0.0, 4096.0), (10, 64, 16000, 20.0, 7600.0),
                                                          (5, 32, 22050, 100.0, 11025.0)])
def test_mel_weight_matrix(n_mel, dft_length, rate, lo, hi):
    inputs = {"m": np.array(n_mel, np.int64), "n": np.array(dft_length, np.int64), "r": np.array(rate, np.int64),
              "lo": np.array(lo, np.float32), "hi": np.array(hi, np.float32)}
    check("MelWeightMatrix", inputs, 17, rtol=1e-6, atol=1e-6)
    # all constant: the matrix itself is a constant
    g = from_onnx(make_model("MelWeightMatrix", inputs, 17, initializers=tuple(inputs)))
    assert not g.nodes


def test_symbolic_signal_length():
    """A signal axis of run-time length: the cos/sin matrices and the frame count are run-time values."""
    x = RNG.standard_normal((2, 50, 1)).astype(np.float32)
    window = np.hanning(10).astype(np.float32)
    model = make_model("STFT", {"x": x, "step": np.array(4, np.int64), "w": window}, 17,
                       initializers=("step",), shapes={"x": ["B", "L", 1]})
    g = from_onnx(model)
    for length in (50, 33):
        xx = RNG.standard_normal((2, length, 1)).astype(np.float32)
        got = list(kiln.interpret(g, [xx, window]).values())[0]
        np.testing.assert_allclose(got, run_ort(model, {"x": xx, "w": window})[0], rtol=1e-4, atol=1e-4)
    g = from_onnx(make_model("DFT", {"x": x}, 17, shapes={"x": ["B", "L", 1]}, axis=1, onesided=1))
    xx = RNG.standard_normal((2, 21, 1)).astype(np.float32)
    got = list(kiln.interpret(g, [xx]).values())[0]
    np.testing.assert_allclose(got, as_pairs(np.fft.rfft(xx[..., 0], axis=1)), rtol=1e-4, atol=1e-4)


def test_stft_frame_count_at_run_time():
    """frame_step and frame_length fed at run time; a signal shorter than a frame has no frames."""
    x = RNG.standard_normal((1, 40, 1)).astype(np.float32)
    model = make_model("STFT", {"x": x, "step": np.array(4, np.int64), "": None, "n": np.array(16, np.int64)}, 17,
                       shapes={"x": [1, "L", 1]})
    g = from_onnx(model)
    for length, step, n in ((40, 4, 16), (19, 3, 8), (10, 4, 16)):
        xx = RNG.standard_normal((1, length, 1)).astype(np.float32)
        got = list(kiln.interpret(g, [xx, np.array(step, np.int64), np.array(n, np.int64)]).values())[0]
        want = _stft_numpy(xx[..., 0], step, None, n)
        assert got.shape == (1, want.shape[1], n // 2 + 1, 2)
        np.testing.assert_allclose(got, as_pairs(want).reshape(got.shape), rtol=1e-4, atol=1e-4)
