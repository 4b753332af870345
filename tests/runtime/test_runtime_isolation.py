"""A deployment needs numpy and kiln only: load and run an artifact with the compilers unimportable."""
import subprocess
import sys
import textwrap

import numpy as np

import kiln
from runtime_cases import expected, toy_artifact, toy_lib  # noqa: F401

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
    x = np.load(sys.argv[2])
    (y,) = model(x)
    np.save(sys.argv[3], y)
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED
                   or m.startswith(("kiln.compiler", "kiln.passes", "kiln.targets")))
    print("heavy:", ",".join(heavy))
""")


def test_load_and_run_without_the_compiler(toy_artifact, tmp_path):
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(toy_artifact), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "heavy:"
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(y, kiln.load(toy_artifact)(x)[0])
    np.testing.assert_array_equal(y, expected(x))


def test_the_blocker_blocks(tmp_path):
    """The child's finder really makes the compilers unimportable (else the test above proves nothing)."""
    code = CHILD.split("import numpy as np")[0] + "import kiln.compiler.artifact\nimport llvmlite\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "blocked in this test" in proc.stderr
