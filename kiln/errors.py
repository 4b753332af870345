"""Every error kiln raises on purpose derives from :class:`KilnError`.

Each names the thing that is wrong (op and node, input name, artifact member) so that a user
can act on the message without reading a traceback.
"""
from __future__ import annotations


class KilnError(Exception):
    """Base class of kiln's own errors."""


class UnsupportedOperatorError(KilnError):
    """A model uses operators kiln cannot convert.

    ``unsupported`` lists every distinct (op_type, opset, first node name) of the model at once,
    so that one run tells a user everything that is missing.
    """

    def __init__(self, unsupported, source: str = "model"):
        self.unsupported = list(unsupported)
        lines = [f"{source} uses {len(self.unsupported)} unsupported operator(s):"]
        for op_type, opset, node in self.unsupported:
            where = f"first at node '{node}'" if node else "first node unnamed"
            lines.append(f"  - {op_type} (opset {opset}), {where}")
        super().__init__("\n".join(lines))


class ModelLoadError(KilnError):
    """A model file could not be read: missing, truncated, malformed or not a model at all."""


class ConversionError(KilnError):
    """A supported operator could not be converted with the attributes or inputs it was given."""


class VerificationError(KilnError):
    """The IR breaks one of its invariants; the message names the node."""


class ParseError(KilnError):
    """The IR text could not be parsed; the message gives the line."""


class InterpreterError(KilnError):
    """Executing a graph failed: bad inputs, or an op whose result disagrees with its type."""


class ArtifactError(KilnError):
    """A compiled artifact is damaged, foreign or of an unsupported format version."""
