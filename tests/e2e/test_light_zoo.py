"""The light model-zoo graphs shipped inside the onnx package, interpreted by kiln and compared
with onnxruntime.

Their weights are ``ConstantOfShape`` placeholders; :func:`with_random_weights` replaces each with a
seeded random initializer scaled so activations stay of order one through the whole network.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import kiln  # noqa: E402
from kiln.frontends.onnx import from_onnx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import models as _models  # noqa: E402  (benchmarks/models.py: one home for the seeded weights)

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
          "squeezenet", "vgg19", "zfnet512"]


def with_random_weights(model, seed=0):
    """The benchmark's seeded weights (benchmarks/models.py), with the logits feeding the final softmax
    exposed as outputs too: a saturated softmax alone compares weakly."""
    out = _models.with_random_weights(model, seed)
    for n in out.graph.node:
        if n.op_type == "Softmax":
            out.graph.output.append(onnx.helper.make_empty_tensor_value_info(n.input[0]))
    return out


@pytest.mark.parametrize("name", MODELS)
def test_light_model_matches_onnxruntime(name):
    model = with_random_weights(onnx.load(str(LIGHT / f"light_{name}.onnx")))
    g = from_onnx(model)
    kiln.verify(g)
    (inp,) = g.inputs
    x = np.random.default_rng(1).standard_normal([int(d) for d in g.types[inp].shape]).astype(np.float32)
    got = list(kiln.interpret(g, [x]).values())
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x})
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.abs(b).max()))
