"""Pass infrastructure: :class:`Pass`, :class:`PassContext` and :class:`PassManager`.

A pass is an object with a ``name`` and ``run(graph, ctx=None) -> graph``. It is *pure*: it
returns a new graph (or the very same one when it changes nothing) and never mutates its input
(``graph.copy()`` first; constant arrays are shared and never written).

Options flow down as arguments: a :class:`PassContext` carries the options dict, the IR dump
directory, the debug (verify) flag and instruments; the :class:`PassManager` hands it to every
pass it runs. Nothing here reads the environment.

    pm = PassManager([Simplify(), FoldConstants(), CommonSubexpressions(), DeadCodeElimination()],
                     PassContext(debug=True), dump_ir="/tmp/ir")
    g2 = pm.run(g)
    print(pm.report)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import VerificationError
from ..ir.graph import Graph
from ..ir.verify import verify

__all__ = ["Pass", "FunctionPass", "function_pass", "PassContext", "PassManager", "PassRecord", "PassReport",
           "Instrument", "map_regions", "run_passes"]


@dataclass
class PassContext:
    """Everything a pipeline run needs besides the graph.

    ``options``: free-form knobs, keyed ``"<pass name>.<option>"`` (e.g.
    ``"fold_constants.max_elements"``), read with :meth:`option`. ``dump_dir``: when set, the IR
    text is written there after every pass (see :class:`PassManager`). ``debug``: verify the
    graph before the pipeline and after each pass, and check that no pass mutated its input.
    ``instruments``: objects with optional ``before_pass(pass_, graph, ctx)`` and
    ``after_pass(pass_, graph, ctx, seconds)`` hooks.
    """

    options: dict = field(default_factory=dict)
    dump_dir: str | Path | None = None
    debug: bool = False
    instruments: list = field(default_factory=list)

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


class Instrument:
    """Base for pass instruments (all hooks optional)."""

    def before_pass(self, pass_, graph: Graph, ctx: PassContext) -> None:  # pragma: no cover - hook
        pass

    def after_pass(self, pass_, graph: Graph, ctx: PassContext, seconds: float) -> None:  # pragma: no cover
        pass


class Pass:
    """Base class of graph passes: set ``name`` and implement :meth:`run`."""

    name: str = "pass"

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        raise NotImplementedError

    def __call__(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        return self.run(graph, ctx)

    def option(self, ctx: PassContext | None, key: str, value: Any, default: Any) -> Any:
        """A knob's value: ``value`` given to the pass itself, else ``ctx`` option
        ``"<name>.<key>"``, else ``default``."""
        if value is not None:
            return value
        return ctx.option(f"{self.name}.{key}", default) if ctx is not None else default

    def __repr__(self) -> str:
        return f"<pass {self.name}>"


class FunctionPass(Pass):
    """A pass made of a function ``fn(graph, ctx) -> graph``."""

    def __init__(self, name: str, fn: Callable[[Graph, PassContext], Graph]):
        self.name = name
        self.fn = fn

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        return self.fn(graph, ctx or PassContext())


def function_pass(name: str):
    """Decorator: ``@function_pass("my_pass") def my_pass(graph, ctx): ...`` makes a Pass."""

    def deco(fn):
        return FunctionPass(name, fn)

    return deco


@dataclass
class PassRecord:
    index: int
    name: str
    seconds: float
    nodes_before: int
    nodes_after: int
    changed: bool
    dump: str | None = None


@dataclass
class PassReport:
    """Per-pass timing and effect of one pipeline run; ``str(report)`` is a table."""

    records: list = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.records)

    def __iter__(self):
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __str__(self) -> str:
        width = max([len(r.name) for r in self.records] + [4])
        lines = [f"{'#':>3}  {'pass':<{width}}  {'ms':>9}  {'nodes':>11}  changed"]
        for r in self.records:
            lines.append(f"{r.index:>3}  {r.name:<{width}}  {r.seconds * 1e3:>9.3f}  "
                         f"{r.nodes_before:>5}->{r.nodes_after:<5}  {'yes' if r.changed else 'no'}")
        lines.append(f"{'':>3}  {'total':<{width}}  {self.total_seconds * 1e3:>9.3f}")
        return "\n".join(lines)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class PassManager:
    """Runs an ordered list of passes.

    With ``ctx.debug`` it verifies the input and the result of every pass (a failure names the
    pass that broke the graph) and checks that no pass mutated its input. With ``dump_ir`` (a
    directory; defaults to ``ctx.dump_dir``) it writes ``00_input.kir`` and then
    ``NN_<pass>.kir`` after each pass (or only after the passes named in ``dump_after``),
    numbered by pipeline position. ``report`` holds the per-pass timing of the latest run.
    """

    name = "pipeline"  # a PassManager runs as a pass inside another

    def __init__(self, passes: Sequence[Pass], ctx: PassContext | None = None, *,
                 dump_ir: str | Path | None = None, dump_after: Iterable[str] | None = None):
        self.passes = list(passes)
        self.ctx = ctx or PassContext()
        self.dump_after = None if dump_after is None else set(dump_after)
        self.dump_dir = Path(dump_ir) if dump_ir is not None else (
            Path(self.ctx.dump_dir) if self.ctx.dump_dir is not None else None)
        self.report = PassReport()

    def _dump(self, index: int, name: str, graph: Graph) -> str:
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        path = self.dump_dir / f"{index:02d}_{_safe(name)}.kir"
        path.write_text(str(graph) + "\n")
        return str(path)

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        """Run the pipeline on ``graph``; ``ctx`` (when a PassManager runs inside another) overrides
        the manager's own context for this run."""
        ctx = ctx or self.ctx
        self.report = PassReport()
        if ctx.debug:
            _verify(graph, "the pipeline's input graph")
        if self.dump_dir is not None:
            self._dump(0, "input", graph)
        for i, p in enumerate(self.passes, 1):
            for inst in ctx.instruments:
                hook = getattr(inst, "before_pass", None)
                if hook:
                    hook(p, graph, ctx)
            before = _snapshot(graph) if ctx.debug else None
            n_before = len(graph.nodes)
            t0 = time.perf_counter()
            out = p.run(graph, ctx)
            dt = time.perf_counter() - t0
            if not isinstance(out, Graph):
                raise TypeError(f"pass '{p.name}' returned {type(out).__name__}, not a Graph")
            if ctx.debug:
                if _snapshot(graph) != before:
                    raise VerificationError(f"pass '{p.name}' (#{i}) mutated its input graph")
                _verify(out, f"after pass '{p.name}' (#{i})")
            changed = out is not graph and _snapshot(out) != _snapshot(graph)
            dump = None
            if self.dump_dir is not None and (self.dump_after is None or p.name in self.dump_after):
                dump = self._dump(i, p.name, out)
            self.report.records.append(PassRecord(i, p.name, dt, n_before, len(out.nodes), changed, dump))
            for inst in ctx.instruments:
                hook = getattr(inst, "after_pass", None)
                if hook:
                    hook(p, out, ctx, dt)
            graph = out
        return graph

    __call__ = run


def _verify(graph: Graph, where: str):
    try:
        verify(graph)
    except VerificationError as e:
        raise VerificationError(f"{where}: {e}") from e


def _snapshot(g: Graph):
    """The structure of g, constants by identity (cheap: never compares weight bytes)."""
    return (g.name, tuple(g.inputs), tuple(g.outputs), tuple(g.nodes), dict(g.types),
            {k: id(v) for k, v in g.constants.items()})


def map_regions(graph: Graph, fn: Callable[[Graph], Graph]) -> Graph:
    """Apply ``fn`` to every nested graph (control-flow region) held in a node attribute.

    Regions are isolated (what a body uses from outside is an explicit operand), so a graph pass
    applies to a region as to any graph. Returns ``graph`` itself when no region changed.
    """
    nodes, changed = [], False
    for n in graph.nodes:
        new_attrs = None
        for k, v in n.attrs.items():
            if isinstance(v, Graph):
                v2 = fn(v)
                if v2 is not v:
                    new_attrs = dict(n.attrs) if new_attrs is None else new_attrs
                    new_attrs[k] = v2
        if new_attrs is not None:
            n = n.with_(attrs=new_attrs)
            changed = True
        nodes.append(n)
    if not changed:
        return graph
    g = graph.copy()
    g.nodes = nodes
    return g


def run_passes(graph: Graph, passes: Iterable[Pass], ctx: PassContext | None = None) -> Graph:
    """Shorthand for ``PassManager(passes, ctx).run(graph)``."""
    return PassManager(list(passes), ctx).run(graph)
