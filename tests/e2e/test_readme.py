"""The README's Python example runs as written."""
import os
import re
from pathlib import Path

import pytest

pytest.importorskip("onnx")

ROOT = Path(__file__).parents[2]


def test_readme_python_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    section = text.split("## The Python API in ten lines", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "simplify" in out and "[" in out.splitlines()[-1]


def _block(heading: str, lang: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(heading, 1)[1]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def test_readme_compile_example_runs(tmp_path, capsys):
    code = _block("## Compile for the CPU", "python")
    assert len(code.strip().splitlines()) <= 12
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the example writes tiny_cnn.kiln into the cwd
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "<CompiledModel cpu" in out and "[" in out.splitlines()[-1]
    assert (tmp_path / "tiny_cnn.kiln").exists()


def test_readme_c_example_runs(tmp_path):
    import shutil
    import subprocess
    import zipfile

    import numpy as np

    import kiln

    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    model = kiln.compile(str(ROOT / "examples" / "tiny_cnn.onnx"))
    model.save(tmp_path / "model.kiln")
    zipfile.ZipFile(tmp_path / "model.kiln").extractall(tmp_path)
    (tmp_path / "main.c").write_text(_block("### The artifact", "c"))
    subprocess.run(["cc", "-O1", "main.c", "./model.so", "-Wl,-rpath,$ORIGIN", "-o", "main"], cwd=tmp_path,
                   check=True, capture_output=True)
    r = subprocess.run(["./main"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (probs,) = model(np.full((2, 3, 32, 32), 0.5, np.float32))
    assert abs(float(r.stdout) - float(probs[0, 0])) < 1e-5


@pytest.mark.parametrize("heading,framework", [("## PyTorch", "torch"), ("## JAX", "jax")])
def test_readme_frontend_examples_run(heading, framework, capsys):
    """The five-line PyTorch and JAX examples run as written and print a small error."""
    pytest.importorskip(framework)
    code = _block(heading, "python")
    assert len(code.strip().splitlines()) <= 6
    exec(compile(code, "README.md", "exec"), {})
    first = capsys.readouterr().out.splitlines()[0]
    assert float(first.split()[0]) < 1e-4, first


def test_readme_gpu_example_runs(tmp_path, capsys):
    """The OpenCL/CUDA example: compiled, saved, loaded on the OpenCL device, run; the PTX artifact saved."""
    pytest.importorskip("pyopencl")
    from kiln.runtime import opencl

    if not opencl.devices():
        pytest.skip("no OpenCL device")
    code = _block("## GPUs and other devices: OpenCL and CUDA", "python")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    assert "[" in capsys.readouterr().out
    assert (tmp_path / "tiny_cnn_ocl.kiln").exists() and (tmp_path / "tiny_cnn_cuda.kiln").exists()
