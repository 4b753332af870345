"""Converters for the optimizer updates of domain ``ai.onnx.preview.training``: Adagrad, Momentum, Adam.

Each is an elementwise decomposition, applied once per optimized tensor: a node takes the
learning rate ``R`` and the step count ``T`` (scalars), then one group of inputs per tensor
(``X1..Xn, G1..Gn, H1..Hn`` for Adagrad) and returns one group of outputs per state kind
(``X1_new..Xn_new, H1_new..Hn_new``). The arithmetic runs in float64 and each result is cast
back to the dtype of the tensor it updates. The ``T > 0`` tests of Momentum and Adam are
``where`` selects, so ``T`` may be a run-time value.
"""
from __future__ import annotations

import numpy as np

from ....ir import dtypes as kd
from ..registry import converter
from ._helpers import cast

DOMAIN = "ai.onnx.preview.training"
F64 = kd.float64


def _k(ctx, value):
    return ctx.const(np.asarray(value, dtype=np.float64))


def _groups(ctx, per_tensor: int):
    """(R, T, groups): groups[k] lists the inputs of kind k, one per optimized tensor."""
    n_in = ctx.num_inputs
    if n_in < 2 + per_tensor or (n_in - 2) % per_tensor:
        ctx.fail(f"takes R, T and then {per_tensor} inputs per optimized tensor; got {n_in} inputs")
    n = (n_in - 2) // per_tensor
    for i in range(n_in):
        if not ctx.has_input(i):
            ctx.fail(f"input {i} is missing; every input of this op is required")
    for i in (0, 1):
        if ctx.type(i).size != 1:
            ctx.fail(f"input {i} ({'R' if i == 0 else 'T'}) must be a scalar, got {ctx.type(i)}")
    if not ctx.dtype(0).is_float:
        ctx.fail(f"the learning rate R must be a float, got {ctx.dtype(0)}")
    groups = [[ctx.input(2 + k * n + i) for i in range(n)] for k in range(per_tensor)]
    for k in range(per_tensor):
        for i in range(n):
            if not ctx.dtype(2 + k * n + i).is_float:
                ctx.fail(f"input {2 + k * n + i} must be a float tensor, got {ctx.type(2 + k * n + i)}")
    scalar = lambda v: ctx.op("reshape", cast(ctx, v, F64), shape=())  # noqa: E731
    return scalar(ctx.input(0)), scalar(ctx.input(1)), groups


def _regularized(ctx, x, g, norm_coefficient):
    """``norm_coefficient * x + g`` (float64)."""
    if norm_coefficient == 0:
        return g
    return ctx.op("add", ctx.op("mul", _k(ctx, norm_coefficient), x), g)


@converter("Adagrad", since=1, domain=DOMAIN)
def adagrad(ctx):
    """r' = R / (1 + T * decay); g' = norm * X + G; H' = H + g'^2; X' = X - r' * g' / (sqrt(H') + eps)."""
    decay = float(ctx.attr("decay_factor", 0.0))
    eps = float(ctx.attr("epsilon", 0.0))
    norm = float(ctx.attr("norm_coefficient", 0.0))
    r, t, (xs, gs, hs) = _groups(ctx, 3)
    r_adj = ctx.op("div", r, ctx.op("add", _k(ctx, 1.0), ctx.op("mul", t, _k(ctx, decay))))
    x_out, h_out = [], []
    for x0, g0, h0 in zip(xs, gs, hs):
        x, g, h = cast(ctx, x0, F64), cast(ctx, g0, F64), cast(ctx, h0, F64)
        g_reg = _regularized(ctx, x, g, norm)
        h_new = ctx.op("add", h, ctx.op("mul", g_reg, g_reg))
        denom = ctx.op("add", ctx.op("sqrt", h_new), _k(ctx, eps))
        x_new = ctx.op("sub", x, ctx.op("div", ctx.op("mul", r_adj, g_reg), denom))
        x_out.append(cast(ctx, x_new, ctx.type_of(x0).dtype))
        h_out.append(cast(ctx, h_new, ctx.type_of(h0).dtype))
    return x_out + h_out


@converter("Momentum", since=1, domain=DOMAIN)
def momentum(ctx):
    """g' = norm * X + G; V' = alpha * V + beta' * g' (beta' = 1 at T = 0, else beta);
    standard: X' = X - R * V'; nesterov: X' = X - R * (g' + alpha * V')."""
    if not ctx.has_attr("alpha") or not ctx.has_attr("beta") or not ctx.has_attr("mode") \
            or not ctx.has_attr("norm_coefficient"):
        ctx.fail("attributes alpha, beta, mode and norm_coefficient are required")
    alpha = float(ctx.attr("alpha"))
    beta = float(ctx.attr("beta"))
    mode = ctx.attr("mode")
    norm = float(ctx.attr("norm_coefficient"))
    if mode not in ("standard", "nesterov"):
        ctx.fail(f"mode must be 'standard' or 'nesterov', got {mode!r}")
    r, t, (xs, gs, vs) = _groups(ctx, 3)
    beta_adj = ctx.op("where", ctx.op("greater", t, _k(ctx, 0.0)), _k(ctx, beta), _k(ctx, 1.0))
    x_out, v_out = [], []
    for x0, g0, v0 in zip(xs, gs, vs):
        x, g, v = cast(ctx, x0, F64), cast(ctx, g0, F64), cast(ctx, v0, F64)
        g_reg = _regularized(ctx, x, g, norm)
        v_new = ctx.op("add", ctx.op("mul", _k(ctx, alpha), v), ctx.op("mul", beta_adj, g_reg))
        if mode == "standard":
            step = v_new
        else:
            step = ctx.op("add", g_reg, ctx.op("mul", _k(ctx, alpha), v_new))
        x_new = ctx.op("sub", x, ctx.op("mul", r, step))
        x_out.append(cast(ctx, x_new, ctx.type_of(x0).dtype))
        v_out.append(cast(ctx, v_new, ctx.type_of(v0).dtype))
    return x_out + v_out


@converter("Adam", since=1, domain=DOMAIN)
def adam(ctx):
    """g' = norm * X + G; V' = alpha V + (1 - alpha) g'; H' = beta H + (1 - beta) g'^2;
    r' = R sqrt(1 - beta^T) / (1 - alpha^T) when T > 0, else R;
    X' = (1 - norm_post) (X - r' V' / (sqrt(H') + eps))."""
    alpha = float(ctx.attr("alpha", 0.9))
    beta = float(ctx.attr("beta", 0.999))
    eps = float(ctx.attr("epsilon", 0.0))
    norm = float(ctx.attr("norm_coefficient", 0.0))
    norm_post = float(ctx.attr("norm_coefficient_post", 0.0))
    r, t, (xs, gs, vs, hs) = _groups(ctx, 4)
    positive = ctx.op("greater", t, _k(ctx, 0.0))
    one = _k(ctx, 1.0)
    num = ctx.op("sqrt", ctx.op("sub", one, ctx.op("pow", _k(ctx, beta), t)))
    den = ctx.op("sub", one, ctx.op("pow", _k(ctx, alpha), t))
    # at T = 0 the bias correction is off; select safe operands so no 0/0 is ever evaluated
    num = ctx.op("where", positive, num, one)
    den = ctx.op("where", positive, den, one)
    r_adj = ctx.op("div", ctx.op("mul", r, num), den)
    x_out, v_out, h_out = [], [], []
    for x0, g0, v0, h0 in zip(xs, gs, vs, hs):
        x, g, v, h = cast(ctx, x0, F64), cast(ctx, g0, F64), cast(ctx, v0, F64), cast(ctx, h0, F64)
        g_reg = _regularized(ctx, x, g, norm)
        v_new = ctx.op("add", ctx.op("mul", _k(ctx, alpha), v), ctx.op("mul", _k(ctx, 1.0 - alpha), g_reg))
        h_new = ctx.op("add", ctx.op("mul", _k(ctx, beta), h),
                       ctx.op("mul", _k(ctx, 1.0 - beta), ctx.op("mul", g_reg, g_reg)))
        denom = ctx.op("add", ctx.op("sqrt", h_new), _k(ctx, eps))
        x_new = ctx.op("sub", x, ctx.op("mul", r_adj, ctx.op("div", v_new, denom)))
        if norm_post != 0:
            x_new = ctx.op("mul", _k(ctx, 1.0 - norm_post), x_new)
        x_out.append(cast(ctx, x_new, ctx.type_of(x0).dtype))
        v_out.append(cast(ctx, v_new, ctx.type_of(v0).dtype))
        h_out.append(cast(ctx, h_new, ctx.type_of(h0).dtype))
    return x_out + v_out + h_out

