"""kiln.compile: what it accepts, what it refuses, and that one artifact serves every batch size."""
import os

import numpy as np
import pytest

import kiln
from kiln.compiler.compile import compile as kcompile
from kiln.ir.builder import GraphBuilder

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def mlp_graph(batch="batch"):
    rng = np.random.default_rng(0)
    gb = GraphBuilder()
    x = gb.input("x", "f32", [batch, 24])
    w1 = gb.const(rng.standard_normal((24, 64)).astype(np.float32))
    b1 = gb.const(rng.standard_normal((64,)).astype(np.float32))
    w2 = gb.const(rng.standard_normal((64, 10)).astype(np.float32))
    h = gb.op("relu", gb.op("add", gb.op("matmul", x, w1), b1))
    y = gb.op("matmul", h, w2)
    return gb.build([y])


def onnx_model(path=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [helper.make_node("Mul", ["x", "two"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [two]),
                              opset_imports=[helper.make_opsetid("", 17)])
    if path:
        onnx.save(model, path)
    return model


def test_graph_compiles_and_serves_every_batch_size(tmp_path):
    g = mlp_graph()
    m = kiln.compile(g)
    for n in (1, 8, 3):
        x = np.random.default_rng(n).standard_normal((n, 24)).astype(np.float32)
        ref = kiln.interpret(g, {"x": x})[g.outputs[0]]
        (y,) = m(x)
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    path = tmp_path / "mlp.kiln"
    m.save(path)
    loaded = kiln.load(path)
    x = np.ones((5, 24), np.float32)
    np.testing.assert_array_equal(loaded(x)[0], m(x)[0])
    assert "kiln_run" in loaded.header


def test_onnx_model_path_and_proto(tmp_path):
    p = str(tmp_path / "m.onnx")
    proto = onnx_model(p)
    x = np.linspace(-2, 2, 16, dtype=np.float32).reshape(2, 8)
    for model in (proto, p, tmp_path / "m.onnx"):
        m = kiln.compile(model)
        np.testing.assert_allclose(m(x)[0], np.maximum(2 * x, 0))
        assert m.run({"x": x})["y"].shape == (2, 8)


def test_input_shapes_and_example_inputs_fix_dims():
    proto = onnx_model()
    m = kiln.compile(proto, input_shapes={"x": [3, 8]})
    assert m.inputs[0].shape == [3, 8] or list(m.inputs[0].shape) == [3, 8]
    m2 = kiln.compile(proto, example_inputs=[np.zeros((4, 8), np.float32)])
    assert list(m2.inputs[0].shape) == [4, 8]
    with pytest.raises(ValueError, match="input 'x'"):
        m2(np.zeros((3, 8), np.float32))


def test_bad_inputs_name_the_input():
    m = kiln.compile(mlp_graph())
    with pytest.raises(ValueError, match="'x'"):
        m(np.zeros((2, 23), np.float32))
    with pytest.raises(ValueError, match="'x'"):
        m(np.zeros((2, 24), np.float64))
    with pytest.raises(ValueError, match="'x'"):
        m(np.zeros((24,), np.float32))
    with pytest.raises(ValueError):
        m.run({"nope": np.zeros((1, 24), np.float32)})


@pytest.mark.parametrize("opt_level", [0, 1, 2, 3])
def test_every_opt_level_agrees(opt_level):
    g = mlp_graph(batch=4)
    kiln.testing.check_compiled(g, opt_level=opt_level, rtol=1e-4, atol=1e-4)


def test_target_strings_and_objects():
    from kiln.targets import Target, available, get

    assert {"cpu", "llvm"} <= set(available())
    t = get("llvm -mcpu=x86-64 -mattr=+avx2,+fma")
    assert isinstance(t, Target) and t.cpu == "x86-64" and t.caps.vector_bits == 256
    m = kiln.compile(mlp_graph(batch=2), t)
    assert m.target["options"]["cpu"] == "x86-64"
    x = np.ones((2, 24), np.float32)
    np.testing.assert_allclose(m(x)[0], kiln.compile(mlp_graph(batch=2))(x)[0], rtol=1e-5)
    with pytest.raises(ValueError, match="unknown target 'tpu'"):
        get("tpu")
    with pytest.raises(ValueError, match="-key=value"):
        get("cpu mcpu")
    with pytest.raises(ValueError, match="unknown triple"):
        get("llvm -mtriple=nonsense-unknown-unknown")


def test_cross_compile_aarch64_object(tmp_path):
    m = kiln.compile(mlp_graph(), "llvm -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1")
    obj = m.members["model.o"]
    assert obj[:4] == b"\x7fELF" and obj[18] == 183  # e_machine EM_AARCH64
    assert "kiln_runtime.c" in m.members
    m.save(tmp_path / "arm.kiln")
    with pytest.raises(kiln.ArtifactError, match="aarch64"):
        kiln.load(tmp_path / "arm.kiln")
    with pytest.raises(RuntimeError, match="aarch64"):
        m(np.zeros((1, 24), np.float32))


def test_unsupported_ops_are_listed_at_once():
    gb = GraphBuilder()
    x = gb.input("x", "f32", [4])
    nz = gb.op("nonzero", x)
    g = gb.build([nz])
    from kiln.ir.registry import OPS

    if OPS["nonzero"].lower is not None:
        with pytest.raises(kiln.KilnError, match="nonzero"):
            kiln.compile(g)
    else:
        with pytest.raises(kiln.UnsupportedOperatorError, match="nonzero"):
            kiln.compile(g)


def test_dump_ir_and_profile(tmp_path):
    from kiln.compiler.profile import format_profile, profile

    g = mlp_graph(batch=16)
    m = kcompile(g, dump_ir=tmp_path)
    names = set(os.listdir(tmp_path))
    assert {"kernels.txt", "model.ll", "model.opt.ll"} <= names
    assert "kernel" in (tmp_path / "kernels.txt").read_text()
    rows = profile(m, np.ones((16, 24), np.float32), runs=2)
    assert len(rows) == len(m.manifest["kernels"]) and all(ms >= 0 for _, _, ms in rows)
    assert "total" in format_profile(rows)


def test_a_target_plugin_needs_no_driver_change():
    from kiln.targets import register
    from kiln.targets.llvm_cpu import LLVMCpuTarget

    seen = []

    class Tracing(LLVMCpuTarget):
        name = "tracing-cpu"

        def codegen(self, program, dump=None):
            seen.append(len(program.kernels))
            return super().codegen(program, dump)

    register("tracing-cpu", Tracing)
    m = kiln.compile(mlp_graph(batch=2), "tracing-cpu")
    assert seen and m.target["name"] == "tracing-cpu"
    np.testing.assert_allclose(m(np.ones((2, 24), np.float32))[0],
                               kiln.interpret(mlp_graph(batch=2), {"x": np.ones((2, 24), np.float32)})[m.outputs[0].name],
                               rtol=1e-4, atol=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="opt_level"):
        kiln.compile(mlp_graph(), opt_level=7)
    with pytest.raises(ValueError, match="num_threads"):
        kiln.compile(mlp_graph(), num_threads=0)
    with pytest.raises(TypeError, match="ONNX ModelProto"):
        kiln.compile(42)
    with pytest.raises(kiln.ModelLoadError):
        kiln.compile("/nonexistent/model.onnx")


def test_ops_without_a_lowering_are_named_with_their_node(monkeypatch):
    from kiln.ir.registry import OPS

    monkeypatch.setattr(OPS["relu"], "lower", None)
    with pytest.raises(kiln.UnsupportedOperatorError, match="relu") as e:
        kiln.compile(mlp_graph(batch=2))
    assert "no lowering" in str(e.value) and "node" in str(e.value)
