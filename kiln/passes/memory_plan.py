"""Static memory planning: one workspace for the intermediate values of a kernel call sequence.

Once fusion has fixed the sequence of kernel calls, each intermediate value is written by one
step and last read by a later one (or the same). :func:`plan_memory` gives every value a byte
offset in a single workspace so that values live at the same time never share bytes; values whose
live ranges ``[first, last]`` do not overlap may. The ranges are closed: a step that reads one
value and writes another needs both at once.

    plan = plan_memory([BufferUse("t0", 4096, 0, 1), BufferUse("t1", "512*batch", 1, 2),
                        BufferUse("t2", 4096, 2, 3)])
    plan.offsets        # {"t0": 0, "t1": "4096", ...}: ints, or polynomial strings
    plan.peak({"batch": 8})
    plan.to_json()      # for the artifact manifest

Static sizes (every ``nbytes`` an int): greedy by size. Buffers are placed largest first, each at
the lowest aligned offset that collides with no buffer already placed and live at the same time.
The peak lies between the most bytes live at one step (the lower bound) and the sum of the
aligned sizes (no reuse at all).

Symbolic sizes (some ``nbytes`` a :mod:`kiln.ir.dims` polynomial such as ``"3211264*batch"`` or
``"4*n-4"``): the offsets must be right for every value of the symbols, which are >= 1. Buffers
go into *slots*: the members of a slot are never live at the same time, and a slot's size is an
upper bound of every member's size, taken coefficient-wise (:func:`kiln.ir.dims.upper_bound_max`)
with each coefficient rounded up to the alignment. Slots are laid out one after another, so an
offset is the sum of the slot sizes before it: a polynomial whose coefficients are multiples of the
alignment, hence aligned for every binding. Sizes are assumed non-negative for every binding.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..ir import dims as _dims
from ..ir.dims import Dim

__all__ = ["BufferUse", "MemoryPlan", "plan_memory"]

#: symbols are bound to this when symbolic sizes must be ranked (largest first, cheapest slot)
_REFERENCE_SIZE = 1 << 10


@dataclass(frozen=True)
class BufferUse:
    """One intermediate value: its size in bytes and the steps that write it first and read it last."""

    value: str
    nbytes: Dim  # int, or a polynomial string in the symbols ("3211264*batch", "4*n-4")
    first: int  # the index of the step that writes it
    last: int  # the index of the last step that reads it (>= first)

    def __post_init__(self):
        object.__setattr__(self, "nbytes", _dims.canonical(self.nbytes))
        if self.nbytes == _dims.UNKNOWN:
            raise ValueError(f"buffer '{self.value}': size {self.nbytes!r} is not an expression")
        if isinstance(self.nbytes, int) and self.nbytes < 0:
            raise ValueError(f"buffer '{self.value}': size {self.nbytes} is negative")
        if not (0 <= self.first <= self.last):
            raise ValueError(f"buffer '{self.value}': live range [{self.first}, {self.last}] "
                             f"must have 0 <= first <= last")

    def overlaps(self, other: "BufferUse") -> bool:
        """Whether the two are live at one step (closed ranges)."""
        return self.first <= other.last and other.first <= self.last


@dataclass
class MemoryPlan:
    """Where each buffer lives in the workspace, and how big the workspace is."""

    offsets: dict  # value -> byte offset (int, or polynomial string), a multiple of the alignment
    size: Dim  # total workspace bytes (the peak)
    nbytes: dict = field(default_factory=dict)  # value -> its size, as given
    alignment: int = 64

    def peak(self, env: Mapping[str, int] | None = None) -> int:
        """The workspace size for these symbol values."""
        return _eval(self.size, env or {}, "the workspace size")

    def offsets_for(self, env: Mapping[str, int] | None = None) -> dict:
        """Every buffer's offset for these symbol values."""
        return {v: _eval(o, env or {}, f"the offset of '{v}'") for v, o in self.offsets.items()}

    def to_json(self) -> dict:
        """The plan as the manifest records it: ints stay ints, polynomials are strings."""
        return {"buffers": [{"value": v, "offset": o, "bytes": self.nbytes[v]} for v, o in self.offsets.items()],
                "peak_bytes": self.size}


def _eval(d: Dim, env: Mapping[str, int], what: str) -> int:
    v = _dims.evaluate(d, env)
    if v is None:
        missing = sorted(_dims.symbols(d) - set(env))
        raise ValueError(f"{what} is {d}: needs a value for {', '.join(missing)}")
    return v


def plan_memory(buffers: Sequence[BufferUse], alignment: int = 64) -> MemoryPlan:
    """Offsets for ``buffers`` in one workspace; see the module docstring."""
    if not isinstance(alignment, int) or alignment < 1:
        raise ValueError(f"alignment must be a positive int, got {alignment!r}")
    seen: set = set()
    for b in buffers:
        if b.value in seen:
            raise ValueError(f"buffer '{b.value}' is listed twice")
        seen.add(b.value)
    if all(isinstance(b.nbytes, int) for b in buffers):
        offsets, size = _greedy_by_size(buffers, alignment)
    else:
        offsets, size = _slots(buffers, alignment)
    return MemoryPlan({b.value: offsets[b.value] for b in buffers}, size,
                      {b.value: b.nbytes for b in buffers}, alignment)


# --- static sizes --------------------------------------------------------------------------------

def _align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def _greedy_by_size(buffers: Sequence[BufferUse], alignment: int):
    order = sorted(buffers, key=lambda b: (-b.nbytes, b.first, b.last, b.value))
    placed: list = []  # (offset, buffer)
    offsets: dict = {}
    for b in order:
        conflicts = sorted((o, c.nbytes) for o, c in placed if c.overlaps(b) and c.nbytes > 0)
        offset = 0
        if b.nbytes > 0:
            for o, n in conflicts:  # first fit: the lowest gap that holds b
                if offset + b.nbytes <= o:
                    break
                offset = max(offset, _align(o + n, alignment))
        placed.append((offset, b))
        offsets[b.value] = offset
    size = max((o + b.nbytes for o, b in placed), default=0)
    return offsets, size


# --- symbolic sizes ------------------------------------------------------------------------------

def _aligned_bound(d: Dim, alignment: int) -> Dim:
    """An upper bound of ``d`` (symbols >= 1) whose every coefficient is a multiple of ``alignment``."""
    p = _dims._poly(_dims.upper_bound_max(d, 0))
    return _dims._from_poly({k: _align(c, alignment) for k, c in p.items()})


def _at_reference(d: Dim) -> int:
    return _dims.evaluate(d, {s: _REFERENCE_SIZE for s in _dims.symbols(d)})


@dataclass
class _Slot:
    size: Dim
    members: list


def _slots(buffers: Sequence[BufferUse], alignment: int):
    order = sorted(buffers, key=lambda b: (-_at_reference(_dims.upper_bound_max(b.nbytes, 0)),
                                           -_dims.evaluate(b.nbytes, {s: 1 for s in _dims.symbols(b.nbytes)}),
                                           b.first, b.last, b.value))
    slots: list = []
    for b in order:
        bound = _aligned_bound(b.nbytes, alignment)
        best, best_cost = None, None
        for s in slots:
            if any(m.overlaps(b) for m in s.members):
                continue
            cost = _at_reference(_dims.sub(_dims.upper_bound_max(s.size, bound), s.size))
            if best is None or cost < best_cost:
                best, best_cost = s, cost
        if best is None:
            slots.append(_Slot(bound, [b]))
        else:
            best.size = _dims.upper_bound_max(best.size, bound)
            best.members.append(b)
    offsets: dict = {}
    offset: Dim = 0
    for s in slots:
        for m in s.members:
            offsets[m.value] = offset
        offset = _dims.add(offset, s.size)
    return offsets, offset
