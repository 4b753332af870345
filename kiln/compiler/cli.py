"""The ``kiln`` command.

    kiln import model.onnx [-o model.kir] [--shape image=1,3,224,224] [--no-optimize]
    kiln run model.onnx [--shape ...] [--seed 0] [--repeat 3]
    kiln ops [--onnx]

``import`` converts a model to kiln IR and prints (or writes) its text form; ``run`` interprets
it on seeded random inputs and prints output summaries and timing; ``ops`` lists the core ops
(or the ONNX ops kiln converts, with the opsets each converter starts at).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ..errors import KilnError


def _parse_shapes(items) -> dict:
    shapes = {}
    for item in items or []:
        name, sep, dims = item.rpartition("=")
        if not sep or not name:
            raise SystemExit(f"kiln: --shape expects NAME=D0,D1,... (got {item!r})")
        shapes[name] = [int(d) if d.strip().lstrip("-").isdigit() else d.strip() for d in dims.split(",") if d.strip()]
    return shapes


def load_graph(path: str, shapes: dict, optimize: bool = True, dump_ir: str | None = None, verbose: bool = False):
    """Import a model file and run the default graph simplification pipeline on it."""
    from ..frontends.onnx import from_onnx

    g = from_onnx(path, input_shapes=shapes or None)
    if optimize:
        from ..passes import PassContext, PassManager, default_pipeline

        pm = PassManager(default_pipeline(), PassContext(dump_dir=dump_ir, debug=True))
        g = pm.run(g)
        if verbose:
            print(pm.report, file=sys.stderr)
    return g


def _random_inputs(g, seed: int, symbols: dict):
    rng = np.random.default_rng(seed)
    arrays = []
    for name in g.inputs:
        t = g.types[name]
        shape = []
        for d in t.shape:
            if isinstance(d, int):
                shape.append(d)
            elif d in symbols:
                shape.append(symbols[d])
            else:
                raise SystemExit(f"kiln: input '{name}' has run-time dim '{d}'; give it with --bind {d}=N")
        if t.dtype.is_float:
            arrays.append(rng.standard_normal(shape).astype(t.dtype.np))
        elif t.dtype.kind == "bool":
            arrays.append(rng.integers(0, 2, shape).astype(bool))
        else:
            arrays.append(rng.integers(0, 10, shape).astype(t.dtype.np))
    return arrays


def main(argv=None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # output piped into head: stop quietly
        sys.stdout = None
        return 0


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="kiln", description="kiln — an ML compiler")
    sub = p.add_subparsers(dest="cmd", required=True)

    def model_args(sp):
        sp.add_argument("model", help="ONNX model file")
        sp.add_argument("--shape", action="append", metavar="NAME=D0,D1,...",
                        help="override an input's shape (ints or symbol names); repeatable")
        sp.add_argument("--no-optimize", action="store_true", help="skip the graph simplification passes")
        sp.add_argument("--dump-ir", metavar="DIR", help="write the IR after every pass into DIR")
        sp.add_argument("-v", "--verbose", action="store_true", help="print per-pass timing")

    sp = sub.add_parser("import", help="convert a model to kiln IR and print its text form")
    model_args(sp)
    sp.add_argument("-o", "--output", help="write the IR text here instead of printing it")

    sp = sub.add_parser("run", help="interpret a model on seeded random inputs")
    model_args(sp)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--repeat", type=int, default=1, help="timed runs (the best is reported)")
    sp.add_argument("--bind", action="append", metavar="SYM=N", help="value for a symbolic dim, e.g. batch=2")

    sp = sub.add_parser("ops", help="list the core ops, or the ONNX ops kiln converts")
    sp.add_argument("--onnx", action="store_true")

    args = p.parse_args(argv)
    try:
        if args.cmd == "ops":
            return _ops(args.onnx)
        g = load_graph(args.model, _parse_shapes(args.shape), not args.no_optimize, args.dump_ir, args.verbose)
        if args.cmd == "import":
            text = str(g)
            if args.output:
                with open(args.output, "w") as f:
                    f.write(text + "\n")
                print(f"wrote {args.output}: {len(g.nodes)} nodes, {len(g.constants)} constants")
            else:
                print(text)
            return 0
        symbols = {}
        for b in args.bind or []:
            k, _, v = b.partition("=")
            symbols[k] = int(v)
        from ..ir import interpret

        inputs = _random_inputs(g, args.seed, symbols)
        best, out = float("inf"), None
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            out = interpret(g, inputs)
            best = min(best, time.perf_counter() - t0)
        for name, arr in out.items():
            flat = arr.reshape(-1)
            head = np.array2string(flat[:6], precision=5, separator=", ")
            print(f"{name}: {arr.dtype}{list(arr.shape)} {head}{' ...' if flat.size > 6 else ''}")
        print(f"interpreted in {best * 1e3:.1f} ms ({len(g.nodes)} nodes)")
        return 0
    except KilnError as e:
        print(f"kiln: error: {e}", file=sys.stderr)
        return 1


def _ops(onnx_ops: bool) -> int:
    if onnx_ops:
        from ..frontends.onnx.registry import supported_ops

        for (dom, name), versions in sorted(supported_ops().items()):
            print(f"{dom + '.' if dom else ''}{name}: opset {', '.join(map(str, versions))}")
        return 0
    from ..ir import all_ops

    for name, d in sorted(all_ops().items()):
        attrs = ", ".join(d.attrs)
        print(f"{name}({', '.join(d.inputs)}){' {' + attrs + '}' if attrs else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
