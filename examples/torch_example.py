"""Compile a PyTorch model with kiln: torch.export -> kiln IR -> native code -> a .kiln artifact -> kiln.load.

    python examples/torch_example.py

A small ResNet-style CNN (conv + batch norm + residual blocks) is compiled once with a dynamic batch
dim (``torch.export.Dim("batch")``), saved, loaded back and compared with eager PyTorch at two batch
sizes, with the median latency of each. Then the same model through ``torch.compile(backend="kiln")``.
"""
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.export import Dim

import kiln


class Block(nn.Module):
    """conv-bn-relu-conv-bn plus the input (a 1x1 conv when the shape changes), then relu."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


class ResNetish(nn.Module):
    """[batch, 3, 32, 32] images -> [batch, 10] class probabilities."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.head = nn.Linear(64, 10)

    def forward(self, images):
        h = self.blocks(self.stem(images))
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1)).softmax(-1)


def median_ms(fn, x, runs=20):
    fn(x)  # warm up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main():
    torch.manual_seed(0)
    model = ResNetish().eval()
    for m in model.modules():  # trained-looking batch-norm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)

    t0 = time.perf_counter()
    compiled = kiln.compile(model, example_inputs=(torch.randn(2, 3, 32, 32),),
                            dynamic_shapes={"images": {0: Dim("batch")}})
    print(f"kiln.compile: {time.perf_counter() - t0:.2f} s, inputs {compiled.inputs}")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "resnetish.kiln"
        compiled.save(path)
        print(f"saved {path.name}: {path.stat().st_size / 1e3:.1f} kB")
        loaded = kiln.load(path)

    for batch in (1, 8):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            want = model(x).numpy()
        (y,) = loaded(x.numpy())
        err = np.abs(y - want).max()
        t_kiln = median_ms(lambda v: loaded(v), x.numpy())
        with torch.no_grad():
            t_torch = median_ms(model, x)
        print(f"batch {batch}: max |kiln - torch| = {err:.1e}  top-1 {y.argmax(-1).tolist()}  "
              f"median latency: kiln {t_kiln:.3f} ms, eager torch {t_torch:.3f} ms")
        assert err < 1e-4, "kiln and PyTorch disagree"

    # torch.compile with kiln as the backend: dynamo captures the graph, kiln compiles it on first call
    fast = torch.compile(model, backend="kiln")
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        err = (fast(x) - model(x)).abs().max().item()
    print(f"torch.compile(backend='kiln'): max |kiln - torch| = {err:.1e}")
    assert err < 1e-4


if __name__ == "__main__":
    main()
