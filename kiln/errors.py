"""Every error kiln raises on purpose derives from :class:`KilnError`.

Each names the thing that is wrong (op and node, input name, artifact member) so that a user
can act on the message without reading a traceback.
"""
from __future__ import annotations


class KilnError(Exception):
    """Base class of kiln's own errors."""


class UnsupportedOperatorError(KilnError):
    """A model uses operators kiln cannot convert.

    ``unsupported`` lists every distinct (op_type, version, first node name[, source location]) of
    the model at once, so that one run tells a user everything that is missing. ``version`` is an
    ONNX opset (int), a word such as ``"core"``, or None; the source location (a framework's
    ``file.py:12 in forward: y = f(x)``) says where the op came from in the user's code.
    """

    def __init__(self, unsupported, source: str = "model"):
        self.unsupported = [tuple(u) for u in unsupported]
        lines = [f"{source} uses {len(self.unsupported)} unsupported operator(s):"]
        for op_type, version, node, *location in self.unsupported:
            where = f"first at node '{node}'" if node else "first node unnamed"
            if location and location[0]:
                where += f", from {location[0]}"
            if version is None:
                lines.append(f"  - {op_type}, {where}")
            else:
                lines.append(f"  - {op_type} ({'opset ' if isinstance(version, int) else ''}{version}), {where}")
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
