"""The op registry: every core op is defined once, with everything that is true of it.

An op definition is a class decorated with :func:`op`::

    @op("softmax", inputs=("x",), attrs={"axis": Attr("int", -1)})
    class Softmax:
        def infer(x: TensorType, axis) -> TensorType: ...
        def reference(x: np.ndarray, axis) -> np.ndarray: ...
        def lower(b, x, axis): ...            # loop IR, added by the codegen work

``inputs`` names the operands: ``"bias?"`` is optional (absent operands arrive as ``None``) and
``"*xs"`` takes any number. ``outputs`` is the number of results, or ``"*"`` when the attributes
decide it. ``infer`` may return ``"?"`` for a dim known only at run time (data-dependent results);
the graph builder gives such a dim a fresh symbol named after the value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from . import dims as _dims
from .dtypes import DType, dtype as _dtype


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()

ATTR_KINDS = ("int", "float", "str", "bool", "ints", "floats", "strs", "dtype", "dims", "graph")


@dataclass(frozen=True)
class Attr:
    """Schema of one attribute: its kind, default (``REQUIRED`` if none) and allowed values."""

    kind: str
    default: Any = REQUIRED
    choices: tuple | None = None

    def __post_init__(self):
        if self.kind not in ATTR_KINDS:
            raise ValueError(f"unknown attribute kind {self.kind!r}")

    def normalize(self, value, where: str):
        """Check and canonicalise a value (lists become tuples, dtypes become DType)."""
        if value is None:
            if self.default is None:
                return None
            raise ValueError(f"{where}: attribute may not be None")
        k = self.kind
        try:
            if k == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise TypeError
                v = int(value)
            elif k == "float":
                v = float(value)
            elif k == "bool":
                v = bool(value)
            elif k == "str":
                if isinstance(value, bytes):
                    value = value.decode()
                if not isinstance(value, str):
                    raise TypeError
                v = value
            elif k == "ints":
                v = tuple(int(x) for x in _seq(value))
            elif k == "floats":
                v = tuple(float(x) for x in _seq(value))
            elif k == "strs":
                v = tuple(x.decode() if isinstance(x, bytes) else str(x) for x in _seq(value))
            elif k == "dtype":
                v = _dtype(value)
            elif k == "dims":
                v = tuple(_dims.canonical(x) for x in _seq(value))
            elif k == "graph":  # a region: control-flow ops hold their bodies as graphs
                from .graph import Graph

                if not isinstance(value, Graph):
                    raise TypeError
                v = value
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: expected {k}, got {value!r}") from e
        if self.choices is not None and v not in self.choices:
            raise ValueError(f"{where}: {v!r} is not one of {', '.join(map(repr, self.choices))}")
        return v


def _seq(value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError
    return list(value)


@dataclass
class OpDef:
    name: str
    inputs: tuple
    attrs: Mapping[str, Attr]
    outputs: Any
    infer: Callable
    reference: Callable
    traits: frozenset = frozenset()
    lower: Callable | None = None
    doc: str = ""
    cls: Any = field(default=None, repr=False)

    def __post_init__(self):
        # absent trailing optional operands reach infer/reference as None, whoever calls them
        if not self.variadic and any(n.endswith("?") for n in self.inputs):
            self.infer = _fill_optional(self.infer, len(self.inputs))
            self.reference = _fill_optional(self.reference, len(self.inputs))

    @property
    def variadic(self) -> bool:
        return any(n.startswith("*") for n in self.inputs)

    @property
    def min_inputs(self) -> int:
        return sum(1 for n in self.inputs if not n.endswith("?") and not n.startswith("*"))

    @property
    def max_inputs(self):
        return math.inf if self.variadic else len(self.inputs)

    def input_name(self, i: int) -> str:
        if self.variadic:
            star = next(j for j, n in enumerate(self.inputs) if n.startswith("*"))
            if i >= star:
                return f"{self.inputs[star][1:]}[{i - star}]"
        return self.inputs[i].rstrip("?")

    def normalize_attrs(self, attrs: Mapping, where: str = "") -> dict:
        """Validate attributes against the schema and fill in defaults."""
        where = where or f"op '{self.name}'"
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise ValueError(
                f"{where}: unknown attribute(s) {', '.join(sorted(unknown))}; "
                f"'{self.name}' takes {', '.join(self.attrs) or 'none'}"
            )
        out = {}
        for name, schema in self.attrs.items():
            if name in attrs:
                out[name] = schema.normalize(attrs[name], f"{where} attribute '{name}'")
            elif schema.default is REQUIRED:
                raise ValueError(f"{where}: missing required attribute '{name}'")
            else:
                out[name] = schema.default
        return out

    def check_arity(self, n: int, where: str = ""):
        where = where or f"op '{self.name}'"
        if n < self.min_inputs or n > self.max_inputs:
            want = f"at least {self.min_inputs}" if self.variadic else (
                f"{self.min_inputs}" if self.min_inputs == self.max_inputs
                else f"{self.min_inputs} to {self.max_inputs}")
            raise ValueError(f"{where}: takes {want} input(s) ({', '.join(self.inputs)}), got {n}")


def _fill_optional(fn, n):
    import functools

    @functools.wraps(fn)
    def call(*args, **attrs):
        return fn(*args, *([None] * (n - len(args))), **attrs)

    return call


OPS: dict[str, OpDef] = {}


def op(name: str, *, inputs=("x",), attrs=None, outputs=1, traits=()):
    """Class decorator registering a core op; see the module docstring."""

    def deco(cls):
        if name in OPS:
            raise ValueError(f"op {name!r} is defined twice ({OPS[name].cls} and {cls})")
        infer = cls.__dict__.get("infer")
        reference = cls.__dict__.get("reference")
        if infer is None or reference is None:
            raise TypeError(f"op {name!r}: the definition needs both infer() and reference()")
        lower = cls.__dict__.get("lower")
        OPS[name] = OpDef(
            name=name,
            inputs=tuple(inputs),
            attrs=dict(attrs or {}),
            outputs=outputs,
            infer=_unwrap(infer),
            reference=_unwrap(reference),
            traits=frozenset(traits),
            lower=_unwrap(lower) if lower else None,
            doc=(cls.__doc__ or "").strip(),
            cls=cls,
        )
        return cls

    return deco


def _unwrap(f):
    return f.__func__ if isinstance(f, staticmethod) else f


def register(opdef: OpDef) -> OpDef:
    """Register an op built without the decorator (tables of elementwise ops use this)."""
    if opdef.name in OPS:
        raise ValueError(f"op {opdef.name!r} is defined twice")
    OPS[opdef.name] = opdef
    return opdef


def get(name: str) -> OpDef:
    from . import ops  # noqa: F401  (populates the registry)

    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}") from None


def all_ops() -> dict[str, OpDef]:
    from . import ops  # noqa: F401

    return dict(OPS)


def as_dtype(x) -> DType:
    return _dtype(x)
