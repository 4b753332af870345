"""The `kiln` command on the bundled example model."""
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from kiln.compiler.cli import main  # noqa: E402

EXAMPLE = str(Path(__file__).parents[2] / "examples" / "tiny_cnn.onnx")


def test_import_prints_ir(capsys):
    assert main(["import", EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert out.startswith("graph tiny_cnn(%image: f32[batch, 3, 32, 32])")
    assert "conv(" in out and "return %probs" in out


def test_import_writes_ir_that_parses(tmp_path):
    import kiln
    from kiln.frontends.onnx import from_onnx

    dest = tmp_path / "m.kir"
    assert main(["import", EXAMPLE, "-o", str(dest), "--no-optimize"]) == 0
    g = from_onnx(EXAMPLE)
    assert kiln.parse(dest.read_text(), constants=g.constants) == g


def test_run_with_bound_batch_and_dump(tmp_path, capsys):
    assert main(["run", EXAMPLE, "--bind", "batch=2", "--dump-ir", str(tmp_path), "-v"]) == 0
    cap = capsys.readouterr()
    assert "probs: float32[2, 10]" in cap.out
    assert "simplify" in cap.err  # the per-pass timing report
    assert sorted(p.name for p in tmp_path.iterdir())[0] == "00_input.kir"


def test_run_needs_symbolic_dims_bound(capsys):
    assert main(["run", EXAMPLE]) == 2
    assert "--bind batch=N" in capsys.readouterr().err


def test_errors_are_reported_not_raised(capsys):
    assert main(["run", "/nonexistent/model.onnx"]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_shape_override(capsys):
    assert main(["run", EXAMPLE, "--shape", "image=3,3,32,32"]) == 0
    assert "probs: float32[3, 10]" in capsys.readouterr().out


def test_ops_lists(capsys):
    assert main(["ops"]) == 0
    assert "matmul(a, b)" in capsys.readouterr().out
    assert main(["ops", "--onnx"]) == 0
    assert "Conv: opset" in capsys.readouterr().out
