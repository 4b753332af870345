"""JAX function -> jaxpr -> kiln Graph.

:func:`from_jax` traces a function with ``jax.make_jaxpr`` at the example inputs (numpy or JAX
arrays, or pytrees of them), with named dims made symbolic through ``jax.export.symbolic_shape``.
It then walks the jaxpr: call-like primitives (``jit``, ``closed_call``, ``remat``,
``custom_jvp_call``, ``custom_vjp_call``, ...) are inlined, every other equation goes to the
converter registered for its primitive (see ``registry.py``). Before converting anything, every
primitive without a converter is collected, so one :class:`~kiln.UnsupportedOperatorError` lists
them all, each with the line of user code it came from.
"""
from __future__ import annotations

import inspect
import linecache
import os
import re

import numpy as np

from ...errors import ConversionError, KilnError, UnsupportedOperatorError
from ..common import Emitter, symbol_dim
from .registry import Cx, kiln_dtype, lookup

#: call-like primitives and the param holding the jaxpr they call (inlined)
CALLS = {
    "jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr",
    "remat": "jaxpr", "remat2": "jaxpr", "checkpoint": "jaxpr", "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr", "named_call": "call_jaxpr",
    "xla_call": "call_jaxpr", "core_closed_call": "call_jaxpr",
}
#: control flow converted by the walk itself: cond (every branch, then a select) and scan (unrolled)
STRUCTURAL = {"cond", "scan"}
#: most unrolled scan iterations times body equations
MAX_UNROLLED = 20000
#: primitives with sub-jaxprs whose semantics are not "call it once" (never inlined)
CONTROL_FLOW = {"scan", "while", "cond", "switch", "custom_linear_solve", "custom_transpose_call",
                "pmap", "xla_pmap", "shard_map", "reduce", "select_and_scatter", "select_and_gather_add",
                "run_state", "for"}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def from_jax(fn, example_inputs, input_shapes=None):
    """Convert the JAX function ``fn`` into a kiln :class:`~kiln.ir.Graph`.

    ``example_inputs``: the positional arguments (a tuple or list; a single array for a one-argument
    function) or a dict of keyword arguments (graph inputs in sorted key order, as jax flattens a
    dict); each argument is an array or a pytree of arrays.
    Graph inputs are named after the function's parameters (``name_0``, ``name_1``, ... for the
    leaves of a pytree argument); outputs are the flattened result leaves ``output_0``, ...
    ``input_shapes``: ``{input name: [dim, ...]}`` where a string names a symbolic dim (``"batch"``),
    an int fixes a size and None keeps the example's size.
    """
    return convert(fn, example_inputs, input_shapes)[0]


def convert(fn, example_inputs, input_shapes=None):
    """Like :func:`from_jax`, also returning the output pytree structure (a jax ``PyTreeDef``)."""
    import jax

    args, kwargs = split_example_inputs(example_inputs)
    named = _named_leaves(fn, args, kwargs)
    specs, shapes = _specs(named, input_shapes)
    treedef = jax.tree_util.tree_structure((args, kwargs))
    spec_args, spec_kwargs = jax.tree_util.tree_unflatten(treedef, specs)
    fn_name = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", type(fn).__name__)
    try:
        closed, out_shapes = jax.make_jaxpr(fn, return_shape=True)(*spec_args, **spec_kwargs)
    except KilnError:
        raise
    except Exception as e:  # the user's function failed to trace: say so, with JAX's reason
        what = (" with symbolic dims " + ", ".join(f"{n}={s}" for n, s in shapes.items() if s)) if any(
            shapes.values()) else ""
        hint = (" (with symbolic dims, a function that branches on or computes with a dim's value cannot be "
                "traced: give those dims fixed sizes in input_shapes)") if what else ""
        raise ConversionError(f"tracing JAX function '{fn_name}'{what} failed: {type(e).__name__}: {e}{hint}") from e
    conv = _Converter(fn_name)
    conv.check_supported(closed.jaxpr)
    graph = conv.run(closed, [n for n, _ in named])
    return graph, jax.tree_util.tree_structure(out_shapes)


def split_example_inputs(example_inputs):
    """(positional args tuple, keyword args dict) from what a user passes as ``example_inputs``."""
    if example_inputs is None:
        raise ValueError("a JAX function is traced with example inputs: pass example_inputs=(array, ...)")
    if isinstance(example_inputs, dict):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (list, tuple)) and type(example_inputs) in (list, tuple):
        return tuple(example_inputs), {}
    return (example_inputs,), {}


def is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, type)


def param_names(fn, n_args):
    """A name for each of ``n_args`` positional arguments, from ``fn``'s signature where it has one."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            names += [f"{p.name}_{i}" for i in range(n_args - len(names))]
    names = names[:n_args]
    return names + [f"arg{i}" for i in range(len(names), n_args)]


def _named_leaves(fn, args, kwargs):
    """[(input name, leaf array)] over the flattened arguments, in JAX's flattening order."""
    import jax

    out = []
    # jax flattens a dict in sorted key order: keyword arguments are graph inputs in that order
    for name, arg in list(zip(param_names(fn, len(args)), args)) + sorted(kwargs.items()):
        leaves, tree = jax.tree_util.tree_flatten(arg)
        if tree.num_leaves == 1 and tree.num_nodes == 1:  # the argument is one array
            pairs = [(name, arg)]
        else:
            pairs = [(f"{name}_{i}", leaf) for i, leaf in enumerate(leaves)]
        for n, leaf in pairs:
            if not is_array(leaf):
                raise ConversionError(
                    f"argument '{n}' of the JAX function is a {type(leaf).__name__}, not an array: every argument "
                    f"(and every pytree leaf) must be a numpy or JAX array; bind other values with "
                    f"functools.partial or a closure (kiln.jax.jit also takes static_argnums)")
            out.append((re.sub(r"\W", "_", n), leaf))
    seen = set()
    for n, _ in out:
        if n in seen:
            raise ConversionError(f"two inputs of the JAX function would both be named '{n}'")
        seen.add(n)
    return out


def _specs(named, input_shapes):
    """jax.ShapeDtypeStruct per leaf (symbolic where input_shapes names a dim) and the dims asked for."""
    import jax

    input_shapes = dict(input_shapes or {})
    unknown = [k for k in input_shapes if k not in dict(named)]
    if unknown:
        raise ValueError(f"input_shapes names {', '.join(map(repr, unknown))}, which the function does not take "
                         f"(its inputs: {', '.join(n for n, _ in named)})")
    scope = None
    specs, asked = [], {}
    for name, leaf in named:
        dtype = jax.dtypes.canonicalize_dtype(leaf.dtype)
        shape = tuple(int(d) for d in np.shape(leaf))
        want = input_shapes.get(name)
        if want is None:
            specs.append(jax.ShapeDtypeStruct(shape, dtype))
            asked[name] = None
            continue
        want = list(want)
        if len(want) != len(shape):
            raise ValueError(f"input_shapes['{name}'] = {want} has {len(want)} dims, the example input has shape "
                             f"{list(shape)}")
        parts = []
        for d, ex in zip(want, shape):
            if d is None:
                parts.append(str(ex))
            elif isinstance(d, (int, np.integer)):
                parts.append(str(int(d)))
            elif isinstance(d, str) and _IDENT.match(d):
                parts.append(d)
            else:
                raise ValueError(f"input_shapes['{name}']: a dim is an int, None or a symbol name such as 'batch', "
                                 f"got {d!r}")
        asked[name] = parts
        if any(not p.isdigit() for p in parts):
            scope = scope or jax.export.SymbolicScope()
            specs.append(jax.ShapeDtypeStruct(jax.export.symbolic_shape(", ".join(parts), scope=scope), dtype))
        else:
            specs.append(jax.ShapeDtypeStruct(tuple(int(p) for p in parts), dtype))
    return specs, {n: s for n, s in asked.items() if s and any(not p.isdigit() for p in s)}


def location(eqn) -> str | None:
    """``file.py:LINE in fn: source text`` of the user code an equation came from."""
    try:
        from jax._src import source_info_util as siu

        frame = siu.user_frame(eqn.source_info.traceback)
    except Exception:  # an unexpected jax internals layout: no location rather than no error
        return None
    if frame is None:
        return None
    text = linecache.getline(frame.file_name, frame.start_line).strip()
    fn = frame.function_name.rsplit(".", 1)[-1]  # the function itself, not its <locals> path
    loc = f"{os.path.basename(frame.file_name)}:{frame.start_line} in {fn}"
    return f"{loc}: {text}" if text else loc


def _bodies(eqn):
    """The closed jaxprs a structural primitive runs."""
    return list(eqn.params["branches"]) if eqn.primitive.name == "cond" else [eqn.params["jaxpr"]]


def inline_target(eqn):
    """The (jaxpr, consts) an equation calls once with its own operands, or None."""
    from jax.extend.core import ClosedJaxpr, Jaxpr

    name = eqn.primitive.name
    if name in CONTROL_FLOW:
        return None
    if name in CALLS and CALLS[name] in eqn.params:
        cands = [eqn.params[CALLS[name]]]
    elif lookup(name) is None:  # an unknown primitive with exactly one sub-jaxpr of matching signature
        cands = [v for v in eqn.params.values() if isinstance(v, (Jaxpr, ClosedJaxpr))]
        if len(cands) != 1:
            return None
    else:
        return None
    sub = cands[0]
    jaxpr, consts = (sub.jaxpr, list(sub.consts)) if isinstance(sub, ClosedJaxpr) else (sub, [])
    if len(jaxpr.invars) != len(eqn.invars) or len(jaxpr.outvars) != len(eqn.outvars):
        return None
    for a, b in zip(list(jaxpr.invars) + list(jaxpr.outvars), list(eqn.invars) + list(eqn.outvars)):
        if a.aval.shape != b.aval.shape or a.aval.dtype != b.aval.dtype:
            return None
    return jaxpr, consts


class _Converter:
    def __init__(self, fn_name):
        self.fn_name = fn_name
        self.e = Emitter(re.sub(r"\W", "_", fn_name) or "jax")
        self.sym_sources: dict = {}  # symbol -> (input value, axis)
        self._sym_cache: dict = {}
        self.cx = Cx(self.e, {})
        self.count = 0
        self._literals: dict = {}

    # --- the up-front check -----------------------------------------------------------------------
    def check_supported(self, jaxpr):
        missing: dict = {}
        counter = [0]

        def visit(jx, outer_loc):
            for eqn in jx.eqns:
                counter[0] += 1
                loc = location(eqn) or outer_loc
                sub = inline_target(eqn)
                if sub is not None:
                    visit(sub[0], loc)
                elif eqn.primitive.name in STRUCTURAL:
                    for body in _bodies(eqn):
                        visit(body.jaxpr, loc)
                elif lookup(eqn.primitive.name) is None and eqn.primitive.name not in missing:
                    missing[eqn.primitive.name] = (eqn.primitive.name, None, f"eqn {counter[0]}", loc)

        visit(jaxpr, None)
        if missing:
            raise UnsupportedOperatorError(list(missing.values()), source=f"JAX function '{self.fn_name}'")

    # --- the walk ------------------------------------------------------------------------------------
    def run(self, closed, input_names):
        e = self.e
        ins = []
        for name, var in zip(input_names, closed.jaxpr.invars):
            shape = [symbol_dim(str(d)) if not isinstance(d, (int, np.integer)) else int(d) for d in var.aval.shape]
            v = e.input(name, kiln_dtype(var.aval.dtype), shape)
            for axis, d in enumerate(shape):
                if isinstance(d, str) and re.fullmatch(r"[A-Za-z_]\w*", d):
                    self.sym_sources.setdefault(d, (v, axis))
            ins.append(v)
        self.cx._sym_values = {s: (lambda s=s: self._sym_value(s)) for s in self.sym_sources}
        outs = self._run(closed.jaxpr, list(closed.consts), ins)
        return e.build(outs, output_names=[f"output_{i}" for i in range(len(outs))])

    def _sym_value(self, s):
        if s not in self._sym_cache:
            v, axis = self.sym_sources[s]
            hint, where = self.e.hint, self.e.where
            self.e.hint = s
            sh = self.e.op("shape", v, start=axis, end=axis + 1)
            self._sym_cache[s] = self.e.op("reshape", sh, shape=[])
            self.e.hint, self.e.where = hint, where
        return self._sym_cache[s]

    def _const(self, value, aval=None):
        arr = np.asarray(value, dtype=aval.dtype if aval is not None else None)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if arr.size <= 16 and key in self._literals:
            return self._literals[key]
        v = self.e.const(arr, kiln_dtype(arr.dtype), name="const")
        if arr.size <= 16:
            self._literals[key] = v
        return v

    def _run(self, jaxpr, consts, args, outer_loc=None):
        """Convert ``jaxpr`` applied to kiln values ``args``; ``outer_loc`` is the source line of the call
        that inlines it (JAX keeps no user frame for equations traced inside a jit)."""
        from jax.extend.core import Literal

        env = {}
        for var, c in zip(jaxpr.constvars, consts):
            env[var] = self._const(np.asarray(c))
        for var, a in zip(jaxpr.invars, args):
            env[var] = a

        def read(v):
            return self._const(v.val, v.aval) if isinstance(v, Literal) else env[v]

        for eqn in jaxpr.eqns:
            self.count += 1
            ins = [read(v) for v in eqn.invars]
            loc = location(eqn) or outer_loc
            sub = inline_target(eqn)
            if sub is not None:
                outs = self._run(sub[0], sub[1], ins, loc)
            elif eqn.primitive.name == "cond":
                outs = self._cond(eqn, ins, loc)
            elif eqn.primitive.name == "scan":
                outs = self._scan(eqn, ins, loc)
            else:
                outs = self._convert(eqn, ins, loc)
            for var, val in zip(eqn.outvars, outs):
                if type(var).__name__ != "DropVar":
                    env[var] = val
        return [read(v) for v in jaxpr.outvars]

    def _where(self, eqn, loc):
        return f"JAX primitive '{eqn.primitive.name}' (eqn {self.count}" + (f", {loc})" if loc else ")")

    def _cond(self, eqn, ins, loc):
        """Every branch converted, then the results picked by the (clamped) index; a constant index
        converts its branch alone. Branches are pure, so computing all of them is the same function."""
        branches = eqn.params["branches"]
        index, operands = ins[0], ins[1:]
        n = len(branches)
        c = self.e.const_of(index)
        if c is not None:
            b = branches[int(np.clip(int(c), 0, n - 1))]
            return self._run(b.jaxpr, list(b.consts), operands, loc)
        results = [self._run(b.jaxpr, list(b.consts), operands, loc) for b in branches]
        self.e.where, self.e.hint = self._where(eqn, loc), "cond"
        idx = self.e.op("min", self.e.op("max", index, self.e.scalar_like(0, index)), self.e.scalar_like(n - 1, index))
        outs = []
        for k in range(len(eqn.outvars)):
            r = results[-1][k]
            for i in range(n - 2, -1, -1):
                r = self.e.op("where", self.e.op("equal", idx, self.e.scalar_like(i, idx)), results[i][k], r)
            outs.append(r)
        return outs

    def _scan(self, eqn, ins, loc):
        """A scan of static length, unrolled: the body converted once per iteration."""
        p = eqn.params
        body, length = p["jaxpr"], int(p["length"])
        nc, ncarry = int(p["num_consts"]), int(p["num_carry"])
        where = self._where(eqn, loc)
        if length < 1 or length * max(1, len(body.jaxpr.eqns)) > MAX_UNROLLED:
            raise ConversionError(f"{where}: a scan of {length} iterations of {len(body.jaxpr.eqns)} equations is "
                                  f"unrolled by kiln; only up to {MAX_UNROLLED} equations in all are")
        consts, carry, xs = ins[:nc], list(ins[nc:nc + ncarry]), ins[nc + ncarry:]
        ys = [[None] * length for _ in range(len(eqn.outvars) - ncarry)]
        order = range(length - 1, -1, -1) if p.get("reverse") else range(length)
        for i in order:
            self.e.where, self.e.hint = where, "scan"
            x_i = [self.e.op("reshape", self.e.op("slice", x, starts=[i], ends=[i + 1], axes=[0], steps=[1]),
                             shape=list(self.e.shape(x)[1:])) for x in xs]
            outs = self._run(body.jaxpr, list(body.consts), list(consts) + carry + x_i, loc)
            carry = outs[:ncarry]
            for k, y in enumerate(outs[ncarry:]):
                ys[k][i] = y
        self.e.where, self.e.hint = where, "scan"
        stacked = []
        for parts in ys:
            shape = [1] + list(self.e.shape(parts[0]))
            rows = [self.e.op("reshape", y, shape=shape) for y in parts]
            stacked.append(rows[0] if len(rows) == 1 else self.e.op("concat", *rows, axis=0))
        return carry + stacked

    def _convert(self, eqn, ins, loc):
        name = eqn.primitive.name
        where = self._where(eqn, loc)
        cx, e = self.cx, self.e
        cx.name, cx.params = name, dict(eqn.params)
        cx.in_avals = [v.aval for v in eqn.invars]
        cx.out_avals = [v.aval for v in eqn.outvars]
        cx.where = e.where = where
        e.hint = name.replace("-", "_")
        try:
            res = lookup(name)(cx, *ins)
        except KilnError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, NotImplementedError, ZeroDivisionError) as err:
            raise ConversionError(f"{where}: {err}") from err
        outs = list(res) if isinstance(res, (list, tuple)) else [res]
        if len(outs) != len(eqn.outvars):
            raise ConversionError(f"{where}: converted to {len(outs)} values, JAX has {len(eqn.outvars)} results "
                                  f"(a bug in kiln's JAX frontend)")
        for i, (v, aval) in enumerate(zip(outs, cx.out_avals)):
            want = (kiln_dtype(aval.dtype), cx.dims(aval.shape))
            t = e.type_of(v)
            if t.dtype != want[0] or tuple(t.shape) != want[1]:
                raise ConversionError(f"{where}: result {i} converted to {t}, JAX says {want[0]}{list(want[1])} "
                                      f"(a bug in kiln's JAX frontend)")
        return outs

