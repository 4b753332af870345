"""Symbolic sizes: torch's sympy dim expressions as kiln dims, and the names of the user's ``Dim``\\ s.

torch.export gives every dynamic dim a sympy symbol (``s77``); the user named it with
``torch.export.Dim("batch")``. :func:`dim_names` recovers that name by walking the
``dynamic_shapes`` spec beside the input placeholders, so the kiln graph's inputs carry
``batch``, not ``s77``. :func:`to_dim` turns an expression over those symbols into a kiln dim: an
int or a polynomial string. kiln dims are polynomials, so a floor division or modulo is accepted
only where it is exact (``(4*s)//2`` is ``2*s``); anything else is refused with a message that
says which expression it was.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConversionError
from ...ir import dims as _dims


@dataclass(frozen=True)
class SymDim:
    """A SymInt of the FX graph, known at conversion time as a kiln dim (an int or an expression)."""

    dim: int | str


def to_dim(expr, names: dict, what: str = "a size"):
    """The sympy expression (or int / SymInt) ``expr`` as a kiln dim over the symbols named in ``names``.

    ``names`` maps sympy symbol names (``"s77"``) to kiln symbol names (``"batch"``).
    """
    import sympy

    if isinstance(expr, bool):
        raise ConversionError(f"{what} is a bool ({expr}), not a size")
    if isinstance(expr, int):
        return expr
    node = getattr(expr, "node", None)  # a torch.SymInt
    if node is not None:
        if getattr(node, "maybe_as_int", None) and node.maybe_as_int() is not None:
            return int(node.maybe_as_int())
        expr = node.expr
    expr = sympy.sympify(expr)
    return _convert(expr, names, _readable(expr, names), what)


def _readable(expr, names):
    """The expression's text with the user's dim names for torch's symbols (``batch//2``, not ``s77//2``)."""
    import sympy

    try:
        subs = {s: sympy.Symbol(names[s.name]) for s in expr.free_symbols if s.name in names}
        return str(expr.xreplace(subs)) if subs else str(expr)
    except Exception:  # noqa: BLE001 -- only for the message
        return str(expr)


def _convert(e, names, whole, what):
    import sympy
    from torch.utils._sympy import functions as tf

    if e.is_Integer:
        return int(e)
    if e.is_Symbol:
        if e.name in names:
            return names[e.name]
        if e.name.startswith("u"):
            raise ConversionError(f"{what} depends on the values in a tensor ({e.name} in {whole}: from .item(), "
                                  f"nonzero(), a boolean mask or similar); kiln needs sizes that follow from the "
                                  f"input shapes")
        raise ConversionError(f"{what} uses the symbol {e.name} ({whole}), which is not a dim of any input")
    if isinstance(e, sympy.Add):
        out = 0
        for a in e.args:
            out = _dims.add(out, _convert(a, names, whole, what))
        return out
    if isinstance(e, sympy.Mul):
        out = 1
        for a in e.args:
            out = _dims.mul(out, _convert(a, names, whole, what))
        return out
    if isinstance(e, sympy.Pow) and e.exp.is_Integer and int(e.exp) >= 0:
        base = _convert(e.base, names, whole, what)
        return _dims.prod([base] * int(e.exp))
    divs = tuple(getattr(tf, n) for n in ("FloorDiv", "CleanDiv", "IntTrueDiv", "CeilDiv") if hasattr(tf, n))
    if isinstance(e, divs):
        a, b = (_convert(x, names, whole, what) for x in e.args)
        q = _dims.div_exact(a, b)
        if q is not None:
            return q
        raise ConversionError(f"{what} is {whole}: a division that is not exact for every value of the input dims "
                              f"(kiln's symbolic dims are polynomials); make the dim a multiple (a derived "
                              f"torch.export.Dim such as 2*Dim('n')) or make it static")
    mods = tuple(getattr(tf, n) for n in ("Mod", "PythonMod") if hasattr(tf, n)) + (sympy.Mod,)
    if isinstance(e, mods):
        a, b = (_convert(x, names, whole, what) for x in e.args)
        if _dims.div_exact(a, b) is not None:
            return 0
        raise ConversionError(f"{what} is {whole}: a remainder that is not known to be 0 (kiln's symbolic dims "
                              f"are polynomials)")
    raise ConversionError(f"{what} is {whole}, which kiln cannot express as a symbolic dim (kiln's dims are "
                          f"polynomials in the input dims; max, min, non-exact division and the like are not)")


def dim_names(user_inputs, dynamic_shapes) -> dict:
    """``{sympy symbol name: the user's Dim name}`` for the dims declared in ``dynamic_shapes``.

    ``user_inputs`` lists ``(placeholder name, fake tensor)`` in order. ``dynamic_shapes`` is the
    torch.export spec: a dict by argument name or a sequence by position, each entry a dict
    ``{axis: Dim}`` or a sequence of Dim/None. Dims torch names itself (``Dim.AUTO``) keep the
    sympy name; a derived dim (``2*Dim("n")``) names the symbol of its root.
    """
    out: dict = {}
    if dynamic_shapes is None:
        return out
    for i, (name, val) in enumerate(user_inputs):
        spec = _spec_for(dynamic_shapes, i, name)
        if spec is None or not hasattr(val, "shape"):
            continue
        items = spec.items() if isinstance(spec, dict) else enumerate(spec) if isinstance(spec, (list, tuple)) else ()
        for axis, d in items:
            if not isinstance(axis, int) or not -len(val.shape) <= axis < len(val.shape):
                continue
            size = val.shape[axis]
            node = getattr(size, "node", None)
            if node is None:
                continue
            free = list(getattr(node.expr, "free_symbols", ()))
            root = getattr(d, "root", None)
            user_name = getattr(root if root is not None else d, "__name__", None)
            if user_name and len(free) == 1 and (root is not None or node.expr.is_Symbol):
                out.setdefault(free[0].name, _dims.sanitize_symbol(user_name))
    return out


def _spec_for(dynamic_shapes, i, name):
    """The spec of user input ``i`` (placeholder ``name``): by argument name, else by position."""
    if isinstance(dynamic_shapes, dict):
        if name in dynamic_shapes:
            return dynamic_shapes[name]
        vals = list(dynamic_shapes.values())
        if len(vals) == 1 and isinstance(vals[0], (list, tuple)) and not _is_axis_spec(vals[0]):
            vals = list(vals[0])  # {"args": (spec0, spec1, ...)} for a forward(*args)
        return vals[i] if i < len(vals) else None
    if isinstance(dynamic_shapes, (list, tuple)) and i < len(dynamic_shapes):
        return dynamic_shapes[i]
    return None


def _is_axis_spec(seq) -> bool:
    """A sequence of per-axis entries (Dim or None), as opposed to a sequence of per-input specs."""
    return all(e is None or hasattr(e, "__name__") or type(e).__name__ == "_DimHint" for e in seq)
