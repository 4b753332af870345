"""Graph passes and the machinery that runs them.

- :mod:`kiln.passes.base`: :class:`Pass`, :class:`PassContext`, :class:`PassManager`;
- one module per pass: :mod:`.dce`, :mod:`.cse`, :mod:`.fold_constants`, :mod:`.simplify`.

Every pass is pure (never mutates its input) and property-tested against the interpreter.
"""
from .base import (FunctionPass, Instrument, Pass, PassContext, PassManager, PassRecord, PassReport,
                   function_pass, run_passes)
from .cse import CommonSubexpressions, cse
from .dce import DeadCodeElimination, dce
from .fold_constants import FoldConstants, fold_constants
from .simplify import Simplify, simplify

__all__ = [
    "Pass", "FunctionPass", "function_pass", "PassContext", "PassManager", "PassRecord", "PassReport",
    "Instrument", "run_passes",
    "DeadCodeElimination", "dce", "CommonSubexpressions", "cse", "FoldConstants", "fold_constants",
    "Simplify", "simplify", "default_pipeline",
]


def default_pipeline() -> list:
    """The graph-level cleanup pipeline: simplify, fold constants, CSE, then DCE."""
    return [Simplify(), FoldConstants(), CommonSubexpressions(), Simplify(), DeadCodeElimination()]
