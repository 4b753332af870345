"""kiln — an ML compiler with pluggable hardware code generation.

``import kiln`` is light: numpy and the standard library. Frontends import their source
framework (onnx, torch, jax) only when called; ``kiln.compile`` imports the compiler (llvmlite) on
first use, ``kiln.load`` the runtime (numpy and the standard library only).
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import ir
from .errors import (
    ArtifactError,
    ConversionError,
    InterpreterError,
    KilnError,
    ModelLoadError,
    ParseError,
    UnsupportedOperatorError,
    VerificationError,
)
from .ir import Graph, interpret, parse, verify
from . import frontends

__all__ = [
    "__version__", "ir", "frontends", "Graph", "interpret", "parse", "verify",
    "KilnError", "UnsupportedOperatorError", "ModelLoadError", "ConversionError", "VerificationError",
    "ParseError", "InterpreterError", "ArtifactError", "load", "CompiledModel",
]  # not "compile": ``from kiln import *`` must not shadow the builtin (``kiln.compile`` still works)


def __getattr__(name):
    # heavier submodules load on first use
    if name in ("testing", "passes", "jax"):  # kiln.jax (the jit decorator) imports jax on first use of it
        import importlib

        return importlib.import_module(f"kiln.{name}")
    if name in ("load", "CompiledModel"):  # the runtime (numpy + stdlib) loads on first use
        from . import runtime

        globals()[name] = value = getattr(runtime, name)
        return value
    if name == "compile":  # the compiler (llvmlite, the C compiler) loads on first use
        import importlib

        # cached as ``kiln.compile``; code inside kiln never reads the builtin through this module's globals
        globals()[name] = value = importlib.import_module("kiln.compiler.compile").compile
        return value
    raise AttributeError(f"module 'kiln' has no attribute {name!r}")
