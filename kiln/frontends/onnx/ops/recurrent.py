"""Converters for ONNX recurrent networks: RNN, GRU and LSTM, unrolled over a static sequence
length into matmul and elementwise ops (all activation functions, clip, sequence_lens, layout,
peepholes, input_forget, linear_before_reset).
"""
from __future__ import annotations

import numpy as np

from ..registry import converter
from ._helpers import slice_last


# --- recurrent networks (unrolled) --------------------------------------------------------------

#: activation name -> (takes alpha, takes beta, default alpha, default beta)
_RNN_ACTIVATIONS = {
    "relu": (False, False, None, None), "tanh": (False, False, None, None),
    "sigmoid": (False, False, None, None), "softsign": (False, False, None, None),
    "softplus": (False, False, None, None), "affine": (True, True, 1.0, 0.0),
    "leakyrelu": (True, False, 0.01, None), "thresholdedrelu": (True, False, 1.0, None),
    "scaledtanh": (True, True, 1.0, 1.0), "hardsigmoid": (True, True, 0.2, 0.5), "elu": (True, False, 1.0, None),
}


def _rnn_activations(ctx, defaults, num_directions):
    """[(name, alpha, beta)] per direction; alphas and betas are consumed in order by the
    activations that take them."""
    names = ctx.attr("activations", None) or defaults * num_directions
    if len(names) != len(defaults) * num_directions:
        ctx.fail(f"activations {names} must list {len(defaults)} function(s) per direction")
    alphas = list(ctx.attr("activation_alpha", None) or [])
    betas = list(ctx.attr("activation_beta", None) or [])
    out = []
    for n in names:
        key = n.lower()
        if key not in _RNN_ACTIVATIONS:
            ctx.fail(f"activation '{n}' is not supported ({', '.join(sorted(_RNN_ACTIVATIONS))})")
        ta, tb, da, db = _RNN_ACTIVATIONS[key]
        a = (alphas.pop(0) if alphas else da) if ta else None
        b = (betas.pop(0) if betas else db) if tb else None
        out.append((key, a, b))
    k = len(defaults)
    return [out[d * k:(d + 1) * k] for d in range(num_directions)]


def _activate(ctx, fn, x):
    name, alpha, beta = fn
    dt = ctx.type_of(x).dtype
    c = lambda v: ctx.const(v, dt)  # noqa: E731
    if name in ("relu", "tanh", "sigmoid"):
        return ctx.op(name, x)
    if name == "softsign":
        return ctx.op("div", x, ctx.op("add", ctx.op("abs", x), c(1)))
    if name == "softplus":  # log(1 + e^x), without overflow: max(x, 0) + log(1 + e^-|x|)
        tail = ctx.op("log", ctx.op("add", ctx.op("exp", ctx.op("neg", ctx.op("abs", x))), c(1)))
        return ctx.op("add", ctx.op("relu", x), tail)
    if name == "affine":
        return ctx.op("add", ctx.op("mul", x, c(alpha)), c(beta))
    if name == "leakyrelu":
        return ctx.op("where", ctx.op("less", x, c(0)), ctx.op("mul", x, c(alpha)), x)
    if name == "thresholdedrelu":
        return ctx.op("where", ctx.op("greater", x, c(alpha)), x, c(0))
    if name == "scaledtanh":
        return ctx.op("mul", ctx.op("tanh", ctx.op("mul", x, c(beta))), c(alpha))
    if name == "hardsigmoid":
        y = ctx.op("add", ctx.op("mul", x, c(alpha)), c(beta))
        return ctx.op("min", ctx.op("max", y, c(0)), c(1))
    if name == "elu":
        neg = ctx.op("mul", ctx.op("sub", ctx.op("exp", x), c(1)), c(alpha))
        return ctx.op("where", ctx.op("less", x, c(0)), neg, x)
    raise AssertionError(name)


class _Recurrence:
    """What every recurrent converter shares: operands per direction, the time loop, outputs."""

    def __init__(self, ctx, gates, default_acts):
        self.ctx = ctx
        self.h = ctx.attr("hidden_size", None)
        w_t = ctx.type(1)
        if w_t.rank != 3 or not isinstance(w_t.shape[1], int):
            ctx.fail(f"W must be [num_directions, {gates}*hidden_size, input_size], got {w_t}")
        if self.h is None:
            self.h = w_t.shape[1] // gates
        self.gates = gates
        direction = ctx.attr("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            ctx.fail(f"direction '{direction}' is not forward, reverse or bidirectional")
        self.dirs = ["forward", "reverse"] if direction == "bidirectional" else [direction]
        if w_t.shape[0] != len(self.dirs):
            ctx.fail(f"W has {w_t.shape[0]} directions, direction '{direction}' needs {len(self.dirs)}")
        self.acts = _rnn_activations(ctx, default_acts, len(self.dirs))
        self.clip = ctx.attr("clip", None)
        self.layout = ctx.attr("layout", 0)
        x = ctx.input(0)
        if self.layout:
            x = ctx.op("transpose", x, perm=[1, 0, 2])
        self.x = x
        self.steps, self.batch = ctx.type_of(x).shape[:2]
        if not isinstance(self.steps, int):
            ctx.fail(f"the sequence length must be static to unroll, got {self.steps}")
        self.dtype = ctx.dtype(0)
        self.lens = None
        if ctx.has_input(4):
            lens = ctx.const_value(4)
            if lens is None or (lens != self.steps).any():
                self.lens = ctx.op("reshape", ctx.input(4), shape=[self.batch, 1])

    def per_direction(self, i, d):
        """Input ``i`` ([num_directions, ...]) for direction ``d``, without its leading axis."""
        t = self.ctx.type(i)
        v = self.ctx.op("slice", self.ctx.input(i), starts=[d], ends=[d + 1], axes=[0], steps=[1])
        return self.ctx.op("reshape", v, shape=list(t.shape[1:]))

    def projections(self, d):
        """(X @ W^T + Wb for every step [T, B, G*H], R^T [H, G*H], Rb [G*H] or None)."""
        ctx = self.ctx
        gh = self.gates * self.h
        xw = ctx.op("matmul", self.x, ctx.op("transpose", self.per_direction(1, d), perm=[1, 0]))
        rt = ctx.op("transpose", self.per_direction(2, d), perm=[1, 0])
        rb = None
        if ctx.has_input(3):
            b = self.per_direction(3, d)
            xw = ctx.op("add", xw, slice_last(ctx, b, 0, gh))
            rb = slice_last(ctx, b, gh, 2 * gh)
        return xw, rt, rb

    def initial(self, i, d):
        if self.ctx.has_input(i):
            return self.per_direction(i, d)
        return self.ctx.op("broadcast", self.ctx.const(0, self.dtype), shape=[self.batch, self.h])

    def gate(self, pre, k, extra=None):
        """Gate ``k`` of a [B, G*H] pre-activation (plus ``extra``), clipped when ``clip`` is set."""
        g = slice_last(self.ctx, pre, k * self.h, (k + 1) * self.h)
        if extra is not None:
            g = self.ctx.op("add", g, extra)
        if self.clip is not None:
            lo, hi = self.ctx.const(-self.clip, self.dtype), self.ctx.const(self.clip, self.dtype)
            g = self.ctx.op("min", self.ctx.op("max", g, lo), hi)
        return g

    def step_input(self, xw, t):
        return self.ctx.op("reshape", self.ctx.op("slice", xw, starts=[t], ends=[t + 1], axes=[0], steps=[1]),
                           shape=[self.batch, self.gates * self.h])

    def recurrent(self, h, rt, rb):
        y = self.ctx.op("matmul", h, rt)
        return y if rb is None else self.ctx.op("add", y, rb)

    def keep(self, t, new, old):
        """With sequence_lens, steps past a sequence's end keep the old state."""
        if self.lens is None:
            return new
        alive = self.ctx.op("less", self.ctx.const(np.asarray(t, self.ctx.dtype(4).np)), self.lens)
        return self.ctx.op("where", alive, new, old)

    def run(self, cell, n_states):
        """Unroll ``cell(d, x_t, states) -> states`` over time for every direction; returns the
        outputs (Y, final state per kind), in the node's layout."""
        ctx = self.ctx
        ys, finals = [], [[] for _ in range(n_states)]
        zero = ctx.op("broadcast", ctx.const(0, self.dtype), shape=[self.batch, self.h])
        for d, direction in enumerate(self.dirs):
            states, step = cell.start(d)
            order = range(self.steps) if direction == "forward" else range(self.steps - 1, -1, -1)
            per_t = {}
            for t in order:
                new = step(t, states)
                states = [self.keep(t, n, o) for n, o in zip(new, states)]
                per_t[t] = self.keep(t, new[0], zero)
            ys.append(ctx.op("concat", *[ctx.op("reshape", per_t[t], shape=[1, 1, self.batch, self.h])
                                         for t in range(self.steps)], axis=0))
            for k in range(n_states):
                finals[k].append(ctx.op("reshape", states[k], shape=[1, self.batch, self.h]))
        y = ys[0] if len(ys) == 1 else ctx.op("concat", *ys, axis=1)
        outs = [finals[k][0] if len(self.dirs) == 1 else ctx.op("concat", *finals[k], axis=0)
                for k in range(n_states)]
        if self.layout:
            y = ctx.op("transpose", y, perm=[2, 0, 1, 3])
            outs = [ctx.op("transpose", o, perm=[1, 0, 2]) for o in outs]
        return [y] + outs


class _RNNCell:
    def __init__(self, rec):
        self.rec = rec

    def start(self, d):
        rec = self.rec
        xw, rt, rb = rec.projections(d)
        f = rec.acts[d][0]

        def step(t, states):
            pre = rec.ctx.op("add", rec.step_input(xw, t), rec.recurrent(states[0], rt, rb))
            return [_activate(rec.ctx, f, rec.gate(pre, 0))]
        return [rec.initial(5, d)], step


@converter("RNN", since=7)
def rnn(ctx):
    """H_t = f(X_t W^T + H_{t-1} R^T + Wb + Rb), unrolled over the (static) sequence."""
    rec = _Recurrence(ctx, 1, ["Tanh"])
    return rec.run(_RNNCell(rec), 1)


class _GRUCell:
    def __init__(self, rec, linear_before_reset):
        self.rec, self.lbr = rec, linear_before_reset

    def start(self, d):
        rec, ctx = self.rec, self.rec.ctx
        xw, rt, rb = rec.projections(d)
        f, g = rec.acts[d]
        h = rec.h
        rt_zr = slice_last(ctx, rt, 0, 2 * h)
        rt_h = slice_last(ctx, rt, 2 * h, 3 * h)
        rb_zr = None if rb is None else slice_last(ctx, rb, 0, 2 * h)
        rb_h = None if rb is None else slice_last(ctx, rb, 2 * h, 3 * h)
        one = ctx.const(1, rec.dtype)

        def step(t, states):
            (hp,) = states
            xt = rec.step_input(xw, t)
            zr = ctx.op("add", slice_last(ctx, xt, 0, 2 * h), rec.recurrent(hp, rt_zr, rb_zr))
            z = _activate(ctx, f, rec.gate(zr, 0))
            r = _activate(ctx, f, rec.gate(zr, 1))
            if self.lbr:
                hh = ctx.op("mul", r, rec.recurrent(hp, rt_h, rb_h))
            else:
                hh = rec.recurrent(ctx.op("mul", r, hp), rt_h, rb_h)
            pre = ctx.op("add", slice_last(ctx, xt, 2 * h, 3 * h), hh)
            cand = _activate(ctx, g, rec.gate(pre, 0))
            hn = ctx.op("add", ctx.op("mul", ctx.op("sub", one, z), cand), ctx.op("mul", z, hp))
            return [hn]
        return [rec.initial(5, d)], step


@converter("GRU", since=7)
def gru(ctx):
    """Gates z, r, h (that order in W, R, B); ``linear_before_reset`` applies r after R_h."""
    rec = _Recurrence(ctx, 3, ["Sigmoid", "Tanh"])
    return rec.run(_GRUCell(rec, ctx.attr("linear_before_reset", 0)), 1)


class _LSTMCell:
    def __init__(self, rec, input_forget):
        self.rec, self.input_forget = rec, input_forget

    def start(self, d):
        rec, ctx = self.rec, self.rec.ctx
        xw, rt, rb = rec.projections(d)
        f, g, hf = rec.acts[d]
        peep = None
        if ctx.has_input(7):
            p = rec.per_direction(7, d)
            peep = [slice_last(ctx, p, k * rec.h, (k + 1) * rec.h) for k in range(3)]  # i, o, f
        one = ctx.const(1, rec.dtype)

        def peephole(k, c):
            return None if peep is None else ctx.op("mul", peep[k], c)

        def step(t, states):
            hp, cp = states
            pre = ctx.op("add", rec.step_input(xw, t), rec.recurrent(hp, rt, rb))
            i = _activate(ctx, f, rec.gate(pre, 0, peephole(0, cp)))
            if self.input_forget:
                fg = ctx.op("sub", one, i)
            else:
                fg = _activate(ctx, f, rec.gate(pre, 2, peephole(2, cp)))
            cand = _activate(ctx, g, rec.gate(pre, 3))
            c = ctx.op("add", ctx.op("mul", fg, cp), ctx.op("mul", i, cand))
            o = _activate(ctx, f, rec.gate(pre, 1, peephole(1, c)))
            return [ctx.op("mul", o, _activate(ctx, hf, c)), c]
        return [rec.initial(5, d), rec.initial(6, d)], step


@converter("LSTM", since=7)
def lstm(ctx):
    """Gates i, o, f, c (that order in W, R, B); peepholes P are [i, o, f]."""
    rec = _Recurrence(ctx, 4, ["Sigmoid", "Tanh", "Tanh"])
    return rec.run(_LSTMCell(rec, ctx.attr("input_forget", 0)), 2)
