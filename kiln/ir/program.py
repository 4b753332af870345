"""A compiled program before code generation: kernels, the call sequence and where buffers live.

This is what the compiler hands a target's ``codegen``: plain data, no target knowledge.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .dims import Dim


@dataclass(frozen=True)
class Arg:
    """Where a kernel parameter points: ``input``/``output`` i, ``workspace`` + offset, ``weight`` + offset."""

    kind: str
    index: int = 0
    offset: Dim = 0
    value: str = ""


@dataclass
class Call:
    kernel: str
    args: list
    syms: list


@dataclass
class Program:
    kernels: dict                      # name -> loop IR Kernel
    calls: list                        # Call, in execution order
    symbols: list                      # symbol names, in the order of the syms array
    inputs: list                       # (name, dtype, shape)
    outputs: list
    workspace_size: Dim = 0
    weights: bytes = b""
    memory_plan: dict = field(default_factory=dict)
    kernel_info: list = field(default_factory=list)   # per call: {"name", "ops", "inputs", "outputs"}
