"""``CompiledModel``: a compiled model, ready to call, whether just compiled or loaded from an artifact.

The class is generic: it checks inputs against the manifest's signature, binds the symbolic dims,
allocates outputs and hands the call to the executor the manifest's target names (``cpu``, later
``opencl`` and ``cuda``). An executor is a module (or any object) with::

    load(manifest, members, *, num_threads=None, device=None) -> executor
    executor.run(inputs: list[np.ndarray], outputs: list[np.ndarray], syms: np.ndarray) -> None

where ``inputs`` are C-contiguous arrays of the manifest's dtypes and shapes, ``outputs`` are arrays
to fill, and ``syms`` holds the symbol values (int64, manifest "symbols" order).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import numpy as np

from ..errors import ArtifactError
from ..ir import dtypes as _dtypes
from . import _dims
from .artifact import check_manifest, read_artifact, with_checksums, write_artifact

#: executor name -> module path (imported when an artifact needs it) or a loaded factory
_EXECUTORS: dict = {
    "cpu": "kiln.runtime.cpu",
    "opencl": "kiln.runtime.opencl",
    "cuda": "kiln.runtime.cuda",
}


def register_executor(name: str, factory) -> None:
    """Make executor ``name`` available to artifacts whose target names it.

    ``factory`` is a module path (``"mypkg.executor"``, imported on first use), a module or object with
    a ``load`` function, or the ``load`` callable itself; see this module's docstring for its interface.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("an executor needs a non-empty name")
    if not (isinstance(factory, str) or callable(factory) or callable(getattr(factory, "load", None))):
        raise TypeError(f"executor factory for {name!r} must be a module path, a module with load(), "
                        f"or a load callable; got {factory!r}")
    _EXECUTORS[name] = factory


def _executor_load(name: str):
    if name not in _EXECUTORS:
        raise ArtifactError(f"the artifact needs executor '{name}', which this kiln does not have "
                            f"(known: {', '.join(sorted(_EXECUTORS))})")
    factory = _EXECUTORS[name]
    if isinstance(factory, str):
        try:
            factory = importlib.import_module(factory)
        except ImportError as e:
            raise ArtifactError(f"executor '{name}' is unavailable: importing {_EXECUTORS[name]} failed ({e}); "
                                f"install kiln[{name}] to run this artifact") from None
    load = getattr(factory, "load", factory)
    if not callable(load):
        raise ArtifactError(f"executor '{name}' has no load()")
    return load


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a compiled model; ``shape`` holds ints and symbolic dims (``'batch'``)."""

    name: str
    dtype: _dtypes.DType
    shape: tuple

    def __str__(self) -> str:
        return f"{self.name}: {self.dtype}[{','.join(str(d) for d in self.shape)}]"


def _specs(entries) -> list:
    return [TensorSpec(e["name"], _dtypes.dtype(e["dtype"]), tuple(e["shape"])) for e in entries]


class CompiledModel:
    """A compiled model. Call it with arrays (``model(x)`` → tuple of outputs) or a dict (``model.run``).

    Built by ``kiln.compile`` from the manifest and members it produced, or by :func:`load` from an
    artifact file; ``save`` writes the artifact.
    """

    def __init__(self, manifest: dict, members: dict, *, num_threads=None, device=None):
        members = {n: (v.encode("utf-8") if isinstance(v, str) else v) for n, v in members.items()}
        check_manifest(manifest, members)
        if not isinstance(manifest.get("members"), dict):
            manifest = with_checksums(manifest, members)
        self._manifest = manifest
        self._members = members
        self._inputs = _specs(manifest["inputs"])
        self._outputs = _specs(manifest["outputs"])
        self._symbols = list(manifest["symbols"])
        self._in_np = [s.dtype.np for s in self._inputs]
        self._out_np = [s.dtype.np for s in self._outputs]
        self._input_names = frozenset(s.name for s in self._inputs)
        self._plan = _dims.ShapePlan(manifest["inputs"], manifest["outputs"], self._symbols)
        self._executor = _executor_load(manifest["target"]["executor"])(
            manifest, members, num_threads=num_threads, device=device)

    # --------------------------------------------------------------------------- description

    @property
    def manifest(self) -> dict:
        return self._manifest

    @property
    def inputs(self) -> list:
        return list(self._inputs)

    @property
    def outputs(self) -> list:
        return list(self._outputs)

    @property
    def symbols(self) -> list:
        return list(self._symbols)

    @property
    def target(self) -> dict:
        return self._manifest["target"]

    @property
    def header(self):
        """The C header (``kiln.h``) of the binary's ABI, or None when the artifact has none."""
        name = self._manifest.get("header")
        return None if name is None else bytes(self._members[name]).decode("utf-8")

    @property
    def memory_plan(self):
        return self._manifest.get("memory_plan")

    @property
    def kernels(self) -> list:
        return list(self._manifest.get("kernels") or [])

    def __repr__(self) -> str:
        t = self.target
        opts = t.get("options") or {}
        detail = ", ".join(str(opts[k]) for k in ("triple", "cpu", "device") if opts.get(k))
        sig = f"({', '.join(map(str, self._inputs))}) -> ({', '.join(map(str, self._outputs))})"
        return f"<CompiledModel {t.get('name', t['executor'])}{f' ({detail})' if detail else ''}: {sig}>"

    def save(self, path) -> None:
        """Write the model as a single-file artifact (conventionally ``*.kiln``)."""
        write_artifact(path, self._manifest, self._members)

    # ---------------------------------------------------------------------------------- calls

    def __call__(self, *arrays, **named):
        """Run on inputs in manifest order (or by name); returns a tuple of outputs in manifest order."""
        if len(arrays) > len(self._inputs):
            raise ValueError(f"the model takes {len(self._inputs)} input(s) "
                             f"({', '.join(s.name for s in self._inputs)}), got {len(arrays) + len(named)}")
        feeds = {s.name: a for s, a in zip(self._inputs, arrays)}
        for name, a in named.items():
            if name in feeds:
                raise ValueError(f"input '{name}' given both by position and by name")
            feeds[name] = a
        return tuple(self._call(feeds))

    def run(self, feeds: dict) -> dict:
        """Run on ``{input name: array}``; returns ``{output name: array}``."""
        if not isinstance(feeds, dict):
            raise TypeError(f"run() takes a dict of input name -> array, got {type(feeds).__name__}")
        return dict(zip((s.name for s in self._outputs), self._call(feeds)))

    def _call(self, feeds: dict) -> list:
        if len(feeds) != len(self._inputs) or not self._input_names.issuperset(feeds):
            self._check_names(feeds)
        arrays = [_as_input(spec, npdt, feeds[spec.name]) for spec, npdt in zip(self._inputs, self._in_np)]
        env = self._plan.bind([a.shape for a in arrays])
        syms = np.array([env[s] for s in self._symbols], dtype=np.int64)
        outputs = [np.empty(shape, dtype=npdt) for shape, npdt in zip(self._plan.output_shapes_for(env), self._out_np)]
        self._executor.run(arrays, outputs, syms)
        return outputs

    def _check_names(self, feeds: dict) -> None:
        unexpected = [n for n in feeds if n not in self._input_names]
        if unexpected:
            raise ValueError(f"unexpected input(s) {', '.join(map(repr, unexpected))}; the model's inputs are "
                             f"{', '.join(s.name for s in self._inputs) or 'none'}")
        missing = [s.name for s in self._inputs if s.name not in feeds]
        if missing:
            raise ValueError(f"missing input(s) {', '.join(map(repr, missing))}; the model's inputs are "
                             f"{', '.join(str(s) for s in self._inputs)}")


def _as_input(spec: TensorSpec, npdt: np.dtype, value) -> np.ndarray:
    """``value`` as a C-contiguous, aligned array of the input's dtype; ValueError naming the input."""
    if value.__class__ is np.ndarray and value.dtype == npdt:  # the common case, quickly
        a = value
        if a.ndim == len(spec.shape) and a.flags.c_contiguous and a.flags.aligned:
            return a
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor (the runtime never imports torch)
        value = value.detach().cpu().numpy()
    strict = hasattr(value, "dtype") or hasattr(value, "__array__") or hasattr(value, "__array_interface__")
    try:
        a = np.asarray(value)
    except Exception as e:  # a ragged list, an object numpy cannot read
        raise ValueError(f"input '{spec.name}': cannot read it as an array ({e})") from None
    if a.dtype != npdt:
        if strict and a.dtype.newbyteorder("=") == npdt:
            a = a.astype(npdt)  # same type, other byte order: converting loses nothing
        elif strict or a.dtype == object or not np.can_cast(a.dtype, npdt, "same_kind"):
            raise ValueError(f"input '{spec.name}': expected {spec.dtype} ({npdt}), got {a.dtype}")
        else:  # python scalars and lists convert to the input's dtype
            converted = a.astype(npdt)
            # floats may round; integers must keep their values
            if npdt.kind in "iub" and not np.array_equal(converted.astype(a.dtype), a):
                raise ValueError(f"input '{spec.name}': expected {spec.dtype}, and the values given "
                                 f"do not fit it")
            a = converted
    if a.ndim != len(spec.shape):
        raise ValueError(f"input '{spec.name}': expected rank {len(spec.shape)} "
                         f"(shape [{', '.join(map(str, spec.shape))}]), got rank {a.ndim} (shape {list(a.shape)})")
    if a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.require(a, requirements=("C", "A"))


def load(path, *, num_threads=None, device=None) -> CompiledModel:
    """Load a compiled model from an artifact file (or a binary file object).

    Checks the format version and every member's checksum first; raises :class:`kiln.ArtifactError`
    naming what is wrong. ``num_threads`` overrides the thread count the model was compiled with.
    """
    if not isinstance(path, (str, os.PathLike)) and not hasattr(path, "read"):
        raise TypeError(f"kiln.load takes a path or a binary file object, got {type(path).__name__}")
    manifest, members = read_artifact(path)
    try:
        return CompiledModel(manifest, members, num_threads=num_threads, device=device)
    except ArtifactError as e:  # name the file too
        name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else getattr(path, "name", "<file object>")
        raise ArtifactError(f"{name}: {e}") from None
