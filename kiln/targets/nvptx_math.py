"""Math for the NVPTX target without libdevice: the transcendental functions as LLVM IR.

The NVPTX backend has no libm: ``llvm.exp``, ``llvm.sin``, ``llvm.pow``, ``tanf``... become calls to
functions nobody defines, which ptxas refuses. This module defines them in the module itself, as
internal functions (``kiln_<op>_f64``) built from what the backend lowers natively (add, mul, fma,
div, sqrt, floor, round, bit operations). Every function is written once, in float64; float32,
float16 and bfloat16 call it and round the result (the f32 fast paths of :mod:`.llvm_math` -- exp,
erf, tanh, sigmoid -- stay inline in float32).

Algorithms (no memorised minimax tables: Taylor series on small reduced ranges, and identities):

* ``exp``: ``x = n ln2 + r`` with ``|r| <= ln2/2`` (fma with a two-part ln2), Taylor to ``r^13``,
  scaled by ``2^n`` in two steps (no premature overflow or underflow).
* ``log``: ``x = 2^e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))`` (denormals rescaled first),
  ``log m = 2 atanh(s)``, ``s = (m-1)/(m+1)``, odd series to ``s^23``.
* ``sin``/``cos``/``tan``: ``x = n pi/2 + r`` with ``pi/2`` as four doubles and the products and
  sums carried in double-double (exact for every float32 and for float64 below about ``2^90``; a
  second pass fixes the quadrant when ``n`` itself was rounded), Taylor series on ``|r| <= pi/4``.
  Larger float64 arguments lose accuracy (no Payne-Hanek reduction).
* ``atan``: ``1/x`` above 1, two half-angle steps to ``|x| <= tan(pi/16)``, series to ``x^27``;
  ``atan2``, ``asin``, ``acos`` from it with the IEEE special cases.
* ``expm1``/``log1p``: Kahan's ``u = exp(x); (u - 1) x / log u`` and ``u = 1 + x; log(u) x / (u - 1)``;
  ``sinh``, ``cosh``, ``tanh``, ``asinh``, ``acosh``, ``atanh`` from those (fdlibm's case splits).
* ``erf``: ``2/sqrt(pi) e^{-x^2} sum 2^n x^{2n+1} / (2n+1)!!`` (positive terms) below 3, the
  continued fraction of ``erfc`` up to 6, 1 beyond.
* ``pow``: ``exp(y log|x|)`` with the C99 special cases (integer exponents of negative bases, zeros,
  infinities, ``pow(x, 0) = pow(1, y) = 1``).
* ``fmod``: exact, by repeated subtraction of ``|y| 2^k`` (each step exact).

The same IR compiles for the host, which is how the tests check these functions against numpy
without a GPU (:func:`host_eval`).
"""
from __future__ import annotations

import math

import llvmlite.ir as ir

I1, I32, I64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()

# pi/2 as four doubles (each the rounding of what is left): 212 bits
_PIO2 = []
_rest = __import__("fractions").Fraction(
    "1.57079632679489661923132169163975144209858469968755291048747229615390820314310449931401741267105853"
    "39929")
for _ in range(4):
    _d = float(_rest)
    _PIO2.append(_d)
    _rest -= __import__("fractions").Fraction(_d)
del _rest, _d

LN2_HI = 6.93147180369123816490e-01   # 0x3fe62e42 fee00000
LN2_LO = 1.90821492927058770002e-10
UNARY = ("exp", "log", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
         "atanh", "erf", "expm1", "log1p")
BINARY = ("pow", "atan2", "fmod")


class _B:
    """A builder with float64 helpers (constants, intrinsics, selects) for one function."""

    def __init__(self, lib, fn):
        self.lib = lib
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))

    def c(self, v):
        return ir.Constant(F64, float(v))

    def intr(self, name, *args):
        t = args[0].type
        return self.b.call(self.lib.declare(f"llvm.{name}.f64", t, [t] * len(args)), list(args))

    def fma(self, a, b, c):
        return self.intr("fma", a, b, c)

    def add(self, a, b):
        return self.b.fadd(a, b)

    def sub(self, a, b):
        return self.b.fsub(a, b)

    def mul(self, a, b):
        return self.b.fmul(a, b)

    def div(self, a, b):
        return self.b.fdiv(a, b)

    def sel(self, c, a, b):
        return self.b.select(c, a, b)

    def lt(self, a, b):
        return self.b.fcmp_ordered("<", a, b)

    def gt(self, a, b):
        return self.b.fcmp_ordered(">", a, b)

    def eq(self, a, b):
        return self.b.fcmp_ordered("==", a, b)

    def isnan(self, a):
        return self.b.fcmp_unordered("uno", a, a)

    def abs(self, a):
        return self.intr("fabs", a)

    def copysign(self, a, s):
        return self.intr("copysign", a, s)

    def poly(self, x, coeffs):
        """Horner: coeffs[0] + coeffs[1] x + ... (lowest degree first)."""
        acc = self.c(coeffs[-1])
        for k in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.c(k))
        return acc

    def pow2(self, k):
        """2^k for an i64 k in [-1022, 1023]."""
        return self.b.bitcast(self.b.shl(self.b.add(k, I64(1023)), I64(52)), F64)

    def bits(self, x):
        return self.b.bitcast(x, I64)

    def two_sum(self, a, b):
        s = self.add(a, b)
        bb = self.sub(s, a)
        err = self.add(self.sub(a, self.sub(s, bb)), self.sub(b, bb))
        return s, err


class MathLib:
    """Defines the math functions in one llvmlite module on first use; ``call`` emits a call."""

    def __init__(self, module: ir.Module):
        self.module = module
        self.fns: dict = {}

    def declare(self, name, ret, args):
        f = self.module.globals.get(name)
        if f is None:
            f = ir.Function(self.module, ir.FunctionType(ret, args), name=name)
        return f

    def fn(self, op: str) -> ir.Function:
        """The float64 function of ``op`` (defined on first use)."""
        f = self.fns.get(op)
        if f is not None:
            return f
        n = 2 if op in BINARY else 1
        f = ir.Function(self.module, ir.FunctionType(F64, [F64] * n), name=f"kiln_{op}_f64")
        f.linkage = "internal"
        self.fns[op] = f
        g = _B(self, f)
        g.b.ret(getattr(self, "_" + op)(g, *f.args))
        return f

    def call(self, builder: ir.IRBuilder, op: str, args: list):
        """``op`` of ``args`` (scalars of one float type) in that type: computed in float64."""
        t = args[0].type
        xs = [a if t == F64 else builder.fpext(a, F64) for a in args]
        r = builder.call(self.fn(op), xs)
        return r if t == F64 else builder.fptrunc(r, t)

    # ------------------------------------------------------------------------------- exp / log
    def _exp(self, g: _B, x):
        b = g.b
        xc = g.intr("minnum", g.intr("maxnum", x, g.c(-746.0)), g.c(710.0))
        n = g.intr("roundeven", g.mul(xc, g.c(1.4426950408889634)))
        r = g.fma(b.fneg(n), g.c(LN2_HI), xc)
        r = g.fma(b.fneg(n), g.c(LN2_LO), r)
        p = g.poly(r, [1.0 / math.factorial(k) for k in range(14)])
        ni = b.fptosi(n, I64)
        n1 = b.ashr(ni, I64(1))
        n2 = b.sub(ni, n1)
        res = g.mul(g.mul(p, g.pow2(n1)), g.pow2(n2))
        return g.sel(g.isnan(x), x, res)

    def _log(self, g: _B, x):
        b = g.b
        sub = g.lt(x, g.c(2.0 ** -1022))
        xs = g.sel(sub, g.mul(x, g.c(2.0 ** 54)), x)
        bits = g.bits(xs)
        e = b.sub(b.lshr(bits, I64(52)), b.select(sub, I64(1023 + 54), I64(1023)))
        m = b.bitcast(b.or_(b.and_(bits, I64((1 << 52) - 1)), I64(0x3FF0000000000000)), F64)
        big = g.gt(m, g.c(math.sqrt(2.0)))
        m = g.sel(big, g.mul(m, g.c(0.5)), m)
        e = b.add(e, b.zext(big, I64))
        f = g.sub(m, g.c(1.0))
        s = g.div(f, g.add(f, g.c(2.0)))
        z = g.mul(s, s)
        p = g.poly(z, [2.0 / (2 * k + 3) for k in range(11)])   # 2/3 + 2z/5 + ...
        lm = g.fma(g.mul(s, z), p, g.add(s, s))
        ef = b.sitofp(e, F64)
        res = g.add(g.fma(ef, g.c(LN2_HI), lm), g.mul(ef, g.c(LN2_LO)))
        res = g.sel(g.eq(x, g.c(math.inf)), x, res)
        res = g.sel(g.eq(x, g.c(0.0)), g.c(-math.inf), res)
        return g.sel(b.fcmp_unordered("<", x, g.c(0.0)), g.c(math.nan), res)   # x < 0 or NaN

    def _expm1(self, g: _B, x):
        u = g.b.call(self.fn("exp"), [x])
        um1 = g.sub(u, g.c(1.0))
        lu = g.b.call(self.fn("log"), [u])
        res = g.div(g.mul(um1, x), lu)
        res = g.sel(g.eq(um1, g.c(-1.0)), g.c(-1.0), res)
        res = g.sel(g.eq(u, g.c(math.inf)), u, res)
        return g.sel(g.eq(u, g.c(1.0)), x, res)

    def _log1p(self, g: _B, x):
        u = g.add(x, g.c(1.0))
        lu = g.b.call(self.fn("log"), [u])
        res = g.div(g.mul(lu, x), g.sub(u, g.c(1.0)))
        res = g.sel(g.eq(u, x), lu, res)        # x >= 2^53 (and inf): 1 + x == x
        res = g.sel(g.eq(u, g.c(0.0)), lu, res)
        return g.sel(g.eq(u, g.c(1.0)), x, res)

    # ------------------------------------------------------------------------------ hyperbolic
    def _sinh(self, g: _B, x):
        a = g.abs(x)
        small = g.mul(a, g.poly(g.mul(a, a), [1.0 / math.factorial(2 * k + 1) for k in range(11)]))
        e = g.b.call(self.fn("exp"), [a])
        mid = g.mul(g.sub(e, g.div(g.c(1.0), e)), g.c(0.5))
        h = g.b.call(self.fn("exp"), [g.mul(a, g.c(0.5))])
        big = g.mul(g.mul(h, g.c(0.5)), h)
        r = g.sel(g.lt(a, g.c(1.0)), small, g.sel(g.lt(a, g.c(22.0)), mid, big))
        return g.copysign(r, x)

    def _cosh(self, g: _B, x):
        a = g.abs(x)
        e = g.b.call(self.fn("exp"), [a])
        mid = g.mul(g.add(e, g.div(g.c(1.0), e)), g.c(0.5))
        h = g.b.call(self.fn("exp"), [g.mul(a, g.c(0.5))])
        big = g.mul(g.mul(h, g.c(0.5)), h)
        return g.sel(g.lt(a, g.c(22.0)), mid, big)

    def _tanh(self, g: _B, x):
        a = g.abs(x)
        t = g.b.call(self.fn("expm1"), [g.add(a, a)])
        r = g.div(t, g.add(t, g.c(2.0)))
        r = g.sel(g.gt(a, g.c(22.0)), g.c(1.0), r)
        return g.copysign(r, x)

    def _asinh(self, g: _B, x):
        a = g.abs(x)
        lg = lambda v: g.b.call(self.fn("log"), [v])  # noqa: E731
        huge = g.add(lg(a), g.c(math.log(2.0)))
        t = g.mul(a, a)
        big = lg(g.add(g.add(a, a), g.div(g.c(1.0), g.add(g.intr("sqrt", g.add(t, g.c(1.0))), a))))
        small = g.b.call(self.fn("log1p"), [g.add(a, g.div(t, g.add(g.c(1.0), g.intr("sqrt", g.add(g.c(1.0), t)))))])
        r = g.sel(g.gt(a, g.c(2.0 ** 28)), huge, g.sel(g.gt(a, g.c(2.0)), big, small))
        return g.copysign(r, x)

    def _acosh(self, g: _B, x):
        lg = lambda v: g.b.call(self.fn("log"), [v])  # noqa: E731
        huge = g.add(lg(x), g.c(math.log(2.0)))
        big = lg(g.sub(g.add(x, x), g.div(g.c(1.0), g.add(x, g.intr("sqrt", g.sub(g.mul(x, x), g.c(1.0)))))))
        t = g.sub(x, g.c(1.0))
        small = g.b.call(self.fn("log1p"), [g.add(t, g.intr("sqrt", g.fma(t, t, g.add(t, t))))])
        r = g.sel(g.gt(x, g.c(2.0 ** 28)), huge, g.sel(g.gt(x, g.c(2.0)), big, small))
        return g.sel(g.b.fcmp_unordered("<", x, g.c(1.0)), g.c(math.nan), r)

    def _atanh(self, g: _B, x):
        a = g.abs(x)
        l1p = lambda v: g.b.call(self.fn("log1p"), [v])  # noqa: E731
        om = g.sub(g.c(1.0), a)
        small = l1p(g.add(g.add(a, a), g.div(g.mul(g.add(a, a), a), om)))
        big = l1p(g.div(g.add(a, a), om))
        r = g.mul(g.c(0.5), g.sel(g.lt(a, g.c(0.5)), small, big))
        r = g.sel(g.gt(a, g.c(1.0)), g.c(math.nan), r)
        return g.copysign(r, x)

    # ------------------------------------------------------------------------------------ trig
    def _reduce(self, g: _B, xh, xl):
        """(n, rh, rl): ``xh + xl - n pi/2`` in double-double, ``n`` the nearest integer to
        ``xh 2/pi`` (a float64)."""
        b = g.b
        n = g.intr("roundeven", g.mul(xh, g.c(2.0 / math.pi)))
        nn = b.fneg(n)
        # terms: xh, xl, -n*P_k (hi and lo each): accumulated in double-double
        hi, lo = xh, xl
        for p in _PIO2:
            ph = g.mul(nn, g.c(p))
            pl = g.fma(nn, g.c(p), b.fneg(ph))
            s, e = g.two_sum(hi, ph)
            lo = g.add(g.add(lo, e), pl)
            hi, lo = g.two_sum(s, lo)
        return n, hi, lo

    def _sincos(self, g: _B, x):
        """(sin x, cos x, tan x)."""
        b = g.b
        n1, h, l_ = self._reduce(g, x, g.c(0.0))
        n2, h, l_ = self._reduce(g, h, l_)
        small = g.lt(g.abs(x), g.c(math.pi / 4))
        rh = g.sel(small, x, h)
        rl = g.sel(small, g.c(0.0), l_)
        mod4 = lambda n: g.sub(n, g.mul(g.c(4.0), g.intr("floor", g.mul(n, g.c(0.25)))))  # noqa: E731  exact
        q = mod4(g.add(mod4(n1), mod4(n2)))
        z = g.mul(rh, rh)
        s = g.fma(g.mul(rh, z), g.poly(z, [(-1) ** (k + 1) / math.factorial(2 * k + 3) for k in range(8)]), rh)
        c = g.poly(z, [(-1) ** k / math.factorial(2 * k) for k in range(10)])
        s = g.fma(rl, c, s)       # sin(rh + rl) = sin rh + rl cos rh
        c = g.fma(b.fneg(rl), rh, c)
        s = g.sel(small, g.fma(g.mul(x, z), g.poly(z, [(-1) ** (k + 1) / math.factorial(2 * k + 3)
                                                          for k in range(8)]), x), s)
        q1, q2, q3 = g.eq(q, g.c(1.0)), g.eq(q, g.c(2.0)), g.eq(q, g.c(3.0))
        ns, nc = b.fneg(s), b.fneg(c)
        sin = g.sel(q1, c, g.sel(q2, ns, g.sel(q3, nc, s)))
        cos = g.sel(q1, ns, g.sel(q2, nc, g.sel(q3, s, c)))
        odd = b.or_(q1, q3)
        tan = g.sel(odd, g.div(nc, s), g.div(s, c))
        # NaN, infinities, and arguments past the reduction's reach (|x| >= 2^90: no Payne-Hanek)
        nan = b.fcmp_unordered(">=", g.abs(x), g.c(2.0 ** 90))
        zero = g.eq(x, g.c(0.0))   # sin and tan keep the sign of a zero
        sin, tan = g.sel(zero, x, sin), g.sel(zero, x, tan)
        return (g.sel(nan, g.c(math.nan), sin), g.sel(nan, g.c(math.nan), cos), g.sel(nan, g.c(math.nan), tan))

    def _sin(self, g, x):
        return self._sincos(g, x)[0]

    def _cos(self, g, x):
        return self._sincos(g, x)[1]

    def _tan(self, g, x):
        return self._sincos(g, x)[2]

    def _atan(self, g: _B, x):
        a = g.abs(x)
        flip = g.gt(a, g.c(1.0))
        a = g.sel(flip, g.div(g.c(1.0), a), a)
        for _ in range(2):   # atan(a) = 2 atan(a / (1 + sqrt(1 + a^2)))
            a = g.div(a, g.add(g.c(1.0), g.intr("sqrt", g.fma(a, a, g.c(1.0)))))
        z = g.mul(a, a)
        r = g.fma(g.mul(a, z), g.poly(z, [(-1) ** (k + 1) / (2 * k + 3) for k in range(13)]), a)
        r = g.mul(r, g.c(4.0))
        r = g.sel(flip, g.sub(g.c(math.pi / 2), r), r)
        return g.copysign(r, x)

    def _atan2(self, g: _B, y, x):
        b = g.b
        ay, ax = g.abs(y), g.abs(x)
        a = b.call(self.fn("atan"), [g.div(ay, ax)])
        inf = g.c(math.inf)
        a = g.sel(b.and_(g.eq(ay, inf), g.eq(ax, inf)), g.c(math.pi / 4), a)
        a = g.sel(b.and_(g.eq(ay, g.c(0.0)), g.eq(ax, g.c(0.0))), g.c(0.0), a)
        neg = b.icmp_signed("<", g.bits(x), I64(0))    # x < 0, -0 included
        a = g.sel(neg, g.sub(g.c(math.pi), a), a)
        r = g.copysign(a, y)
        return g.sel(b.or_(g.isnan(x), g.isnan(y)), g.add(x, y), r)

    def _asin(self, g: _B, x):
        one = g.c(1.0)
        return g.b.call(self.fn("atan2"), [x, g.intr("sqrt", g.mul(g.sub(one, x), g.add(one, x)))])

    def _acos(self, g: _B, x):
        one = g.c(1.0)
        return g.b.call(self.fn("atan2"), [g.intr("sqrt", g.mul(g.sub(one, x), g.add(one, x))), x])

    # ------------------------------------------------------------------------------------- erf
    def _erf(self, g: _B, x):
        a = g.abs(x)
        a2 = g.mul(a, a)
        two_a2 = g.add(a2, a2)
        # series: sum_n t_n, t_0 = a, t_n = t_{n-1} 2a^2/(2n+1); 90 terms reach 1e-17 at a = 3
        t = a
        s = a
        for k in range(1, 90):
            t = g.mul(g.mul(t, two_a2), g.c(1.0 / (2 * k + 1)))
            s = g.add(s, t)
        e = g.b.call(self.fn("exp"), [g.b.fneg(a2)])
        series = g.mul(g.mul(s, e), g.c(2.0 / math.sqrt(math.pi)))
        # erfc continued fraction: e^{-a^2}/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))
        k_ = a
        for k in range(60, 0, -1):
            k_ = g.add(a, g.div(g.c(k / 2.0), k_))
        cf = g.sub(g.c(1.0), g.div(g.mul(e, g.c(1.0 / math.sqrt(math.pi))), k_))
        r = g.sel(g.lt(a, g.c(3.0)), series, g.sel(g.lt(a, g.c(6.0)), cf, g.c(1.0)))
        return g.sel(g.isnan(x), x, g.copysign(r, x))

    # ------------------------------------------------------------------------------- pow, fmod
    def _pow(self, g: _B, x, y):
        b = g.b
        ax = g.abs(x)
        lx = b.call(self.fn("log"), [ax])
        r = b.call(self.fn("exp"), [g.mul(y, lx)])
        is_int = g.eq(g.intr("floor", y), y)
        h = g.mul(y, g.c(0.5))
        odd = b.and_(is_int, b.and_(b.fcmp_ordered("!=", g.intr("floor", h), h), g.lt(g.abs(y), g.c(2.0 ** 53))))
        negx = b.icmp_signed("<", g.bits(x), I64(0))
        r = g.sel(b.and_(negx, odd), b.fneg(r), r)
        bad = b.and_(g.lt(x, g.c(0.0)), b.and_(b.not_(is_int), b.fcmp_ordered("==", y, y)))
        bad = b.and_(bad, b.fcmp_ordered("!=", ax, g.c(math.inf)))
        r = g.sel(bad, g.c(math.nan), r)
        r = g.sel(b.and_(g.eq(ax, g.c(1.0)), g.eq(g.abs(y), g.c(math.inf))), g.c(1.0), r)
        r = g.sel(g.eq(x, g.c(1.0)), g.c(1.0), r)
        return g.sel(g.eq(y, g.c(0.0)), g.c(1.0), r)

    def _fmod(self, g: _B, x, y):
        """Exact C fmod: |x| reduced by |y| 2^k for k from the exponent gap down to 0 (a loop)."""
        b = g.b
        fn = b.function
        ax, ay = g.abs(x), g.abs(y)
        special = b.or_(b.or_(g.isnan(x), g.isnan(y)), b.or_(g.eq(ay, g.c(0.0)), g.eq(ax, g.c(math.inf))))
        pre = b.block
        head = fn.append_basic_block("fmod.head")
        body = fn.append_basic_block("fmod.body")
        done = fn.append_basic_block("fmod.end")
        b.cbranch(b.or_(special, g.lt(ax, ay)), done, head)
        b.position_at_end(head)
        r = b.phi(F64)
        r.add_incoming(ax, pre)
        b.cbranch(b.fcmp_ordered(">=", r, ay), body, done)
        b.position_at_end(body)
        # the largest ay * 2^k <= r: start from the exponent gap (ay 2^k stays finite: r is)
        (rn, rs), (yn, ys) = self._norm(g, r), self._norm(g, ay)
        er, ey = b.lshr(g.bits(rn), I64(52)), b.lshr(g.bits(yn), I64(52))
        gap = b.sub(b.add(er, rs), b.add(ey, ys))
        d = self._ldexp(g, ay, gap)
        d = g.sel(b.fcmp_ordered(">", d, r), g.mul(d, g.c(0.5)), d)
        nr = g.sub(r, d)
        r.add_incoming(nr, body)
        b.branch(head)
        b.position_at_end(done)
        out = b.phi(F64)
        out.add_incoming(ax, pre)
        out.add_incoming(r, head)
        res = g.copysign(out, x)
        return g.sel(special, g.c(math.nan), res)

    def _norm(self, g: _B, v):
        """(v scaled to a normal number, -log2 of the scale as i64): denormals times 2^54."""
        sub = g.lt(v, g.c(2.0 ** -1022))
        return g.sel(sub, g.mul(v, g.c(2.0 ** 54)), v), g.b.select(sub, I64(-54), I64(0))

    def _ldexp(self, g: _B, v, k):
        """v * 2^k for k >= 0 (in three steps, each a normal power of two)."""
        b = g.b
        out = v
        for _ in range(3):
            step = b.select(b.icmp_signed(">", k, I64(1000)), I64(1000), k)
            out = g.mul(out, g.pow2(step))
            k = b.sub(k, step)
        return out


# -------------------------------------------------------------------------------------- on the host
def host_eval(op: str, *arrays):
    """Run ``op``'s float64 IR on the host CPU over numpy arrays (tests: the GPU code without a GPU)."""
    import ctypes

    import llvmlite.binding as llvm
    import numpy as np

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    mod = ir.Module(name="mathtest")
    mod.triple = llvm.get_process_triple()
    lib = MathLib(mod)
    n = len(arrays)
    ptr = ir.PointerType()
    w = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ptr] * (n + 1) + [I64]), name="run")
    bld = ir.IRBuilder(w.append_basic_block("entry"))
    pre = bld.block
    loop = w.append_basic_block("loop")
    body = w.append_basic_block("body")
    done = w.append_basic_block("done")
    bld.branch(loop)
    bld.position_at_end(loop)
    i = bld.phi(I64)
    i.add_incoming(I64(0), pre)
    bld.cbranch(bld.icmp_signed("<", i, w.args[-1]), body, done)
    bld.position_at_end(body)
    xs = [bld.load(bld.gep(w.args[k], [i], source_etype=F64), typ=F64) for k in range(n)]
    bld.store(lib.call(bld, op, xs), bld.gep(w.args[n], [i], source_etype=F64))
    i.add_incoming(bld.add(i, I64(1)), body)
    bld.branch(loop)
    bld.position_at_end(done)
    bld.ret_void()
    m = llvm.parse_assembly(str(mod))
    m.verify()
    tm = llvm.Target.from_default_triple().create_target_machine(opt=2)
    ee = llvm.create_mcjit_compiler(m, tm)
    ee.finalize_object()
    f = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * (n + 1)), ctypes.c_int64)(ee.get_function_address("run"))
    ins = [np.ascontiguousarray(np.broadcast_to(np.asarray(a, np.float64), np.broadcast_shapes(
        *[np.shape(x) for x in arrays]))) for a in arrays]
    out = np.empty(ins[0].shape, np.float64)
    f(*[a.ctypes.data for a in ins], out.ctypes.data, out.size)
    return out
