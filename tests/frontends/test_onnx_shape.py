"""ONNX shape, data-movement, indexing and resampling ops, across opsets, against onnxruntime.

Each case builds a one-node model at a given opset, converts it with ``from_onnx``, runs it with
``kiln.interpret`` and compares with onnxruntime (or a numpy expectation). Shape-like operands
are tried both as initializers (they become attributes) and as graph inputs (the ``*_dynamic``
twins). The ONNX package's node cases cover the newest opsets; these cover the older forms
(attributes that later became inputs) and symbolic dims flowing through shape arithmetic.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import kiln  # noqa: E402
from kiln.errors import ConversionError  # noqa: E402
from kiln.frontends.onnx import from_onnx  # noqa: E402
from onnx_cases import check, make_model  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4)).astype(np.float32)
I64 = np.int64


def ops_of(g):
    return [n.op for n in g.nodes]


BOTH = [(), ("s",)]  # shape operand as a graph input, then as an initializer


# --- reshapes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("init", BOTH)
@pytest.mark.parametrize("target", [[0, -1], [-1, 4], [4, 3, 2], [2, 0, 2, 2]])
def test_reshape(init, target):
    inputs = {"x": X, "s": np.array(target, I64)}
    check("Reshape", inputs, 13, initializers=init)
    assert ("reshape" in ops_of(from_onnx(make_model("Reshape", inputs, 13, initializers=init)))) == bool(init)


def test_reshape_allowzero():
    x = np.zeros((0, 3), np.float32)
    check("Reshape", {"x": x, "s": np.array([3, 0], I64)}, 14, allowzero=1)
    check("Reshape", {"x": x, "s": np.array([3, 0], I64)}, 14, initializers=("s",), allowzero=1)


@pytest.mark.parametrize("opset,axis", [(9, 0), (9, 2), (11, -1), (13, 3)])
def test_flatten(opset, axis):
    check("Flatten", {"x": X}, opset, axis=axis)


def test_squeeze_unsqueeze_attrs_before_13():
    x = RNG.standard_normal((1, 3, 1, 2)).astype(np.float32)
    check("Squeeze", {"x": x}, 11, axes=[0, -2])
    check("Squeeze", {"x": x}, 11)
    check("Unsqueeze", {"x": X}, 11, axes=[0, -1])


@pytest.mark.parametrize("init", BOTH)
def test_squeeze_unsqueeze_inputs_from_13(init):
    x = RNG.standard_normal((1, 3, 1, 2)).astype(np.float32)
    check("Squeeze", {"x": x, "s": np.array([2, 0], I64)}, 13, initializers=init)
    check("Unsqueeze", {"x": X, "s": np.array([-1, 1], I64)}, 13, initializers=init)


def test_transpose_and_concat():
    check("Transpose", {"x": X}, 13)
    check("Transpose", {"x": X}, 13, perm=[1, 2, 0])
    check("Concat", {"a": X, "b": X[:, :1]}, 13, axis=-2)


# --- splits and slices ---------------------------------------------------------------------------

def test_split_attr_before_13():
    check("Split", {"x": X}, 11, outputs=("a", "b"), axis=2, split=[1, 3])
    check("Split", {"x": X}, 11, outputs=("a", "b"), axis=-1)


@pytest.mark.parametrize("init", BOTH)
def test_split_input_from_13(init):
    check("Split", {"x": X, "s": np.array([1, 2, 1], I64)}, 13, outputs=("a", "b", "c"), axis=2, initializers=init)


def test_split_num_outputs_18():
    x = RNG.standard_normal((7, 2)).astype(np.float32)
    check("Split", {"x": x}, 18, outputs=("a", "b", "c"), num_outputs=3,
          expected=[x[0:3], x[3:6], x[6:7]])


def test_slice_attrs_before_10():
    check("Slice", {"x": X}, 9, starts=[1, -3], ends=[100, -1], axes=[2, 1])


@pytest.mark.parametrize("init", [(), ("st", "en", "ax", "sp")])
def test_slice_inputs(init):
    inputs = {"x": X, "st": np.array([-1, 0], I64), "en": np.array([-100, 2], I64),
              "ax": np.array([2, -3], I64), "sp": np.array([-2, 1], I64)}
    check("Slice", inputs, 13, initializers=init)


# --- gathers and scatters --------------------------------------------------------------------------

def test_gather_family():
    check("Gather", {"x": X, "i": np.array([[0, -1]], I64)}, 13, axis=1)
    check("GatherElements", {"x": X, "i": RNG.integers(-3, 3, (2, 2, 4)).astype(I64)}, 13, axis=1)
    check("GatherND", {"x": X, "i": np.array([[1], [0]], I64)}, 12, batch_dims=1)
    check("GatherND", {"x": X, "i": np.array([[1, 2], [0, 0]], I64)}, 11)


def test_scatters():
    x = np.zeros((3, 3), np.float32)
    idx = np.array([[1, 0, 2]], I64)
    upd = np.array([[1, 2, 3]], np.float32)
    check("Scatter", {"x": x, "i": idx, "u": upd}, 9, axis=0)
    check("ScatterElements", {"x": x, "i": idx, "u": upd}, 16, axis=1, reduction="add")
    check("ScatterND", {"x": x, "i": np.array([[2], [0]], I64), "u": np.ones((2, 3), np.float32)}, 16,
          reduction="mul")


def test_nonzero_and_compress():
    x = np.array([[1, 0, 2], [0, 0, 3]], np.float32)
    check("NonZero", {"x": x}, 13)
    check("Compress", {"x": x, "c": np.array([True, False, True])}, 11, axis=1)
    check("Compress", {"x": x, "c": np.array([False, True, True])}, 11)


# --- generated tensors and broadcasting ------------------------------------------------------------

@pytest.mark.parametrize("init", BOTH)
def test_expand_constant_of_shape_tile(init):
    check("Expand", {"x": np.ones((3, 1), np.float32), "s": np.array([2, 1, 4], I64)}, 13, initializers=init)
    model_inputs = {"s": np.array([2, 3], I64)}
    check("ConstantOfShape", model_inputs, 9, initializers=init,
          value=numpy_helper.from_array(np.array([5], np.int32)))
    check("Tile", {"x": X, "s": np.array([1, 2, 3], I64)}, 13, initializers=init)


@pytest.mark.parametrize("init", [(), ("a", "b", "c")])
def test_range(init):
    check("Range", {"a": np.array(1, I64), "b": np.array(11, I64), "c": np.array(3, I64)}, 11, initializers=init)
    check("Range", {"a": np.array(2, np.float32), "b": np.array(0, np.float32), "c": np.array(-0.5, np.float32)},
          11, initializers=init)


@pytest.mark.parametrize("init", [(), ("d",)])
def test_onehot(init):
    inputs = {"i": np.array([[0, -1], [5, 2]], I64), "d": np.array(4, I64), "v": np.array([0, 7], np.float32)}
    check("OneHot", inputs, 11, initializers=init, axis=1)


@pytest.mark.parametrize("init", [(), ("k",)])
@pytest.mark.parametrize("upper", [0, 1])
def test_trilu(init, upper):
    x = RNG.standard_normal((2, 3, 5)).astype(np.float32)
    check("Trilu", {"x": x, "k": np.array(1, I64)}, 14, initializers=init, upper=upper)


def test_eyelike():
    check("EyeLike", {"x": np.zeros((3, 4), np.float32)}, 9, k=1, dtype=TensorProto.INT32)


# --- block rearrangements, sequences, padding ------------------------------------------------------

@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_space(mode):
    x = RNG.standard_normal((1, 8, 2, 3)).astype(np.float32)
    check("DepthToSpace", {"x": x}, 11, blocksize=2, mode=mode)
    check("SpaceToDepth", {"x": RNG.standard_normal((1, 2, 4, 6)).astype(np.float32)}, 13, blocksize=2)


def test_reverse_sequence():
    x = RNG.standard_normal((4, 3, 2)).astype(np.float32)
    check("ReverseSequence", {"x": x, "l": np.array([4, 1, 3], I64)}, 10, batch_axis=1, time_axis=0)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_attrs_before_11(mode):
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    check("Pad", {"x": x}, 9, mode=mode, pads=[1, 2, 0, 1], value=1.5)


@pytest.mark.parametrize("init", [(), ("p", "a")])
def test_pad_inputs(init):
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    check("Pad", {"x": x, "p": np.array([1, -1, 2, 0], I64), "v": np.array(2.0, np.float32)}, 13,
          initializers=init)
    check("Pad", {"x": x, "p": np.array([2, 1], I64), "v": np.array(0.0, np.float32), "a": np.array([-1], I64)},
          18, initializers=init, expected=[np.pad(x, [(0, 0), (2, 1)])])
    check("Pad", {"x": x, "p": np.array([1, 2, 3, 1], I64)}, 19, initializers=init, mode="wrap",
          expected=[np.pad(x, [(1, 3), (2, 1)], mode="wrap")])


@pytest.mark.parametrize("init", [(), ("s",)])
def test_center_crop_pad(init):
    x = RNG.standard_normal((5, 4, 3)).astype(np.float32)
    want = np.zeros((2, 4, 6), np.float32)
    want[:, :, 1:4] = x[1:3]
    check("CenterCropPad", {"x": x, "s": np.array([2, 6], I64)}, 18, initializers=init, axes=[0, 2],
          expected=[want])


# --- resampling ------------------------------------------------------------------------------------

IMG = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)


def test_upsample_and_resize_10():
    check("Upsample", {"x": IMG}, 7, scales=[1.0, 1.0, 2.0, 3.0], mode="nearest")
    check("Upsample", {"x": IMG}, 7, scales=[1.0, 1.0, 2.0, 1.5], mode="linear")
    check("Upsample", {"x": IMG, "s": np.array([1, 1, 2, 2.5], np.float32)}, 9, mode="linear")
    check("Upsample", {"x": IMG, "s": np.array([1, 1, 2, 2], np.float32)}, 9, mode="nearest")
    check("Resize", {"x": IMG, "s": np.array([1, 1, 2, 3], np.float32)}, 10, mode="nearest")
    check("Resize", {"x": IMG, "s": np.array([1, 1, 2, 1.5], np.float32)}, 10, initializers=("s",), mode="linear")


@pytest.mark.parametrize("init", [(), ("r", "s")])
@pytest.mark.parametrize("mode,ctm", [("linear", "align_corners"), ("cubic", "half_pixel"),
                                      ("nearest", "pytorch_half_pixel"), ("linear", "tf_crop_and_resize")])
def test_resize_scales(init, mode, ctm):
    roi = np.array([0, 0, 0.1, 0.2, 1, 1, 0.9, 0.7], np.float32)
    check("Resize", {"x": IMG, "r": roi, "s": np.array([1, 1, 2, 0.5], np.float32)}, 13, initializers=init,
          mode=mode, coordinate_transformation_mode=ctm, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("init", [(), ("z",)])
def test_resize_sizes_axes_18(init):
    inputs = {"x": IMG, "r": np.zeros(0, np.float32), "s": np.zeros(0, np.float32), "z": np.array([5, 2], I64)}
    check("Resize", inputs, 18, initializers=("r", "s") + init, mode="linear", axes=[3, 2],
          keep_aspect_ratio_policy="not_larger", rtol=1e-4, atol=1e-5)
    check("Resize", inputs, 18, initializers=("r", "s") + init, mode="cubic", antialias=1, rtol=1e-4, atol=1e-5,
          axes=[3, 2])


# --- shape queries and constants -------------------------------------------------------------------

def test_shape_size_constant():
    check("Shape", {"x": X}, 15, start=-2)
    check("Size", {"x": X}, 13)
    check("Constant", {}, 13, value_floats=[1.0, 2.5])
    check("Constant", {}, 13, value_ints=[3])
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.array([5.0, 6.0], np.float32), "v"),
                                       numpy_helper.from_array(np.array([1, 4], I64), "i"), [2, 3])
    want = np.zeros(6, np.float32)
    want[[1, 4]] = [5, 6]
    check("Constant", {}, 13, sparse_value=sparse, expected=[want.reshape(2, 3)])


# --- symbolic dims ---------------------------------------------------------------------------------

def _symbolic_model():
    h = helper
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("Gather", ["s", "i0"], ["b"], axis=0),
        h.make_node("Unsqueeze", ["b", "ax"], ["bu"]),
        h.make_node("Concat", ["bu", "c12"], ["tgt"], axis=0),
        h.make_node("Reshape", ["x", "tgt"], ["y"]),
        h.make_node("Unsqueeze", ["x2", "ax2"], ["w"]),
        h.make_node("Shape", ["x2"], ["s2"]),
        h.make_node("Expand", ["one", "s2"], ["e"]),
        h.make_node("Size", ["x2"], ["n"]),
    ]
    inits = [numpy_helper.from_array(np.array(0, I64), "i0"), numpy_helper.from_array(np.array([0], I64), "ax"),
             numpy_helper.from_array(np.array([12], I64), "c12"), numpy_helper.from_array(np.array([2], I64), "ax2"),
             numpy_helper.from_array(np.array([1.0], np.float32), "one")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4]),
                                  h.make_tensor_value_info("x2", TensorProto.FLOAT, ["batch", "seq", 4])],
                     [h.make_tensor_value_info(n, TensorProto.UNDEFINED, None) for n in ("y", "w", "e", "n")], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def test_symbolic_dims_flow_through_shape_arithmetic():
    g = from_onnx(_symbolic_model())
    y = next(n for n in g.nodes if n.outputs == ("y",))
    assert y.op == "reshape" and y.attrs["shape"] == ("batch", 12)
    assert g.types["w"].shape == ("batch", "seq", 1, 4)
    assert g.types["e"].shape == ("batch", "seq", 4)
    x, x2 = X, RNG.standard_normal((2, 5, 4)).astype(np.float32)
    out = kiln.interpret(g, [x, x2])
    np.testing.assert_array_equal(out["y"], x.reshape(2, 12))
    np.testing.assert_array_equal(out["w"], x2[:, :, None])
    np.testing.assert_array_equal(out["e"], np.ones((2, 5, 4), np.float32))
    assert out["n"] == 40 and out["n"].dtype == np.int64


# --- errors --------------------------------------------------------------------------------------

def test_errors_name_the_problem():
    with pytest.raises(ConversionError, match="cannot squeeze axis 1 of size 3"):
        from_onnx(make_model("Squeeze", {"x": X}, 11, axes=[1]))
    with pytest.raises(ConversionError, match="does not add up"):
        from_onnx(make_model("Split", {"x": X}, 11, outputs=("a", "b"), axis=2, split=[1, 2]))
    with pytest.raises(ConversionError, match="mode 'wrap' is not supported"):
        from_onnx(make_model("Pad", {"x": X, "p": np.zeros(6, I64)}, 18, mode="wrap"))
    with pytest.raises(ConversionError, match="exactly one of scales and sizes"):
        from_onnx(make_model("Resize", {"x": IMG, "r": np.zeros(0, np.float32)}, 13, initializers=("r",)))
    with pytest.raises(ConversionError, match="static length"):
        m = make_model("Reshape", {"x": X, "s": np.array([24], I64)}, 13)
        m.graph.input[1].type.tensor_type.shape.dim[0].dim_param = "n"
        from_onnx(m)


# --- sampling grids, unique, col2im, cache writes ----------------------------------------------

@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_16(mode, padding_mode):
    grid = RNG.uniform(-1.3, 1.3, (1, 3, 5, 2)).astype(np.float32)
    if (mode, padding_mode) == ("bicubic", "border"):
        # onnxruntime pads each cubic tap only; kiln follows the ONNX reference implementation, which
        # also clamps the sample point: that reference is the oracle here (it speaks opset 20 names)
        from onnx.reference import ReferenceEvaluator

        model = make_model("GridSample", {"x": IMG, "g": grid}, 20, mode="cubic", padding_mode=padding_mode,
                           align_corners=1)
        expected = ReferenceEvaluator(model).run(None, {"x": IMG, "g": grid})
        check("GridSample", {"x": IMG, "g": grid}, 20, expected=expected, mode="cubic",
              padding_mode=padding_mode, align_corners=1, rtol=1e-4, atol=1e-5)
        return
    check("GridSample", {"x": IMG, "g": grid}, 16, mode=mode, padding_mode=padding_mode, align_corners=1,
          rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("init", [(), ("s",)])
@pytest.mark.parametrize("align", [0, 1])
def test_affine_grid(init, align):
    theta = RNG.standard_normal((2, 2, 3)).astype(np.float32)
    check("AffineGrid", {"t": theta, "s": np.array([2, 1, 3, 4], I64)}, 20, initializers=init,
          align_corners=align, rtol=1e-5, atol=1e-5)


def test_unique_11():
    x = np.array([3, 1, 3, 2, 1], np.float32)
    check("Unique", {"x": x}, 11, outputs=("y", "i", "inv", "c"), sorted=0)
    check("Unique", {"x": x.reshape(5, 1)}, 11, outputs=("y", "i", "inv", "c"), axis=0)


@pytest.mark.parametrize("init", [(), ("i", "b")])
def test_col2im(init):
    x = RNG.standard_normal((1, 4, 8)).astype(np.float32)
    check("Col2Im", {"x": x, "i": np.array([4, 5], I64), "b": np.array([2, 2], I64)}, 18, initializers=init,
          strides=[2, 1], pads=[0, 0, 1, 0])


@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter(mode):
    cache = np.zeros((2, 5, 2), np.float32)
    upd = np.ones((2, 2, 2), np.float32)
    want = cache.copy()
    for b, start in enumerate([1, 4]):
        for i in range(2):
            p = start + i
            if mode == "circular":
                p %= 5
            if p < 5:
                want[b, p] = upd[b, i]
    check("TensorScatter", {"c": cache, "u": upd, "w": np.array([1, 4 if mode == "circular" else 3], I64)}, 24,
          mode=mode, axis=1, expected=[want if mode == "circular" else _linear_want(cache, upd)])


def _linear_want(cache, upd):
    want = cache.copy()
    want[0, 1:3] = upd[0]
    want[1, 3:5] = upd[1]
    return want


def test_symbolic_flatten_trilu_and_depth_to_space():
    h = helper
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 8, "hh", "ww"])
    nodes = [h.make_node("Flatten", ["x"], ["f"], axis=2), h.make_node("Trilu", ["x"], ["t"], upper=0),
             h.make_node("DepthToSpace", ["x"], ["d"], blocksize=2)]
    outs = [h.make_tensor_value_info(n, TensorProto.UNDEFINED, None) for n in "ftd"]
    m = h.make_model(h.make_graph(nodes, "g", [x], outs), opset_imports=[h.make_opsetid("", 14)])
    g = from_onnx(m)
    assert g.types["f"].shape == ("8*b", "hh*ww")
    assert g.types["t"].shape == ("b", 8, "hh", "ww")
    assert g.types["d"].shape == ("b", 2, "2*hh", "2*ww")
    xv = RNG.standard_normal((2, 8, 3, 5)).astype(np.float32)
    out = kiln.interpret(g, [xv])
    typed = onnx.shape_inference.infer_shapes(m)
    want = ort.InferenceSession(typed.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": xv})
    for a, w in zip(out.values(), want):
        np.testing.assert_allclose(a, w)


def test_resize_11_tf_half_pixel_for_nn():
    check("Resize", {"x": IMG, "r": np.zeros(0, np.float32), "s": np.array([1, 1, 2, 0.5], np.float32)}, 11,
          initializers=("r",), mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn")


def _attention_model(opset=13):
    """Multi-head self-attention as exporters write it: shapes computed from Shape/Gather/Concat."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((64, 64)).astype(np.float32) * 0.1
    consts = {"i0": 0, "i1": 1, "ax0": [0], "c4": [4], "c16": [16], "c64": [64]}
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(np.array(4.0, np.float32), "scale")]
    inits += [numpy_helper.from_array(np.array(v, I64), k) for k, v in consts.items()]
    n = helper.make_node
    nodes = [
        n("MatMul", ["x", "W"], ["q"]),
        n("Shape", ["x"], ["s"]),
        n("Gather", ["s", "i0"], ["b"], axis=0), n("Gather", ["s", "i1"], ["t"], axis=0),
        n("Unsqueeze", ["b", "ax0"], ["bu"]), n("Unsqueeze", ["t", "ax0"], ["tu"]),
        n("Concat", ["bu", "tu", "c4", "c16"], ["shp"], axis=0),
        n("Reshape", ["q", "shp"], ["q4"]),
        n("Transpose", ["q4"], ["qh"], perm=[0, 2, 1, 3]),
        n("Transpose", ["q4"], ["kh"], perm=[0, 2, 3, 1]),
        n("MatMul", ["qh", "kh"], ["sc"]), n("Div", ["sc", "scale"], ["sc2"]),
        n("Softmax", ["sc2"], ["p"], axis=-1),
        n("MatMul", ["p", "qh"], ["o"]),
        n("Transpose", ["o"], ["o2"], perm=[0, 2, 1, 3]),
        n("Concat", ["bu", "tu", "c64"], ["shp2"], axis=0),
        n("Reshape", ["o2", "shp2"], ["y"]),
        n("Shape", ["y"], ["ys"]),
        n("Slice", ["ys", "ax0", "c4"], ["ys2"]),   # ys[0:4] = all
        n("ConstantOfShape", ["ys2"], ["z"], value=numpy_helper.from_array(np.array([1.0], np.float32))),
        n("Add", ["y", "z"], ["out"]),
        n("Flatten", ["out"], ["flat"], axis=2),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 64])
    outs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "seq", 64]),
            helper.make_tensor_value_info("flat", TensorProto.FLOAT, None)]
    g = helper.make_graph(nodes, "attn", [x], outs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_symbolic_dims_through_exported_attention():
    m = _attention_model()
    g = from_onnx(m)
    assert g.types["out"].shape == ("batch", "seq", 64)
    assert g.types["flat"].shape == ("batch*seq", 64)
    assert g.types["sc"].shape == ("batch", 4, "seq", "seq")
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in [(2, 5, 64), (3, 1, 64)]:
        x = RNG.standard_normal(shape).astype(np.float32)
        for a, w in zip(kiln.interpret(g, [x]).values(), sess.run(None, {"x": x})):
            np.testing.assert_allclose(a, w, rtol=1e-4, atol=1e-5)


def test_symbolic_expand_idiom_with_where_equal():
    """x.expand(b, -1, 4) as exporters write it: Where(Equal(shape, -1), 1, shape) -> Expand."""
    n = helper.make_node
    nodes = [n("Shape", ["x"], ["s"]), n("Gather", ["s", "i0"], ["b"], axis=0), n("Unsqueeze", ["b", "ax0"], ["bu"]),
             n("Concat", ["bu", "m1", "c4"], ["tgt"], axis=0), n("Equal", ["tgt", "m1"], ["eq"]),
             n("Where", ["eq", "one", "tgt"], ["shp"]), n("Expand", ["x", "shp"], ["y"])]
    consts = {"i0": 0, "ax0": [0], "m1": [-1], "c4": [4], "one": [1]}
    inits = [numpy_helper.from_array(np.array(v, I64), k) for k, v in consts.items()]
    g = helper.make_graph(nodes, "e", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    kg = from_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    y = next(nd for nd in kg.nodes if nd.outputs == ("y",))
    assert y.op == "broadcast" and y.attrs["shape"] == ("batch", "seq", 4)
    x = RNG.standard_normal((2, 3, 1)).astype(np.float32)
    np.testing.assert_array_equal(kiln.interpret(kg, [x])["y"], np.broadcast_to(x, (2, 3, 4)))


def test_symbolic_upsample_by_whole_scales():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 2, "h", "w"])
    nodes = [helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest"),
             helper.make_node("Resize", ["x", "", "s2"], ["z"], mode="linear")]
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 3], np.float32), "s"),
             numpy_helper.from_array(np.array([1, 1, 1.5, 1], np.float32), "s2")]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "yz"]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], outs, inits), opset_imports=[helper.make_opsetid("", 13)])
    g = from_onnx(m)
    assert g.types["y"].shape == ("b", 2, "2*h", "3*w")
    assert next(n.op for n in g.nodes if n.outputs == ("y",)) == "resize"
    assert next(n.op for n in g.nodes if n.outputs == ("z",)) == "resize_dynamic"  # 1.5 * h is not a dim
    xv = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
    sess = ort.InferenceSession(onnx.shape_inference.infer_shapes(m).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    for a, w in zip(kiln.interpret(g, [xv]).values(), sess.run(None, {"x": xv})):
        np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6)


def test_more_errors_name_the_problem():
    with pytest.raises(ConversionError, match="must be 4-D"):
        from_onnx(make_model("DepthToSpace", {"x": X}, 13, blocksize=2))
    with pytest.raises(ConversionError, match="axis attribute is required"):
        from_onnx(make_model("Concat", {"a": X, "b": X}, 13))
    with pytest.raises(ConversionError, match="axis 3 is out of range for rank 3"):
        from_onnx(make_model("Gather", {"x": X, "i": np.array([0], I64)}, 13, axis=3))
    with pytest.raises(ConversionError, match="gather: indices must be int32 or int64"):
        from_onnx(make_model("Gather", {"x": X, "i": np.array([0.0], np.float32)}, 13))
    with pytest.raises(ConversionError, match="mode 'area' is not supported"):
        from_onnx(make_model("Resize", {"x": IMG, "r": np.zeros(0, np.float32), "s": np.ones(4, np.float32)}, 13,
                             initializers=("r", "s"), mode="area"))


def test_symbolic_resize_sizes_computed_from_shape():
    """Exporters compute sizes as Cast(Floor(Cast(Shape(x)[2:], float) * 2)): a 2x upsample of h, w."""
    n, f = helper.make_node, TensorProto.FLOAT
    nodes = [n("Shape", ["x"], ["s"]), n("Slice", ["s", "z", "two"], ["nc"]), n("Slice", ["s", "two", "four"], ["hw"]),
             n("Cast", ["hw"], ["hwf"], to=f), n("Mul", ["hwf", "sc"], ["hw2f"]), n("Floor", ["hw2f"], ["hw2ff"]),
             n("Cast", ["hw2ff"], ["hw2"], to=TensorProto.INT64), n("Concat", ["nc", "hw2"], ["sizes"], axis=0),
             n("Resize", ["x", "", "", "sizes"], ["y"], mode="linear")]
    inits = [numpy_helper.from_array(np.array(v, I64), k) for k, v in {"z": [0], "two": [2], "four": [4]}.items()]
    inits.append(numpy_helper.from_array(np.array([2.0, 2.0], np.float32), "sc"))
    g = helper.make_graph(nodes, "u", [helper.make_tensor_value_info("x", f, ["b", 3, "h", "w"])],
                          [helper.make_tensor_value_info("y", f, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    kg = from_onnx(m)
    assert kg.types["y"].shape == ("b", 3, "2*h", "2*w")
    x = RNG.standard_normal((1, 3, 4, 5)).astype(np.float32)
    sess = ort.InferenceSession(onnx.shape_inference.infer_shapes(m).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(kiln.interpret(kg, [x])["y"], sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_shape_tracing_does_not_round_float_division():
    """5.0 / 2 * 2 is 5.0, not 4: a float division that is not whole stops the symbolic trace."""
    n = helper.make_node
    nodes = [n("Shape", ["x"], ["s"]), n("Cast", ["s"], ["sf"], to=TensorProto.FLOAT), n("Div", ["sf", "two"], ["h"]),
             n("Mul", ["h", "two"], ["back"]), n("Cast", ["back"], ["t"], to=TensorProto.INT64),
             n("Reshape", ["x", "t"], ["y"])]
    g = helper.make_graph(nodes, "d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, "n"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.array([2.0, 1.0], np.float32), "two")])
    kg = from_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    assert kiln.interpret(kg, [np.zeros((5, 3), np.float32)])["y"].shape == (5, 3)


def test_symbolic_range_position_ids():
    """Range(0, Shape(x)[1], 1), the position ids of a sequence, has length seq."""
    n = helper.make_node
    nodes = [n("Shape", ["x"], ["s"]), n("Gather", ["s", "one"], ["seq"], axis=0),
             n("Range", ["zero", "seq", "one"], ["pos"])]
    inits = [numpy_helper.from_array(np.array(v, I64), k) for k, v in {"zero": 0, "one": 1}.items()]
    g = helper.make_graph(nodes, "r", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "seq"])],
                          [helper.make_tensor_value_info("pos", TensorProto.INT64, None)], inits)
    kg = from_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    assert kg.types["pos"].shape == ("seq",)
    np.testing.assert_array_equal(kiln.interpret(kg, [np.zeros((2, 5), np.float32)])["pos"], np.arange(5))


@pytest.mark.parametrize("op_type,inputs,attrs", [
    ("Reshape", {"x": X, "s": np.array([4, -1], I64)}, {}),
    ("Flatten", {"x": X}, {"axis": 2}),
    ("Squeeze", {"x": X[:, :1]}, {"axes": [1]}),
    ("Unsqueeze", {"x": X}, {"axes": [0, 4]}),
    ("Transpose", {"x": X}, {"perm": [2, 0, 1]}),
    ("Concat", {"a": X, "b": X}, {"axis": 1}),
    ("Split", {"x": X}, {"axis": 1, "split": [1, 2]}),
    ("Slice", {"x": X}, {"starts": [1, 0], "ends": [3, -1], "axes": [1, 2]}),
    ("Gather", {"x": X, "i": np.array([[2, 0]], I64)}, {"axis": 1}),
    ("Tile", {"x": X, "r": np.array([1, 2, 1], I64)}, {}),
    ("Pad", {"x": X}, {"pads": [0, 1, 0, 0, 2, 1], "mode": "edge"}),
    ("Shape", {"x": X}, {}),
    ("Size", {"x": X}, {}),
    ("DepthToSpace", {"x": RNG.standard_normal((1, 4, 2, 3)).astype(np.float32)}, {"blocksize": 2}),
    ("SpaceToDepth", {"x": RNG.standard_normal((1, 1, 4, 6)).astype(np.float32)}, {"blocksize": 2}),
])
def test_opset_7(op_type, inputs, attrs):
    outputs = ("a", "b") if op_type == "Split" else ("y",)
    check(op_type, inputs, 7, outputs=outputs, initializers=("s", "r"), **attrs)
