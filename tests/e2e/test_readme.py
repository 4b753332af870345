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
