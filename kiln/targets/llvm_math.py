"""Vectorisable f32 math for the LLVM targets: exp, erf, tanh as inline polynomial code.

libm calls cannot be vectorised (a vector loop calls them lane by lane); these expand to a few FMAs
and bit operations on whole vectors. Accuracy (float32): exp within 2 ulp (Cephes' range reduction
and polynomial), erf within 4e-7 absolute (Eigen's rational approximation on [-4, 4]), tanh within
2 ulp (Cephes: a polynomial below 0.625, 1 - 2 / (exp(2x) + 1) above). NaN propagates, infinities
and overflow give the right limits.
"""
from __future__ import annotations

import math

import llvmlite.ir as ir

F32 = ir.FloatType()
I32 = ir.IntType(32)


def _c(t, v):
    if isinstance(t, ir.VectorType):
        e = t.element
        return ir.Constant(t, [ir.Constant(e, v)] * t.count)
    return ir.Constant(t, v)


def _int_type(t):
    return ir.VectorType(I32, t.count) if isinstance(t, ir.VectorType) else I32


def _poly(b, x, coeffs):
    t = x.type
    acc = _c(t, coeffs[0])
    for c in coeffs[1:]:
        acc = b.fadd(b.fmul(acc, x, flags=("contract",)), _c(t, c), flags=("contract",))
    return acc


def _minmax(gen, name, a, c):
    return gen.b.call(gen.mg.intrinsic(name, a.type, 2), [a, c])


def _pow2(b, e):
    """2**e for integer e in [-126, 127], as a float (bits (e + 127) << 23)."""
    t = e.type
    ft = ir.VectorType(F32, t.count) if isinstance(t, ir.VectorType) else F32
    return b.bitcast(b.shl(b.add(e, _c(t, 127)), _c(t, 23)), ft)


def exp_f32(gen, x):
    b = gen.b
    t = x.type
    it = _int_type(t)
    xc = _minmax(gen, "llvm.minnum", _minmax(gen, "llvm.maxnum", x, _c(t, -104.0)), _c(t, 88.73))
    fx = gen._call_intr("floor", b.fadd(b.fmul(xc, _c(t, 1.44269504088896341)), _c(t, 0.5)))
    r = b.fsub(b.fsub(xc, b.fmul(fx, _c(t, 0.693359375))), b.fmul(fx, _c(t, -2.12194440e-4)))
    z = b.fmul(r, r)
    p = _poly(b, r, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                     1.6666665459e-1, 5.0000001201e-1])
    y = b.fadd(b.fadd(b.fmul(p, z, flags=("contract",)), r), _c(t, 1.0))
    n = b.fptosi(fx, it)
    e1 = b.ashr(n, _c(it, 1))
    e2 = b.sub(n, e1)
    res = b.fmul(b.fmul(y, _pow2(b, e1)), _pow2(b, e2))
    return b.select(b.fcmp_unordered("uno", x, x), x, res)


_ERF_ALPHA = [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
              -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02]
_ERF_BETA = [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
             -1.42647390514189e-02]


def erf_f32(gen, x):
    b = gen.b
    t = x.type
    xc = _minmax(gen, "llvm.minnum", _minmax(gen, "llvm.maxnum", x, _c(t, -4.0)), _c(t, 4.0))
    x2 = b.fmul(xc, xc)
    p = b.fmul(_poly(b, x2, _ERF_ALPHA), xc)
    q = _poly(b, x2, _ERF_BETA)
    res = b.fdiv(p, q)
    # tiny |x|: the rational form goes through denormals and loses bits; erf(x) = 2/sqrt(pi) x there
    res = b.select(b.fcmp_ordered("<", gen._call_intr("abs", x), _c(t, 2.0**-12)), b.fmul(x, _c(t, 1.1283791670955126)), res)
    return b.select(b.fcmp_unordered("uno", x, x), x, res)


_TANH_P = [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1]


def tanh_f32(gen, x):
    b = gen.b
    t = x.type
    ax = gen._call_intr("abs", x)
    z = b.fmul(x, x)
    small = b.fadd(x, b.fmul(b.fmul(x, z), _poly(b, z, _TANH_P), flags=("contract",)))
    e = exp_f32(gen, b.fmul(ax, _c(t, 2.0)))
    big = b.fsub(_c(t, 1.0), b.fdiv(_c(t, 2.0), b.fadd(e, _c(t, 1.0))))
    big = b.call(gen.mg.intrinsic("llvm.copysign", t, 2), [big, x])
    res = b.select(b.fcmp_ordered("<", ax, _c(t, 0.625)), small, big)
    res = b.call(gen.mg.intrinsic("llvm.copysign", t, 2), [res, x])  # tanh(-0.0) is -0.0
    return b.select(b.fcmp_unordered("uno", x, x), x, res)


def sigmoid_f32(gen, x):
    """1 / (1 + e) above zero and e / (1 + e) below, with e = exp(-|x|): no overflow, tiny values kept."""
    b = gen.b
    t = x.type
    one = _c(t, 1.0)
    e = exp_f32(gen, b.fneg(gen._call_intr("abs", x)))
    d = b.fadd(one, e)
    return b.select(b.fcmp_ordered(">=", x, _c(t, 0.0)), b.fdiv(one, d), b.fdiv(e, d))


FAST_F32 = {"exp": exp_f32, "erf": erf_f32, "tanh": tanh_f32, "sigmoid": sigmoid_f32}

__all__ = ["FAST_F32", "exp_f32", "erf_f32", "tanh_f32", "sigmoid_f32", "math"]
