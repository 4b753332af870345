"""Version-aware registry of ONNX op converters.

    @converter("Relu", since=6)
    def relu(ctx):
        return ctx.op("relu", ctx.input(0))

A converter registered ``since=N`` handles every opset >= N up to the next registration of the
same op; the importer picks the newest one not newer than the model's opset for that domain.
Converters never import onnx at module level.
"""
from __future__ import annotations

import bisect

_CONVERTERS: dict = {}  # (domain, op_type) -> sorted list of (since, fn)

DEFAULT_DOMAINS = ("", "ai.onnx")


def _norm_domain(domain: str) -> str:
    return "" if domain in DEFAULT_DOMAINS else domain


def converter(op_type: str, since: int = 1, domain: str = ""):
    def deco(fn):
        key = (_norm_domain(domain), op_type)
        lst = _CONVERTERS.setdefault(key, [])
        if any(s == since for s, _ in lst):
            raise ValueError(f"converter for {op_type} since opset {since} is registered twice")
        bisect.insort(lst, (since, fn), key=lambda x: x[0])
        return fn

    return deco


def lookup(domain: str, op_type: str, opset: int):
    """The converter for (domain, op_type) at ``opset``, or None."""
    from . import ops  # noqa: F401  (registers the converters)

    lst = _CONVERTERS.get((_norm_domain(domain), op_type))
    if not lst:
        return None
    best = None
    for since, fn in lst:
        if since <= opset:
            best = fn
    return best


def supported_ops() -> dict:
    """(domain, op_type) -> list of opset versions a converter starts at."""
    from . import ops  # noqa: F401

    return {k: [s for s, _ in v] for k, v in _CONVERTERS.items()}
