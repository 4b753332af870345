"""A real compiled model (an ONNX CNN with conv, batch-norm, pooling and a classifier) saved, then loaded
and run in a process where llvmlite, onnx, torch and jax cannot be imported: results equal the
in-process compiled model's, for two batch sizes from one artifact."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import kiln

onnx = pytest.importorskip("onnx")

CHILD = textwrap.dedent("""
    import sys
    BLOCKED = {"llvmlite", "onnx", "onnxruntime", "torch", "jax", "jaxlib", "hypothesis"}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    import numpy as np
    import kiln
    model = kiln.load(sys.argv[1])
    for k, path in enumerate(sys.argv[2:]):
        x = np.load(path)
        (y,) = model(x)
        np.save(path + ".out.npy", y)
    bad = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED or m.startswith(("kiln.compiler", "kiln.targets")))
    print("heavy:", ",".join(bad))
""")


def test_compiled_cnn_runs_without_the_compiler(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    from make_example_model import build as make_model  # the bundled example model, built in code

    proto = make_model()
    inp = proto.graph.input[0]
    model = kiln.compile(proto, input_shapes={inp.name: ["batch"] + [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]]})
    path = tmp_path / "cnn.kiln"
    model.save(path)
    files = []
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]]
    for n in (1, 4):
        x = np.random.default_rng(n).standard_normal([n] + shape).astype(np.float32)
        np.save(tmp_path / f"x{n}.npy", x)
        files.append((x, tmp_path / f"x{n}.npy"))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)] + [str(f) for _, f in files],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "heavy:"
    for x, f in files:
        np.testing.assert_array_equal(np.load(str(f) + ".out.npy"), model(x)[0])
