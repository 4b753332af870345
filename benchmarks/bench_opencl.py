"""kiln's OpenCL target against kiln's CPU target on the same models: latency, agreement, compile time.

    python benchmarks/bench_opencl.py                                  # squeezenet, resnet50, shufflenet, bert
    python benchmarks/bench_opencl.py --models resnet50 --runs 10 --device opencl:0

On PoCL (the portable CPU implementation of OpenCL, ``pocl-binary-distribution`` from PyPI) both run on
the same cores, so the ratio is the cost of the OpenCL path -- kernels written for a GPU grid, PoCL's
work-group loops, a command queue and copies in and out -- not of the hardware. The first call also
pays PoCL's per-kernel build (reported apart: ``first call s``; its kernel cache makes later processes
fast). The CPU model runs with ``--threads`` threads; PoCL uses every core. Writes
``benchmarks/results/opencl.md``. Not a test: nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_cpu import build  # noqa: E402  (models and feeds: one home)

from kiln.compiler.cli import interleaved_medians, max_rel_err  # noqa: E402

MODELS = ["squeezenet", "resnet50", "shufflenet", "bert"]
RESULTS = HERE / "results"


def bench_one(name: str, runs: int, warmup: int, threads: int, device: str | None) -> dict:
    import kiln

    model, feeds = build(name)
    row = {"model": name}
    t0 = time.perf_counter()
    cpu = kiln.compile(model, target="cpu", num_threads=threads, progress=False)
    row["cpu_compile_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ocl = kiln.compile(model, target="opencl", progress=False)
    row["ocl_compile_s"] = time.perf_counter() - t0
    if device is not None:  # compile() opened the default device lazily; reopen on the one asked for
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            ocl.save(Path(d) / "m.kiln")
            ocl = kiln.load(Path(d) / "m.kiln", device=device)
    arrays = [feeds[s.name] for s in cpu.inputs]
    t0 = time.perf_counter()
    got = ocl(*arrays)
    row["first_call_s"] = time.perf_counter() - t0
    ref = cpu(*arrays)
    row["err"] = max(max_rel_err(r, g) for r, g in zip(ref, got))
    med = interleaved_medians({"opencl": lambda: ocl(*arrays), "cpu": lambda: cpu(*arrays)}, runs, warmup)
    row["ocl_ms"], row["cpu_ms"] = med["opencl"] * 1e3, med["cpu"] * 1e3
    row["ratio"] = med["opencl"] / med["cpu"]
    opts = ocl.target["options"]
    row["launches"] = opts.get("launches")
    return row


def table(rows) -> str:
    lines = ["| model | opencl ms | cpu ms | opencl / cpu | max rel err | launches | first call s "
             "| compile s (ocl / cpu) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['ocl_ms']:.1f} | {r['cpu_ms']:.1f} | {r['ratio']:.2f}x | {r['err']:.1e} "
                     f"| {r['launches']} | {r['first_call_s']:.1f} "
                     f"| {r['ocl_compile_s']:.1f} / {r['cpu_compile_s']:.1f} |")
    return "\n".join(lines)


def environment(device: str | None, threads: int, runs: int) -> str:
    import kiln
    from kiln.runtime import opencl

    dev = opencl.pick_device(device)
    return (f"OpenCL device: {dev.name.strip()} ({dev.platform.name.strip()}, {dev.version.strip()}, "
            f"{dev.max_compute_units} compute units); CPU target: {threads} threads, {os.cpu_count()} cores; "
            f"median of {runs} interleaved runs; kiln {kiln.__version__}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated (default: {', '.join(MODELS)})")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="threads of the CPU target (default 2)")
    p.add_argument("--device", default=None, help="OpenCL device, opencl:N (default: KILN_OPENCL_DEVICE or opencl:0)")
    p.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results alone")
    args = p.parse_args(argv)
    rows = []
    for name in [n.strip() for n in args.models.split(",") if n.strip()]:
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows.append(bench_one(name, args.runs, args.warmup, args.threads, args.device))
    text = f"{environment(args.device, args.threads, args.runs)}\n\n{table(rows)}\n"
    print(text)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "opencl.md").write_text("# kiln: OpenCL target vs CPU target\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
