"""`kiln compile | run | inspect | bench` on a small ONNX model built here (Add + Relu + Mul on [batch, 8])."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from kiln.compiler.cli import main  # noqa: E402

ROOT = Path(__file__).parents[2]
W = (np.arange(8, dtype=np.float32) - 3.0) / 2


def reference(x):
    return np.maximum(x + W, 0) * W


def _model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])
    nodes = [helper.make_node("Add", ["x", "w"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Mul", ["r", "w"], ["y"])]
    graph = helper.make_graph(nodes, "add_relu_mul", [x], [y], [numpy_helper.from_array(W, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    onnx.save(_model(), str(d / "m.onnx"))
    assert main(["compile", str(d / "m.onnx"), "-o", str(d / "m.kiln"), "--no-progress"]) == 0
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    np.save(d / "x.npy", x)
    return d


def err_of(capsys):
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return cap.err


# ------------------------------------------------------------------------------------------ compile

def test_compile_writes_a_loadable_artifact(tmp_path, files, capsys):
    import kiln

    out = tmp_path / "a.kiln"
    assert main(["compile", str(files / "m.onnx"), "-o", str(out), "--no-progress"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"compiled {files / 'm.onnx'} -> {out}: ")
    assert "kernel call" in line and "weights" in line and "workspace peak" in line and line.endswith(" s")
    model = kiln.load(out)
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    np.testing.assert_allclose(model(x)[0], reference(x), rtol=1e-6)
    assert model.manifest["target"]["options"]["opt_level"] == 2


def test_compile_default_output_name_options_and_fixed_shape(tmp_path, capsys):
    src = tmp_path / "net.onnx"
    onnx.save(_model(), str(src))
    args = ["compile", str(src), "--input-shape", "x=4,8", "-O", "1", "--threads", "2", "--target", "cpu",
            "--no-progress"]
    assert main(args) == 0
    assert (tmp_path / "net.kiln").exists()
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "net.kiln"), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["inputs"] == [{"name": "x", "dtype": "f32", "shape": [4, 8]}]
    assert manifest["symbols"] == []
    assert manifest["target"]["options"]["opt_level"] == 1
    assert manifest["target"]["options"]["num_threads"] == 2


def test_compile_dump_ir_and_progress_bar(tmp_path, files, capsys):
    dump = tmp_path / "ir"
    assert main(["compile", str(files / "m.onnx"), "-o", str(tmp_path / "m.kiln"), "--dump-ir", str(dump),
                 "--progress"]) == 0
    cap = capsys.readouterr()
    assert "passes" in cap.err and "kernels" in cap.err and "#" in cap.err  # the bar, forced on
    names = {p.name for p in dump.iterdir()}
    assert "kernels.txt" in names and any(n.endswith(".kir") for n in names)


def test_compile_errors(tmp_path, capsys):
    assert main(["compile", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "o.kiln")]) == 2
    assert err_of(capsys).strip() == f"kiln: error: no such model file: {tmp_path / 'missing.onnx'}"

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model\xff" * 3)
    assert main(["compile", str(junk), "-o", str(tmp_path / "o.kiln")]) == 2
    err = err_of(capsys)
    assert err.startswith("kiln: error: ") and "junk.onnx" in err

    src = tmp_path / "m.onnx"
    onnx.save(_model(), str(src))
    assert main(["compile", str(src), "--input-shape", "x8", "-o", str(tmp_path / "o.kiln")]) == 2
    assert "--input-shape expects NAME=D0,D1,..." in err_of(capsys)
    assert main(["compile", str(src), "-o", str(tmp_path / "no" / "dir" / "o.kiln")]) == 2
    assert "no such directory" in err_of(capsys)
    assert main(["compile", str(src), "--threads", "0"]) == 2
    assert "--threads must be >= 1" in err_of(capsys)
    with pytest.raises(SystemExit) as e:  # argparse's own usage errors exit 2 too
        main(["compile", str(src), "-O", "7"])
    assert e.value.code == 2


def test_compile_unsupported_operator_names_it(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    node = helper.make_node("FrobnicateThing", ["x"], ["y"], domain="example.custom", name="frob1")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)])
    src = tmp_path / "custom.onnx"
    onnx.save(model, str(src))
    assert main(["compile", str(src), "-o", str(tmp_path / "c.kiln")]) == 2
    err = err_of(capsys)
    assert err.startswith("kiln: error: ") and "unsupported operator" in err and "FrobnicateThing" in err


# ---------------------------------------------------------------------------------------------- run

def test_run_with_input_file_saves_outputs(tmp_path, files, capsys):
    out = tmp_path / "out"
    assert main(["run", str(files / "m.kiln"), "--input", f"x={files / 'x.npy'}", "--output", str(out)]) == 0
    cap = capsys.readouterr()
    assert "y: float32[3, 8]" in cap.out and "ran m.kiln in" in cap.out
    x = np.load(files / "x.npy")
    np.testing.assert_allclose(np.load(out / "y.npy"), reference(x), rtol=1e-6)


def test_run_bare_input_file_for_the_only_input(files, capsys):
    assert main(["run", str(files / "m.kiln"), "-i", str(files / "x.npy"), "--repeat", "2"]) == 0
    assert "best of 2" in capsys.readouterr().out


def test_run_random_with_symbolic_batch(tmp_path, files, capsys):
    out = tmp_path / "o"
    assert main(["run", str(files / "m.kiln"), "--random", "--batch", "batch=5", "--output", str(out)]) == 0
    assert "y: float32[5, 8]" in capsys.readouterr().out
    assert np.load(out / "y.npy").shape == (5, 8)
    assert main(["run", str(files / "m.kiln"), "--random", "--batch", "2"]) == 0  # N alone: every symbol
    assert "y: float32[2, 8]" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    ([], "no data for input(s) x: f32[batch,8]: give --input NAME=FILE.npy for each, or --random"),
    (["--random"], "input 'x' has the symbolic dim 'batch'; give it with --batch batch=N"),
    (["--random", "--batch", "batch=zero"], "--batch expects SYMBOL=N with N >= 1 (got 'batch=zero')"),
    (["--input", "=x.npy"], "--input expects NAME=FILE.npy (got '=x.npy')"),
    (["--input", "x=/nonexistent/x.npy"], "no such input file: /nonexistent/x.npy"),
    (["--input", "y={x}"], "--input y={x}: the model has no input 'y' (its inputs: x: f32[batch,8])"),
    (["--input", "x={bad}"], "input 'x' dim 1: expected 8, got 9"),
    (["--input", "x={txt}"], "--input x={txt}: not a readable .npy file"),
    (["--shape", "x=1,8"], "--shape applies to ONNX models"),
])
def test_run_bad_inputs(tmp_path, files, capsys, args, message):
    np.save(tmp_path / "bad.npy", np.zeros((2, 9), np.float32))
    (tmp_path / "t.npy").write_text("not numpy")
    subst = {"x": files / "x.npy", "bad": tmp_path / "bad.npy", "txt": tmp_path / "t.npy"}
    args = [a.format(**subst) for a in args]
    assert main(["run", str(files / "m.kiln"), *args]) == 2
    err = err_of(capsys)
    assert err.startswith("kiln: error: ") and message.format(**subst) in err, err
    assert len(err.strip().splitlines()) == 1


def test_run_damaged_or_missing_artifact(tmp_path, files, capsys):
    assert main(["run", str(tmp_path / "none.kiln"), "--random"]) == 2
    assert err_of(capsys).strip() == f"kiln: error: no such artifact file: {tmp_path / 'none.kiln'}"
    fake = tmp_path / "fake.kiln"
    fake.write_bytes(b"hello")
    assert main(["run", str(fake), "--random"]) == 2
    assert "not a kiln artifact" in err_of(capsys)


def test_run_onnx_still_interprets(files, capsys):
    assert main(["run", str(files / "m.onnx"), "--bind", "batch=2"]) == 0
    assert "y: float32[2, 8]" in capsys.readouterr().out
    assert main(["run", str(files / "m.onnx"), "--random"]) == 2
    assert "apply to .kiln artifacts" in err_of(capsys)


# ------------------------------------------------------------------------------------------ inspect

def test_inspect_summary(files, capsys):
    assert main(["inspect", str(files / "m.kiln")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"artifact {files / 'm.kiln'} (")
    for needle in ("kiln-artifact v1", "target: cpu (executor cpu)", "opt_level: 2", "symbols: batch",
                   "inputs:\n  x: f32[batch, 8]", "outputs:\n  y: f32[batch, 8]", "kernels: ",
                   "(x, w) -> y", "memory plan: ", "peak workspace", "weights: 32 B in weights.bin",
                   "members:", "model.so", "kiln.h"):
        assert needle in out, needle
    manifest = json.loads(zipfile.ZipFile(files / "m.kiln").read("manifest.json"))
    for member, digest in manifest["members"].items():
        assert f"sha256 {digest}" in out


def test_inspect_json_is_the_manifest(files, capsys):
    assert main(["inspect", str(files / "m.kiln"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got == json.loads(zipfile.ZipFile(files / "m.kiln").read("manifest.json"))


def test_inspect_damaged_artifact(tmp_path, files, capsys):
    damaged = tmp_path / "d.kiln"
    with zipfile.ZipFile(files / "m.kiln") as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[:-1] + bytes([data[-1] ^ 1]) if info.filename == "weights.bin" else data)
    assert main(["inspect", str(damaged)]) == 2
    err = err_of(capsys)
    assert "weights.bin" in err and "checksum" in err


# -------------------------------------------------------------------------------------------- bench

def test_bench_artifact_against_onnxruntime(files, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["bench", str(files / "m.kiln"), "--onnx", str(files / "m.onnx"), "--runs", "5",
                 "--warmup", "1", "--threads", "1", "--batch", "batch=4"]) == 0
    out = capsys.readouterr().out
    assert "x[4, 8]" in out and "kiln:" in out and "onnxruntime:" in out
    assert "kiln / onnxruntime:" in out and "max rel err 0.00e+00" in out


def test_bench_onnx_compiles_first(files, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["bench", str(files / "m.onnx"), "--input-shape", "x=16,8", "--runs", "3", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "x[16, 8]" in out and "compiled in" in out and "kiln / onnxruntime:" in out


def test_bench_without_peer(files, capsys):
    assert main(["bench", str(files / "m.kiln"), "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "kiln:" in out and "give --onnx MODEL.onnx" in out and "onnxruntime:" not in out
    assert main(["bench", str(files / "m.onnx"), "--runs", "2", "--vs", "none"]) == 0
    assert "onnxruntime" not in capsys.readouterr().out.split("\n", 1)[1]


def test_bench_errors(tmp_path, files, capsys):
    assert main(["bench", str(tmp_path / "x.onnx")]) == 2
    assert "no such model file" in err_of(capsys)
    assert main(["bench", str(files / "m.kiln"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "no such ONNX model file" in err_of(capsys)
    assert main(["bench", str(files / "m.kiln"), "--input-shape", "x=1,8"]) == 2
    assert "--batch SYM=N" in err_of(capsys)
    assert main(["bench", str(files / "m.kiln"), "--runs", "0"]) == 2
    assert "--runs must be >= 1" in err_of(capsys)


# -------------------------------------------------------------------------------------- subprocess

def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_subprocess_compile_then_run_without_llvmlite_or_onnx(tmp_path, files):
    art = tmp_path / "s.kiln"
    r = subprocess.run([sys.executable, "-m", "kiln.compiler.cli", "compile", str(files / "m.onnx"), "-o", str(art)],
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "compiled " in r.stdout and art.exists()
    # the runtime path must not need the compiler's dependencies: block them and run the artifact
    script = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('llvmlite', 'onnx', 'onnxruntime'):\n"
        "            raise ImportError(f'blocked: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from kiln.compiler.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "assert not any(m.split('.')[0] in ('llvmlite', 'onnx') for m in sys.modules), 'imported a compiler dep'\n"
        "sys.exit(rc)\n")
    out = tmp_path / "out"
    for args in (["run", str(art), "--input", f"x={files / 'x.npy'}", "--output", str(out)], ["inspect", str(art)]):
        r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=_env(),
                           timeout=300)
        assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(out / "y.npy"), reference(np.load(files / "x.npy")), rtol=1e-6)


def test_subprocess_errors_are_one_line(tmp_path, files):
    script = ROOT / ".venv" / "bin" / "kiln"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "kiln.compiler.cli"]
    r = subprocess.run(cmd + ["run", str(files / "m.kiln"), "--input", "x"], capture_output=True, text=True,
                       env=_env(), timeout=300)
    assert r.returncode == 2
    assert r.stderr == "kiln: error: no such input file: x\n"
    r = subprocess.run(cmd + ["inspect", str(tmp_path / "nope.kiln")], capture_output=True, text=True,
                       env=_env(), timeout=300)
    assert r.returncode == 2 and r.stderr == f"kiln: error: no such artifact file: {tmp_path / 'nope.kiln'}\n"
