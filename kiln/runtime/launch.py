"""Reading the launch table (``launch.json``) of the GPU-style targets' artifacts (see
``kiln.targets.launch``): numpy-free, stdlib only, shared by the OpenCL and CUDA executors."""
from __future__ import annotations

import json

from ..errors import ArtifactError

VERSION = 1


def read_launch_table(manifest: dict, members: dict, device_kind: str) -> dict:
    """The artifact's launch table; ArtifactError naming the member when it is missing or damaged."""
    opts = manifest.get("target", {}).get("options") or {}
    name = opts.get("launch_table", "launch.json")
    if name not in members:
        raise ArtifactError(f"the {device_kind} artifact lacks its launch table '{name}'")
    try:
        table = json.loads(bytes(members[name]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"member '{name}' is not valid JSON ({e})") from None
    if table.get("version") != VERSION:
        raise ArtifactError(f"launch table version {table.get('version')!r} is not one this kiln reads ({VERSION})")
    return table


def evaluate(e, env: dict) -> int:
    """A launch-table expression (see ``kiln.targets.launch.encode``) for symbol values ``env``."""
    if isinstance(e, int):
        return e
    if isinstance(e, str):
        return int(env[e])
    op, a, b = e
    x, y = evaluate(a, env), evaluate(b, env)
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "//":
        return x // y if y else 0
    if op == "%":
        return x % y if y else 0
    if op == "min":
        return min(x, y)
    if op == "max":
        return max(x, y)
    raise ArtifactError(f"launch table: unknown operator {op!r}")
