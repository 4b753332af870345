"""The light model-zoo graphs shipped inside the onnx package, interpreted by kiln and compared
with onnxruntime.

Their weights are ``ConstantOfShape`` placeholders; :func:`with_random_weights` replaces each with a
seeded random initializer scaled so activations stay of order one through the whole network.
"""
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import kiln  # noqa: E402
from kiln.frontends.onnx import from_onnx  # noqa: E402

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
          "squeezenet", "vgg19", "zfnet512"]


def with_random_weights(model, seed=0):
    """Replace every ConstantOfShape fed by an initializer with a seeded random initializer."""
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consumers = {}
    for n in model.graph.node:
        for k, i in enumerate(n.input):
            consumers.setdefault(i, []).append((n.op_type, k))
    keep, new_inits = [], []
    for n in model.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = tuple(int(d) for d in inits[n.input[0]])
            roles = consumers.get(n.output[0], [])
            if any(op == "BatchNormalization" and k in (1, 4) for op, k in roles):
                arr = rng.uniform(0.5, 1.5, shape)  # scale and variance: positive
            elif any(op == "BatchNormalization" for op, _ in roles) or len(shape) <= 1:
                arr = rng.uniform(-0.1, 0.1, shape)  # biases, means, shifts
            else:
                fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
                arr = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
            new_inits.append(numpy_helper.from_array(arr.astype(np.float32), n.output[0]))
        else:
            keep.append(n)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(keep)
    out.graph.initializer.extend(new_inits)
    used = {i for n in keep for i in n.input}
    live = [t for t in out.graph.initializer if t.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(live)
    live_names = {t.name for t in live}
    inputs = [i for i in out.graph.input if i.name in live_names or i.name not in inits]
    del out.graph.input[:]
    out.graph.input.extend(inputs)
    # also expose the logits feeding the final softmax: a saturated softmax alone compares weakly
    for n in keep:
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
