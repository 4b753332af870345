"""kiln on the CPU against onnxruntime: latency, agreement and compile time on real model graphs.

    python benchmarks/bench_cpu.py                           # every model, 2 threads each
    python benchmarks/bench_cpu.py --models resnet50,bert --runs 30 --threads 2
    python benchmarks/bench_cpu.py --profile                 # per-kernel times too, where kiln has them

Models: the nine light model-zoo graphs that ship inside the onnx package (``light_*.onnx``; they carry
no weights, only ``ConstantOfShape`` placeholders, so every weight is replaced by a seeded random one
-- see ``benchmarks/models.py``) and ``bert``, a MiniLM-L6-shaped BERT encoder built in code
(6 layers, hidden 384, 12 heads, seq 128, FFN 1536; batch 1 at run time, symbolic when compiled).

kiln and onnxruntime run in this one process, interleaved (kiln, ort, kiln, ort, ...), with the same
thread count (ort: ``intra_op_num_threads``; kiln: ``num_threads``); the median of each is reported.
Writes ``benchmarks/results/cpu.md`` and ``benchmarks/results/cpu.png`` (latency ratios, when
matplotlib is installed: ``pip install kiln[bench]``). A model that kiln cannot compile yet gets a row
with the reason and no timings. Not a test: nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import models  # noqa: E402

from kiln.compiler.cli import interleaved_medians, max_rel_err, ort_session  # noqa: E402

ALL_MODELS = ["bert"] + models.LIGHT_ZOO
RESULTS = HERE / "results"


def build(name: str):
    """(ONNX ModelProto, feeds dict) for a model name."""
    if name == "bert":
        return models.bert_encoder(), models.bert_inputs(batch=1)
    if name.startswith("bert"):  # bert-L2 and the like: fewer layers, for quick runs
        layers = int(name.split("-L")[1]) if "-L" in name else 6
        return models.bert_encoder(layers=layers), models.bert_inputs(batch=1)
    if name not in models.LIGHT_ZOO:
        raise SystemExit(f"bench_cpu: unknown model {name!r}; choose from {', '.join(ALL_MODELS)}")
    model = models.light_zoo(name)
    rng = np.random.default_rng(1)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for i in model.graph.input:
        if i.name in inits:
            continue
        shape = [d.dim_value or 1 for d in i.type.tensor_type.shape.dim]
        feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return model, feeds


def _short(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    text = f"{type(e).__name__}: " + "; ".join(lines[:3])
    return text[:160]


def bench_one(name: str, runs: int, warmup: int, threads: int, profile: bool, verbose: bool) -> dict:
    import kiln

    row = {"model": name}
    model, feeds = build(name)
    path = RESULTS / f".{name}.onnx"  # ort reads large models best from a file
    RESULTS.mkdir(parents=True, exist_ok=True)
    import onnx

    onnx.save(model, str(path))
    try:
        sess = ort_session(path, threads)
        ort_feeds = {i.name: feeds[i.name] for i in sess.get_inputs()}
        ref = sess.run(None, ort_feeds)
        t0 = time.perf_counter()
        try:
            compiled = kiln.compile(model, num_threads=threads, progress=verbose)
        except Exception as e:  # noqa: BLE001 - a row that says why, not a crash
            row["compile_s"] = time.perf_counter() - t0
            row["error"] = _short(e)
            if verbose:
                traceback.print_exc()
            return row
        row["compile_s"] = time.perf_counter() - t0
        arrays = [feeds[s.name] for s in compiled.inputs]
        try:
            got = compiled(*arrays)
        except Exception as e:  # noqa: BLE001
            row["error"] = "run: " + _short(e)
            return row
        row["err"] = max(max_rel_err(r, g) for r, g in zip(ref, got))
        medians = interleaved_medians({"kiln": lambda: compiled(*arrays),
                                       "ort": lambda: sess.run(None, ort_feeds)}, runs, warmup)
        row["kiln_ms"], row["ort_ms"] = medians["kiln"] * 1e3, medians["ort"] * 1e3
        row["ratio"] = medians["kiln"] / medians["ort"]
        m = compiled.manifest
        row["kernels"] = len(m.get("kernels") or [])
        if profile:
            row["profile"] = kernel_profile(compiled, arrays)
        return row
    finally:
        path.unlink(missing_ok=True)


def kernel_profile(compiled, arrays, runs: int = 10):
    """Per-kernel times (``kiln.compiler.profile``) as text, or None when this kiln or model has no profiler."""
    try:
        from kiln.compiler.profile import format_profile, profile
    except ImportError:
        return None
    try:
        return format_profile(profile(compiled, *arrays, runs=runs))
    except ValueError:  # a library without profile marks
        return None


def table(rows, threads: int) -> str:
    lines = [f"| model | kiln ms | ort ms | kiln / ort | max rel err vs ort | compile s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | — | — | — | — | {r.get('compile_s', 0):.1f} (failed: "
                         f"{r['error'].replace('|', '/')}) |")
        else:
            lines.append(f"| {r['model']} | {r['kiln_ms']:.2f} | {r['ort_ms']:.2f} | {r['ratio']:.2f}x | "
                         f"{r['err']:.1e} | {r['compile_s']:.1f} |")
    return "\n".join(lines)


def environment(threads: int, runs: int) -> str:
    import onnxruntime

    import kiln

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores; {threads} threads each; median of {runs} interleaved runs; "
            f"kiln {kiln.__version__}, onnxruntime {onnxruntime.__version__}, Python {platform.python_version()}")


def plot(rows, path: Path, threads: int) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no chart; pip install kiln[bench])", file=sys.stderr)
        return False
    ok = [r for r in rows if "ratio" in r]
    failed = [r["model"] for r in rows if "ratio" not in r]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4.2))
    names = [r["model"] for r in ok] + failed
    ratios = [r["ratio"] for r in ok] + [0] * len(failed)
    colors = ["#2a9d8f" if x <= 1 else "#e76f51" for x in ratios]
    bars = ax.bar(names, ratios, color=colors)
    for bar, r in zip(bars, ratios):
        ax.annotate(f"{r:.2f}x" if r else "not\ncompiled", (bar.get_x() + bar.get_width() / 2, r),
                    ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_ylabel("kiln latency / onnxruntime latency (lower is better)")
    ax.set_title(f"kiln vs onnxruntime on the CPU, {threads} threads (median latency ratio)")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(ALL_MODELS),
                   help=f"comma-separated (default: all): {', '.join(ALL_MODELS)}; also bert-L2 etc.")
    p.add_argument("--runs", type=int, default=20, help="timed runs of each engine (default 20)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="threads for kiln and onnxruntime (default 2)")
    p.add_argument("--profile", action="store_true", help="print per-kernel times, where kiln provides them")
    p.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results alone")
    p.add_argument("-v", "--verbose", action="store_true", help="progress bars and tracebacks of failures")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    rows = []
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        row = bench_one(name, args.runs, args.warmup, args.threads, args.profile, args.verbose)
        rows.append(row)
        print("  " + (f"failed: {row['error']}" if "error" in row else
                      f"kiln {row['kiln_ms']:.2f} ms, ort {row['ort_ms']:.2f} ms, {row['ratio']:.2f}x, "
                      f"err {row['err']:.1e}, compiled in {row['compile_s']:.1f} s"), file=sys.stderr, flush=True)
        if args.profile and "error" not in row:
            prof = row.get("profile")
            if prof is None:
                print("  (this kiln has no per-kernel profiler: --profile skipped)", file=sys.stderr)
            else:
                print(f"per-kernel time of {name} (slowest first):\n{prof}\n")
    env = environment(args.threads, args.runs)
    text = table(rows, args.threads)
    print(text)
    print(f"\n{env}")
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "cpu.md").write_text(
            "# kiln vs onnxruntime on the CPU\n\n"
            "Written by `python benchmarks/bench_cpu.py`. Light-zoo weights are seeded random (the onnx package "
            "ships them as ConstantOfShape placeholders; the logits feeding the final Softmax are compared too); `bert` is the MiniLM-L6-shaped encoder of "
            "`benchmarks/models.py` at batch 1, seq 128.\n\n" + text + f"\n\n{env}\n")
        plotted = plot(rows, RESULTS / "cpu.png", args.threads)
        print(f"wrote {RESULTS / 'cpu.md'}" + (f" and {RESULTS / 'cpu.png'}" if plotted else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
