"""Print how many of the ONNX package's node test cases kiln passes.

    python benchmarks/onnx_conformance.py            # from_onnx + kiln.interpret: summary by op
    python benchmarks/onnx_conformance.py -v         # every non-passing case with its reason
    python benchmarks/onnx_conformance.py -k softmax # only cases whose name contains 'softmax'
    python benchmarks/onnx_conformance.py --target cpu [--workers 2]
                                                     # kiln.compile each case and run it natively

With ``--target``, each case is compiled (and its shared library linked and loaded) in a forked child
process, ``--workers`` at a time; a case that does not compile counts as a failure, and the report
groups those by error category. ``--write-failures FILE`` writes the failing case names either way
(for ``--target cpu``: ``tests/targets/compiled_conformance_failures.txt``, restricted with
``--only-interpreter-passing`` to the cases the interpreter passes, as that test expects).
"""
import argparse
import sys
import time
from pathlib import Path

from kiln.frontends.onnx.conformance import collect_cases, run_all, summarize

ROOT = Path(__file__).resolve().parents[1]
INTERPRETER_FAILURES = ROOT / "tests" / "frontends" / "onnx_conformance_failures.txt"


def _names(path: Path) -> set:
    return {ln.split("#")[0].strip() for ln in path.read_text().splitlines() if ln.split("#")[0].strip()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-k", default="", help="only cases whose name contains this string")
    p.add_argument("-v", action="store_true", help="list every non-passing case and why")
    p.add_argument("--target", help="compile each case for this target (e.g. cpu) instead of interpreting it")
    p.add_argument("--workers", type=int, default=2, help="cases compiled at once with --target (default 2)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per case with --target (default 120)")
    p.add_argument("--only-interpreter-passing", action="store_true",
                   help="with --target: only the cases the interpreter passes (not in "
                        "tests/frontends/onnx_conformance_failures.txt)")
    p.add_argument("--write-failures", metavar="FILE",
                   help="write the non-passing cases (name  # why) to FILE, e.g. "
                        "tests/frontends/onnx_conformance_failures.txt")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    cases = [c for c in collect_cases() if args.k in c.name]
    if args.target:
        from kiln.compiler import conformance as compiled

        interp_ok = {c.name for c in cases} - _names(INTERPRETER_FAILURES)
        if args.only_interpreter_passing:
            cases = [c for c in cases if c.name in interp_ok]

        def progress(i, n, r):
            if sys.stderr.isatty() or (i + 1) % 100 == 0 or i + 1 == n:
                sys.stderr.write(f"\r{i + 1}/{n} cases ({time.perf_counter() - t0:.0f} s)")
                if i + 1 == n:
                    sys.stderr.write("\n")
                sys.stderr.flush()

        results = compiled.run_all(cases, target=args.target, workers=args.workers, timeout=args.timeout,
                                   progress=progress)
        print(compiled.summarize(results, interpreter_passes=interp_ok))
        regenerate = (f"python benchmarks/onnx_conformance.py --target {args.target} --only-interpreter-passing "
                      f"--write-failures tests/targets/compiled_conformance_failures.txt")
        title = f"ONNX node cases (that the interpreter passes) kiln.compile(target={args.target!r}) does not pass yet"
    else:
        results = run_all(cases)
        print(summarize(results))
        regenerate = "python benchmarks/onnx_conformance.py --write-failures tests/frontends/onnx_conformance_failures.txt"
        title = "ONNX node cases kiln does not pass yet"
    if args.v:
        for r in results:
            if r.status != "pass":
                print(f"{r.name}: {r.status}: {r.detail}")
    if args.write_failures:
        with open(args.write_failures, "w") as f:
            f.write(f"# {title}: regenerate with\n#   {regenerate}\n")
            for r in results:
                if r.status != "pass":
                    detail = r.detail.split(" | ", 1)[-1]  # compile failures: the message, not its category
                    why = " ".join(f"{r.status}: {detail}".split())[:110]
                    f.write(f"{r.name}  # {why}\n")
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into head: stop quietly
        sys.stdout = None
