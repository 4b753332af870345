"""Control flow: ``if``, ``loop`` and ``scan``, whose bodies are nested graphs (regions).

Regions are isolated from the enclosing graph: everything a body uses from outside arrives as an
explicit operand (a *capture*) and is a body input, so a body is a complete graph that prints,
verifies and interprets on its own. Captures always come last, after the op's own operands.

- ``if(cond, *captures) {then_branch, else_branch}``: both branches take the captures as inputs
  and return the same number of results with the same dtypes and ranks.
- ``loop(max_trip, cond, *carried, *captures) {body, num_carried}``: ONNX Loop semantics. The body
  takes ``(iteration: i64[], cond: bool[], *carried, *captures)`` and returns
  ``(cond: bool[], *carried, *scan_outputs)``; the op returns the final carried values, then each
  scan output stacked along a new leading axis. An empty operand name for ``max_trip`` or ``cond``
  means "no limit" / "true".
- ``scan(*states, *scan_inputs, *captures) {body, num_states, num_scan_inputs, ...axes/directions}``:
  ONNX Scan (opset 9+) semantics. The body takes ``(*states, *slices, *captures)`` and returns
  ``(*states, *scan_output_slices)``.
"""
from __future__ import annotations

import numpy as np

from .. import dims
from ..registry import Attr, op
from ..types import TensorType
from ._util import norm_axis, require


def _run(body, args):
    from ..interpreter import run_graph

    return run_graph(body, list(args))


def _check_inputs(body, types, what) -> dict:
    """Check the operands against the body's inputs; returns body symbol -> the operand's dim."""
    require(len(body.inputs) == len(types),
            f"{what} takes {len(body.inputs)} inputs, the op passes {len(types)}")
    binding = {}
    for name, t in zip(body.inputs, types):
        bt = body.types[name]
        require(bt.dtype == t.dtype and bt.rank == t.rank,
                f"{what} input '{name}' is {bt}, the op passes {t}")
        for bd, d in zip(bt.shape, t.shape):
            if isinstance(bd, str) and bd != dims.UNKNOWN:
                binding.setdefault(bd, d)
    return binding


def _merge(a: TensorType, b: TensorType, what: str) -> TensorType:
    require(a.dtype == b.dtype and a.rank == b.rank, f"{what}: {a} and {b} differ in dtype or rank")
    return TensorType(a.dtype, [x if x == y else dims.UNKNOWN for x, y in zip(a.shape, b.shape)])


def _outer(t: TensorType, binding: dict) -> TensorType:
    """A body result seen from outside: a body symbol bound by an operand dim becomes that dim;
    any other symbolic dim is known only at run time."""
    return t.with_shape([d if isinstance(d, int) else binding.get(d, dims.UNKNOWN) for d in t.shape])


@op("if", inputs=("cond", "*captures"), outputs="*",
    attrs={"then_branch": Attr("graph"), "else_branch": Attr("graph")})
class If:
    def infer(cond: TensorType, *captures: TensorType, then_branch, else_branch):
        require(cond.dtype.name == "bool" and cond.size == 1, f"if: condition must be a single bool, got {cond}")
        bind_a = _check_inputs(then_branch, captures, "if: then_branch")
        bind_b = _check_inputs(else_branch, captures, "if: else_branch")
        a, b = then_branch.output_types(), else_branch.output_types()
        require(len(a) == len(b), f"if: branches return {len(a)} and {len(b)} results")
        return [_merge(_outer(x, bind_a), _outer(y, bind_b), f"if: result {i}") for i, (x, y) in enumerate(zip(a, b))]

    def reference(cond, *captures, then_branch, else_branch):
        return tuple(_run(then_branch if bool(np.asarray(cond).reshape(-1)[0]) else else_branch, captures))


@op("loop", inputs=("max_trip?", "cond?", "*operands"), outputs="*",
    attrs={"body": Attr("graph"), "num_carried": Attr("int")})
class Loop:
    def infer(max_trip, cond, *operands: TensorType, body, num_carried):
        require(0 <= num_carried <= len(operands), f"loop: num_carried {num_carried} exceeds the operands")
        carried, captures = operands[:num_carried], operands[num_carried:]
        i64, b = TensorType("i64", ()), TensorType("bool", ())
        binding = _check_inputs(body, (i64, b) + tuple(carried) + tuple(captures), "loop: body")
        outs = body.output_types()
        require(len(outs) >= 1 + num_carried, f"loop: body returns {len(outs)} results, needs >= {1 + num_carried}")
        require(outs[0].dtype.name == "bool", "loop: the body's first result is the continue condition (bool)")
        results = [_merge(c, _outer(o, binding), f"loop: carried value {k}") for k, (c, o) in
                   enumerate(zip(carried, outs[1:1 + num_carried]))]
        results += [TensorType(o.dtype, (dims.UNKNOWN,) + _outer(o, binding).shape) for o in outs[1 + num_carried:]]
        return results

    def reference(max_trip, cond, *operands, body, num_carried):
        carried, captures = list(operands[:num_carried]), list(operands[num_carried:])
        n_scan = len(body.outputs) - 1 - num_carried
        stacks = [[] for _ in range(n_scan)]
        limit = None if max_trip is None else int(np.asarray(max_trip).reshape(-1)[0])
        go = True if cond is None else bool(np.asarray(cond).reshape(-1)[0])
        i = 0
        while go and (limit is None or i < limit):
            res = _run(body, [np.array(i, np.int64), np.array(go)] + carried + captures)
            go = bool(np.asarray(res[0]).reshape(-1)[0])
            carried = res[1:1 + num_carried]
            for s, r in zip(stacks, res[1 + num_carried:]):
                s.append(r)
            i += 1
        outs = list(carried)
        for s, o in zip(stacks, body.outputs[1 + num_carried:]):
            if s:
                outs.append(np.stack(s))
            else:
                t = body.types[o]
                outs.append(np.zeros((0,) + tuple(d if isinstance(d, int) else 0 for d in t.shape), t.dtype.np))
        return tuple(outs)


@op("scan", inputs=("*operands",), outputs="*",
    attrs={"body": Attr("graph"), "num_states": Attr("int"), "num_scan_inputs": Attr("int"),
           "scan_input_axes": Attr("ints", ()), "scan_input_directions": Attr("ints", ()),
           "scan_output_axes": Attr("ints", ()), "scan_output_directions": Attr("ints", ())})
class Scan:
    def infer(*operands: TensorType, body, num_states, num_scan_inputs, scan_input_axes,
              scan_input_directions, scan_output_axes, scan_output_directions):
        ns, nx = num_states, num_scan_inputs
        require(ns + nx <= len(operands), "scan: num_states + num_scan_inputs exceed the operands")
        states, xs, captures = operands[:ns], operands[ns:ns + nx], operands[ns + nx:]
        in_axes = scan_input_axes or (0,) * nx
        require(len(in_axes) == nx, "scan: scan_input_axes needs one axis per scan input")
        length = None
        slices = []
        for x, a in zip(xs, in_axes):
            a = norm_axis(a, x.rank)
            length = x.shape[a] if length is None or not isinstance(length, int) else length
            slices.append(x.with_shape(x.shape[:a] + x.shape[a + 1:]))
        binding = _check_inputs(body, tuple(states) + tuple(slices) + tuple(captures), "scan: body")
        outs = body.output_types()
        require(len(outs) >= ns, f"scan: body returns {len(outs)} results, needs >= {ns}")
        results = [_merge(s, _outer(o, binding), f"scan: state {k}") for k, (s, o) in enumerate(zip(states, outs[:ns]))]
        ys = outs[ns:]
        out_axes = scan_output_axes or (0,) * len(ys)
        require(len(out_axes) == len(ys), "scan: scan_output_axes needs one axis per scan output")
        n = length if length is not None else dims.UNKNOWN
        for y, a in zip(ys, out_axes):
            y = _outer(y, binding)
            a = norm_axis(a, y.rank + 1)
            results.append(y.with_shape(y.shape[:a] + (n,) + y.shape[a:]))
        return results

    def reference(*operands, body, num_states, num_scan_inputs, scan_input_axes, scan_input_directions,
                  scan_output_axes, scan_output_directions):
        ns, nx = num_states, num_scan_inputs
        states, xs, captures = list(operands[:ns]), operands[ns:ns + nx], list(operands[ns + nx:])
        in_axes = [a % x.ndim for a, x in zip(scan_input_axes or (0,) * nx, xs)]
        in_dirs = scan_input_directions or (0,) * nx
        xs = [np.moveaxis(x, a, 0) for x, a in zip(xs, in_axes)]
        xs = [x[::-1] if d else x for x, d in zip(xs, in_dirs)]
        steps = xs[0].shape[0] if xs else 0
        ys = None
        for t in range(steps):
            res = _run(body, states + [x[t] for x in xs] + captures)
            states = res[:ns]
            if ys is None:
                ys = [[] for _ in res[ns:]]
            for acc, r in zip(ys, res[ns:]):
                acc.append(r)
        n_out = len(body.outputs) - ns
        out_axes = scan_output_axes or (0,) * n_out
        out_dirs = scan_output_directions or (0,) * n_out
        outs = list(states)
        for k in range(n_out):
            t = body.types[body.outputs[ns + k]]
            seq = ys[k] if ys else []
            y = np.stack(seq) if seq else np.zeros((0,) + tuple(d if isinstance(d, int) else 0 for d in t.shape),
                                                    t.dtype.np)
            if out_dirs[k]:
                y = y[::-1]
            outs.append(np.ascontiguousarray(np.moveaxis(y, 0, out_axes[k] % y.ndim)))
        return tuple(outs)
