"""Graph passes and the machinery that runs them.

- :mod:`kiln.passes.base`: :class:`Pass`, :class:`PassContext`, :class:`PassManager`;
- one module per pass: :mod:`.dce`, :mod:`.cse`, :mod:`.fold_constants`, :mod:`.simplify`.

Every pass is pure (never mutates its input) and property-tested against the interpreter.
"""
from .base import (FunctionPass, Instrument, Pass, PassContext, PassManager, PassRecord, PassReport,
                   function_pass, map_regions, run_passes)
# The passes' functions stay in their modules (kiln.passes.dce.dce, ...): exporting them here
# would shadow the module names.
from .cse import CommonSubexpressions
from .dce import DeadCodeElimination
from .fold_batchnorm import FoldBatchNorm
from .fold_constants import FoldConstants
from .simplify import Simplify

__all__ = [
    "Pass", "FunctionPass", "function_pass", "PassContext", "PassManager", "PassRecord", "PassReport",
    "Instrument", "run_passes", "map_regions",
    "DeadCodeElimination", "CommonSubexpressions", "FoldConstants", "FoldBatchNorm", "Simplify", "default_pipeline",
]


def default_pipeline() -> list:
    """The graph-level cleanup pipeline: simplify, fold constants, CSE, then DCE."""
    return [Simplify(), FoldConstants(), CommonSubexpressions(), Simplify(), DeadCodeElimination()]
