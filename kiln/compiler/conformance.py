"""The ONNX node test cases, compiled with ``kiln.compile`` and run natively.

The compiled twin of :mod:`kiln.frontends.onnx.conformance` (which interprets): each case is compiled
for a target and run on each of its data sets, and compared with the expected outputs with the same
rules and the case's own rtol/atol. Used by ``benchmarks/onnx_conformance.py --target cpu`` and
``tests/targets/test_compiled_conformance.py``.

Each case links and loads a shared library, and a miscompiled kernel may crash, so
:func:`run_case_isolated` runs a case in a forked child process: a crash or a hang becomes a result
(``error`` with "crash: SIGSEGV" or "timeout"), and the library goes away with the child.
Results whose compile failed carry ``status == "compile"`` and a short :func:`category` of the error.
"""
from __future__ import annotations

import collections
import os
import pickle
import re
import select
import signal
import time
import warnings

import numpy as np

from ..frontends.onnx.conformance import CaseResult, _array, _ops_of, check_outputs

__all__ = ["run_case", "run_case_isolated", "run_all", "summarize", "category"]

DEFAULT_TIMEOUT = 120.0


def category(exc: BaseException) -> str:
    """A short, groupable summary of a compile error: names and numbers blanked out."""
    from ..errors import UnsupportedOperatorError

    if isinstance(exc, UnsupportedOperatorError):
        ops = sorted({op for op, _, _ in exc.unsupported})
        return f"unsupported op: {', '.join(ops)}"
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    m = re.match(r"op '([^']+)' \(node '[^']*'(?: \([^)]*\))?\): (?:\1: )?(.*)", text)
    if m:  # a lowering's error: group by the op
        return f"{type(exc).__name__}: {m.group(1)}: {_blank(m.group(2))}"[:120]
    return f"{type(exc).__name__}: {_blank(text)}"[:120]


def _blank(text: str) -> str:
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\b\d+\b", "N", text)
    return text


def run_case(case, target: str = "cpu", num_threads: int = 1) -> CaseResult:
    """Compile one case for ``target`` and compare its outputs on every data set (in this process)."""
    from ..errors import ConversionError, ModelLoadError
    from .compile import compile as kiln_compile

    ops = _ops_of(case.model)
    try:
        data = [([_array(x) for x in inputs], [_array(x) for x in outputs]) for inputs, outputs in case.data_sets]
    except TypeError as e:
        return CaseResult(case.name, "unsupported", str(e), ops)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.errstate(all="ignore"):
                model = kiln_compile(case.model, target=target, num_threads=num_threads, progress=False)
    except (ConversionError, ModelLoadError) as e:
        return CaseResult(case.name, "error", f"convert: {e}", ops)
    except Exception as e:  # noqa: BLE001 - a conformance run reports, it does not stop
        return CaseResult(case.name, "compile", category(e) + " | " + " ".join(str(e).split())[:200], ops)
    for k, (inputs, outputs) in enumerate(data):
        try:
            got = list(model(*inputs))
        except Exception as e:  # noqa: BLE001
            return CaseResult(case.name, "error", f"run: {type(e).__name__}: {e}", ops)
        bad = check_outputs(case, k, outputs, got, ops)
        if bad is not None:
            return bad
    return CaseResult(case.name, "pass", "", ops)


_WARM: set = set()


def warm_up(target: str = "cpu") -> None:
    """Compile one tiny model in this process, once: the forked children then start with the compiler's
    modules imported and LLVM initialized (a cold start costs each case about a second)."""
    if target in _WARM:
        return
    _WARM.add(target)
    try:
        from onnx import TensorProto, helper

        from .compile import compile as kiln_compile

        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
        g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "warm_up", [x], [y])
        kiln_compile(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), target=target,
                     num_threads=1, progress=False)
    except Exception:  # noqa: BLE001 - only an optimization; the cases report their own errors
        pass


def run_case_isolated(case, target: str = "cpu", num_threads: int = 1, timeout: float = DEFAULT_TIMEOUT) -> CaseResult:
    """:func:`run_case` in a forked child: crashes and hangs are results, not the end of the run."""
    if not hasattr(os, "fork"):
        return run_case(case, target, num_threads)
    warm_up(target)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, send the pickled result, leave without any clean-up
        code = 0
        try:
            os.close(r)
            try:
                result = run_case(case, target, num_threads)
            except BaseException as e:  # noqa: BLE001
                result = CaseResult(case.name, "error", f"harness: {type(e).__name__}: {e}", ())
            payload = pickle.dumps(result)
            view = memoryview(payload)
            while view:
                view = view[os.write(w, view):]
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks, deadline, timed_out = [], time.monotonic() + timeout, False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    ops = _ops_of(case.model)
    if timed_out:
        return CaseResult(case.name, "error", f"timeout: no result after {timeout:.0f} s", ops)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return CaseResult(case.name, "error", f"crash: {name}", ops)
    try:
        return pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001
        return CaseResult(case.name, "error", f"crash: the child exited with status {os.WEXITSTATUS(status)}", ops)


# ----------------------------------------------------------------------------------- a pool of workers

_POOL_CASES: dict = {}
_POOL_OPTS: dict = {}


def _pool_run(name: str) -> CaseResult:
    return run_case_isolated(_POOL_CASES[name], **_POOL_OPTS)


def run_all(cases, target: str = "cpu", workers: int = 2, num_threads: int = 1, timeout: float = DEFAULT_TIMEOUT,
            progress=None) -> list:
    """Results for ``cases`` (in their order), ``workers`` cases at a time (each in its own forked child)."""
    cases = list(cases)
    opts = {"target": target, "num_threads": num_threads, "timeout": timeout}
    if workers <= 1 or len(cases) <= 1:
        out = []
        for i, c in enumerate(cases):
            out.append(run_case_isolated(c, **opts))
            if progress:
                progress(i, len(cases), out[-1])
        return out
    import multiprocessing as mp

    _POOL_CASES.clear()
    _POOL_CASES.update({c.name: c for c in cases})
    _POOL_OPTS.clear()
    _POOL_OPTS.update(opts)
    results = {}
    warm_up(target)
    ctx = mp.get_context("fork")  # the workers inherit the collected cases and the warm compiler
    with ctx.Pool(workers) as pool:
        for i, res in enumerate(pool.imap_unordered(_pool_run, [c.name for c in cases])):
            results[res.name] = res
            if progress:
                progress(i, len(cases), res)
    return [results[c.name] for c in cases]


def summarize(results, interpreter_passes=None) -> str:
    """Pass count, compile failures by category, wrong results and run errors by op."""
    counts = collections.Counter(r.status for r in results)
    lines = [f"compiled ONNX node conformance: {counts['pass']} / {len(results)} cases pass "
             f"({counts['compile']} do not compile, {counts['fail']} wrong result, {counts['error']} error, "
             f"{counts['unsupported']} unsupported)"]
    if interpreter_passes is not None:
        ok = [r for r in results if r.name in interpreter_passes]
        lines.append(f"  of the {len(ok)} cases the interpreter passes: "
                     f"{sum(r.status == 'pass' for r in ok)} pass compiled")
    cats = collections.Counter(r.detail.split(" | ")[0] for r in results if r.status == "compile")
    if cats:
        lines.append("compile failures by category:")
        for cat, n in cats.most_common():
            lines.append(f"  {n:4d}  {cat}")
    from ..frontends.onnx.conformance import _main_op

    by_op = collections.defaultdict(list)
    for r in results:
        if r.status in ("fail", "error"):
            by_op[_main_op(r)].append(r)
    if by_op:
        lines.append("wrong results and errors, by op:")
        for op, rs in sorted(by_op.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            kinds = collections.Counter("crash" if r.detail.startswith("crash") else r.status for r in rs)
            lines.append(f"  {op}: {len(rs)} ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))})")
    return "\n".join(lines)
