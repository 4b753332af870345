"""``torch.compile(model, backend="kiln")``: graph breaks, recompiles on new shapes, eager fallback.

Compilations are counted through the backend's ``_compile_graph`` seam.
"""
import subprocess
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")

import torch.nn as nn  # noqa: E402

import kiln  # noqa: E402
import torch_zoo  # noqa: E402
from kiln.frontends.torch import backend  # noqa: E402


@pytest.fixture
def compiles(monkeypatch):
    """The list of graphs the backend compiled during the test."""
    torch._dynamo.reset()
    seen = []
    real = backend._compile_graph

    def counting(graph, options):
        seen.append(graph)
        return real(graph, options)

    monkeypatch.setattr(backend, "_compile_graph", counting)
    yield seen
    torch._dynamo.reset()


class Branchy(nn.Module):
    """A Python branch on a tensor's value (``.item()``): dynamo breaks the graph there."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 4)

    def forward(self, x):
        h = torch.relu(self.bn(self.fc1(x)))
        if h.mean().item() > 0:  # graph break
            h = h * 2
        else:
            h = h - 1
        return self.fc2(h).softmax(-1), h.sum(1)


def _inputs(batch):
    return torch.rand(batch, 8, generator=torch.Generator().manual_seed(batch))


def _close(out, ref, tol=1e-5):
    for o, r in zip(out, ref):
        assert torch_zoo.rel_err(o, r) < tol


def test_graph_break_and_recompiles(compiles):
    torch.manual_seed(0)
    model = torch_zoo._randomize_bn(Branchy(), 1).eval()
    fast = torch.compile(model, backend="kiln")
    with torch.no_grad():
        _close(fast(_inputs(2)), model(_inputs(2)))
        assert len(compiles) == 2  # one kiln model per graph on either side of the break
        _close(fast(_inputs(2)), model(_inputs(2)))
        assert len(compiles) == 2  # same shapes: nothing new
        _close(fast(_inputs(3)), model(_inputs(3)))
        assert len(compiles) == 4  # a new batch size: each graph compiled once more (dynamo made it dynamic)
        assert all(g.types[g.inputs[0]].shape[0] != 3 for g in compiles[2:])  # ... with a symbolic batch
        for b in (5, 2, 7):
            _close(fast(_inputs(b)), model(_inputs(b)))
        assert len(compiles) == 4  # later sizes run on the symbolic models


def test_weights_changed_in_place_are_seen(compiles):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh()).eval()
    fast = torch.compile(model, backend="kiln")
    x = torch.randn(2, 4)
    with torch.no_grad():
        _close([fast(x)], [model(x)])
        model[0].weight.mul_(-2.0)
        _close([fast(x)], [model(x)])
    assert len(compiles) == 2


def test_unsupported_op_runs_eagerly_with_one_warning(compiles):
    fast = torch.compile(lambda x: torch.linalg.inv(x) + 1, backend="kiln")
    x = torch.eye(3) * 2 + 0.1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out1 = fast(x)
        out2 = fast(x)
    mine = [w for w in caught if "kiln backend" in str(w.message)]
    assert len(mine) == 1
    assert "aten.linalg_inv_ex.default" in str(mine[0].message)
    assert "test_torch_backend.py" in str(mine[0].message)  # the user's line
    torch.testing.assert_close(out1, torch.linalg.inv(x) + 1)
    torch.testing.assert_close(out2, out1)
    assert compiles == []


def test_fallback_false_raises(compiles):
    fast = torch.compile(lambda x: torch.linalg.inv(x) + 1, backend="kiln", options={"fallback": False})
    with pytest.raises(kiln.UnsupportedOperatorError, match="linalg_inv"):
        fast(torch.eye(3))


def test_unknown_option():
    gm = torch.fx.symbolic_trace(lambda x: x + 1)
    with pytest.raises(ValueError, match="unknown option.*bogus"):
        backend.kiln_backend(gm, [torch.zeros(2)], options={"bogus": 1})


def test_registered_backend_in_a_fresh_process():
    code = (
        "import torch, warnings\n"
        "warnings.simplefilter('error', RuntimeWarning)\n"
        "from importlib.metadata import entry_points\n"
        "assert 'kiln' in [e.name for e in entry_points(group='torch_dynamo_backends')]\n"
        "m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU()).eval()\n"
        "x = torch.randn(3, 4)\n"
        "with torch.no_grad():\n"
        "    out = torch.compile(m, backend='kiln', options={'fallback': False})(x)\n"
        "    torch.testing.assert_close(out, m(x))\n"
        "print('ok')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("ok")


def test_results_keep_their_types(compiles):
    """A 0-d tensor stays 0-d; a size the graph returns (a SymInt once dynamic) comes back as an int."""
    def fn(x):
        n = x.shape[0] * 2
        y = x + 1
        torch._dynamo.graph_break()
        return y * n, y.sum(), x.shape[0] * 3

    fast = torch.compile(fn, backend="kiln", options={"fallback": False})
    for batch in (2, 3, 4):
        x = torch.ones(batch, 2)
        out, want = fast(x), fn(x)
        torch.testing.assert_close(out[0], want[0])
        assert out[1].shape == () and float(out[1]) == float(want[1])
        assert type(out[2]) is int and out[2] == want[2]
