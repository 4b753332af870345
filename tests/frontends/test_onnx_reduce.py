"""ONNX reductions, softmax family, normalizations, losses, scans and top-k, across opsets.

Each case builds a one-node model at a given opset, converts it with ``from_onnx``, runs it with
``kiln.interpret`` and compares with onnxruntime (or with numpy where onnxruntime lacks the
op/opset). The ONNX package's own node cases cover the newest opsets; these cover the older
behaviours (attributes that became inputs, 2-D coercion of softmax, ...), run-time axes, and
symbolic dims.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import kiln  # noqa: E402
from kiln.errors import ConversionError  # noqa: E402
from kiln.frontends.onnx import from_onnx  # noqa: E402
from onnx_cases import check, make_model, run_kiln  # noqa: E402

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


# --- Reduce* --------------------------------------------------------------------------------------

REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


def _positive_if_log(op, x):
    return np.abs(x) + 0.5 if op == "ReduceLogSum" else x


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_axes_attribute_opset11(op, keepdims):
    x = _positive_if_log(op, rand(3, 4, 5))
    check(op, {"x": x}, 11, axes=[0, -1], keepdims=keepdims, rtol=1e-4)


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_default_axes_is_all(op):
    x = _positive_if_log(op, rand(2, 3))
    check(op, {"x": x}, 11, keepdims=0, rtol=1e-4)


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_axes_input_constant_and_runtime(op):
    since = 13 if op == "ReduceSum" else 18
    x = _positive_if_log(op, rand(3, 4, 5))
    axes = np.array([1], np.int64)
    # constant axes (an initializer): the static core op
    check(op, {"x": x, "axes": axes}, since, initializers=("axes",), keepdims=0, rtol=1e-4)
    # run-time axes (a graph input): the *_dynamic twin
    check(op, {"x": x, "axes": axes}, since, keepdims=1, rtol=1e-4)
    check(op, {"x": x, "axes": np.array([0, 2], np.int64)}, since, keepdims=0, rtol=1e-4)


def test_reduce_runtime_axes_use_dynamic_twin():
    x, axes = rand(3, 4), np.array([1], np.int64)
    g = from_onnx(make_model("ReduceMean", {"x": x, "axes": axes}, 18, keepdims=0))
    assert [n.op for n in g.nodes] == ["reduce_mean_dynamic"]
    g = from_onnx(make_model("ReduceMean", {"x": x, "axes": axes}, 18, initializers=("axes",), keepdims=0))
    assert [(n.op, n.attrs["axes"]) for n in g.nodes] == [("reduce_mean", (1,))]


@pytest.mark.parametrize("noop", [0, 1])
def test_reduce_empty_axes_noop(noop):
    x = rand(3, 4)
    empty = np.array([], np.int64)
    want = x if noop else x.sum(keepdims=True)
    for init in ((), ("axes",)):
        check("ReduceSum", {"x": x, "axes": empty}, 13, initializers=init, noop_with_empty_axes=noop,
              expected=[want], rtol=1e-5)
    check("ReduceSum", {"x": x}, 13, noop_with_empty_axes=noop, expected=[want])


def test_reduce_empty_set():
    x = np.zeros((2, 0, 4), np.float32)
    axes = np.array([1], np.int64)
    for op, val in [("ReduceSum", 0.0), ("ReduceProd", 1.0), ("ReduceMax", -np.inf), ("ReduceMin", np.inf),
                    ("ReduceL2", 0.0), ("ReduceLogSumExp", -np.inf), ("ReduceLogSum", -np.inf)]:
        since = 13 if op == "ReduceSum" else 18
        check(op, {"x": x, "axes": axes}, since, keepdims=1, expected=[np.full((2, 1, 4), val, np.float32)])


def test_reduce_log_sum_exp_handles_infinities():
    x = np.array([[-np.inf, -np.inf], [1000.0, 1000.0], [-np.inf, 0.0]], np.float32)
    want = np.array([-np.inf, 1000.0 + np.log(2.0), 0.0], np.float32)
    check("ReduceLogSumExp", {"x": x}, 13, axes=[1], keepdims=0, expected=[want])


def test_reduce_integer_inputs():
    x = RNG.integers(-5, 6, size=(3, 4)).astype(np.int32)
    for op in ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceSumSquare"]:
        check(op, {"x": x}, 12, axes=[1], keepdims=0)


def test_reduce_max_bool():
    x, axes = np.array([[True, False], [False, False]]), np.array([1], np.int64)
    check("ReduceMax", {"x": x, "axes": axes}, 20, keepdims=0, initializers=("axes",),
          expected=[np.array([True, False])])


def test_reduce_symbolic_batch():
    x, axes = rand(2, 5), np.array([1], np.int64)
    m = make_model("ReduceSum", {"x": x, "axes": axes}, 13, shapes={"x": ["N", 5]}, keepdims=1,
                   initializers=("axes",))
    g = from_onnx(m)
    assert g.types[g.outputs[0]].shape == ("N", 1)
    (y,) = kiln.interpret(g, [x]).values()
    np.testing.assert_allclose(y, x.sum(1, keepdims=True), rtol=1e-6)


def test_reduce_bad_axis_names_the_node():
    with pytest.raises(ConversionError, match="ReduceSum.*axes entry 5 is out of range"):
        from_onnx(make_model("ReduceSum", {"x": rand(2, 3)}, 11, axes=[5]))


# --- ArgMax / ArgMin ------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("opset", [7, 11, 13])
def test_arg_reductions(op, opset):
    x = RNG.integers(0, 3, size=(3, 4, 5)).astype(np.float32)  # many ties
    attrs = dict(axis=-1 if opset >= 11 else 2, keepdims=0)
    check(op, {"x": x}, opset, **attrs)
    if opset >= 12:
        check(op, {"x": x}, opset, axis=1, select_last_index=1)


# --- Softmax family -------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset,axis", [(11, None), (11, 1), (11, 0), (11, 2), (13, None), (13, 1), (13, 0)])
def test_softmax_family_opsets(op, opset, axis):
    x = rand(2, 3, 4)
    if op == "Hardmax":
        x = RNG.integers(0, 3, size=(2, 3, 4)).astype(np.float32)  # ties: the first max wins
    attrs = {} if axis is None else {"axis": axis}
    check(op, {"x": x}, opset, rtol=1e-5, atol=1e-6, **attrs)


def test_softmax_before_13_coerces_to_2d():
    x = rand(2, 3, 4)
    (got,) = run_kiln(make_model("Softmax", {"x": x}, 11, axis=1), {"x": x})
    flat = x.reshape(2, 12)
    want = np.exp(flat - flat.max(1, keepdims=True))
    want = (want / want.sum(1, keepdims=True)).reshape(x.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_softmax_large_and_symbolic():
    x = np.array([[1000.0, 1001.0, 1002.0]], np.float32).repeat(3, 0)
    m = make_model("Softmax", {"x": x}, 13, shapes={"x": ["batch", 3]})
    g = from_onnx(m)
    assert g.types[g.outputs[0]].shape == ("batch", 3)
    (y,) = kiln.interpret(g, [x]).values()
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)


def test_hardmax_symbolic_axis():
    x = RNG.integers(0, 2, size=(2, 6)).astype(np.float32)
    m = make_model("Hardmax", {"x": x}, 13, shapes={"x": [2, "n"]})
    (y,) = kiln.interpret(from_onnx(m), [x]).values()
    want = np.zeros_like(x)
    want[np.arange(2), x.argmax(1)] = 1
    np.testing.assert_array_equal(y, want)


# --- Normalizations -------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_layer_normalization_with_stats(axis):
    x = rand(2, 3, 4)
    shape = x.shape[axis % 3:]
    w, b = rand(*shape), rand(*shape)
    check("LayerNormalization", {"x": x, "w": w, "b": b}, 17, outputs=("y", "mean", "inv"), axis=axis,
          epsilon=1e-3, rtol=1e-4, atol=1e-5)


def test_layer_normalization_fp16_stashes_in_f32():
    x, w = rand(2, 8, dtype=np.float16), rand(8, dtype=np.float16)
    got = check("LayerNormalization", {"x": x, "w": w}, 17, outputs=("y", "mean", "inv"), rtol=1e-2, atol=1e-2)
    assert [g.dtype for g in got] == [np.float16, np.float32, np.float32]


def test_rms_normalization():
    x, w = rand(2, 3, 4), rand(4)
    ms = (x.astype(np.float64) ** 2).mean(-1, keepdims=True)
    want = (x / np.sqrt(ms + 1e-5) * w).astype(np.float32)
    check("RMSNormalization", {"x": x, "w": w}, 23, expected=[want], rtol=1e-5)


def _group_norm_ref(x, groups, scale, bias, eps, per_channel):
    n, c = x.shape[:2]
    g = x.reshape(n, groups, -1).astype(np.float64)
    norm = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)
    if not per_channel:
        scale, bias = np.repeat(scale, c // groups), np.repeat(bias, c // groups)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return (norm.reshape(x.shape) * scale.reshape(shape) + bias.reshape(shape)).astype(x.dtype)


@pytest.mark.parametrize("opset", [18, 21])
def test_group_normalization_versions(opset):
    x = rand(2, 6, 3, 2)
    per_channel = opset >= 21
    s, b = (rand(6), rand(6)) if per_channel else (rand(3), rand(3))
    want = _group_norm_ref(x, 3, s, b, 1e-3, per_channel)
    check("GroupNormalization", {"x": x, "s": s, "b": b}, opset, num_groups=3, epsilon=1e-3,
          expected=[want], rtol=1e-4, atol=1e-5)


def test_instance_normalization():
    check("InstanceNormalization", {"x": rand(2, 3, 4, 5), "s": rand(3), "b": rand(3)}, 7, epsilon=1e-3,
          rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", [7, 9, 15])
def test_batch_normalization_inference(opset):
    x = rand(2, 3, 4, 4)
    s, b, m, v = rand(3), rand(3), rand(3), np.abs(rand(3)) + 0.5
    check("BatchNormalization", {"x": x, "s": s, "b": b, "m": m, "v": v}, opset, epsilon=1e-3,
          rtol=1e-4, atol=1e-5)


def test_batch_normalization_spatial0_opset7():
    x = rand(2, 3, 4)
    s, b, m, v = rand(3, 4), rand(3, 4), rand(3, 4), np.abs(rand(3, 4)) + 0.5
    want = (s * (x - m) / np.sqrt(v + 1e-5) + b).astype(np.float32)
    check("BatchNormalization", {"x": x, "s": s, "b": b, "m": m, "v": v}, 7, spatial=0, expected=[want],
          rtol=1e-5)


def test_batch_normalization_training_mode():
    x = rand(4, 3, 2, 2)
    s, b, m, v = rand(3), rand(3), rand(3), np.abs(rand(3)) + 0.5
    bm, bv = x.mean((0, 2, 3)), x.var((0, 2, 3))
    y = s.reshape(3, 1, 1) * (x - bm.reshape(3, 1, 1)) / np.sqrt(bv.reshape(3, 1, 1) + 1e-5) + b.reshape(3, 1, 1)
    want = [y, m * 0.9 + bm * 0.1, v * 0.9 + bv * 0.1]
    check("BatchNormalization", {"x": x, "s": s, "b": b, "m": m, "v": v}, 15, outputs=("y", "rm", "rv"),
          training_mode=1, expected=[w.astype(np.float32) for w in want], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, -1])
def test_lp_normalization(p, axis):
    check("LpNormalization", {"x": rand(3, 4)}, 7, p=p, axis=axis, rtol=1e-5)


def test_lp_normalization_zero_norm_is_zero_and_bad_p_fails():
    x = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    check("LpNormalization", {"x": x}, 22, expected=[np.array([[0, 0], [0.6, 0.8]], np.float32)])
    with pytest.raises(ConversionError, match="p=3 is not supported"):
        from_onnx(make_model("LpNormalization", {"x": x}, 22, p=3))


def test_mean_variance_normalization():
    check("MeanVarianceNormalization", {"x": rand(2, 3, 4, 5)}, 13, rtol=1e-4, atol=1e-5)
    check("MeanVarianceNormalization", {"x": rand(2, 3, 4)}, 9, axes=[1, 2], rtol=1e-4, atol=1e-5)


def _lrn_ref(x, size, alpha, beta, bias):
    c = x.shape[1]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = np.zeros_like(x)
    for k in range(c):
        sq[:, k] = (x[:, max(0, k - lo):min(c, k + hi + 1)] ** 2).sum(1)
    return (x / (bias + alpha / size * sq) ** beta).astype(x.dtype)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_lrn(size):
    x = rand(2, 5, 3, 3)
    want = None if size % 2 else [_lrn_ref(x, size, 0.01, 0.6, 1.5)]  # onnxruntime takes odd sizes only
    check("LRN", {"x": x}, 13, size=size, alpha=0.01, beta=0.6, bias=1.5, expected=want, rtol=1e-5)


# --- Losses ---------------------------------------------------------------------------------------

def _nll_inputs(shape, weight, ii_hit):
    c = shape[1]
    x = rand(*shape)
    t = RNG.integers(0, c, size=(shape[0],) + shape[2:]).astype(np.int64)
    if ii_hit:
        t.flat[0] = 1
    ins = {"x": x, "t": t}
    if weight:
        ins["w"] = np.abs(rand(c)) + 0.1
    return ins


@pytest.mark.parametrize("op", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weight", [False, True])
@pytest.mark.parametrize("ii", [None, 1, -1])
def test_losses(op, reduction, weight, ii):
    ins = _nll_inputs((3, 4, 2), weight, ii == 1)
    attrs = {"reduction": reduction}
    if ii is not None:
        attrs["ignore_index"] = ii
    outs = ("y", "lp") if op == "SoftmaxCrossEntropyLoss" else ("y",)
    check(op, ins, 13, outputs=outs, rtol=1e-5, atol=1e-6, **attrs)


def test_loss_2d_input_and_int32_target():
    ins = _nll_inputs((5, 3), True, False)
    ins["t"] = ins["t"].astype(np.int32)
    check("NegativeLogLikelihoodLoss", ins, 13, rtol=1e-5)
    check("SoftmaxCrossEntropyLoss", ins, 12, reduction="sum", rtol=1e-5)


# --- Scans and top-k ------------------------------------------------------------------------------

@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum(exclusive, reverse):
    x = rand(3, 4)
    for axis in (np.array(1, np.int64), np.array([-2], np.int32)):
        check("CumSum", {"x": x, "axis": axis}, 11, exclusive=exclusive, reverse=reverse, rtol=1e-5)
        check("CumSum", {"x": x, "axis": axis}, 14, initializers=("axis",), exclusive=exclusive,
              reverse=reverse, rtol=1e-5)


def _cumprod_ref(x, axis, exclusive, reverse):
    y = np.flip(x, axis) if reverse else x
    r = np.cumprod(y, axis=axis)
    if exclusive:
        r = np.concatenate([np.ones_like(np.take(r, [0], axis)), np.take(r, range(r.shape[axis] - 1), axis)], axis)
    return np.flip(r, axis) if reverse else r


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumprod(exclusive, reverse):
    x = RNG.integers(-3, 4, size=(3, 4)).astype(np.int32)
    axis = np.array(0, np.int64)
    want = [_cumprod_ref(x, 0, exclusive, reverse).astype(np.int32)]
    check("CumProd", {"x": x, "axis": axis}, 26, exclusive=exclusive, reverse=reverse, expected=want)
    check("CumProd", {"x": x, "axis": axis}, 26, initializers=("axis",), exclusive=exclusive,
          reverse=reverse, expected=want)


def test_topk_opset1_k_attribute():
    check("TopK", {"x": rand(3, 5)}, 7, outputs=("v", "i"), k=2)
    check("TopK", {"x": rand(3, 5)}, 9, outputs=("v", "i"), k=2, axis=0)


@pytest.mark.parametrize("opset", [10, 11])
@pytest.mark.parametrize("const_k", [False, True])
def test_topk_k_input(opset, const_k):
    x = RNG.integers(0, 4, size=(3, 6)).astype(np.float32)  # ties keep index order
    k = np.array([3], np.int64)
    init = ("k",) if const_k else ()
    check("TopK", {"x": x, "k": k}, opset, outputs=("v", "i"), initializers=init, axis=1)
    if opset >= 11:
        check("TopK", {"x": x, "k": k}, opset, outputs=("v", "i"), initializers=init, axis=-1, largest=0)


def test_topk_k_too_large_fails():
    with pytest.raises(ConversionError, match="k=9 is out of range"):
        from_onnx(make_model("TopK", {"x": rand(2, 4)}, 7, outputs=("v", "i"), k=9))


def test_det():
    x = rand(3, 4, 4).astype(np.float64)
    check("Det", {"x": x}, 11, expected=[np.linalg.det(x)], rtol=1e-9, atol=1e-12)
    x2 = rand(2, 2)
    check("Det", {"x": x2}, 22, expected=[np.linalg.det(x2).astype(np.float32)], rtol=1e-5)
    with pytest.raises(ConversionError, match="at most 6x6"):
        from_onnx(make_model("Det", {"x": rand(7, 7)}, 22))


@pytest.mark.parametrize("op,inputs,opset,attrs,match", [
    ("Softmax", {"x": rand(2, 3)}, 13, {"axis": 2}, "axis 2 is out of range for an input of rank 2"),
    ("GroupNormalization", {"x": rand(2, 6, 3), "s": rand(4), "b": rand(4)}, 18, {"num_groups": 4},
     "6 channels do not split into 4 groups"),
    ("NegativeLogLikelihoodLoss", {"x": rand(2, 3), "t": rand(2)}, 13, {}, "target must be an integer tensor"),
    ("NegativeLogLikelihoodLoss", {"x": rand(2, 3), "t": np.zeros(2, np.int64)}, 13, {"reduction": "max"},
     "reduction 'max' is not supported"),
    ("LayerNormalization", {"x": rand(2, 3), "w": rand(3)}, 17, {"stash_type": 6}, "stash_type i32 is not a float"),
    ("LRN", {"x": rand(2, 3, 4)}, 13, {"size": 0}, "size must be a positive int"),
    ("BatchNormalization", {"x": rand(2, 3), "s": rand(3), "b": rand(3), "m": rand(3), "v": rand(3)}, 9, {},
     None),
])
def test_conversion_errors_name_the_node(op, inputs, opset, attrs, match):
    outs = ("y", "m2") if match is None else ("y",)
    model = make_model(op, inputs, opset, outputs=outs, **attrs)
    with pytest.raises(ConversionError, match=match or "training outputs .* are not supported before opset 14") as e:
        from_onnx(model)
    assert f"{op} node" in str(e.value)


def test_normalizations_with_symbolic_batch_and_spatial_dims():
    x = rand(2, 6, 3, 5)
    s, b = rand(6), rand(6)
    want = _group_norm_ref(x, 3, s, b, 1e-5, True)
    m = make_model("GroupNormalization", {"x": x, "s": s, "b": b}, 21, num_groups=3,
                   shapes={"x": ["N", 6, "H", "W"]})
    g = from_onnx(m)
    assert g.types[g.outputs[0]].shape == ("N", 6, "H", "W")
    (y,) = kiln.interpret(g, [x, s, b]).values()
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    m = make_model("InstanceNormalization", {"x": x, "s": s, "b": b}, 7, shapes={"x": ["N", 6, "H", "W"]})
    (y,) = kiln.interpret(from_onnx(m), [x, s, b]).values()
    np.testing.assert_allclose(y, _group_norm_ref(x, 6, s, b, 1e-5, True), rtol=1e-4, atol=1e-5)
