"""Whole models compiled for CUDA: SqueezeNet, ResNet-50 and ShuffleNet (the onnx package's light zoo
with seeded random weights, benchmarks/models.py) and the MiniLM-shaped BERT encoder (symbolic batch).
Each is compiled once for ``sm_80``; ``ptxas`` must accept its ``model.ptx`` for sm_80 and sm_90
(ptxas missing: skipped). On a machine with a CUDA device the model also runs and must match
onnxruntime within 1e-3 relative (the BERT encoder at two batch sizes); without one that part skips.
The artifact round trip (save, load without touching a device) is checked on SqueezeNet.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import kiln  # noqa: E402
from kiln.targets import ptxas  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import models as _models  # noqa: E402

RTOL = 1e-3


def have_device() -> bool:
    try:
        from kiln.runtime import cuda

        return cuda.device_count() > 0
    except Exception:
        return False


def _ort(model):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def assert_matches(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * float(np.abs(b).max()))


def assembles(compiled):
    if ptxas.find() is None:
        return False
    assert compiled.manifest["binary"] == "model.ptx"
    ptx = bytes(compiled._members["model.ptx"])
    for sm in ("sm_80", "sm_90"):
        ptxas.validate(ptx, sm)
    return True


def _image_input(compiled, seed):
    spec = compiled.inputs[0]
    return spec, np.random.default_rng(seed).standard_normal([int(d) for d in spec.shape]).astype(np.float32)


@pytest.mark.parametrize("name", ["squeezenet", "resnet50", "shufflenet"])
def test_light_zoo_model(name, tmp_path):
    model = _models.light_zoo(name)
    compiled = kiln.compile(model, target="cuda", progress=False)
    checked = assembles(compiled)
    if name == "squeezenet":  # the artifact round trip needs no device: it opens at the first call
        path = tmp_path / "m.kiln"
        compiled.save(path)
        loaded = kiln.load(path)
        assert loaded.target["name"] == "cuda" and loaded.manifest["binary"] == "model.ptx"
        compiled = loaded
    if not have_device():
        if not checked:
            pytest.skip("neither ptxas nor a CUDA device")
        return
    spec, x = _image_input(compiled, 1)
    assert_matches(compiled(x), _ort(model).run(None, {spec.name: x}))


def test_bert_encoder():
    model = _models.bert_encoder()  # MiniLM-L6: 6 layers, hidden 384, 12 heads, seq 128, symbolic batch
    compiled = kiln.compile(model, target="cuda", progress=False)
    checked = assembles(compiled)
    if not have_device():
        if not checked:
            pytest.skip("neither ptxas nor a CUDA device")
        return
    sess = _ort(model)
    for batch in (1, 3):
        feeds = _models.bert_inputs(batch=batch)
        assert_matches(list(compiled.run(feeds).values()), sess.run(None, feeds))


def test_without_a_device_the_first_call_says_so():
    if have_device():
        pytest.skip("a CUDA device is present")
    b = kiln.ir.GraphBuilder("relu")
    x = b.input("x", "f32", (4,))
    compiled = kiln.compile(b.build([b.op("relu", x)]), target="cuda", progress=False)
    with pytest.raises((RuntimeError, kiln.ArtifactError, ValueError), match="CUDA|cuda"):
        compiled(np.ones(4, np.float32))
