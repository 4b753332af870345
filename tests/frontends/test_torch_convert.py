"""The torch frontend's walk: graph signature (names, symbolic dims), sizes as dims, what gets emitted."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
sympy = pytest.importorskip("sympy")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.export import Dim  # noqa: E402

import kiln  # noqa: E402
from kiln.frontends.torch import from_torch  # noqa: E402
from kiln.frontends.torch import registry  # noqa: E402
from kiln.frontends.torch.symbolic import dim_names, to_dim  # noqa: E402


def _ops(graph):
    return [n.op for n in graph.nodes]


# --- sizes --------------------------------------------------------------------------------------------

def test_sympy_sizes_as_kiln_dims():
    from torch.utils._sympy.functions import FloorDiv, Mod

    s, t = sympy.Symbol("s0", integer=True, positive=True), sympy.Symbol("s1", integer=True, positive=True)
    names = {"s0": "batch", "s1": "seq"}
    assert to_dim(s * 4 + 1, names) == "4*batch+1"
    assert to_dim(s * t, names) == "batch*seq"
    assert to_dim(s ** 2, names) == "batch*batch"
    assert to_dim(FloorDiv(s * 6, 3), names) == "2*batch"
    assert to_dim(Mod(s * 4, 2), names) == 0
    assert to_dim(sympy.Integer(7), names) == 7
    with pytest.raises(kiln.ConversionError, match=r"batch//2.*not exact"):
        to_dim(FloorDiv(s, 2), names)
    with pytest.raises(kiln.ConversionError, match="remainder"):
        to_dim(Mod(s, 3), names)
    with pytest.raises(kiln.ConversionError, match="cannot express"):
        to_dim(sympy.Max(s, t), names)
    with pytest.raises(kiln.ConversionError, match=r"values in a tensor \(u0"):
        to_dim(sympy.Symbol("u0") + 1, names)


def test_dim_names_from_the_spec():
    class Two(nn.Module):
        def forward(self, x, y):
            return torch.cat([x, y], 0)

    batch = Dim("batch")
    spec = {"x": {0: batch}, "y": {0: 2 * batch}}
    ep = torch.export.export(Two(), (torch.randn(3, 4), torch.randn(6, 4)), dynamic_shapes=spec)
    from kiln.frontends.torch.convert import user_inputs

    names = dim_names(user_inputs(ep), spec)
    assert set(names.values()) == {"batch"}
    g = from_torch(Two(), (torch.randn(3, 4), torch.randn(6, 4)), dynamic_shapes=spec)
    assert [g.types[i].shape for i in g.inputs] == [("batch", 4), ("2*batch", 4)]
    assert g.types[g.outputs[0]].shape == ("3*batch", 4)
    out = kiln.interpret(g, [np.ones((2, 4), np.float32), np.zeros((4, 4), np.float32)])
    assert list(out.values())[0].shape == (6, 4)


def test_positional_spec_and_unnamed_dims():
    g = from_torch(lambda a, b: a @ b, (torch.randn(2, 3), torch.randn(3, 5)),
                   dynamic_shapes=({0: Dim("rows")}, {1: Dim.AUTO}))
    assert g.inputs == ["a", "b"]
    rows, cols = g.types[g.outputs[0]].shape
    assert rows == "rows" and isinstance(cols, str) and cols != "rows"  # torch's own symbol name


def test_an_example_batch_of_one_still_gives_a_dynamic_batch():
    """torch.export pins size-1 dims; the frontend traces with the example repeated along dynamic dims."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(1), nn.Linear(4 * 4 * 4, 5)).eval()
    g = from_torch(net, (torch.randn(1, 3, 6, 6),), dynamic_shapes={"input": {0: Dim("batch")}})
    assert g.types[g.inputs[0]].shape == ("batch", 3, 6, 6)
    x = torch.randn(3, 3, 6, 6)
    got = list(kiln.interpret(g, [x.numpy()]).values())[0]
    np.testing.assert_allclose(got, net(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    g = from_torch(lambda a, b: (a * b).sum(-1), (torch.randn(1, 4), torch.randn(1, 4)),
                   dynamic_shapes=({0: Dim("n")}, {0: Dim("n")}))
    assert [g.types[i].shape for i in g.inputs] == [("n", 4), ("n", 4)]


# --- signature -----------------------------------------------------------------------------------------

class DictOut(nn.Module):
    def forward(self, tokens, scale):
        return {"scaled": tokens * scale, "total": (tokens * scale).sum(-1)}


def test_names_and_dict_outputs():
    g = from_torch(DictOut(), (torch.randn(2, 3), torch.tensor(2.0)))
    assert g.inputs == ["tokens", "scale"]
    assert g.outputs == ["scaled", "total"]


def test_tuple_outputs_numpy_and_dict_inputs():
    g = from_torch(lambda x: (x + 1, x * 2), (np.ones((2, 2), np.float32),))
    assert g.outputs == ["output_0", "output_1"]
    g = from_torch(DictOut(), {"tokens": torch.randn(2, 3), "scale": torch.tensor(3.0)})
    out = kiln.interpret(g, [np.ones((2, 3), np.float32), np.array(3.0, np.float32)])
    np.testing.assert_allclose(out["total"], [9.0, 9.0])


def test_output_that_is_an_input_or_a_weight():
    class Passthrough(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", torch.arange(4.0))

        def forward(self, x):
            return x, self.table

    g = from_torch(Passthrough(), (torch.randn(3),))
    out = kiln.interpret(g, [np.arange(3, dtype=np.float32)])
    np.testing.assert_array_equal(out["output_0"], [0, 1, 2])
    np.testing.assert_array_equal(out["output_1"], [0, 1, 2, 3])


def test_kiln_compile_takes_a_plain_function_of_tensors():
    cm = kiln.compile(lambda x: torch.sigmoid(x) * 3, example_inputs=(torch.randn(4),))
    x = torch.randn(4)
    np.testing.assert_allclose(cm(x)[0], torch.sigmoid(x) * 3, rtol=1e-6)


# --- what gets emitted -------------------------------------------------------------------------------

def test_unused_results_are_not_emitted():
    g = from_torch(lambda x: F.layer_norm(F.max_pool2d(x, 2), [4]), (torch.randn(1, 2, 8, 8),))
    pools = [n for n in g.nodes if n.op == "max_pool"]
    assert len(pools) == 1 and not pools[0].attrs.get("with_indices")
    assert _ops(g).count("reduce_mean") == 2  # layer norm's mean and variance: its mean/rstd results unused


def test_batch_norm_is_an_affine_on_constants():
    bn = nn.BatchNorm2d(3).eval()
    g = from_torch(nn.Sequential(nn.Conv2d(2, 3, 1), bn), (torch.randn(1, 2, 4, 4),))
    assert _ops(g) == ["conv", "mul", "add", "identity"]  # (the identity names the graph output)
    scale = g.constants[g.nodes[1].inputs[1]]
    assert scale.shape == (3, 1, 1)  # per channel: what the FoldBatchNorm pass folds into the conv


def test_sizes_are_compile_time_arithmetic():
    """x.view(b * 4, -1) with a symbolic b: the SymInt product is a dim, not a tensor computation."""
    g = from_torch(lambda x: x.view(x.shape[0] * 4, -1) + 1, (torch.randn(2, 4, 3),),
                   dynamic_shapes=({0: Dim("batch")},))
    assert "shape" not in _ops(g) and "mul" not in _ops(g)
    assert g.types[g.outputs[0]].shape == ("4*batch", 3)


def test_a_size_used_as_a_number_reads_the_input_shape():
    g = from_torch(lambda x: x * x.shape[0], (torch.randn(3, 2),), dynamic_shapes=({0: Dim("batch")},))
    assert "shape" in _ops(g)
    out = kiln.interpret(g, [np.ones((5, 2), np.float32)])
    np.testing.assert_array_equal(list(out.values())[0], np.full((5, 2), 5.0, np.float32))


def test_a_converter_that_disagrees_with_torch_is_caught(monkeypatch):
    monkeypatch.setitem(registry.CONVERTERS, "aten.relu.default", lambda cx, x: cx.e.cast(x, "f64"))
    with pytest.raises(kiln.ConversionError, match=r"aten.relu.default at node 'relu'.*internal: the converter "
                                                   r"gave f64, torch computes f32"):
        from_torch(lambda x: torch.relu(x), (torch.randn(3),))
