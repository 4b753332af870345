"""``kiln.compile``: model -> graph -> passes -> kernels -> target binary -> CompiledModel.

The driver is target-agnostic: it asks the target for its capabilities, extra passes, kernel schedule
and code generator, and never branches on which target it has.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from .. import errors
from ..ir.graph import Graph


def load_graph(model, input_shapes=None, example_inputs=None, dynamic_shapes=None) -> Graph:
    """The model as a kiln Graph, through the frontend that reads it (see :func:`kiln.frontends.frontend_for`)."""
    from ..frontends import frontend_for

    if isinstance(model, Graph):
        if input_shapes or dynamic_shapes:
            raise ValueError("input_shapes and dynamic_shapes apply to ONNX, PyTorch and JAX models; "
                             "a kiln Graph already has its input types")
        return model
    return frontend_for(model, example_inputs)(model, example_inputs=example_inputs, input_shapes=input_shapes,
                                               dynamic_shapes=dynamic_shapes)


def graph_pipeline(opt_level: int, target) -> list:
    from ..passes import (CommonSubexpressions, DeadCodeElimination, FoldBatchNorm, FoldConstants, Simplify)

    if opt_level <= 0:
        return [DeadCodeElimination()]
    passes = [Simplify(), FoldConstants(), CommonSubexpressions(), Simplify(), DeadCodeElimination()]
    if opt_level >= 2:
        passes += [FoldBatchNorm(), FoldConstants(), DeadCodeElimination()]
    return passes + list(target.graph_passes())


class Progress:
    """A one-line progress bar on stderr for long compiles (only when stderr is a terminal, or forced)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.last = 0.0

    def __call__(self, stage: str, i: int, n: int):
        if not self.enabled:
            return
        now = time.monotonic()
        if i + 1 < n and now - self.last < 0.1:
            return
        self.last = now
        import sys

        width = 30
        done = int(width * (i + 1) / max(1, n))
        sys.stderr.write(f"\r{stage:<10} [{'#' * done}{'.' * (width - done)}] {i + 1}/{n}")
        if i + 1 >= n:
            sys.stderr.write("\n")
        sys.stderr.flush()


def compile(model, target="cpu", *, input_shapes=None, example_inputs=None, dynamic_shapes=None,
            opt_level: int = 2, num_threads: int | None = None, dump_ir=None, progress=None):
    """Compile ``model`` for ``target`` into a :class:`kiln.CompiledModel`.

    ``model``: an ONNX ``ModelProto``, a path to an ``.onnx`` file, a ``torch.nn.Module``, a JAX function
    or a kiln ``Graph``.
    ``target``: ``"cpu"``, ``"llvm -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1"`` or a Target.
    ``input_shapes``: ``{input name: shape}`` to fix dims (ints) or name them (strings) for ONNX and JAX models.
    ``example_inputs``: arrays (in input order) or a dict; their shapes fix the graph's free dims. PyTorch
    modules and JAX functions are traced with them (required there).
    ``dynamic_shapes``: for PyTorch, the ``torch.export`` dynamic-shapes spec (``torch.export.Dim`` per dim);
    those dims become named symbols of the compiled model.
    ``dump_ir``: a directory that receives the IR after every pass, the kernels and the LLVM IR.
    ``progress``: show a progress bar (default: when stderr is a terminal).
    """
    from .. import targets as _targets
    from ..passes import PassContext, PassManager
    from ..runtime import CompiledModel
    from .artifact import build_manifest, make_members
    from .lower import lower_graph

    if opt_level not in (0, 1, 2, 3):
        raise ValueError(f"opt_level must be 0, 1, 2 or 3, got {opt_level!r}")
    if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
        raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
    tgt = _targets.get(target, num_threads=num_threads) if isinstance(target, str) else target
    graph = load_graph(model, input_shapes, example_inputs, dynamic_shapes)
    dump_dir = Path(dump_ir) if dump_ir else None
    if dump_dir:
        dump_dir.mkdir(parents=True, exist_ok=True)
    bar = Progress(progress if progress is not None else _isatty())
    ctx = PassContext(dump_dir=str(dump_dir) if dump_dir else None)
    pm = PassManager(graph_pipeline(opt_level, tgt), ctx, dump_ir=str(dump_dir) if dump_dir else None)
    passes = pm.passes if hasattr(pm, "passes") else []
    graph = pm.run(graph)
    bar("passes", len(passes) - 1, max(1, len(passes)))
    schedule = getattr(tgt, "schedule", None)
    program = lower_graph(graph, tgt, schedule=schedule, opt_level=opt_level,
                          progress=(lambda i, n, node: bar("kernels", i, n)) if bar.enabled else None)
    if dump_dir:
        (dump_dir / "kernels.txt").write_text("\n\n".join(str(k) for k in program.kernels.values()) + "\n")

    def dump(name, text):
        if dump_dir:
            (dump_dir / name).write_text(text)

    binary = tgt.codegen(program, dump=dump)
    target_desc = {"name": tgt.name, "executor": tgt.executor, "options": binary.options or tgt.describe()["options"]}
    target_desc["options"]["opt_level"] = opt_level
    target_desc["options"].setdefault("num_threads", num_threads)
    manifest = build_manifest(target_desc, program.inputs, program.outputs, symbols=program.symbols,
                              weights_size=len(program.weights), kernels=program.kernel_info,
                              memory_plan=program.memory_plan, binary=binary.binary,
                              header="kiln.h" if binary.header else None)
    members = make_members(manifest, binary.members[binary.binary], program.weights)
    for name, data in binary.members.items():
        members.setdefault(name, data)
    if getattr(tgt, "cross", False):
        return CrossCompiledModel(manifest, members, program, graph)
    model_out = CompiledModel(manifest, members, num_threads=num_threads)
    model_out.program = program
    model_out.graph = graph
    return model_out


class CrossCompiledModel:
    """A model compiled for another machine (``-mtriple=aarch64-linux-gnu``): it saves, it does not run here.

    The artifact holds the object file and ``kiln_runtime.c``; on the device, link them with
    ``cc -shared -o model.so model.o kiln_runtime.c -lgomp -lm`` and call ``kiln_run`` as ``kiln.h`` declares.
    """

    def __init__(self, manifest, members, program=None, graph=None):
        self.manifest, self.members, self.program, self.graph = manifest, members, program, graph

    @property
    def target(self) -> dict:
        return self.manifest["target"]

    def save(self, path) -> None:
        from ..runtime.artifact import write_artifact

        write_artifact(path, self.manifest, self.members)

    def __call__(self, *args, **kwargs):
        t = self.manifest["target"]["options"]
        raise RuntimeError(f"this model was compiled for {t.get('triple')} (cpu {t.get('cpu')}); save it and run it "
                           "on such a machine")

    run = __call__

    def __repr__(self):
        t = self.manifest["target"]["options"]
        return f"<CrossCompiledModel {t.get('triple')} {t.get('cpu')}: {self.manifest['binary']}>"


def _isatty() -> bool:
    import sys

    try:
        return sys.stderr.isatty()
    except Exception:
        return False
