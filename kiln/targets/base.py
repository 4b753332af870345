"""The Target interface and the target registry.

A target turns a :class:`~kiln.ir.program.Program` (kernels in loop IR, the call sequence, the memory
plan) into artifact members, and names the runtime executor that loads them. Targets register with
:func:`register` or through the ``kiln.targets`` entry-point group; the compiler driver only ever talks
to this interface, never to a particular target.
"""
from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Caps:
    """What a target can do: the widest SIMD in bits, thread count, dtypes it computes."""

    vector_bits: int = 128
    max_threads: int = 1
    local_memory: int = 0
    dtypes: tuple = ()

    def lanes(self, dt) -> int:
        """Vector lanes for one loop of ``dt`` elements (at most 16, at least 1)."""
        bits = 8 if dt.kind == "bool" else dt.bits
        return max(1, min(16, self.vector_bits // max(8, bits)))


@dataclass
class TargetBinary:
    """What codegen returns: artifact members, the one holding the code, and manifest extras.

    ``header``: whether the artifact ships ``kiln.h``, the C ABI (``kiln_run``, ...) of a native
    binary; a binary the runtime drives itself (OpenCL source, PTX) has none."""

    members: dict
    binary: str
    options: dict = field(default_factory=dict)
    header: bool = True


class Target:
    """Base class of targets. Subclasses set ``name``, ``executor`` and ``Options`` (a frozen dataclass)
    and implement :meth:`codegen`."""

    name = "target"
    executor = "cpu"
    Options: type = None

    def __init__(self, options=None, **kw):
        if options is None:
            options = self.Options(**kw)
        elif kw:
            options = dataclasses.replace(options, **kw)
        self.options = options

    @property
    def caps(self) -> Caps:
        return Caps()

    def graph_passes(self) -> list:
        """Target-specific graph passes run after the generic pipeline."""
        return []

    def schedule(self, kernel):
        """Target-specific schedule of one kernel (loop IR to loop IR)."""
        return kernel

    def codegen(self, program) -> TargetBinary:
        raise NotImplementedError

    def key(self) -> str:
        """A stable key for compile caches: name plus a hash of the options."""
        return f"{self.name}-{hash(self.options) & 0xFFFFFFFF:08x}"

    def describe(self) -> dict:
        return {"name": self.name, "executor": self.executor, "options": dataclasses.asdict(self.options)}

    def __repr__(self):
        return f"<Target {self.name} {self.options}>"


_REGISTRY: dict = {}
_ENTRY_POINTS_LOADED = False


def register(name: str, factory: Callable[..., Target] | None = None):
    """Register a target factory under ``name`` (usable as a decorator on a Target subclass)."""

    def deco(f):
        _REGISTRY[name] = f
        return f

    return deco(factory) if factory is not None else deco


def _load_entry_points():
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="kiln.targets"):
            if ep.name not in _REGISTRY:
                try:
                    _REGISTRY[ep.name] = ep.load()
                except Exception as e:  # a broken plugin must not break the others
                    import warnings

                    warnings.warn(f"kiln target plugin {ep.name!r} failed to load: {e}")
    except Exception:  # pragma: no cover - importlib.metadata always works on 3.10+
        pass


def available() -> list:
    _builtin()
    _load_entry_points()
    return sorted(_REGISTRY)


def _builtin():
    from . import llvm_cpu  # noqa: F401  registers "llvm" and "cpu"
    from . import opencl  # noqa: F401  registers "opencl"
    from . import cuda  # noqa: F401  registers "cuda"


def get(spec, **overrides) -> Target:
    """A target from a Target, or a string: ``"cpu"``, ``"llvm -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1"``.

    ``-key=value`` flags become options (``-mtriple`` -> ``triple``, ``-mcpu`` -> ``cpu``,
    ``-mattr`` -> ``features``, ``-num-threads`` -> ``num_threads``)."""
    if isinstance(spec, Target):
        return spec if not overrides else type(spec)(spec.options, **overrides)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"target must be a name such as 'cpu' or a Target, got {spec!r}")
    _builtin()
    parts = shlex.split(spec)
    name, flags = parts[0], parts[1:]
    if name not in _REGISTRY:
        _load_entry_points()
    if name not in _REGISTRY:
        raise ValueError(f"unknown target {name!r}; available: {', '.join(available())}")
    opts = {}
    alias = {"mtriple": "triple", "mcpu": "cpu", "mattr": "features", "num-threads": "num_threads",
             "opt-level": "opt_level"}
    for f in flags:
        if not f.startswith("-") or "=" not in f:
            raise ValueError(f"target {spec!r}: flag {f!r} is not of the form -key=value")
        k, v = f.lstrip("-").split("=", 1)
        k = alias.get(k, k.replace("-", "_"))
        opts[k] = int(v) if v.lstrip("-").isdigit() else v
    opts.update({k: v for k, v in overrides.items() if v is not None})
    factory = _REGISTRY[name]
    try:
        return factory(**opts)
    except TypeError as e:
        raise ValueError(f"target {name!r}: {e}") from None
