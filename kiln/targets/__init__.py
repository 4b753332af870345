"""Code generation targets: the :class:`Target` interface, the registry and the built-in targets.

``kiln.targets.get("cpu")`` gives the LLVM CPU target for the host; third-party targets register with
:func:`register` or the ``kiln.targets`` entry-point group.
"""
from .base import Caps, Target, TargetBinary, available, get, register

__all__ = ["Caps", "Target", "TargetBinary", "available", "get", "register"]
