"""Whole models compiled for OpenCL, run on a real device (PoCL in CI) and matched against onnxruntime
within 1e-3 relative: SqueezeNet, ResNet-50 and ShuffleNet from the onnx package's light zoo (seeded
random weights, benchmarks/models.py) and a BERT encoder shaped like MiniLM-L6 with a symbolic batch,
run at two batch sizes. Each model is compiled once per module; the artifact round trip and device
selection are checked on SqueezeNet.

Cold, PoCL compiles each kernel at its first launch (~0.1 s per kernel, ~130 kernels for ResNet-50);
its kernel cache (``~/.cache/pocl``, ``POCL_CACHE_DIR``) makes later runs fast.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyopencl")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import kiln  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import models as _models  # noqa: E402  (benchmarks/models.py: one home for the seeded weights)


def _have_device() -> bool:
    from kiln.runtime import opencl

    try:
        return bool(opencl.devices())
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _have_device(), reason="no OpenCL device")
RTOL = 1e-3


def _ort(model):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def assert_matches(got, want):
    """Within 1e-3 of the reference, relative to the output's largest magnitude."""
    assert len(got) == len(want)
    for a, b in zip(got, want):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * float(np.abs(b).max()))


@pytest.fixture(scope="module")
def squeezenet():
    model = _models.light_zoo("squeezenet")
    return model, kiln.compile(model, target="opencl", progress=False)


@pytest.mark.parametrize("name", ["resnet50", "shufflenet"])
def test_light_zoo_model_matches_onnxruntime(name):
    model = _models.light_zoo(name)
    compiled = kiln.compile(model, target="opencl", progress=False)
    spec = compiled.inputs[0]
    x = np.random.default_rng(1).standard_normal([int(d) for d in spec.shape]).astype(np.float32)
    assert_matches(compiled(x), _ort(model).run(None, {spec.name: x}))


def test_squeezenet_matches_onnxruntime_and_round_trips(squeezenet, tmp_path, monkeypatch):
    model, compiled = squeezenet
    spec = compiled.inputs[0]
    x = np.random.default_rng(2).standard_normal([int(d) for d in spec.shape]).astype(np.float32)
    want = _ort(model).run(None, {spec.name: x})
    got = compiled(x)
    assert_matches(got, want)
    assert compiled.target["name"] == "opencl" and compiled.manifest["binary"] == "model.cl"
    path = tmp_path / "squeezenet.kiln"
    compiled.save(path)
    loaded = kiln.load(path, device="opencl:0")
    for a, b in zip(loaded(x), got):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setenv("KILN_OPENCL_DEVICE", "opencl:0")
    for a, b in zip(kiln.load(path)(x), got):
        np.testing.assert_array_equal(a, b)


def test_unknown_devices_are_refused_by_name(squeezenet, tmp_path):
    _, compiled = squeezenet
    path = tmp_path / "m.kiln"
    compiled.save(path)
    with pytest.raises(ValueError, match=r"no OpenCL device 'opencl:99'; available: opencl:0"):
        kiln.load(path, device="opencl:99")
    with pytest.raises(ValueError, match=r"must be 'opencl:N'"):
        kiln.load(path, device="cuda:0")


@pytest.fixture(scope="module")
def bert():
    model = _models.bert_encoder()  # MiniLM-L6: 6 layers, hidden 384, 12 heads, seq 128, symbolic batch
    return model, kiln.compile(model, target="opencl", progress=False)


@pytest.mark.parametrize("batch", [1, 3])
def test_bert_encoder_matches_onnxruntime(bert, batch):
    model, compiled = bert
    feeds = _models.bert_inputs(batch=batch)
    want = _ort(model).run(None, feeds)
    got = list(compiled.run(feeds).values())
    assert_matches(got, want)
