"""Where in the user's code a node or an error came from: ``file.py:LINE in fn: code``.

The innermost frame that is the user's: not in torch, not in kiln, not in the standard library,
and, where the trace has one, not in an installed package either.
"""
from __future__ import annotations

import os
import re


def _roots():
    import torch

    return (os.path.dirname(torch.__file__), os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
            os.path.dirname(os.__file__))


def _inside(path: str, roots) -> bool:
    path = os.path.abspath(path)
    return any(path.startswith(r + os.sep) for r in roots)


def stack_location(node) -> str:
    """``file.py:LINE in fn: code`` of the innermost user frame of the node's stack trace ('' if none)."""
    return location_of(node.meta.get("stack_trace") or "")


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n?(.*)')


def location_of(stack_trace: str) -> str:
    """The user's frame of an FX node's ``stack_trace`` text."""
    frames = []
    lines = stack_trace.splitlines()
    for i, ln in enumerate(lines):
        m = _FRAME.search(ln.strip())
        if m:
            code = lines[i + 1].strip() if i + 1 < len(lines) and not _FRAME.search(lines[i + 1]) else ""
            frames.append((m.group(1), int(m.group(2)), m.group(3), code))
    if not frames:
        return ""
    roots = _roots()
    user = [f for f in frames if not f[0].startswith("<") and not _inside(f[0], roots)]
    path, line, fn, code = (user or frames)[-1]
    return f"{os.path.basename(path)}:{line} in {fn}" + (f": {code}" if code else "")


def user_frame(frames) -> str:
    """``file.py:LINE in fn: code`` of the innermost frame of the user's code: outside torch, kiln and the
    standard library, and outside installed packages where there is such a frame."""
    import sysconfig

    roots = _roots()
    packages = tuple({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})
    mine = [fr for fr in frames if not fr.filename.startswith("<") and not _inside(fr.filename, roots)]
    outside = [fr for fr in mine if not _inside(fr.filename, packages)]
    for fr in reversed(outside or mine):
        code = (fr.line or "").strip()
        return f"{os.path.basename(fr.filename)}:{fr.lineno} in {fr.name}" + (f": {code}" if code else "")
    return ""
