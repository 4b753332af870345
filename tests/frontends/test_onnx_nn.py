"""ONNX contractions and neural-network ops across opsets, compared with onnxruntime.

Each case builds a one-node model, converts it with ``from_onnx``, runs it with ``kiln.interpret``
and compares with onnxruntime (or numpy where onnxruntime lacks the op). The ONNX package's own
node cases cover the newest opsets; these cover the older ones, the attributes those cases leave
out (auto_pad variants, activations, clip, sequence_lens, ...) and symbolic dims.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import helper, numpy_helper  # noqa: E402

from kiln.errors import ConversionError  # noqa: E402
from kiln.frontends.onnx import from_onnx  # noqa: E402
import onnx_cases  # noqa: E402
from onnx_cases import make_model, run_kiln, value_info  # noqa: E402

RNG = np.random.default_rng(0)


check = functools.partial(onnx_cases.check, rtol=1e-4, atol=1e-5)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# --- Gemm / MatMul ------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [7, 9, 11, 13])
@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm(opset, trans_a, trans_b):
    a = f32(3, 4) if not trans_a else f32(4, 3)
    b = f32(4, 5) if not trans_b else f32(5, 4)
    check("Gemm", {"a": a, "b": b, "c": f32(5)}, opset, transA=trans_a, transB=trans_b, alpha=0.5, beta=2.0)


@pytest.mark.parametrize("c_shape", [None, (), (1,), (3, 1), (3, 5)])
def test_gemm_c_shapes(c_shape):
    inputs = {"a": f32(3, 4), "b": f32(4, 5)}
    if c_shape is not None:
        inputs["c"] = f32(*c_shape)
    check("Gemm", inputs, 13, beta=0.25)


def test_gemm_with_constant_weights_folds_transpose():
    model = make_model("Gemm", {"a": f32(2, 4), "b": f32(5, 4), "c": f32(5)}, 13, initializers=("b", "c"), transB=1)
    g = from_onnx(model)
    assert [n.op for n in g.nodes] == ["matmul", "add"]


def test_matmul_symbolic_batch():
    model = make_model("MatMul", {"a": f32(2, 3, 4), "b": f32(4, 5)}, 13, shapes={"a": ["n", 3, 4]})
    g = from_onnx(model)
    assert g.types[g.outputs[0]].shape == ("n", 3, 5)


# --- Conv / ConvTranspose -----------------------------------------------------------------------

@pytest.mark.parametrize("auto_pad", ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 3)])
def test_conv_auto_pad(auto_pad, strides):
    attrs = {"pads": [1, 0, 2, 1]} if auto_pad == "NOTSET" else {}
    check("Conv", {"x": f32(1, 2, 7, 8), "w": f32(3, 2, 3, 2)}, 11, auto_pad=auto_pad, strides=list(strides), **attrs)


@pytest.mark.parametrize("opset", [7, 11, 22])
def test_conv_groups_dilations_bias(opset):
    check("Conv", {"x": f32(2, 4, 9, 9), "w": f32(6, 2, 3, 3), "b": f32(6)}, opset, group=2, dilations=[2, 1],
          pads=[1, 1, 1, 1], kernel_shape=[3, 3])


@pytest.mark.parametrize("shape, w", [((1, 3, 10), (2, 3, 4)), ((1, 2, 5, 4, 6), (3, 2, 2, 3, 2))])
def test_conv_1d_3d(shape, w):
    check("Conv", {"x": f32(*shape), "w": f32(*w)}, 13, strides=[2] * (len(shape) - 2))


def test_conv_symbolic_batch():
    model = make_model("Conv", {"x": f32(2, 3, 8, 8), "w": f32(4, 3, 3, 3)}, 13, initializers=("w",),
                       shapes={"x": ["batch", 3, 8, 8]}, pads=[1, 1, 1, 1], strides=[2, 2])
    g = from_onnx(model)
    assert g.types[g.outputs[0]].shape == ("batch", 4, 4, 4)
    x = f32(3, 3, 8, 8)
    assert run_kiln(model, {"x": x})[0].shape == (3, 4, 4, 4)


@pytest.mark.parametrize("attrs", [
    {"strides": [2, 2]},
    {"strides": [2, 3], "output_padding": [1, 2], "pads": [1, 0, 0, 1]},
    {"strides": [2, 2], "output_shape": [10, 9]},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"strides": [1, 2], "dilations": [2, 1], "group": 2},
])
def test_conv_transpose(attrs):
    check("ConvTranspose", {"x": f32(1, 4, 4, 4), "w": f32(4, 3, 3, 3), "b": f32(3 * attrs.get("group", 1))}, 11,
          **attrs)


def test_conv_bad_auto_pad_is_named():
    model = make_model("Conv", {"x": f32(1, 1, 4, 4), "w": f32(1, 1, 2, 2)}, 11, auto_pad="SAME_MIDDLE")
    with pytest.raises(ConversionError, match="auto_pad 'SAME_MIDDLE'"):
        from_onnx(model)


# --- pooling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3], "strides": [2, 2]},
    {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"kernel_shape": [2, 2], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [2, 3], "dilations": [2, 1], "strides": [1, 2]},
])
def test_max_pool(attrs):
    check("MaxPool", {"x": f32(2, 3, 9, 8)}, 12, **attrs)


@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices(storage_order):
    check("MaxPool", {"x": f32(2, 3, 6, 7)}, 12, outputs=("y", "i"), kernel_shape=[2, 2], strides=[2, 2],
          pads=[0, 0, 1, 1], storage_order=storage_order)


def test_max_pool_opset8_without_ceil():
    check("MaxPool", {"x": f32(1, 2, 7, 7)}, 8, kernel_shape=[3, 3], strides=[2, 2])


@pytest.mark.parametrize("opset", [7, 10, 19])
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool(opset, count_include_pad):
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": count_include_pad}
    if opset >= 10:
        attrs["ceil_mode"] = 1
    if opset >= 19:
        attrs["dilations"] = [1, 2]
    check("AveragePool", {"x": f32(1, 2, 8, 9)}, opset, **attrs)


def test_average_pool_1d_3d():
    check("AveragePool", {"x": f32(1, 2, 9)}, 11, kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER")
    check("AveragePool", {"x": f32(1, 1, 4, 5, 6)}, 11, kernel_shape=[2, 2, 3], pads=[0, 1, 1, 1, 0, 1])


@pytest.mark.parametrize("opset", [7, 11, 18])
@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool(opset, p):
    check("LpPool", {"x": f32(1, 2, 7, 6)}, opset, kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1], p=p)


def test_lp_pool_ceil_mode_counts_every_tap():
    x = np.abs(f32(1, 1, 5, 5)) + 0.5
    model = make_model("LpPool", {"x": x}, 18, kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, p=2)
    (got,) = run_kiln(model, {"x": x})
    assert got.shape == (1, 1, 3, 3)
    np.testing.assert_allclose(got[0, 0, 2, 2], x[0, 0, 4, 4], rtol=1e-6)  # the 1x1 overhang window
    np.testing.assert_allclose(got[0, 0, 0, 0], np.sqrt((x[0, 0, :2, :2] ** 2).sum()), rtol=1e-6)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
def test_global_pools(op):
    check(op, {"x": f32(2, 3, 5, 4)}, 11)
    check(op, {"x": f32(1, 2, 6)}, 11)


# --- Einsum -------------------------------------------------------------------------------------

@pytest.mark.parametrize("eq, shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk", [(2, 3, 4), (4, 5)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("ij->", [(3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("abc,cd,de->abe", [(2, 3, 4), (4, 5), (5, 6)]),
    ("ijk->kji", [(2, 3, 4)]),
    ("i,i", [(5,), (5,)]),
])
def test_einsum(eq, shapes):
    arrays = [RNG.standard_normal(s) for s in shapes]
    inputs = {f"x{i}": a for i, a in enumerate(arrays)}
    expected = np.asarray(np.einsum(eq, *arrays))
    check("Einsum", inputs, 12, expected=[expected], rtol=1e-10, atol=1e-12, equation=eq)


# --- integer and quantized ----------------------------------------------------------------------

def test_matmul_integer_per_row_zero_point():
    a = RNG.integers(0, 255, (4, 3)).astype(np.uint8)
    b = RNG.integers(0, 255, (3, 2)).astype(np.uint8)
    azp = np.array([1, 2, 3, 4], np.uint8)
    bzp = np.array([5, 6], np.uint8)
    expected = (a.astype(np.int32) - azp.astype(np.int32)[:, None]) @ (b.astype(np.int32) - bzp.astype(np.int32))
    check("MatMulInteger", {"a": a, "b": b, "azp": azp, "bzp": bzp}, 10, expected=[expected])  # ORT: scalar zps only


def test_conv_integer_per_channel_zero_point():
    x = RNG.integers(0, 255, (1, 2, 5, 5)).astype(np.uint8)
    w = RNG.integers(0, 255, (3, 2, 2, 2)).astype(np.uint8)
    xzp = np.array(7, np.uint8)
    wzp = np.array([1, 2, 3], np.uint8)
    a = (x.astype(np.int32) - 7)
    wc = w.astype(np.int32) - wzp.astype(np.int32).reshape(3, 1, 1, 1)
    expected = np.zeros((1, 3, 5, 5), np.int32)
    ap = np.pad(a, [(0, 0), (0, 0), (1, 0), (1, 0)])
    for m in range(3):
        for i in range(5):
            for j in range(5):
                expected[0, m, i, j] = (ap[0, :, i:i + 2, j:j + 2] * wc[m]).sum()
    check("ConvInteger", {"x": x, "w": w, "xzp": xzp, "wzp": wzp}, 10, expected=[expected], pads=[1, 1, 0, 0])


@pytest.mark.parametrize("dt", [np.uint8, np.int8])
def test_qlinear_matmul(dt):
    info = np.iinfo(dt)
    a = RNG.integers(info.min, info.max, (3, 4)).astype(dt)
    b = RNG.integers(info.min, info.max, (4, 2)).astype(dt)
    inputs = {"a": a, "as": np.array(0.05, np.float32), "azp": np.array(3, dt), "b": b,
              "bs": np.array(0.02, np.float32), "bzp": np.array(-1 if dt == np.int8 else 1, dt),
              "ys": np.array(0.1, np.float32), "yzp": np.array(2, dt)}
    check("QLinearMatMul", inputs, 10, rtol=0, atol=1)


def test_qlinear_conv_per_channel():
    x = RNG.integers(0, 255, (1, 2, 5, 5)).astype(np.uint8)
    w = RNG.integers(-100, 100, (3, 2, 3, 3)).astype(np.int8)
    inputs = {"x": x, "xs": np.array(0.02, np.float32), "xzp": np.array(100, np.uint8), "w": w,
              "ws": np.array([0.01, 0.02, 0.03], np.float32), "wzp": np.array([0, 0, 0], np.int8),
              "ys": np.array(0.5, np.float32), "yzp": np.array(10, np.uint8), "bias": np.array([5, -5, 100], np.int32)}
    check("QLinearConv", inputs, 10, rtol=0, atol=1, pads=[1, 1, 1, 1])


# --- recurrent ----------------------------------------------------------------------------------

def _rnn_inputs(gates, hidden, directions=1, seq=4, batch=3, inp=5, bias=True, initial=False, lens=None):
    inputs = {"X": f32(seq, batch, inp), "W": f32(directions, gates * hidden, inp),
              "R": f32(directions, gates * hidden, hidden)}
    if bias or initial or lens is not None:
        inputs["B"] = f32(directions, 2 * gates * hidden)
    if initial or lens is not None:
        inputs["sequence_lens"] = np.full(batch, seq, np.int32) if lens is None else np.asarray(lens, np.int32)
        inputs["initial_h"] = f32(directions, batch, hidden)
    return inputs


@pytest.mark.parametrize("op, gates", [("RNN", 1), ("GRU", 3), ("LSTM", 4)])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_recurrent_directions(op, gates, direction):
    d = 2 if direction == "bidirectional" else 1
    inputs = _rnn_inputs(gates, 3, d, initial=True)
    outs = ("Y", "Y_h", "Y_c") if op == "LSTM" else ("Y", "Y_h")
    check(op, inputs, 14, outputs=outs, hidden_size=3, direction=direction)


@pytest.mark.parametrize("op, gates", [("RNN", 1), ("GRU", 3), ("LSTM", 4)])
def test_recurrent_sequence_lens(op, gates):
    inputs = _rnn_inputs(gates, 3, 2, lens=[4, 2, 1])
    check(op, inputs, 14, outputs=("Y", "Y_h"), hidden_size=3, direction="bidirectional")


@pytest.mark.parametrize("opset", [7, 14])
def test_gru_linear_before_reset_and_clip(opset):
    check("GRU", _rnn_inputs(3, 4), opset, outputs=("Y", "Y_h"), hidden_size=4, linear_before_reset=1, clip=0.5)


def test_rnn_activations_and_layout():
    inputs = _rnn_inputs(1, 3, 2, bias=False)
    attrs = dict(hidden_size=3, direction="bidirectional", activations=["LeakyRelu", "HardSigmoid"],
                 activation_alpha=[0.2, 0.3], activation_beta=[0.4])
    y, y_h = check("RNN", inputs, 14, outputs=("Y", "Y_h"), **attrs)
    # batch-major layout (onnxruntime lacks it): the same numbers, transposed
    inputs["X"] = np.ascontiguousarray(inputs["X"].transpose(1, 0, 2))
    check("RNN", inputs, 14, outputs=("Y", "Y_h"), expected=[y.transpose(2, 0, 1, 3), y_h.transpose(1, 0, 2)],
          layout=1, **attrs)


def test_lstm_peepholes_and_initial_c():
    inputs = _rnn_inputs(4, 3, initial=True)
    inputs["initial_c"] = f32(1, 3, 3)
    inputs["P"] = f32(1, 9)
    check("LSTM", inputs, 7, outputs=("Y", "Y_h", "Y_c"), hidden_size=3)


def test_lstm_clip_applies_after_peepholes():
    inputs = _rnn_inputs(4, 3, 2, initial=True, lens=[4, 1, 3])
    inputs["initial_c"] = f32(2, 3, 3)
    inputs["P"] = f32(2, 9) * 3
    check("LSTM", inputs, 14, outputs=("Y", "Y_h", "Y_c"), hidden_size=3, clip=0.7, direction="bidirectional")


def test_lstm_activations():
    check("LSTM", _rnn_inputs(4, 2), 14, outputs=("Y",), hidden_size=2,
          activations=["Sigmoid", "Softsign", "Elu"])


def test_rnn_unknown_activation_is_named():
    model = make_model("RNN", _rnn_inputs(1, 2, bias=False), 14, hidden_size=2, activations=["Swish"])
    with pytest.raises(ConversionError, match="activation 'Swish'"):
        from_onnx(model)


# --- attention ----------------------------------------------------------------------------------

def _attention(q, k, v, mask=None, causal=False, scale=None):
    """Plain numpy scaled dot-product attention, 4-D, heads equal."""
    s = (q @ np.swapaxes(k, -1, -2)) * (scale if scale is not None else 1 / np.sqrt(q.shape[-1]))
    if mask is not None:
        s = s + (np.where(mask, 0, -np.inf) if mask.dtype == bool else mask)
    if causal:
        s = s + np.where(np.tril(np.ones(s.shape[-2:], bool)), 0, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


@pytest.mark.parametrize("causal", [0, 1])
def test_attention_4d_bool_mask(causal):
    q, k, v = f32(2, 3, 4, 8), f32(2, 3, 4, 8), f32(2, 3, 4, 6)
    mask = RNG.random((4, 4)) > 0.3
    mask[:, 0] = True
    expected = _attention(q, k, v, mask, bool(causal)).astype(np.float32)
    check("Attention", {"Q": q, "K": k, "V": v, "attn_mask": mask}, 23, expected=[expected], is_causal=causal)


def test_attention_3d_gqa_matches_repeated_heads():
    q, k, v = f32(1, 5, 4 * 8), f32(1, 5, 2 * 8), f32(1, 5, 2 * 8)
    q4 = q.reshape(1, 5, 4, 8).transpose(0, 2, 1, 3)
    k4 = np.repeat(k.reshape(1, 5, 2, 8).transpose(0, 2, 1, 3), 2, axis=1)
    v4 = np.repeat(v.reshape(1, 5, 2, 8).transpose(0, 2, 1, 3), 2, axis=1)
    expected = _attention(q4, k4, v4, scale=0.3).transpose(0, 2, 1, 3).reshape(1, 5, 32).astype(np.float32)
    check("Attention", {"Q": q, "K": k, "V": v}, 23, expected=[expected], q_num_heads=4, kv_num_heads=2, scale=0.3)


def test_attention_3d_without_heads_fails():
    model = make_model("Attention", {"Q": f32(1, 2, 8), "K": f32(1, 2, 8), "V": f32(1, 2, 8)}, 23)
    with pytest.raises(ConversionError, match="q_num_heads"):
        from_onnx(model)


def test_rotary_embedding_matches_numpy():
    x = f32(1, 2, 3, 8)
    angles = RNG.random((3, 4)).astype(np.float32)
    cos, sin = np.cos(angles), np.sin(angles)
    x1, x2 = x[..., :4], x[..., 4:]
    expected = np.concatenate([cos * x1 - sin * x2, sin * x1 + cos * x2], -1)
    pos = np.array([[0, 1, 2]], np.int64)
    check("RotaryEmbedding", {"x": x, "cos": cos, "sin": sin, "pos": pos}, 23, expected=[expected])


# --- DeformConv, RoiAlign, CausalConvWithState, LinearAttention, FlexAttention -------------------

def test_deform_conv_with_zero_offsets_is_conv():
    x, w, b = f32(1, 4, 6, 5), f32(6, 2, 3, 3), f32(6)
    conv = run_kiln(make_model("Conv", {"x": x, "w": w, "b": b}, 19, group=2, pads=[1, 1, 1, 1]),
                    {"x": x, "w": w, "b": b})[0]
    offset = np.zeros((1, 2 * 9 * 2, 6, 5), np.float32)
    mask = np.ones((1, 2 * 9, 6, 5), np.float32)
    check("DeformConv", {"x": x, "w": w, "offset": offset, "b": b, "mask": mask}, 19, expected=[conv],
          group=2, offset_group=2, pads=[1, 1, 1, 1])


@pytest.mark.parametrize("xs, ws", [((1, 2, 7), (3, 2, 3)), ((1, 2, 4, 3, 5), (2, 2, 2, 2, 3))])
def test_deform_conv_1d_3d_integer_offsets_shift_taps(xs, ws):
    # an offset of +1 on every tap along the last axis equals a conv of the input shifted left by one
    x, w = f32(*xs), f32(*ws)
    ns, k = len(xs) - 2, int(np.prod(ws[2:]))
    conv_shape = run_kiln(make_model("Conv", {"x": x, "w": w}, 19), {"x": x, "w": w})[0].shape
    offset = np.zeros((1, k, ns) + conv_shape[2:], np.float32)
    offset[:, :, ns - 1] = 1
    shifted = np.concatenate([x[..., 1:], np.zeros(x.shape[:-1] + (1,), np.float32)], -1)
    expected = run_kiln(make_model("Conv", {"x": shifted, "w": w}, 19), {"x": shifted, "w": w})[0]
    check("DeformConv", {"x": x, "w": w, "offset": offset.reshape(1, k * ns, *conv_shape[2:])}, 19,
          expected=[expected])


def test_deform_conv_matches_onnxruntime():
    x, w = f32(2, 2, 5, 6), f32(3, 2, 2, 2)
    offset = (RNG.standard_normal((2, 8, 4, 2)) * 1.5).astype(np.float32)
    check("DeformConv", {"x": x, "w": w, "offset": offset}, 19, strides=[1, 2], dilations=[1, 2])


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("ctm", ["half_pixel", "output_half_pixel"])
def test_roi_align(mode, ctm):
    x = f32(2, 3, 8, 9)
    rois = np.array([[0, 0, 7, 7], [1.5, 2.2, 8.7, 5.1], [-2, -1, 3, 12]], np.float32)
    bi = np.array([0, 1, 1], np.int64)
    inputs = {"x": x, "rois": rois, "bi": bi}
    attrs = dict(mode=mode, coordinate_transformation_mode=ctm, output_height=3, output_width=2, sampling_ratio=2,
                 spatial_scale=0.9)
    if mode == "max":  # ONNX's max is the max of the weighted corners; onnxruntime agrees only for avg
        got = run_kiln(make_model("RoiAlign", inputs, 16, **attrs), inputs)[0]
        assert got.shape == (3, 3, 3, 2)
        return
    check("RoiAlign", inputs, 16, **attrs)


def test_roi_align_adaptive_sampling_is_refused():
    inputs = {"x": f32(1, 1, 4, 4), "rois": np.zeros((1, 4), np.float32), "bi": np.zeros(1, np.int64)}
    with pytest.raises(ConversionError, match="sampling_ratio 0"):
        from_onnx(make_model("RoiAlign", inputs, 16))


def test_causal_conv_with_state_decode_equals_prefill():
    x, w, b = f32(1, 3, 6), f32(3, 1, 3), f32(3)
    full = make_model("CausalConvWithState", {"x": x, "w": w, "b": b}, 27, outputs=("y", "s"), activation="silu")
    y_all, s_all = run_kiln(full, {"x": x, "w": w, "b": b})
    state = np.zeros((1, 3, 2), np.float32)
    for t in range(6):
        xt = x[:, :, t:t + 1]
        step = make_model("CausalConvWithState", {"x": xt, "w": w, "b": b, "p": state}, 27, outputs=("y", "s"),
                          activation="silu")
        y_t, state = run_kiln(step, {"x": xt, "w": w, "b": b, "p": state})
        np.testing.assert_allclose(y_t[..., 0], y_all[..., t], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state, s_all)


def test_linear_attention_linear_rule_matches_causal_sum():
    b, t, h, d = 1, 5, 2, 4
    q, k, v = f32(b, t, h * d), f32(b, t, h * d), f32(b, t, h * d)
    q4, k4, v4 = (a.reshape(b, t, h, d).transpose(0, 2, 1, 3) for a in (q, k, v))
    scores = np.tril(q4 @ np.swapaxes(k4, -1, -2))  # o_t = sum_{s<=t} (q_t . k_s) v_s
    y = (scores @ v4 / np.sqrt(d)).transpose(0, 2, 1, 3).reshape(b, t, h * d)
    state = np.swapaxes(k4, -1, -2) @ v4
    y, state = y.astype(np.float32), state.astype(np.float32)
    check("LinearAttention", {"q": q, "k": k, "v": v}, 27, outputs=("y", "s"), expected=[y, state],
          update_rule="linear", q_num_heads=h, kv_num_heads=h)


def test_flex_attention_score_mod_subgraph():
    q, k, v = f32(1, 2, 3, 4), f32(1, 2, 3, 4), f32(1, 2, 3, 4)
    scores_in = helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, None)
    scores_out = helper.make_tensor_value_info("s2", onnx.TensorProto.FLOAT, None)
    half = numpy_helper.from_array(np.float32(0.5), "half")
    mod = helper.make_graph([helper.make_node("Mul", ["s", "half"], ["s2"])], "mod", [scores_in], [scores_out], [half])
    node = helper.make_node("FlexAttention", ["Q", "K", "V"], ["Y"], domain="ai.onnx.preview", score_mod=mod)
    graph = helper.make_graph([node], "t", [value_info("Q", q), value_info("K", k), value_info("V", v)],
                              [onnx.ValueInfoProto(name="Y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26),
                                                    helper.make_opsetid("ai.onnx.preview", 1)])
    (y,) = run_kiln(model, {"Q": q, "K": k, "V": v})
    s = q @ np.swapaxes(k, -1, -2) / 2 * 0.5
    p = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(y, (p / p.sum(-1, keepdims=True)) @ v, rtol=1e-5, atol=1e-6)


def test_symbolic_batch_through_pools_and_attention():
    model = make_model("MaxPool", {"x": f32(2, 3, 8, 8)}, 12, shapes={"x": ["n", 3, 8, 8]}, kernel_shape=[2, 2],
                       strides=[2, 2])
    assert from_onnx(model).types["y"].shape == ("n", 3, 4, 4)
    q = f32(2, 4, 16)
    model = make_model("Attention", {"Q": q, "K": q, "V": q}, 23, shapes={n: ["b", 4, 16] for n in "QKV"},
                       q_num_heads=2, kv_num_heads=2, is_causal=1)
    g = from_onnx(model)
    assert g.types[g.outputs[0]].shape == ("b", 4, 16)
    assert run_kiln(model, {"Q": q, "K": q, "V": q})[0].shape == (2, 4, 16)


def test_attention_symbolic_lengths_match_static():
    """Causal masks, past keys and a window on symbolic sequence lengths: positions at run time."""
    q, k, pk = f32(2, 3, 5, 8), f32(2, 3, 5, 8), f32(2, 3, 4, 8)
    feeds = {"Q": q, "K": k, "V": k, "attn_mask": RNG.random((5, 9)) > 0.3, "past_key": pk, "past_value": pk}
    sym = {"Q": ["b", 3, "s", 8], "K": ["b", 3, "s", 8], "V": ["b", 3, "s", 8], "attn_mask": ["s", "t"],
           "past_key": ["b", 3, "p", 8], "past_value": ["b", 3, "p", 8]}
    attrs = dict(outputs=("y", "pk", "pv"), is_causal=1, left_window_size=3)
    dynamic = make_model("Attention", feeds, 25, shapes=sym, **attrs)
    g = from_onnx(dynamic)
    assert g.types[g.outputs[1]].shape == ("b", 3, "p+s", 8)
    static = run_kiln(make_model("Attention", feeds, 25, **attrs), feeds)
    for a, b in zip(run_kiln(dynamic, feeds), static):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
