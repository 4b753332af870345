"""The cleanup pipeline on real networks: the ONNX package's light model-zoo graphs, imported,
simplified, and compared with the unoptimised graph through the interpreter."""
import importlib.util
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")

import kiln  # noqa: E402
import kiln.testing as kt  # noqa: E402
from kiln.passes import PassContext, PassManager, default_pipeline  # noqa: E402

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = ["squeezenet", "shufflenet", "inception_v1", "inception_v2", "resnet50", "densenet121"]


def _zoo_helpers():
    # the e2e suite's seeded weights for the zoo's placeholder initializers
    path = Path(__file__).parents[1] / "e2e" / "test_light_zoo.py"
    spec = importlib.util.spec_from_file_location("_light_zoo_helpers", path)
    if spec is None or not path.exists():
        pytest.skip("tests/e2e/test_light_zoo.py is not there")
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
        return mod.with_random_weights
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"light-zoo helpers unavailable: {e}")


@pytest.mark.parametrize("model", MODELS)
def test_pipeline_preserves_a_network(model):
    from kiln.frontends.onnx import from_onnx

    path = LIGHT / f"light_{model}.onnx"
    if not path.exists():
        pytest.skip(f"{path.name} is not shipped with this onnx")
    g = from_onnx(_zoo_helpers()(onnx.load(path)))
    pm = PassManager(default_pipeline(), PassContext(debug=True))
    out = pm.run(g)
    assert len(out.nodes) <= len(g.nodes)
    kt.assert_equivalent(g, out, trials=1, rtol=1e-4, atol=1e-5)
    # the result prints and parses back
    assert kiln.parse(str(out), constants=out.constants) == out
