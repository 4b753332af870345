"""kiln through its PyTorch and JAX frontends against the framework's own execution, on the CPU.

    python benchmarks/bench_frontends.py                    # every model, 2 threads each
    python benchmarks/bench_frontends.py --models bert --runs 30 --threads 2

Models, all built in code with seeded random weights:

- ``bert`` — a Hugging Face ``transformers`` BertModel shaped like MiniLM-L6 (6 layers, hidden 384,
  12 heads, FFN 1536), batch 1, sequence 128; kiln (``kiln.compile`` with a dynamic batch and sequence)
  vs torch eager under ``torch.inference_mode``. Skipped when transformers is not installed.
- ``resnet18ish`` — a ResNet-18-shaped CNN written with ``torch.nn`` (BasicBlocks, batch-norm), batch 1,
  3x224x224; kiln vs torch eager.
- ``jax_mlp`` — a 4-layer gelu MLP (1024 wide) in jnp, batch 32; kiln vs ``jax.jit`` (which takes the
  weights as arguments, as JAX code does; kiln compiles them in as constants).
- ``jax_convnet`` — a NHWC convnet through ``lax.conv_general_dilated`` and ``reduce_window``, batch 8;
  kiln vs ``jax.jit``.

Both engines run in this one process, interleaved (kiln, peer, kiln, peer, ...); torch runs with
``torch.set_num_threads(threads)``, kiln with ``num_threads``; XLA's CPU client uses the cores it finds
(XLA has no documented intra-op thread knob for the CPU). The median of each
is reported with the largest difference of the outputs relative to the peer's largest magnitude.
Writes ``benchmarks/results/frontends.md``. Not a test: nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from kiln.compiler.cli import interleaved_medians  # noqa: E402

RESULTS = HERE / "results"
ALL = ["bert", "resnet18ish", "jax_mlp", "jax_convnet"]


# --- models -----------------------------------------------------------------------------------------

def bert():
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                     intermediate_size=1536, max_position_embeddings=512, attn_implementation="sdpa")
    net = BertModel(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (1, 128))
    mask = torch.ones(1, 128, dtype=torch.int64)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=512)
    dyn = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}

    def eager():
        with torch.inference_mode():
            return net(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()

    return net, {"input_ids": ids, "attention_mask": mask}, dyn, eager, "torch eager"


def _basic_block(cin, cout, stride):
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.b2(self.c2(self.b1(self.c1(x)).relu()))
            return (y + (x if self.down is None else self.down(x))).relu()

    return Block()


def resnet18ish():
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [_basic_block(cin, cout, stride), _basic_block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    net = nn.Sequential(*layers).eval()
    for m in net.modules():  # non-trivial running statistics, as a trained model has
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 224, 224)

    def eager():
        with torch.inference_mode():
            return net(x).numpy()

    return net, {"input": x}, {"input": {0: torch.export.Dim("batch")}}, eager, "torch eager"


def jax_mlp():
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    ws = [rng.standard_normal((1024, 1024)).astype(np.float32) / 32 for _ in range(4)]
    x = rng.standard_normal((32, 1024)).astype(np.float32)

    def apply(params, x):
        for w in params:
            x = jax.nn.gelu(x @ w)
        return jnp.sum(x, axis=-1)

    # jax.jit gets the weights as arguments, the JAX idiom (XLA is several times slower on large closed-over
    # constants); kiln compiles the closure, its weights becoming constants of the artifact
    jitted, params = jax.jit(apply), [jax.device_put(w) for w in ws]
    return (lambda x: apply(ws, x)), {"x": x}, None, lambda: np.asarray(jitted(params, x).block_until_ready()), \
        "jax.jit"


def jax_convnet():
    import jax
    from jax import lax

    rng = np.random.default_rng(0)
    dn = ("NHWC", "HWIO", "NHWC")
    w1 = rng.standard_normal((3, 3, 3, 32)).astype(np.float32) * 0.2
    w2 = rng.standard_normal((3, 3, 32, 64)).astype(np.float32) * 0.06
    w3 = rng.standard_normal((3, 3, 64, 128)).astype(np.float32) * 0.04
    wd = rng.standard_normal((128, 10)).astype(np.float32) * 0.1
    x = rng.standard_normal((8, 64, 64, 3)).astype(np.float32)

    def apply(params, x):
        *convs, dense = params
        for w in convs:
            x = jax.nn.relu(lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn))
            x = lax.reduce_window(x, -np.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        return x.mean(axis=(1, 2)) @ dense

    ws = [w1, w2, w3, wd]
    jitted, params = jax.jit(apply), [jax.device_put(w) for w in ws]
    return (lambda x: apply(ws, x)), {"x": x}, None, lambda: np.asarray(jitted(params, x).block_until_ready()), \
        "jax.jit"


BUILDERS = {"bert": bert, "resnet18ish": resnet18ish, "jax_mlp": jax_mlp, "jax_convnet": jax_convnet}


# --- measuring ----------------------------------------------------------------------------------------

def bench_one(name, runs, warmup, threads):
    import kiln

    model, inputs, dyn, peer, peer_name = BUILDERS[name]()
    t0 = time.perf_counter()
    if dyn is not None:  # torch
        compiled = kiln.compile(model, example_inputs=inputs, dynamic_shapes=dyn, num_threads=threads,
                                progress=False)
    else:
        compiled = kiln.compile(model, example_inputs=tuple(inputs.values()), num_threads=threads, progress=False)
    compile_s = time.perf_counter() - t0
    arrays = [np.asarray(v) for v in inputs.values()]
    ref = peer()
    got = compiled(*arrays)[0]
    err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))
    med = interleaved_medians({"kiln": lambda: compiled(*arrays), "peer": peer}, runs, warmup)
    return {"model": name, "peer": peer_name, "kiln_ms": med["kiln"] * 1e3, "peer_ms": med["peer"] * 1e3,
            "err": err, "compile_s": compile_s}


def table(rows, threads):
    lines = [f"| model | peer | kiln ms | peer ms | kiln / peer | max err / max ref | compile s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['peer']} | {r['kiln_ms']:.2f} | {r['peer_ms']:.2f} | "
                     f"{r['kiln_ms'] / r['peer_ms']:.2f}x | {r['err']:.1e} | {r['compile_s']:.1f} |")
    return "\n".join(lines) + f"\n\n{threads} thread(s); {platform.processor() or platform.machine()}, " \
                              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(ALL))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models.split(","):
        if name not in BUILDERS:
            raise SystemExit(f"bench_frontends: unknown model {name!r}; choose from {', '.join(ALL)}")
        try:
            rows.append(bench_one(name, args.runs, args.warmup, args.threads))
        except ImportError as e:
            print(f"{name}: skipped ({e})")
            continue
        r = rows[-1]
        print(f"{name}: kiln {r['kiln_ms']:.2f} ms, {r['peer']} {r['peer_ms']:.2f} ms, err {r['err']:.1e}", flush=True)
    text = table(rows, args.threads)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "frontends.md").write_text("# kiln vs the frameworks' own execution\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
