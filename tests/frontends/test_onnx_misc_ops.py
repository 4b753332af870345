"""ONNX optimizer updates (ai.onnx.preview.training), NonMaxSuppression and TfIdfVectorizer.

NonMaxSuppression and TfIdfVectorizer are compared with onnxruntime; the training-domain ops,
which onnxruntime's inference build lacks, with the update rules of the ONNX spec written out
in numpy here.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import kiln  # noqa: E402
from kiln.errors import ConversionError  # noqa: E402
from kiln.frontends.onnx import from_onnx  # noqa: E402
from onnx_cases import make_model, run_kiln, run_ort  # noqa: E402

RNG = np.random.default_rng(0)
TRAINING = "ai.onnx.preview.training"


# --- optimizer updates --------------------------------------------------------------------------


def _tensors(n, shape=(3, 4), dtype=np.float32):
    return [RNG.standard_normal(shape).astype(dtype) for _ in range(n)]


def _run_training(op_type, groups, r, t, outputs, **attrs):
    inputs = {"R": np.array(r, np.float32), "T": np.array(t, np.int64)}
    for kind, arrays in groups.items():
        for i, a in enumerate(arrays):
            inputs[f"{kind}{i}"] = a
    model = make_model(op_type, inputs, 17, outputs, domain=TRAINING, **attrs)
    return run_kiln(model, inputs)


@pytest.mark.parametrize("n", [1, 3])
def test_adagrad(n):
    xs, gs, hs = _tensors(n), _tensors(n), [np.abs(a) for a in _tensors(n)]
    outs = [f"x{i}_new" for i in range(n)] + [f"h{i}_new" for i in range(n)]
    got = _run_training("Adagrad", {"X": xs, "G": gs, "H": hs}, 0.1, 3, outs,
                        decay_factor=0.1, epsilon=1e-5, norm_coefficient=0.01)
    for i in range(n):
        r = 0.1 / (1 + 3 * 0.1)
        g = 0.01 * xs[i] + gs[i]
        h = hs[i] + g * g
        np.testing.assert_allclose(got[i], xs[i] - r * g / (np.sqrt(h) + 1e-5), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[n + i], h, rtol=1e-5, atol=1e-6)
        assert got[i].dtype == np.float32


@pytest.mark.parametrize("mode", ["standard", "nesterov"])
@pytest.mark.parametrize("t", [0, 5])
def test_momentum(mode, t):
    n = 2
    xs, gs, vs = _tensors(n), _tensors(n), _tensors(n)
    outs = [f"x{i}_new" for i in range(n)] + [f"v{i}_new" for i in range(n)]
    got = _run_training("Momentum", {"X": xs, "G": gs, "V": vs}, 0.05, t, outs,
                        alpha=0.9, beta=0.2, mode=mode, norm_coefficient=0.001)
    for i in range(n):
        g = 0.001 * xs[i] + gs[i]
        v = 0.9 * vs[i] + (0.2 if t > 0 else 1.0) * g
        x = xs[i] - 0.05 * (v if mode == "standard" else g + 0.9 * v)
        np.testing.assert_allclose(got[i], x, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[n + i], v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("t", [0, 4])
def test_adam(t):
    n = 2
    xs, gs, vs, hs = _tensors(n), _tensors(n), _tensors(n), [np.abs(a) for a in _tensors(n)]
    outs = [f"x{i}_new" for i in range(n)] + [f"v{i}_new" for i in range(n)] + [f"h{i}_new" for i in range(n)]
    got = _run_training("Adam", {"X": xs, "G": gs, "V": vs, "H": hs}, 0.01, t, outs,
                        alpha=0.8, beta=0.95, epsilon=1e-6, norm_coefficient=0.02, norm_coefficient_post=0.1)
    for i in range(n):
        g = 0.02 * xs[i] + gs[i]
        v = 0.8 * vs[i] + 0.2 * g
        h = 0.95 * hs[i] + 0.05 * g * g
        r = 0.01 * np.sqrt(1 - 0.95 ** t) / (1 - 0.8 ** t) if t > 0 else 0.01
        x = 0.9 * (xs[i] - r * v / (np.sqrt(h) + 1e-6))
        np.testing.assert_allclose(got[i], x, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[n + i], v, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[2 * n + i], h, rtol=1e-5, atol=1e-6)


def test_training_input_count_is_checked():
    inputs = {"R": np.array(0.1, np.float32), "T": np.array(1, np.int64), "X": _tensors(1)[0],
              "G": _tensors(1)[0]}
    with pytest.raises(ConversionError, match="3 inputs per optimized tensor"):
        from_onnx(make_model("Adagrad", inputs, 17, ("a", "b"), domain=TRAINING))


# --- NonMaxSuppression ----------------------------------------------------------------------------


def _boxes(batch, n, center):
    xy = RNG.uniform(0, 10, (batch, n, 2)).astype(np.float32)
    wh = RNG.uniform(0.5, 4, (batch, n, 2)).astype(np.float32)
    if center:
        return np.concatenate([xy, wh], axis=2)
    corners = np.concatenate([xy, xy + wh], axis=2)
    flip = RNG.random((batch, n)) < 0.3  # corners in either order
    corners[flip] = corners[flip][:, [2, 3, 0, 1]]
    return corners


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("limit,iou,score", [(3, 0.3, None), (10, 0.5, 0.2), (2, 0.0, None), (50, 0.7, 0.9)])
def test_nms_matches_onnxruntime(center, limit, iou, score):
    boxes = _boxes(2, 20, center)
    scores = RNG.random((2, 3, 20)).astype(np.float32)
    inputs = {"boxes": boxes, "scores": scores, "m": np.array([limit], np.int64), "iou": np.array([iou], np.float32)}
    if score is not None:
        inputs["score"] = np.array([score], np.float32)
    model = make_model("NonMaxSuppression", inputs, opset=11, center_point_box=center)
    (got,) = run_kiln(model, inputs)
    (want,) = run_ort(model, inputs)
    assert got.dtype == np.int64 and got.shape[1] == 3
    np.testing.assert_array_equal(got, want)


def test_nms_ties_and_absent_inputs():
    boxes = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [5, 5, 6, 6], [0, 0, 1, 1.05]]], np.float32)
    scores = np.array([[[0.5, 0.5, 0.5, 0.9]]], np.float32)
    inputs = {"boxes": boxes, "scores": scores, "m": np.array([4], np.int64)}
    model = make_model("NonMaxSuppression", inputs, opset=11)
    (got,) = run_kiln(model, inputs)
    np.testing.assert_array_equal(got, run_ort(model, inputs)[0])
    # no max_output_boxes_per_class: nothing is selected
    (got,) = run_kiln(make_model("NonMaxSuppression", {"boxes": boxes, "scores": scores}, opset=11),
                      {"boxes": boxes, "scores": scores})
    assert got.shape == (0, 3) and got.dtype == np.int64


def test_nms_output_dim_is_run_time():
    boxes, scores = _boxes(1, 6, 0), RNG.random((1, 2, 6)).astype(np.float32)
    g = from_onnx(make_model("NonMaxSuppression", {"boxes": boxes, "scores": scores, "m": np.array([2], np.int64)},
                             opset=11, initializers=("m",)))
    (out,) = g.outputs
    assert not isinstance(g.types[out].shape[0], int) and g.types[out].shape[1] == 3
    assert [n.op for n in g.nodes] == ["non_max_suppression"]


def test_nms_errors():
    with pytest.raises(ConversionError, match=r"boxes must be \[batch, boxes, 4\]"):
        from_onnx(make_model("NonMaxSuppression", {"boxes": np.zeros((4, 4), np.float32),
                                                   "scores": np.zeros((1, 1, 4), np.float32)}, opset=11))
    with pytest.raises(ConversionError, match="center_point_box"):
        from_onnx(make_model("NonMaxSuppression", {"boxes": np.zeros((1, 4, 4), np.float32),
                                                   "scores": np.zeros((1, 1, 4), np.float32)}, opset=11,
                             center_point_box=2))


# --- TfIdfVectorizer ------------------------------------------------------------------------------

POOL = dict(ngram_counts=[0, 4], ngram_indexes=[0, 1, 2, 3, 4, 5, 6], pool_int64s=[2, 3, 5, 4, 5, 6, 7, 8, 6, 7])


@pytest.mark.parametrize("mode,weights", [("TF", None), ("IDF", None), ("IDF", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]),
                                          ("TFIDF", [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])])
@pytest.mark.parametrize("lo,hi,skip", [(1, 1, 0), (1, 2, 0), (2, 2, 3), (1, 2, 5)])
@pytest.mark.parametrize("shape", [(12,), (2, 6)])
def test_tfidf_matches_onnxruntime(mode, weights, lo, hi, skip, shape):
    x = np.array([1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8], np.int32).reshape(shape)
    attrs = dict(POOL, mode=mode, min_gram_length=lo, max_gram_length=hi, max_skip_count=skip)
    if weights is not None:
        attrs["weights"] = weights
    model = make_model("TfIdfVectorizer", {"x": x}, opset=9, **attrs)
    (got,) = run_kiln(model, {"x": x})
    (want,) = run_ort(model, {"x": x})
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_tfidf_int64_tokens_fold_when_constant():
    x = RNG.integers(0, 9, (3, 10)).astype(np.int64)
    attrs = dict(POOL, mode="TF", min_gram_length=1, max_gram_length=2, max_skip_count=1)
    model = make_model("TfIdfVectorizer", {"x": x}, opset=9, **attrs)
    (want,) = run_ort(model, {"x": x})
    g = from_onnx(make_model("TfIdfVectorizer", {"x": x}, opset=9, initializers=("x",), **attrs))
    assert not g.nodes
    np.testing.assert_allclose(list(kiln.interpret(g, []).values())[0], want)


def test_tfidf_errors():
    x = np.zeros((2, 5), np.int64)
    attrs = dict(POOL, mode="TF", min_gram_length=1, max_gram_length=2, max_skip_count=0)
    with pytest.raises(ConversionError, match="row length .* must be known at compile time"):
        from_onnx(make_model("TfIdfVectorizer", {"x": x}, opset=9, shapes={"x": [2, "C"]}, **attrs))
    strs = dict(attrs)
    del strs["pool_int64s"]
    strs["pool_strings"] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    with pytest.raises(ConversionError, match="pool_strings"):
        from_onnx(make_model("TfIdfVectorizer", {"x": x}, opset=9, **strs))
    with pytest.raises(ConversionError, match="mode"):
        from_onnx(make_model("TfIdfVectorizer", {"x": x}, opset=9, **dict(attrs, mode="BM25")))


def test_nms_core_op_text_round_trip():
    text = """graph g(%b: f32[1, n, 4], %s: f32[1, 2, n]) {
  %m: i64[1] = const [3]
  %y: i64[y_d0, 3] = non_max_suppression(%b, %s, %m, none, none) {center_point_box=true}
  return %y
}"""
    g = kiln.parse(text)
    kiln.verify(g)
    assert str(kiln.parse(str(g))) == str(g)
    boxes = np.array([[[5, 5, 2, 2], [5.1, 5, 2, 2], [0, 0, 1, 1]]], np.float32)  # centers and sizes
    scores = np.array([[[0.9, 0.8, 0.1], [0.1, 0.2, 0.3]]], np.float32)
    (got,) = kiln.interpret(g, [boxes, scores]).values()
    np.testing.assert_array_equal(got, [[0, 0, 0], [0, 0, 2], [0, 1, 2], [0, 1, 1]])
