"""The model zoo through ``kiln.compile`` with a dynamic batch: one compile per model, two batch sizes.

Each model is compiled once with ``dynamic_shapes`` declaring the batch
``Dim("batch")``, and run natively at batch 1 and 5 against eager PyTorch. Criterion: the
normalised max error ``max|out - ref| / max|ref|`` of every output is below 1e-4 (see torch_zoo).
"""
import pytest

torch = pytest.importorskip("torch")

import kiln  # noqa: E402
import torch_zoo  # noqa: E402
from torch.export import Dim  # noqa: E402

TOL = 1e-4


@pytest.mark.parametrize("name", sorted(torch_zoo.ZOO))
def test_compiled_with_dynamic_batch_matches_eager(name):
    # one test per model: compiled once (whichever worker runs it), then run at two batch sizes
    model = torch_zoo.build(name)
    cm = kiln.compile(model, example_inputs=(torch_zoo.example(name, 2),), dynamic_shapes=({0: Dim("batch")},))
    assert [s.shape[0] for s in cm.inputs] == ["batch"]
    assert all(s.shape[0] == "batch" for s in cm.outputs)
    for batch in (1, 5):
        x = torch_zoo.example(name, batch)
        with torch.no_grad():
            ref = model(x)
        refs = ref if isinstance(ref, tuple) else (ref,)
        outs = cm(x)  # torch tensors are accepted as inputs
        assert len(outs) == len(refs)
        for out, r in zip(outs, refs):
            assert out.shape == tuple(r.shape)
            err = torch_zoo.rel_err(out, r)
            assert err < TOL, f"{name} batch {batch}: normalised max error {err:.2e}"


def test_training_flag_is_restored():
    model = torch_zoo.build("mlp").train()
    kiln.frontends.torch.from_torch(model, (torch_zoo.example("mlp", 2),))
    assert model.training
