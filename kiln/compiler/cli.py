"""The ``kiln`` command.

    kiln compile model.onnx -o model.kiln [--target cpu] [--opt-level 2] [--threads N]
                 [--input-shape image=1,3,224,224 ...] [--dump-ir DIR] [--progress | --no-progress]
    kiln run model.kiln [--input x=x.npy ... | --random] [--batch batch=4] [--output DIR] [--threads N]
    kiln run model.onnx [--shape ...] [--bind batch=2] [--seed 0] [--repeat 3]     (the interpreter)
    kiln inspect model.kiln [--json]
    kiln bench model.onnx|model.kiln [--vs onnxruntime|none] [--onnx model.onnx] [--threads N]
               [--runs N] [--warmup N] [--input-shape ...] [--batch batch=N]
    kiln import model.onnx [-o model.kir] [--shape image=1,3,224,224] [--no-optimize]
    kiln ops [--onnx]

``compile`` builds a ``.kiln`` artifact; ``run`` executes an artifact through :func:`kiln.load` (the
runtime only: neither llvmlite nor onnx is imported), or interprets an ONNX model; ``inspect`` prints an
artifact's manifest; ``bench`` times a compiled model against onnxruntime; ``import`` prints a model's
kiln IR; ``ops`` lists the core ops (or the ONNX ops kiln converts).

Errors (a missing file, a bad ``--input`` spec, any :class:`kiln.KilnError`) are one ``kiln: error:``
line on stderr and exit status 2; ``--traceback`` (before the command) shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from ..errors import KilnError

EXIT_ERROR = 2  # a usage or model error, reported in one line
EXIT_INTERNAL = 3  # a bug in kiln: reported in one line, --traceback for the details


class CliError(Exception):
    """A user-facing error: printed as ``kiln: error: <message>``, exit status 2."""


# ------------------------------------------------------------------------------------ argument parsing

def _parse_shapes(items, flag: str = "--shape") -> dict:
    shapes = {}
    for item in items or []:
        name, sep, dims = item.rpartition("=")
        if not sep or not name:
            raise CliError(f"{flag} expects NAME=D0,D1,... (got {item!r})")
        parsed = []
        for d in dims.split(","):
            d = d.strip()
            if not d:
                continue
            if d.lstrip("-").isdigit():
                if int(d) < 0:
                    raise CliError(f"{flag} {item!r}: dims are >= 0 or symbol names, got {d}")
                parsed.append(int(d))
            elif d.isidentifier():
                parsed.append(d)
            else:
                raise CliError(f"{flag} {item!r}: {d!r} is neither a size nor a symbol name")
        shapes[name] = parsed
    return shapes


def _parse_bindings(items, flag: str) -> dict:
    """``SYM=N`` items (``N`` alone binds every symbol, under the key ``"*"``)."""
    out = {}
    for item in items or []:
        name, sep, value = item.rpartition("=")
        if not sep:
            name, value = "*", item
        value = value.strip()
        if not value.isdigit() or int(value) < 1 or not (name == "*" or name.strip().isidentifier()):
            raise CliError(f"{flag} expects SYMBOL=N with N >= 1 (got {item!r})")
        out[name.strip()] = int(value)
    return out


def _parse_inputs(items) -> list:
    """``--input NAME=FILE.npy`` items as ``[(name or None, path)]`` (a bare path: the only input)."""
    out = []
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = None, item
        if (sep and not name) or not path:
            raise CliError(f"--input expects NAME=FILE.npy (got {item!r})")
        out.append((name, path))
    return out


def _check_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise CliError(f"no such {what} file: {path}")
    if not os.path.isfile(path):
        raise CliError(f"{path} is not a file")


def _is_artifact(path: str) -> bool:
    import zipfile

    return path.endswith(".kiln") or (os.path.isfile(path) and zipfile.is_zipfile(path))


# ------------------------------------------------------------------------------------- random inputs

def _shape_for(name: str, shape, symbols: dict, flag: str) -> list:
    from ..ir import dims as _dims

    out = []
    for d in shape:
        if isinstance(d, int):
            out.append(d)
            continue
        env = {s: symbols.get(s, symbols.get("*")) for s in _dims.symbols(d)}
        missing = sorted(s for s, v in env.items() if v is None)
        if missing:
            raise CliError(f"input '{name}' has the symbolic dim '{d}'; give it with {flag} {missing[0]}=N")
        out.append(int(_dims.evaluate(d, env)))
    return out


def random_array(rng, dtype, shape) -> np.ndarray:
    """Seeded random data for a kiln dtype: normal floats, 0/1 bools, small non-negative ints."""
    if dtype.is_float:
        return rng.standard_normal(shape).astype(dtype.np)
    if dtype.kind == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, 10, shape).astype(dtype.np)


def _random_inputs(g, seed: int, symbols: dict):
    rng = np.random.default_rng(seed)
    return [random_array(rng, g.types[name].dtype, _shape_for(name, g.types[name].shape, symbols, "--bind"))
            for name in g.inputs]


def model_inputs(model, symbols: dict, seed: int = 0, files=(), random: bool = True) -> dict:
    """Inputs for a :class:`kiln.CompiledModel`: arrays from ``.npy`` files, the rest random (if allowed)."""
    specs = {s.name: s for s in model.inputs}
    feeds = {}
    for name, path in files:
        if name is None:
            if len(specs) != 1:
                raise CliError(f"--input {path}: the model has {len(specs)} inputs "
                               f"({', '.join(specs) or 'none'}); name it with NAME={path}")
            name = next(iter(specs))
        if name not in specs:
            raise CliError(f"--input {name}={path}: the model has no input '{name}' "
                           f"(its inputs: {', '.join(str(s) for s in specs.values()) or 'none'})")
        _check_file(path, "input")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
            raise CliError(f"--input {name}={path}: not a readable .npy file ({type(e).__name__}: {e})") from None
        if not isinstance(feeds[name], np.ndarray):
            raise CliError(f"--input {name}={path}: an .npz archive; give one array per .npy file")
    missing = [s for n, s in specs.items() if n not in feeds]
    if missing and not random:
        raise CliError(f"no data for input(s) {', '.join(str(s) for s in missing)}: give --input NAME=FILE.npy "
                       f"for each, or --random")
    rng = np.random.default_rng(seed)
    for s in missing:
        feeds[s.name] = random_array(rng, s.dtype, _shape_for(s.name, s.shape, symbols, "--batch"))
    return {s.name: feeds[s.name] for s in model.inputs}


# ------------------------------------------------------------------------------------------ printing

def _fmt_bytes(n) -> str:
    if not isinstance(n, (int, float)):  # a polynomial in the symbols: show it, and its value with each at 1
        try:
            from ..ir import dims as _dims

            syms = sorted(_dims.symbols(n))
            at_one = _dims.evaluate(n, {s: 1 for s in syms})
        except Exception:  # noqa: BLE001
            return f"{n} B"
        return f"{n} B ({_fmt_bytes(at_one)} at {', '.join(f'{s}=1' for s in syms)})"
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def _fmt_shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _summary(name: str, arr: np.ndarray, n: int = 6) -> str:
    flat = arr.reshape(-1)
    head = np.array2string(flat[:n], precision=5, separator=", ")
    return f"{name}: {arr.dtype}{list(arr.shape)} {head}{' ...' if flat.size > n else ''}"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "output"


# -------------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # output piped into head: stop quietly
        sys.stdout = None
        return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kiln", description="kiln — an ML compiler")
    p.add_argument("--traceback", action="store_true", help="show the Python traceback of an error")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def shape_arg(sp):
        sp.add_argument("--shape", "--input-shape", dest="shape", action="append", metavar="NAME=D0,D1,...",
                        help="fix an input's shape (ints, or symbol names to keep a dim symbolic); repeatable")

    def model_args(sp):
        sp.add_argument("model", help="ONNX model file (for run: or a .kiln artifact)")
        shape_arg(sp)
        sp.add_argument("--no-optimize", action="store_true", help="skip the graph simplification passes")
        sp.add_argument("--dump-ir", metavar="DIR", help="write the IR after every pass into DIR")
        sp.add_argument("-v", "--verbose", action="store_true", help="print per-pass timing")

    sp = sub.add_parser("compile", help="compile a model into a .kiln artifact")
    sp.add_argument("model", help="ONNX model file")
    sp.add_argument("-o", "--output", help="artifact to write (default: MODEL with the suffix .kiln)")
    sp.add_argument("--target", default="cpu", help="target: cpu (default), or an LLVM target string")
    sp.add_argument("-O", "--opt-level", type=int, default=2, choices=(0, 1, 2, 3))
    sp.add_argument("--threads", type=int, metavar="N", help="threads the compiled model uses by default")
    shape_arg(sp)
    sp.add_argument("--dump-ir", metavar="DIR", help="write the IR after every pass, the kernels and LLVM IR here")
    prog = sp.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="show the progress bar even when stderr is not a terminal")
    prog.add_argument("--no-progress", dest="progress", action="store_false", help="never show it")

    sp = sub.add_parser("run", help="run a .kiln artifact, or interpret an ONNX model",
                        description="Run a compiled .kiln artifact (through kiln.load), or interpret an "
                                    "ONNX model on seeded random inputs.")
    model_args(sp)
    sp.add_argument("--input", "-i", action="append", metavar="NAME=FILE.npy", help="an input's data; repeatable")
    sp.add_argument("--random", action="store_true", help="seeded random data for inputs not given with --input")
    sp.add_argument("--batch", "--bind", dest="bind", action="append", metavar="SYM=N",
                    help="value of a symbolic dim for random inputs, e.g. batch=2; repeatable")
    sp.add_argument("--output", "-o", metavar="DIR", help="save every output as DIR/NAME.npy")
    sp.add_argument("--threads", type=int, metavar="N", help="threads of the compiled model")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--repeat", type=int, default=1, help="timed runs (the best is reported)")

    sp = sub.add_parser("inspect", help="print a .kiln artifact's manifest: signature, kernels, memory plan")
    sp.add_argument("artifact")
    sp.add_argument("--json", action="store_true", help="print the raw manifest as JSON")

    sp = sub.add_parser("bench", help="time a model (compiled first if it is .onnx) against onnxruntime")
    sp.add_argument("model", help="ONNX model file or .kiln artifact")
    sp.add_argument("--vs", default="onnxruntime", choices=("onnxruntime", "none"),
                    help="the peer to compare with (default: onnxruntime, when installed)")
    sp.add_argument("--onnx", metavar="MODEL.onnx", help="the peer's model, when MODEL is an artifact")
    sp.add_argument("--threads", type=int, default=None, metavar="N", help="threads for kiln and the peer")
    sp.add_argument("--runs", type=int, default=20, metavar="N", help="timed runs of each (default 20)")
    sp.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed runs first (default 3)")
    sp.add_argument("-O", "--opt-level", type=int, default=2, choices=(0, 1, 2, 3))
    shape_arg(sp)
    sp.add_argument("--batch", "--bind", dest="bind", action="append", metavar="SYM=N",
                    help="value of a symbolic dim for the random inputs (default 1)")
    sp.add_argument("--seed", type=int, default=0)

    sp = sub.add_parser("import", help="convert a model to kiln IR and print its text form")
    model_args(sp)
    sp.add_argument("-o", "--output", help="write the IR text here instead of printing it")

    sp = sub.add_parser("ops", help="list the core ops, or the ONNX ops kiln converts")
    sp.add_argument("--onnx", action="store_true")
    return p


def _main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        for flag in ("threads", "runs", "repeat"):
            v = getattr(args, flag, None)
            if v is not None and v < 1:
                raise CliError(f"--{flag} must be >= 1, got {v}")
        if getattr(args, "warmup", 0) < 0:
            raise CliError(f"--warmup must be >= 0, got {args.warmup}")
        return _COMMANDS[args.cmd](args)
    except (CliError, KilnError) as e:
        if args.traceback:
            raise
        _error(str(e))
        return EXIT_ERROR
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        # bad inputs to a compiled model (ValueError naming the input), an unreadable file, a failed run
        if args.traceback:
            raise
        _error(str(e) or type(e).__name__)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("kiln: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug in kiln: one line, the traceback on request
        if args.traceback:
            raise
        _error(f"internal error: {type(e).__name__}: {e} (run 'kiln --traceback {args.cmd} ...' for details)")
        return EXIT_INTERNAL


def _error(message: str) -> None:
    lines = message.strip().splitlines() or ["unknown error"]
    print(f"kiln: error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:  # an unsupported-operator list: one op per line
        print(f"  {line.strip()}", file=sys.stderr)


# --------------------------------------------------------------------------------------- commands

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


def _compile_model(path: str, args, progress=None):
    from .compile import compile as kiln_compile

    _check_file(path, "model")
    shapes = _parse_shapes(args.shape, "--input-shape")
    return kiln_compile(path, target=getattr(args, "target", "cpu"), input_shapes=shapes or None,
                        opt_level=args.opt_level, num_threads=args.threads,
                        dump_ir=getattr(args, "dump_ir", None), progress=progress)


def compile_summary(model, seconds: float) -> str:
    """``12 kernel calls (9 distinct), 0.53 MB weights, workspace peak 1.20 MB, 1.4 s``."""
    m = model.manifest
    calls = m.get("kernels") or []
    distinct = len({k.get("name") for k in calls})
    weights = (m.get("weights") or {}).get("size") or 0
    peak = (m.get("memory_plan") or {}).get("peak_bytes", 0)
    return (f"{len(calls)} kernel call{'s' if len(calls) != 1 else ''} ({distinct} distinct), "
            f"{_fmt_bytes(weights)} weights, workspace peak {_fmt_bytes(peak)}, {seconds:.1f} s")


def _cmd_compile(args) -> int:
    out = args.output or (os.path.splitext(args.model)[0] + ".kiln")
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise CliError(f"cannot write {out}: no such directory {out_dir}")
    t0 = time.perf_counter()
    model = _compile_model(args.model, args, progress=args.progress)
    seconds = time.perf_counter() - t0
    model.save(out)
    print(f"compiled {args.model} -> {out}: {compile_summary(model, seconds)}")
    return 0


def _cmd_run(args) -> int:
    if _is_artifact(args.model):
        return _run_artifact(args)
    _check_file(args.model, "model")
    if args.input or args.random:
        raise CliError("--input/--random apply to .kiln artifacts; an ONNX model is interpreted on random inputs")
    g = load_graph(args.model, _parse_shapes(args.shape), not args.no_optimize, args.dump_ir, args.verbose)
    symbols = _parse_bindings(args.bind, "--bind")
    from ..ir import interpret

    inputs = _random_inputs(g, args.seed, symbols)
    best, out = float("inf"), None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out = interpret(g, inputs)
        best = min(best, time.perf_counter() - t0)
    _save_outputs(out, args.output)
    for name, arr in out.items():
        print(_summary(name, arr))
    print(f"interpreted in {best * 1e3:.1f} ms ({len(g.nodes)} nodes)")
    return 0


def _run_artifact(args) -> int:
    from ..runtime import load

    for flag in ("shape", "dump_ir"):
        if getattr(args, flag):
            raise CliError(f"--{flag.replace('_', '-')} applies to ONNX models; an artifact's shapes are compiled in")
    files = _parse_inputs(args.input)
    symbols = _parse_bindings(args.bind, "--batch")
    _check_file(args.model, "artifact")
    model = load(args.model, num_threads=args.threads)
    feeds = model_inputs(model, symbols, args.seed, files, random=args.random or not model.inputs)
    best, out = float("inf"), None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out = model.run(feeds)
        best = min(best, time.perf_counter() - t0)
    _save_outputs(out, args.output)
    for name, arr in out.items():
        print(_summary(name, arr))
    print(f"ran {os.path.basename(args.model)} in {best * 1e3:.3f} ms"
          + (f" (best of {args.repeat})" if args.repeat > 1 else ""))
    return 0


def _save_outputs(out: dict, directory) -> None:
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    for name, arr in out.items():
        path = os.path.join(directory, _safe_name(name) + ".npy")
        np.save(path, arr)
        print(f"saved {path}", file=sys.stderr)


def _cmd_inspect(args) -> int:
    import zipfile

    from ..runtime.artifact import read_artifact

    _check_file(args.artifact, "artifact")
    manifest, _ = read_artifact(args.artifact)  # verifies the format and every checksum
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    with zipfile.ZipFile(args.artifact) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    print(inspect_text(manifest, infos, path=args.artifact))
    return 0


def inspect_text(manifest: dict, infos: dict | None = None, path: str | None = None) -> str:
    """A readable summary of an artifact's manifest (``infos``: zip member name -> ZipInfo, for sizes)."""
    m = manifest
    lines = []
    size = f" ({_fmt_bytes(os.path.getsize(path))})" if path and os.path.exists(path) else ""
    lines.append(f"artifact {path or ''}{size}: {m.get('format')} v{m.get('format_version')}, "
                 f"kiln {m.get('kiln_version')}")
    t = m.get("target") or {}
    opts = dict(t.get("options") or {})
    features = opts.pop("features", None)
    lines.append(f"target: {t.get('name')} (executor {t.get('executor')})")
    for k, v in opts.items():
        lines.append(f"  {k}: {v if v is not None else '-'}")
    if features:
        on = [f[1:] for f in str(features).split(",") if f.startswith("+")]
        simd = [f for f in on if f.startswith(("avx", "fma", "neon", "sve", "sse4"))]
        shown = ", ".join(simd[:8]) + (", ..." if len(simd) > 8 else "")
        lines.append(f"  features: {len(on)} enabled{f' ({shown})' if shown else ''}")
    syms = m.get("symbols") or []
    lines.append(f"symbols: {', '.join(syms) if syms else 'none (all shapes static)'}")
    for key in ("inputs", "outputs"):
        lines.append(f"{key}:")
        for spec in m.get(key) or []:
            lines.append(f"  {spec['name']}: {spec['dtype']}{_fmt_shape(spec['shape'])}")
    calls = m.get("kernels") or []
    lines.append(f"kernels: {len(calls)} calls, {len({k.get('name') for k in calls})} distinct (call sequence)")
    for i, k in enumerate(calls):
        ops = f"  [{', '.join(k['ops'])}]" if k.get("ops") else ""
        lines.append(f"  {i:3d} {k.get('name')}({', '.join(map(str, k.get('inputs') or []))}) -> "
                     f"{', '.join(map(str, k.get('outputs') or []))}{ops}")
    plan = m.get("memory_plan") or {}
    buffers = plan.get("buffers") or []
    lines.append(f"memory plan: {len(buffers)} workspace buffers, peak workspace {_fmt_bytes(plan.get('peak_bytes', 0))}")
    if buffers:
        width = max(len(str(b.get("value"))) for b in buffers)
        lines.append(f"  {'buffer':<{width}}  {'offset':>12}  {'bytes':>12}")
        for b in buffers:
            lines.append(f"  {str(b.get('value')):<{width}}  {str(b.get('offset')):>12}  {str(b.get('bytes')):>12}")
    w = m.get("weights")
    lines.append(f"weights: {_fmt_bytes(w.get('size', 0))} in {w.get('member')}, {w.get('alignment')}-byte aligned"
                 if w else "weights: none")
    lines.append("members:")
    checksums = m.get("members") or {}
    for name in sorted(set(checksums) | set(infos or {})):
        info = (infos or {}).get(name)
        sz = f"{_fmt_bytes(info.file_size):>10}" if info else f"{'?':>10}"
        digest = checksums.get(name, "-" if name == "manifest.json" else "(none: not verified)")
        lines.append(f"  {name:<14} {sz}  sha256 {digest}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- bench

def interleaved_medians(fns: dict, runs: int, warmup: int) -> dict:
    """Median seconds per call of each ``fns[name]()``, timed in turn (a, b, a, b, ...) after ``warmup`` rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def ort_session(onnx_path, threads):
    """An onnxruntime session on the CPU with ``threads`` intra-op threads, or None when it is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])


def max_rel_err(ref: np.ndarray, got: np.ndarray) -> float:
    """max |got - ref| / max(|ref|), over all elements (0 for empty arrays)."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    if ref.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(ref))), 1e-30)
    return float(np.max(np.abs(got - ref))) / scale


def _cmd_bench(args) -> int:
    _check_file(args.model, "model")
    symbols = _parse_bindings(args.bind, "--batch")
    peer_model = args.onnx
    compile_s = None
    if _is_artifact(args.model):
        if args.shape:
            raise CliError("--input-shape applies when compiling an ONNX model; bind an artifact's "
                           "symbolic dims with --batch SYM=N")
        from ..runtime import load

        model = load(args.model, num_threads=args.threads)
    else:
        args.dump_ir = None
        t0 = time.perf_counter()
        model = _compile_model(args.model, args, progress=None)
        compile_s = time.perf_counter() - t0
        peer_model = peer_model or args.model
    if peer_model:
        _check_file(peer_model, "ONNX model")
    for s in model.symbols:
        symbols.setdefault(s, symbols.get("*", 1))
    feeds = model_inputs(model, symbols, args.seed)
    arrays = list(feeds.values())
    fns = {"kiln": lambda: model(*arrays)}
    sess, note = None, None
    if args.vs == "onnxruntime":
        if not peer_model:
            note = "no ONNX model to compare with: give --onnx MODEL.onnx"
        else:
            sess = ort_session(peer_model, args.threads)
            if sess is None:
                note = "onnxruntime is not installed: kiln only"
    if sess is not None:
        names = [i.name for i in sess.get_inputs()]
        ort_feeds = dict(zip(names, arrays)) if set(names) != set(feeds) else {n: feeds[n] for n in names}
        fns["onnxruntime"] = lambda: sess.run(None, ort_feeds)
    shapes = ", ".join(f"{n}{list(a.shape)}" for n, a in feeds.items())
    print(f"bench {os.path.basename(args.model)} ({shapes}); threads {args.threads or 'default'}; "
          f"{args.runs} runs after {args.warmup} warm-up, interleaved")
    if compile_s is not None:
        print(f"compiled in {compile_s:.1f} s: {compile_summary(model, compile_s)}")
    medians = interleaved_medians(fns, args.runs, args.warmup)
    print(f"kiln:        {medians['kiln'] * 1e3:9.3f} ms (median)")
    if sess is not None:
        ref = sess.run(None, ort_feeds)
        got = model(*arrays)
        err = max((max_rel_err(r, g) for r, g in zip(ref, got)), default=0.0)
        print(f"onnxruntime: {medians['onnxruntime'] * 1e3:9.3f} ms (median)")
        print(f"kiln / onnxruntime: {medians['kiln'] / medians['onnxruntime']:.2f}x "
              f"({'kiln faster' if medians['kiln'] < medians['onnxruntime'] else 'onnxruntime faster'}); "
              f"max rel err {err:.2e}")
    elif note:
        print(f"({note})")
    return 0


def _cmd_import(args) -> int:
    _check_file(args.model, "model")
    g = load_graph(args.model, _parse_shapes(args.shape), not args.no_optimize, args.dump_ir, args.verbose)
    text = str(g)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
        print(f"wrote {args.output}: {len(g.nodes)} nodes, {len(g.constants)} constants")
    else:
        print(text)
    return 0


def _cmd_ops(args) -> int:
    if args.onnx:
        from ..frontends.onnx.registry import supported_ops

        for (dom, name), versions in sorted(supported_ops().items()):
            print(f"{dom + '.' if dom else ''}{name}: opset {', '.join(map(str, versions))}")
        return 0
    from ..ir import all_ops

    for name, d in sorted(all_ops().items()):
        attrs = ", ".join(d.attrs)
        print(f"{name}({', '.join(d.inputs)}){' {' + attrs + '}' if attrs else ''}")
    return 0


_COMMANDS = {"compile": _cmd_compile, "run": _cmd_run, "inspect": _cmd_inspect, "bench": _cmd_bench,
             "import": _cmd_import, "ops": _cmd_ops}


if __name__ == "__main__":
    sys.exit(main())
