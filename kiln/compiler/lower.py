"""Graph -> Program: lower each node through its op definition, decide which tensors become kernels
(fusion), give buffers their homes (inputs, outputs, weights, workspace) and plan the workspace.

Fusion falls out of lazy tensors: an injective op's result is an expression its consumers inline, so a
chain of them is one loop nest; a matmul or convolution carries its consumers' epilogue; a reduction is
inlined where a loop level can compute it once (softmax and layer norm become one kernel). A tensor is
materialised (gets its own kernel and buffer) when it is a graph output, feeds a contraction, is used
by several consumers and is not cheap, or when inlining it would recompute a reduction.
"""
from __future__ import annotations

import numpy as np

from .. import errors
from ..ir import dims as _dims
from ..ir import loops as L
from ..ir.graph import Graph
from ..ir.lowering import HoistError, KernelBuilder, Tensor, materialize, placeholder
from ..ir.program import Arg, Call, Program
from ..ir.registry import OPS

MAX_INLINE_NODES = 48  # an injective tensor with a larger expression and several users is materialised


class CompileError(errors.KilnError):
    pass


class _Lowerer:
    def __init__(self, graph: Graph, target, schedule=None, progress=None, opt_level=2):
        self.opt_level = opt_level
        self.g = graph
        self.target = target
        self.caps = target.caps
        self.schedule = schedule
        self.progress = progress
        self.b = KernelBuilder()
        self.home: dict = {}        # id(Buffer) -> Arg-like tuple ('input', i) / ('output', i) / ('weight', name) / ('workspace', name)
        self.weights: dict = {}     # value -> np.ndarray
        self.kernels: dict = {}     # canonical text -> name
        self.kernel_defs: dict = {}
        self.calls: list = []       # (kernel name, [Buffer], syms, info)
        self.users = graph.users()
        self.env: dict = {}
        self.outputs = {v: i for i, v in reversed(list(enumerate(graph.outputs)))}
        self.inputs = {v: i for i, v in enumerate(graph.inputs)}
        self.value_of_tensor: dict = {}
        self.reduce_origin: dict = {}
        self._tmp = 0
        self.b.materialize_hook = self._materialize_hook
        self.b.constant_hook = self._constant_hook
        self.b.weight_hook = self._weight_hook
        self.b.vector_lanes = self.caps.lanes(__import__("kiln.ir.dtypes", fromlist=["dtype"]).dtype("f32"))

    # ------------------------------------------------------------------------ hooks for op lowerings
    def _materialize_hook(self, t: Tensor, name: str) -> Tensor:
        self._tmp += 1
        self._emit(f"{name}{self._tmp}", t)
        return t

    def _constant_hook(self, t: Tensor):
        if t.kind == "buffer" and t.buffer is not None:
            h = self.home.get(id(t.buffer))
            if h and h[0] == "weight":
                return np.asarray(self.weights[h[1]])
        return None

    def _weight_hook(self, array, dtype) -> Tensor:
        self._tmp += 1
        v = f"packed{self._tmp}"
        buf = L.Buffer(v, dtype, array.shape)
        self.home[id(buf)] = ("weight", v)
        self.weights[v] = np.ascontiguousarray(array)
        return placeholder(buf)

    # -------------------------------------------------------------------------------------- buffers
    def _buffer(self, value: str, t) -> L.Buffer:
        shape = [L.dim_expr(d) for d in t.shape]
        return L.Buffer(_safe(value), t.dtype, shape)

    def run(self) -> Program:
        g = self.g
        missing = {}
        for node in g.nodes:
            opdef = OPS.get(node.op)
            if (opdef is None or opdef.lower is None) and node.op not in missing:
                missing[node.op] = node.label
        if missing:
            raise errors.UnsupportedOperatorError(
                [(op, "core", where) for op, where in missing.items()],
                source=f"the graph (compiling for target '{self.target.name}': these ops have no lowering)")
        for i, v in enumerate(g.inputs):
            buf = self._buffer(v, g.type_of(v))
            self.home[id(buf)] = ("input", i, v)
            self.env[v] = placeholder(buf)
        for v, arr in g.constants.items():
            self.env[v] = self._constant(v, arr)
        nodes = g.nodes
        for n, node in enumerate(nodes):
            if self.progress:
                self.progress(n, len(nodes), node)
            self._lower_node(node)
        for i, v in enumerate(g.outputs):
            t = self.env[v]
            self._emit_output(v, i, t)
        return self._program()

    def _constant(self, v, arr):
        arr = np.asarray(arr)
        t = self.g.type_of(v)
        if arr.size == 1 and t.dtype.kind in ("float", "int", "uint", "bool") and t.dtype.bits >= 8 or (
                arr.size == 1 and t.dtype.kind == "bool"):
            c = L.const(arr.reshape(()).item(), t.dtype)
            return Tensor([L.dim_expr(d) for d in t.shape], t.dtype, lambda *i: c)
        buf = self._buffer(v, t)
        self.home[id(buf)] = ("weight", v)
        self.weights[v] = arr
        return placeholder(buf)

    # -------------------------------------------------------------------------------------- lowering
    def _lower_node(self, node):
        opdef = OPS.get(node.op)
        if opdef is None or opdef.lower is None:
            raise errors.UnsupportedOperatorError([(node.op, None, node.name or node.outputs[0])],
                                                  source=f"the graph (for target {self.target.name})")
        ins = [self.env[v] if v else None for v in node.inputs]
        # views of a buffer are free: a reshape of a materialised tensor reads the same memory
        # (only when its dims are known: a data-dependent reshape_dynamic goes to its lowering, which refuses)
        if "view" in opdef.traits and ins and ins[0] is not None and ins[0].kind == "buffer" \
                and node.op in ("reshape", "identity", "reshape_dynamic") \
                and all(_dims.symbols(d) <= self._symbols() for d in self.g.type_of(node.outputs[0]).shape):
            src = ins[0].buffer
            t = self.g.type_of(node.outputs[0])
            buf = self._buffer(node.outputs[0], t)
            self.home[id(buf)] = ("alias", src)
            self.env[node.outputs[0]] = placeholder(buf)
            return
        attrs = dict(node.attrs)
        # an op that is not elementwise/injective reads its operands many times or through its own
        # buffers (pads, im2col, windows): operands holding a reduction or a contraction are computed
        # first, once, by their own (tiled) kernels with their epilogues
        if not ({"elementwise", "injective"} & set(opdef.traits)):
            for v, t in zip(node.inputs, ins):
                if t is not None and t.kind not in ("buffer", "extern") and _has_reduce(t):
                    self._emit(v, t)
        elif "elementwise" not in opdef.traits and self.opt_level >= 1:
            # a reshape/transpose of a contraction: tile the contraction (with its epilogue) in its own
            # layout, then move the result (a reshape of a buffer is free)
            for v, t in zip(node.inputs, ins):
                if t is not None and t.kind not in ("buffer", "extern") and self._has_gemm(t):
                    self._emit(v, t)
        try:
            outs = opdef.lower(self.b, *ins, **attrs)
        except (errors.KilnError, NotImplementedError) as e:
            raise CompileError(f"op '{node.op}' ({node.label}): {e}") from None
        if isinstance(outs, Tensor):
            outs = [outs]
        for v, t in zip(node.outputs, outs):
            if v == "":
                continue
            t.origin = v
            self.value_of_tensor[id(t)] = v
            self.env[v] = t
        contraction = "contraction" in opdef.traits
        # a reduction does not inline a contraction: its operands that hold one get buffers first
        # (the pooled relu(conv) is computed once by the conv's tiled kernel, epilogue included);
        # other reductions stay inlined, hoisted to the loop level where their operands are known
        # (softmax's max and sum, layer norm's mean and variance: one kernel)
        if not contraction and any(t.kind == "reduce" for t in outs if isinstance(t, Tensor)):
            for v, t in zip(node.inputs, ins):
                if t is not None and t.kind not in ("buffer", "extern") and _has_reduce(t, self.b.gemms):
                    self._emit(v, t)
        # operands of a contraction are read many times: give them buffers
        if contraction:
            for v, t in zip(node.inputs, ins):
                if t is not None and t.kind not in ("buffer",) and not _is_const_fn(t):
                    self._emit(v, t)
        direct = {}
        for v, t in zip(node.outputs, outs):
            if v in self.outputs:  # written straight into the caller's output buffer
                i = self.outputs[v]
                buf = self._buffer(f"out{i}_{v}", self.g.type_of(v))
                self.home[id(buf)] = ("output", i, v)
                direct[v] = buf
                if t.kind == "extern":  # the extern's kernel writes every such result itself
                    op, k = t.meta["extern"]
                    op.out_bufs = {**getattr(op, "out_bufs", {}), k: buf}
        for v, t in zip(node.outputs, outs):
            if v in direct:
                self._emit(v, t, out_buf=direct[v])
            elif v and self._must_materialize(v, t):
                self._emit(v, t)

    def _must_materialize(self, v, t: Tensor) -> bool:
        if v in self.outputs:
            return False  # emitted at the end into the output buffer
        if t.kind == "extern":
            return True
        users = self.users.get(v, [])
        if len(users) > 1 and t.kind == "reduce":
            return True
        if len(users) > 1 or t.kind == "reduce":
            size = _expr_size(t)
            if size > MAX_INLINE_NODES // (2 if len(users) > 1 else 1):
                return True
        return False

    # ------------------------------------------------------------------------------------- emitting
    def _emit(self, v, t: Tensor, out_buf: L.Buffer | None = None):
        """Materialise tensor ``t`` (the value ``v``) into a buffer with its own kernel; afterwards every
        reader of ``t`` loads the buffer."""
        if t.kind == "buffer" and out_buf is None:
            return
        if t.kind == "extern":
            self._emit_extern(v, t, out_buf)
            return
        if out_buf is None:
            out_buf = self._buffer(v, self.g.type_of(v)) if v in self.g.types else L.Buffer(_safe(v), t.dtype, t.shape)
            self.home[id(out_buf)] = ("workspace", v)
        from ..passes.tiling import gemm_kernel

        # two contractions meeting in one epilogue (a residual add of two convs): the first gets its own
        # kernel, the second carries the add
        if self.opt_level >= 1:
            probe = t[tuple(L.Var(f"__g{k}") for k in range(t.ndim))]
            gemms = [n for n in L.walk(probe) if isinstance(n, L.Reduce) and n in self.b.gemms]
            for r in gemms[:-1]:
                owner = self._tensor_of_reduce(r)
                if owner is not None and owner is not t:
                    self._tmp += 1
                    self._emit(owner.origin or f"{v}_g{self._tmp}", owner)
        body = gemm_kernel(t, out_buf, self.b, self.caps) if self.opt_level >= 1 else None
        attempts = 0
        while body is None:
            attempts += 1
            if attempts > 64:
                raise CompileError(f"cannot schedule '{v}'")
            try:
                body = materialize(t, out_buf, self.b, vector_lanes=self.caps.lanes)
            except HoistError as h:
                inner = self._tensor_of_reduce(h.reduce_expr)
                if inner is None or inner is t:
                    raise CompileError(f"cannot schedule the reduction feeding '{v}'") from None
                self._tmp += 1
                self._emit(inner.origin or f"{v}_r{self._tmp}", inner)
        self._add_kernel(body, [out_buf], v)
        t.fn = placeholder(out_buf).fn
        t.kind, t.buffer = "buffer", out_buf

    def _has_gemm(self, t: Tensor) -> bool:
        try:
            e = t[tuple(L.Var(f"__q{k}") for k in range(t.ndim))]
        except Exception:
            return False
        return any(isinstance(n, L.Reduce) and n in self.b.gemms for n in L.walk(e))

    def _tensor_of_reduce(self, r: L.Reduce):
        t = self.b.reduce_owner.get(r)
        if t is None:
            # simplification rebuilt the expression (a reshape's index arithmetic folded, say); its
            # axis variables, fresh for each reduction, still name it
            key = (r.combiner, tuple(v.name for v, _ in r.axes))
            for e, owner in self.b.reduce_owner.items():
                if (e.combiner, tuple(v.name for v, _ in e.axes)) == key:
                    t = owner
        if t is None or t.kind == "buffer":
            return None
        return t

    def _emit_extern(self, v, t: Tensor, out_buf):
        op, k = t.meta["extern"]
        if getattr(op, "done", False):  # another of its results ran the kernel already
            t.fn = placeholder(op.bufs[k]).fn
            t.kind, t.buffer = "buffer", op.bufs[k]
            return
        ins = []
        for x in op.inputs:
            if x is None:
                ins.append(None)
                continue
            if x.kind != "buffer":
                name = x.origin or self.b.var("tmp").name
                self._emit(name, x)
            ins.append(x.buffer)
        # results that are graph outputs go straight to the caller's buffers
        outs = [getattr(op, "out_bufs", {}).get(j, ob) for j, ob in enumerate(op.outputs)]
        body = op.body(self.b, outs, ins)
        # the extern writes its own out buffers; give them homes
        for j, ob in enumerate(outs):
            if id(ob) not in self.home:
                self.home[id(ob)] = ("workspace", v if j == k else f"{v}_out{j}")
        self._add_kernel(body, outs, v)
        t.fn = placeholder(outs[k]).fn
        t.kind, t.buffer = "buffer", outs[k]
        op.bufs = outs
        op.done = True

    def _emit_output(self, v, i, t: Tensor):
        if t.kind == "buffer" and self.home.get(id(t.buffer), ("",))[0] == "output" \
                and self.home[id(t.buffer)][1] == i:
            return  # computed in place when its node was lowered
        buf = self._buffer(f"out{i}_{v}", self.g.type_of(v))
        self.home[id(buf)] = ("output", i, v)
        if t.kind == "buffer":
            src = t
            copy = Tensor(t.shape, t.dtype, src.fn)
            self._emit(v, copy, out_buf=buf)
            return
        if t.kind == "extern":
            self._emit(v, t)
            copy = Tensor(t.shape, t.dtype, t.fn)
            self._emit(v, copy, out_buf=buf)
            return
        self._emit(v, t, out_buf=buf)

    def _add_kernel(self, body: L.Stmt, outs, value):
        bufs = _buffers(body)
        params = list(outs) + [b for b in bufs if all(b is not o for o in outs)]
        syms = sorted(L.stmt_free_vars(body) & self._symbols())
        k = L.Kernel("k", params, body, syms)
        if self.schedule:
            k = self.schedule(k)
        text, canon = canonical(k)
        name = self.kernels.get(text)
        if name is None:
            name = f"k{len(self.kernels)}_{_safe(value)[:24]}"
            self.kernels[text] = name
            canon.name = name
            self.kernel_defs[name] = canon
        self.calls.append((name, params, syms, value))

    def _symbols(self) -> set:
        if not hasattr(self, "_syms"):
            s = set()
            for v in self.g.inputs:
                for d in self.g.type_of(v).shape:
                    s |= _dims.symbols(d)
            self._syms = s
        return self._syms

    # ---------------------------------------------------------------------------------- the program
    def _program(self) -> Program:
        from ..passes.memory_plan import BufferUse, plan_memory

        g = self.g
        # weights: one blob, 64-byte aligned entries
        offsets, blob = {}, bytearray()
        for v, arr in self.weights.items():
            pad = (-len(blob)) % 64
            blob += b"\0" * pad
            offsets[v] = len(blob)
            blob += np.ascontiguousarray(arr).tobytes()
        # live ranges of workspace values
        first, last, nbytes = {}, {}, {}

        def root(buf):
            h = self.home[id(buf)]
            while h[0] == "alias":
                buf = h[1]
                h = self.home[id(buf)]
            return buf, h

        for step, (_, params, _, _) in enumerate(self.calls):
            for b in params:
                rb, h = root(b)
                if h[0] == "workspace":
                    key = h[1]
                    first.setdefault(key, step)
                    last[key] = step
                    nbytes[key] = _dims.canonical(_dims.mul(_dim_of(rb.size()), max(1, _itemsize(rb.dtype))))
        uses = [BufferUse(k, nbytes[k], first[k], last[k]) for k in first]
        plan = plan_memory(uses, alignment=64)
        calls = []
        info = []
        for name, params, syms, value in self.calls:
            args = []
            for b in params:
                rb, h = root(b)
                if h[0] == "input":
                    args.append(Arg("input", h[1], value=h[2]))
                elif h[0] == "output":
                    args.append(Arg("output", h[1], value=h[2]))
                elif h[0] == "weight":
                    args.append(Arg("weight", 0, offsets[h[1]], value=h[1]))
                else:
                    args.append(Arg("workspace", 0, plan.offsets[h[1]], value=h[1]))
            calls.append(Call(name, args, syms))
            info.append({"name": name, "ops": [], "inputs": [a.value for a in args[1:]], "outputs": [value]})
        symbols = []
        for v in g.inputs:
            for d in g.type_of(v).shape:
                for s in sorted(_dims.symbols(d)):
                    if s not in symbols:
                        symbols.append(s)
        ins = [(v, g.type_of(v).dtype.name, list(g.type_of(v).shape)) for v in g.inputs]
        outs = [(v, g.type_of(v).dtype.name, list(g.type_of(v).shape)) for v in g.outputs]
        return Program(self.kernel_defs, calls, symbols, ins, outs, plan.size, bytes(blob), plan.to_json(), info)


def _has_reduce(t: Tensor, among=None) -> bool:
    """Whether ``t``'s elements hold a reduction (one of ``among``, when given: the contractions)."""
    if t.kind == "buffer":
        return False
    try:
        e = t[tuple(L.Var(f"__h{k}") for k in range(t.ndim))]
    except Exception:
        return False
    return any(isinstance(n, L.Reduce) and (among is None or n in among) for n in L.walk(e))


def _is_const_fn(t: Tensor) -> bool:
    try:
        e = t[tuple(L.Var(f"__c{k}") for k in range(t.ndim))]
    except Exception:
        return False
    return isinstance(e, L.Const)


def _expr_size(t: Tensor) -> int:
    try:
        e = t[tuple(L.Var(f"__s{k}") for k in range(t.ndim))]
    except Exception:
        return 0
    n = 0
    for node in L.walk(e):
        n += 1
        if isinstance(node, L.Reduce):
            n += 8
    return n


def _dim_of(e: L.Expr):
    """An int64 loop-IR expression over symbols back to a kiln dim."""
    t = L.affine(e)
    if isinstance(e, L.Const):
        return int(e.value)
    if isinstance(e, L.Var):
        return e.name
    if isinstance(e, L.Bin) and e.op in ("add", "sub", "mul"):
        a, b = _dim_of(e.a), _dim_of(e.b)
        return {"add": _dims.add, "sub": _dims.sub, "mul": _dims.mul}[e.op](a, b)
    raise CompileError(f"buffer size {e} is not a polynomial in the symbols")


def _itemsize(dt) -> int:
    return 1 if dt.kind == "bool" else dt.bits // 8


def _safe(name: str) -> str:
    import re

    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if s and (s[0].isalpha() or s[0] == "_") else "v" + s


def _buffers(body: L.Stmt) -> list:
    return L.stmt_buffers(body)


def canonical(k: L.Kernel):
    """The kernel with params named p0.. and variables v0.. in order of appearance, and its text:
    two kernels with equal text are the same function."""
    names: dict = {}

    def vname(n):
        if n not in names and n not in k.syms:
            names[n] = f"v{len(names)}"
        return names.get(n, n)

    bufs = {}
    for i, b in enumerate(k.params):
        nb = L.Buffer(f"p{i}", b.dtype, b.shape, b.strides)
        bufs[id(b)] = nb
    locals_ = 0

    def fix_expr(e):
        def rule(x):
            if isinstance(x, L.Var):
                return L.Var(vname(x.name), x.dtype)
            if isinstance(x, L.Load):
                nb = bufs.get(id(x.buf))
                if nb is not None:
                    return L.Load(nb, x.index)
            if isinstance(x, L.Reduce):
                return L.Reduce(x.combiner, x.init, tuple((L.Var(vname(v.name), v.dtype), n) for v, n in x.axes),
                                x.body, x.select_last)
            return None

        return L.map_expr(e, rule)

    def fix(s):
        nonlocal locals_
        if isinstance(s, L.For):
            v = L.Var(vname(s.var.name), s.var.dtype)
            return L.For(v, fix_expr(s.extent), fix(s.body), s.kind, fix_expr(s.start))
        if isinstance(s, L.Store):
            return L.Store(bufs.get(id(s.buf), s.buf), tuple(fix_expr(i) for i in s.index), fix_expr(s.value))
        if isinstance(s, L.Let):
            v = L.Var(vname(s.var.name), s.var.dtype)
            return L.Let(v, fix_expr(s.value), fix(s.body))
        if isinstance(s, L.Alloc):
            nb = L.Buffer(f"l{locals_}", s.buf.dtype, s.buf.shape, s.buf.strides, scope="local")
            locals_ += 1
            bufs[id(s.buf)] = nb
            return L.Alloc(nb, fix(s.body))
        if isinstance(s, L.If):
            return L.If(fix_expr(s.cond), fix(s.then), fix(s.else_) if s.else_ else None)
        if isinstance(s, L.Seq):
            return L.Seq([fix(x) for x in s.body])
        raise TypeError(s)

    body = fix(k.body)
    ck = L.Kernel("k", [bufs[id(b)] for b in k.params], body, list(k.syms), list(k.ops))
    return str(ck), ck


def lower_graph(graph: Graph, target, *, schedule=None, progress=None, opt_level=2) -> Program:
    return _Lowerer(graph, target, schedule=schedule, progress=progress, opt_level=opt_level).run()
