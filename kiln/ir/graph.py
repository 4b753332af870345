"""The tensor IR: a typed SSA graph.

Values are named; every value has exactly one definition — a graph input, a constant, or the
output of one node — and a :class:`TensorType` in ``graph.types``. ``graph.nodes`` is in
topological order. Constants (weights) are held apart from the structure, in ``graph.constants``
(name -> numpy array), so a large model prints and copies cheaply: :meth:`Graph.copy` shares the
arrays, which kiln never mutates in place.

An absent optional operand is the empty name ``""``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .types import TensorType


@dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple
    outputs: tuple
    attrs: Mapping = field(default_factory=dict)
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    def __hash__(self):
        return hash((self.op, self.inputs, self.outputs, self.name))

    def __eq__(self, other):
        return (
            isinstance(other, Node)
            and (self.op, self.inputs, self.outputs, self.name) == (other.op, other.inputs, other.outputs, other.name)
            and dict(self.attrs) == dict(other.attrs)
        )

    def with_(self, **changes) -> "Node":
        return replace(self, **changes)

    @property
    def label(self) -> str:
        """How errors refer to this node: its name and op."""
        return f"node '{self.name or self.outputs[0]}' ({self.op})"


@dataclass
class Graph:
    name: str = "main"
    inputs: list = field(default_factory=list)  # value names, in call order
    outputs: list = field(default_factory=list)  # value names, in result order
    nodes: list = field(default_factory=list)  # Node, topological order
    types: dict = field(default_factory=dict)  # value name -> TensorType
    constants: dict = field(default_factory=dict)  # value name -> np.ndarray

    def copy(self) -> "Graph":
        """A structural copy; constant arrays are shared (they are never mutated)."""
        return Graph(self.name, list(self.inputs), list(self.outputs), list(self.nodes),
                     dict(self.types), dict(self.constants))

    # --- queries -----------------------------------------------------------------------------
    def type_of(self, value: str) -> TensorType:
        return self.types[value]

    def is_constant(self, value: str) -> bool:
        return value in self.constants

    def producers(self) -> dict:
        """value name -> the node defining it."""
        return {o: n for n in self.nodes for o in n.outputs}

    def users(self) -> dict:
        """value name -> list of nodes using it."""
        out: dict = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def regions(self):
        """The nested graphs (control-flow bodies) of this graph's nodes, recursively."""
        for n in self.nodes:
            for v in n.attrs.values():
                if isinstance(v, Graph):
                    yield v
                    yield from v.regions()

    def all_constants(self) -> dict:
        """Constants of this graph and of every nested region: what :func:`kiln.parse` needs to
        read back a text form whose large constants are printed by name."""
        out = dict(self.constants)
        for r in self.regions():
            for k, a in r.constants.items():
                out.setdefault(k, a)
        return out

    def input_types(self) -> list:
        return [self.types[i] for i in self.inputs]

    def output_types(self) -> list:
        return [self.types[o] for o in self.outputs]

    def __str__(self) -> str:
        from .printer import print_graph

        return print_graph(self)

    def __repr__(self) -> str:
        return (f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes, "
                f"{len(self.constants)} constants, {len(self.outputs)} outputs>")

    def __eq__(self, other) -> bool:
        """Structural equality, constants compared by value."""
        if not isinstance(other, Graph):
            return NotImplemented
        if (self.name, self.inputs, self.outputs, self.nodes, self.types) != (
            other.name, other.inputs, other.outputs, other.nodes, other.types
        ):
            return False
        if self.constants.keys() != other.constants.keys():
            return False
        return all(_same_array(self.constants[k], other.constants[k]) for k in self.constants)

    __hash__ = None  # mutable

    def _repr_pretty_(self, p, cycle) -> None:
        # IPython and hypothesis pretty-print a graph as its IR text (e.g. in falsifying examples)
        p.text(f"kiln.parse('''\n{self}\n''')" if not cycle else repr(self))

    # --- editing helpers used by passes ---------------------------------------------------------
    def prune_constants(self) -> "Graph":
        """Drop constants (and their types) that nothing refers to. Returns self."""
        used = set(self.outputs) | {i for n in self.nodes for i in n.inputs}
        for k in [k for k in self.constants if k not in used]:
            del self.constants[k]
            self.types.pop(k, None)
        return self

    def rename(self, mapping: Mapping[str, str]) -> "Graph":
        """A copy with values renamed through ``mapping``."""
        def r(v):
            return mapping.get(v, v) if v else v

        g = Graph(self.name, [r(v) for v in self.inputs], [r(v) for v in self.outputs])
        g.nodes = [n.with_(inputs=tuple(r(v) for v in n.inputs), outputs=tuple(r(v) for v in n.outputs))
                   for n in self.nodes]
        g.types = {r(k): t for k, t in self.types.items()}
        g.constants = {r(k): a for k, a in self.constants.items()}
        return g


def _same_array(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return a.tobytes() == b.tobytes()
