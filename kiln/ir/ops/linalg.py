"""Contractions and windowed ops: matmul, convolution, pooling.

The windowed ops share one convention. ``x`` is ``[N, C, *spatial]``; per spatial axis ``i`` a
window of ``kernel[i]`` taps, ``dilations[i]`` apart, starts at ``o * strides[i] - pads[i]`` for
output position ``o``. ``pads`` lists every axis' begin padding, then every axis' end padding
(ONNX order). Empty ``strides`` / ``dilations`` / ``pads`` mean all ones / ones / zeros. The number
of outputs per axis is ``floor((in + pad_begin + pad_end - span) / stride) + 1`` with
``span = dilation * (kernel - 1) + 1``; pooling's ``ceil_mode`` rounds up instead, dropping a
last window that would start in the end padding. Taps outside ``[-pad_begin, in + pad_end)``
(the overhang of a ceil-mode window) never count.
"""
from __future__ import annotations

import numpy as np

from .. import dims
from ..registry import Attr, op
from ..types import TensorType
from ._util import broadcast_shapes, require


@op("matmul", inputs=("a", "b"), traits=("contraction",))
class MatMul:
    """numpy.matmul semantics: batch dims broadcast; 1-D operands are promoted and squeezed."""

    def infer(a: TensorType, b: TensorType):
        require(a.dtype == b.dtype, f"matmul: operand dtypes differ ({a.dtype}, {b.dtype})")
        require(a.rank >= 1 and b.rank >= 1, "matmul: operands must have rank >= 1")
        sa = a.shape if a.rank > 1 else (1,) + a.shape
        sb = b.shape if b.rank > 1 else b.shape + (1,)
        k1, k2 = sa[-1], sb[-2]
        require(k1 == k2 or not (isinstance(k1, int) and isinstance(k2, int)),
                f"matmul: inner dims differ ({a} @ {b})")
        batch = broadcast_shapes(sa[:-2], sb[:-2])
        out = list(batch) + [sa[-2], sb[-1]]
        if a.rank == 1:
            out.pop(-2)
        if b.rank == 1:
            out.pop(-1)
        return TensorType(a.dtype, out)

    def reference(a, b):
        ct = _compute_dtype(a.dtype)
        with np.errstate(all="ignore"):  # inf/NaN operands give inf/NaN, as on every target
            if ct != a.dtype:
                return np.matmul(a.astype(ct), b.astype(ct)).astype(a.dtype)
            return np.matmul(a, b)


# --- window geometry ----------------------------------------------------------------------------

def _window_params(op_name, x: TensorType, kernel, strides, dilations, pads):
    """Check and complete (kernel, strides, dilations, pads) for an N-d window over x."""
    n = x.rank - 2
    require(n >= 1, f"{op_name}: input must be [N, C, *spatial] with at least one spatial axis, got {x}")
    require(len(kernel) == n, f"{op_name}: kernel {list(kernel)} does not have {n} spatial dims for input {x}")
    strides = tuple(strides) or (1,) * n
    dilations = tuple(dilations) or (1,) * n
    pads = tuple(pads) or (0,) * (2 * n)
    require(len(strides) == n, f"{op_name}: strides {list(strides)} must have {n} entries")
    require(len(dilations) == n, f"{op_name}: dilations {list(dilations)} must have {n} entries")
    require(len(pads) == 2 * n, f"{op_name}: pads {list(pads)} must have {2 * n} entries (begins, then ends)")
    require(all(k >= 1 for k in kernel), f"{op_name}: kernel sizes must be >= 1, got {list(kernel)}")
    require(all(s >= 1 for s in strides), f"{op_name}: strides must be >= 1, got {list(strides)}")
    require(all(d >= 1 for d in dilations), f"{op_name}: dilations must be >= 1, got {list(dilations)}")
    require(all(p >= 0 for p in pads), f"{op_name}: pads must be >= 0, got {list(pads)}")
    return tuple(kernel), strides, dilations, pads


def window_count(size, k, s, d, pb, pe, ceil_mode=False):
    """Number of window positions along one axis (a dim: symbolic sizes give symbolic counts)."""
    span = d * (k - 1) + 1
    if isinstance(size, int):
        room = size + pb + pe - span
        if room < 0:
            return 0
        n = (-(-room // s) if ceil_mode else room // s) + 1
        if ceil_mode and (n - 1) * s >= size + pb:
            n -= 1  # the last window would start in the end padding
        return n
    if s == 1:  # ceil == floor; a last window starting in the end padding exists only if pe >= span
        return dims.add(size, pb + pe - span + 1 - (1 if ceil_mode and pe >= span else 0))
    q = dims.div_exact(dims.add(size, pb + pe - span), s)
    return dims.add(q, 1) if q is not None and not ceil_mode else dims.UNKNOWN


def _windowed_shape(op_name, x: TensorType, kernel, strides, dilations, pads, ceil_mode=False):
    n = x.rank - 2
    out = list(x.shape[:2])
    for i in range(n):
        c = window_count(x.shape[2 + i], kernel[i], strides[i], dilations[i], pads[i], pads[n + i], ceil_mode)
        require(not isinstance(c, int) or c >= 1,
                f"{op_name}: window {kernel[i]} (dilation {dilations[i]}) does not fit spatial axis {i} "
                f"of {x} with pads {pads[i]}, {pads[n + i]}")
        out.append(c)
    return out


def _windows(x: np.ndarray, kernel, strides, dilations, pads, out_sizes, fill):
    """A view ``[N, C, *out, *kernel]`` of every window of ``x``, padded with ``fill``.

    The input is padded with ``pads`` and, at the end, with whatever more the last windows
    need (ceil mode); every tap of every window is then in range.
    """
    n = len(kernel)
    widths = [(0, 0), (0, 0)]
    for i in range(n):
        need = (out_sizes[i] - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1
        have = x.shape[2 + i] + pads[i] + pads[n + i]
        widths.append((pads[i], pads[n + i] + max(0, need - have)))
    xp = np.pad(x, widths, constant_values=fill) if any(w != (0, 0) for w in widths) else x
    st = xp.strides
    shape = xp.shape[:2] + tuple(out_sizes) + tuple(kernel)
    strides_b = st[:2] + tuple(st[2 + i] * strides[i] for i in range(n)) + \
        tuple(st[2 + i] * dilations[i] for i in range(n))
    return np.lib.stride_tricks.as_strided(xp, shape, strides_b, writeable=False)


def _reduce_taps(v, ns, fn):
    """Fold ``fn`` (np.maximum, np.add) over the kernel axes of a window view, one tap at a time
    (a strided slice each: much faster than a reduction over the 2n-d view)."""
    taps = list(np.ndindex(*v.shape[v.ndim - ns:]))
    acc = np.array(v[(Ellipsis,) + taps[0]])
    for t in taps[1:]:
        fn(acc, v[(Ellipsis,) + t], out=acc)
    return acc


def _compute_dtype(dt):
    """The numpy dtype a windowed op accumulates in: float32 for narrow floats, else its own."""
    if dt.kind == "f" and dt.itemsize < 4 or dt.kind == "V" or dt.type.__module__.startswith("ml_dtypes"):
        return np.dtype(np.float32)
    return dt


def _out_sizes(x, kernel, strides, dilations, pads, ceil_mode=False):
    n = len(kernel)
    return [window_count(x.shape[2 + i], kernel[i], strides[i], dilations[i], pads[i], pads[n + i], ceil_mode)
            for i in range(n)]


# --- convolution --------------------------------------------------------------------------------

_WINDOW_ATTRS = {
    "strides": Attr("ints", ()),
    "dilations": Attr("ints", ()),
    "pads": Attr("ints", ()),
}


def _conv_params(name, x: TensorType, w: TensorType, strides, dilations, pads, group):
    """Operand checks shared by conv and conv_transpose; the window parameters, normalised."""
    require(x.dtype == w.dtype, f"{name}: x and w dtypes differ ({x.dtype}, {w.dtype})")
    require(x.dtype.kind in ("float", "int", "uint"), f"{name}: dtype {x.dtype} is not numeric")
    require(w.rank == x.rank, f"{name}: weight {w} must have the rank of input {x}")
    require(group >= 1, f"{name}: group must be >= 1, got {group}")
    kernel = w.shape[2:]
    require(all(isinstance(k, int) for k in kernel), f"{name}: kernel dims of {w} must be static")
    return _window_params(name, x, kernel, strides, dilations, pads)


@op("conv", inputs=("x", "w", "bias?"), attrs={**_WINDOW_ATTRS, "group": Attr("int", 1)},
    traits=("contraction",))
class Conv:
    """N-d cross-correlation: ``x [N, C, *in]`` with ``w [M, C/group, *kernel]`` (+ ``bias [M]``).

    Channels split into ``group`` groups; output channel ``m`` sees input group
    ``m // (M / group)``. Zero padding. Integer operands accumulate in their own dtype.
    """

    def infer(x: TensorType, w: TensorType, bias=None, *, strides, dilations, pads, group):
        kernel, strides, dilations, pads = _conv_params("conv", x, w, strides, dilations, pads, group)
        c, m, cg = x.shape[1], w.shape[0], w.shape[1]
        if isinstance(c, int) and isinstance(cg, int):
            require(c == cg * group, f"conv: input has {c} channels, weight {w} with group {group} wants {cg * group}")
        if isinstance(m, int):
            require(m % group == 0, f"conv: {m} output channels do not split into {group} groups")
        if bias is not None:
            require(bias.dtype == x.dtype, f"conv: bias dtype {bias.dtype} differs from {x.dtype}")
            bm = bias.shape[0] if bias.rank == 1 else None
            require(bias.rank == 1 and (bm == m or not isinstance(m, int) or not isinstance(bm, int)),
                    f"conv: bias must be [{m}], got {bias}")
        out = _windowed_shape("conv", x, kernel, strides, dilations, pads)
        out[1] = m
        return TensorType(x.dtype, out)

    def reference(x, w, bias=None, *, strides, dilations, pads, group):
        kernel, strides, dilations, pads = _ref_params(w.shape[2:], strides, dilations, pads)
        ct = _compute_dtype(x.dtype)
        sizes = _out_sizes(x, kernel, strides, dilations, pads)
        v = _windows(x.astype(ct, copy=False), kernel, strides, dilations, pads, sizes, 0)
        n = x.shape[0]
        m, cg = w.shape[:2]
        ns, p = len(kernel), int(np.prod(sizes))
        wg = w.astype(ct, copy=False).reshape((group, m // group, cg, -1))  # [G, Mg, Cg, K]
        v = v.reshape((n, group, cg) + tuple(sizes) + tuple(kernel))  # splits C: still a view
        if 1 < cg < 16:  # few channels: one im2col matmul beats many thin per-tap products
            cols = np.moveaxis(v, 2, 2 + ns).reshape((n, group, p, -1))  # [N, G, P, Cg*K]
            with np.errstate(all="ignore"):
                y = np.matmul(wg.reshape((group, m // group, -1)), np.swapaxes(cols, -1, -2))
            return _conv_finish(y, bias, x.dtype, m, sizes, ct)
        # else one product per kernel tap, accumulated: memory stays O(input + output)
        y = None
        with np.errstate(all="ignore"):
            for k, tap in enumerate(np.ndindex(*kernel)):
                xt = v[(Ellipsis,) + tap].reshape((n, group, cg, p))  # [N, G, Cg, P]
                if cg == 1 and m == group:  # depthwise: an elementwise product
                    term = wg[None, :, :, 0, k, None] * xt
                else:
                    term = np.matmul(wg[..., k], xt)  # [N, G, Mg, P]
                y = term if y is None else np.add(y, term, out=y)
        return _conv_finish(y, bias, x.dtype, m, sizes, ct)


def _conv_finish(y, bias, dtype, m, sizes, ct):
    """[N, G, Mg, P] -> [N, M, *sizes] (+ bias), in the operands' dtype."""
    y = y.reshape((y.shape[0], m) + tuple(sizes))
    if bias is not None:
        y = y + bias.astype(ct).reshape((m,) + (1,) * len(sizes))
    return np.ascontiguousarray(y.astype(dtype, copy=False))


def _ref_params(kernel, strides, dilations, pads):
    n = len(kernel)
    return (tuple(kernel), tuple(strides) or (1,) * n, tuple(dilations) or (1,) * n,
            tuple(pads) or (0,) * (2 * n))


@op("conv_transpose", inputs=("x", "w", "bias?"),
    attrs={**_WINDOW_ATTRS, "output_padding": Attr("ints", ()), "group": Attr("int", 1)},
    traits=("contraction",))
class ConvTranspose:
    """The transpose (gradient) of ``conv``: ``x [N, C, *in]``, ``w [C, M/group, *kernel]``.

    Input position ``i`` with tap ``k`` adds to output position ``i * stride + k * dilation - pad_begin``.
    Output size per axis: ``stride * (in - 1) + output_padding + dilation * (kernel - 1) + 1
    - pad_begin - pad_end``.
    """

    def infer(x: TensorType, w: TensorType, bias=None, *, strides, dilations, pads, output_padding, group):
        kernel, strides, dilations, pads = _conv_params("conv_transpose", x, w, strides, dilations, pads, group)
        n = len(kernel)
        opad = tuple(output_padding) or (0,) * n
        require(len(opad) == n and all(p >= 0 for p in opad),
                f"conv_transpose: output_padding {list(output_padding)} must be {n} non-negative ints")
        c, m = x.shape[1], dims.mul(w.shape[1], group)
        if isinstance(c, int) and isinstance(w.shape[0], int):
            require(c == w.shape[0], f"conv_transpose: input has {c} channels, weight {w} wants {w.shape[0]}")
            require(c % group == 0, f"conv_transpose: {c} input channels do not split into {group} groups")
        if bias is not None:
            require(bias.dtype == x.dtype and bias.rank == 1,
                    f"conv_transpose: bias must be [{m}] {x.dtype}, got {bias}")
        out = [x.shape[0], m]
        for i in range(n):
            full = dilations[i] * (kernel[i] - 1) + 1 + opad[i] - pads[i] - pads[n + i]
            size = dims.add(dims.mul(dims.add(x.shape[2 + i], -1), strides[i]), full)
            require(not isinstance(size, int) or size >= 1,
                    f"conv_transpose: pads {list(pads)} leave no output along spatial axis {i}")
            out.append(size)
        return TensorType(x.dtype, out)

    def reference(x, w, bias=None, *, strides, dilations, pads, output_padding, group):
        kernel, strides, dilations, pads = _ref_params(w.shape[2:], strides, dilations, pads)
        ns = len(kernel)
        opad = tuple(output_padding) or (0,) * ns
        ct = _compute_dtype(x.dtype)
        n, c = x.shape[:2]
        mg = w.shape[1]
        ins = x.shape[2:]
        xg = x.astype(ct, copy=False).reshape((n, group, c // group, -1))  # [N, G, Cg, P]
        wg = w.astype(ct, copy=False).reshape((group, c // group, mg, -1))  # [G, Cg, Mg, K]
        full = [(ins[i] - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 + opad[i] for i in range(ns)]
        y = np.zeros((n, group, mg) + tuple(full), dtype=ct)
        # each tap scatters W_tap^T @ x onto the strided output positions it reaches
        for k, tap in enumerate(np.ndindex(*kernel)):
            dst = tuple(slice(tap[i] * dilations[i], tap[i] * dilations[i] + (ins[i] - 1) * strides[i] + 1,
                              strides[i]) for i in range(ns))
            with np.errstate(all="ignore"):
                term = np.matmul(np.swapaxes(wg[..., k], -1, -2), xg)  # [N, G, Mg, P]
            y[(slice(None),) * 3 + dst] += term.reshape((n, group, mg) + tuple(ins))
        crop = tuple(slice(pads[i], full[i] - pads[ns + i]) for i in range(ns))
        y = y[(slice(None),) * 3 + crop].reshape((n, group * mg) + tuple(f - pads[i] - pads[ns + i]
                                                                        for i, f in enumerate(full)))
        if bias is not None:
            y = y + bias.astype(ct).reshape((-1,) + (1,) * ns)
        return np.ascontiguousarray(y.astype(x.dtype, copy=False))


# --- pooling ------------------------------------------------------------------------------------

_POOL_ATTRS = {"kernel": Attr("ints"), **_WINDOW_ATTRS, "ceil_mode": Attr("bool", False)}


def _pool_infer(op_name, x: TensorType, kernel, strides, dilations, pads, ceil_mode):
    require(x.dtype.kind in ("float", "int", "uint"), f"{op_name}: dtype {x.dtype} is not numeric")
    kernel, strides, dilations, pads = _window_params(op_name, x, kernel, strides, dilations, pads)
    return TensorType(x.dtype, _windowed_shape(op_name, x, kernel, strides, dilations, pads, ceil_mode))


def _lowest(dt):
    return -np.inf if dt.kind == "f" else np.iinfo(dt).min


@op("max_pool", inputs=("x",), attrs={**_POOL_ATTRS, "with_indices": Attr("bool", False),
                                      "storage_order": Attr("int", 0, (0, 1))}, outputs="*")
class MaxPool:
    """Window maximum; padding never wins. With ``with_indices`` a second result holds, per output,
    the int64 flat index of the first maximum in ``x`` (row-major over ``[N, C, *spatial]``, or
    column-major over the spatial dims when ``storage_order`` is 1)."""

    def infer(x: TensorType, kernel, strides, dilations, pads, ceil_mode, with_indices, storage_order):
        y = _pool_infer("max_pool", x, kernel, strides, dilations, pads, ceil_mode)
        return [y, y.with_dtype("i64")] if with_indices else [y]

    def reference(x, kernel, strides, dilations, pads, ceil_mode, with_indices, storage_order):
        kernel, strides, dilations, pads = _ref_params(kernel, strides, dilations, pads)
        ct = _compute_dtype(x.dtype)
        xs = x.astype(ct, copy=False)
        sizes = _out_sizes(x, kernel, strides, dilations, pads, ceil_mode)
        v = _windows(xs, kernel, strides, dilations, pads, sizes, _lowest(ct))
        ns = len(kernel)
        y = _reduce_taps(v, ns, np.maximum).astype(x.dtype)
        if not with_indices:
            return [y]
        flat = v.reshape(v.shape[:2 + ns] + (-1,))
        tap = np.unravel_index(np.argmax(flat, axis=-1), kernel)
        spatial = x.shape[2:]
        idx = np.zeros(y.shape, np.int64)
        scale = 1
        order = range(ns) if storage_order else reversed(range(ns))
        for i in order:
            o = np.arange(sizes[i]).reshape((-1,) + (1,) * (ns - 1 - i))
            pos = o * strides[i] - pads[i] + tap[i] * dilations[i]
            idx += pos * scale
            scale *= spatial[i]
        nc = np.arange(x.shape[0] * x.shape[1]).reshape(x.shape[:2] + (1,) * ns)
        idx += nc * scale
        return [y, idx]


@op("avg_pool", inputs=("x",), attrs={**_POOL_ATTRS, "count_include_pad": Attr("bool", False)})
class AvgPool:
    """Window mean. The divisor counts the taps inside ``x``, plus those in ``pads`` when
    ``count_include_pad`` (never a ceil-mode overhang). Integer inputs truncate the mean."""

    def infer(x: TensorType, kernel, strides, dilations, pads, ceil_mode, count_include_pad):
        return _pool_infer("avg_pool", x, kernel, strides, dilations, pads, ceil_mode)

    def reference(x, kernel, strides, dilations, pads, ceil_mode, count_include_pad):
        kernel, strides, dilations, pads = _ref_params(kernel, strides, dilations, pads)
        ns = len(kernel)
        sizes = _out_sizes(x, kernel, strides, dilations, pads, ceil_mode)
        v = _windows(x.astype(np.float64), kernel, strides, dilations, pads, sizes, 0.0)
        total = _reduce_taps(v, ns, np.add)
        # the divisor: taps inside x (or inside the padded extent) per window
        ones = np.ones((1, 1) + x.shape[2:])
        if count_include_pad:
            ones = np.pad(ones, [(0, 0), (0, 0)] + [(pads[i], pads[ns + i]) for i in range(ns)], constant_values=1)
            cpads = (0,) * (2 * ns)
        else:
            cpads = pads
        count = _reduce_taps(_windows(ones, kernel, strides, dilations, cpads, sizes, 0.0), ns, np.add)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = total / count
        if x.dtype.kind in "iu":
            y = np.trunc(y)
        return y.astype(x.dtype)


# ------------------------------------------------------------------------------------------ lowering
# Matmul and convolution lower to GEMM-form contractions (kiln.ir.lowering.GemmSpec): the generic
# path is a reduction per output element; the tiling schedule turns f32 ones into a register-blocked
# micro-kernel with packed weights. Windowed ops read a padded copy of their input so every tap is in
# range and index math stays affine.
from .. import loops as _L  # noqa: E402
from ..dtypes import dtype as _dtype  # noqa: E402
from ..lowering import GemmSpec as _GemmSpec, broadcast_shape as _bshape, static as _static  # noqa: E402
from ..registry import OPS as _OPS  # noqa: E402


def _bcast_idx(shape, bidx, out_rank):
    """Index into batch dims ``shape`` for the broadcast batch index ``bidx`` (numpy rules)."""
    off = out_rank - len(shape)
    return tuple(_L.Const(0) if _static(s) == 1 else bidx[off + d] for d, s in enumerate(shape))


def _accumulate_dtype(dt):
    return dt if dt.name not in ("f16", "bf16") else _dtype("f32")


def _matmul_lower(b, x, y):
    sa = x.shape if x.ndim > 1 else (_L.Const(1),) + x.shape
    sb = y.shape if y.ndim > 1 else y.shape + (_L.Const(1),)
    batch = _bshape(sa[:-2], sb[:-2]) if (len(sa) > 2 or len(sb) > 2) else ()
    nb = len(batch)
    M, K, N = sa[-2], sa[-1], sb[-1]
    acc = _accumulate_dtype(x.dtype)

    def a(bidx, m, k):
        v = x[(k,)] if x.ndim == 1 else x[_bcast_idx(sa[:-2], bidx, nb) + (m, k)]
        return _L.cast(v, acc)

    def bv(bidx, k, n):
        v = y[(k,)] if y.ndim == 1 else y[_bcast_idx(sb[:-2], bidx, nb) + (k, n)]
        return _L.cast(v, acc)

    out_shape = list(batch) + ([M] if x.ndim > 1 else []) + ([N] if y.ndim > 1 else [])

    def index_of(idx):
        idx = list(idx)
        bidx = tuple(idx[:nb])
        rest = idx[nb:]
        m = rest.pop(0) if x.ndim > 1 else _L.Const(0)
        n = rest.pop(0) if y.ndim > 1 else _L.Const(0)
        return bidx, m, n

    def out_index(bidx, m, n):
        return tuple(bidx) + ((m,) if x.ndim > 1 else ()) + ((n,) if y.ndim > 1 else ())

    spec = _GemmSpec(batch, M, N, K, a, bv, out_index, acc)
    if y.ndim == 2 and x.ndim >= 2 and acc == x.dtype:
        spec.bv_array = b.constant_of(y)  # [K, N] weights: packed into panels by the tiling schedule
    t = b.gemm(out_shape, spec, index_of)
    if acc != x.dtype:
        return b.compute(out_shape, lambda *i: _L.cast(t[i], x.dtype), dtype=x.dtype)
    return t


_OPS["matmul"].lower = _matmul_lower


def _padded(b, x, pads, extra_end, fill):
    """``x`` padded by ``pads`` (begins then ends) plus ``extra_end`` per spatial axis, as a buffer."""
    n = x.ndim - 2
    if not any(pads) and not any(extra_end):
        return x, x.shape
    shape = list(x.shape[:2]) + [
        _L.simplify(x.shape[2 + i] + pads[i] + pads[n + i] + extra_end[i]) for i in range(n)]

    def el(*idx):
        conds = []
        src = list(idx[:2])
        for i in range(n):
            p = idx[2 + i] - pads[i]
            conds.append(_L.binary("and", _L.binary("ge", p, 0), _L.binary("lt", p, x.shape[2 + i])))
            src.append(_L.maximum(_L.minimum(p, x.shape[2 + i] - 1), _L.Const(0)))
        ok = conds[0]
        for c in conds[1:]:
            ok = _L.binary("and", ok, c)
        return _L.select(ok, x[tuple(src)], _L.const(fill, x.dtype))

    t = b.compute(shape, el, dtype=x.dtype)
    return b.buffer(t, "pad"), tuple(shape)


def _window_offsets(xp, outs, strides):
    """Per output position, the flat offset of its window's first tap within one padded input plane
    (int64), or None when a dim is symbolic."""
    sizes = [_static(d) for d in xp.shape[2:]]
    os_ = [_static(o) for o in outs]
    if None in sizes or None in os_:
        return None
    plane = np.zeros(os_, np.int64)
    stride = 1
    for i in reversed(range(len(sizes))):
        shape = [1] * len(sizes)
        shape[i] = os_[i]
        plane = plane + (np.arange(os_[i], dtype=np.int64) * strides[i] * stride).reshape(shape)
        stride *= sizes[i]
    return plane.reshape(-1)


def _panel(P, lanes):
    """The panel width the tiling picks for P output positions (3, 2 or 1 vectors dividing P), or None."""
    if P is None:
        return None
    for nv in (3, 2, 1):
        if P % (nv * lanes) == 0:
            return nv * lanes
    return None


def _conv_lower(b, x, w, bias=None, *, strides, dilations, pads, group):
    ns = x.ndim - 2
    kernel = tuple(int(_static(s)) for s in w.shape[2:])
    strides = tuple(strides) or (1,) * ns
    dilations = tuple(dilations) or (1,) * ns
    pads = tuple(pads) or (0,) * (2 * ns)
    acc = _accumulate_dtype(x.dtype)
    N, C = x.shape[0], x.shape[1]
    Mo = w.shape[0]
    Cg = w.shape[1]
    Mg = _L.simplify(Mo // group) if group > 1 else Mo
    outs = []
    for i in range(ns):
        span = dilations[i] * (kernel[i] - 1) + 1
        outs.append(_L.simplify((x.shape[2 + i] + pads[i] + pads[ns + i] - span) // strides[i] + 1))
    xp, _ = _padded(b, x, pads, (0,) * ns, 0)
    out_shape = (N, Mo) + tuple(outs)
    taps = 1
    for k in kernel:
        taps *= k
    KK = _L.simplify(Cg * taps)
    # spatial output positions flatten into the GEMM's n; k runs over (c, taps)
    P = _L.Const(1)
    for o in outs:
        P = P * o
    P = _L.simplify(P)

    def unflat(p):
        pos, rest = [], p
        for o in reversed(outs):
            pos.append(rest % o)
            rest = rest // o
        return list(reversed(pos))

    def tap_of(k):
        t, rest = [], k % taps if taps > 1 else _L.Const(0)
        for kk in reversed(kernel):
            t.append(rest % kk)
            rest = rest // kk
        return list(reversed(t))

    direct = all(k == 1 for k in kernel) and all(s == 1 for s in strides)
    depthwise = _static(Cg) == 1 and group > 1
    if depthwise or _static(KK) is None or acc != x.dtype:
        # a reduction per output element over (c, taps), reading the padded input
        def body(idx, r):
            n, m = idx[0], idx[1]
            g = m // Mg if group > 1 else _L.Const(0)
            c = r[0]
            src = [n, g * Cg + c] + [idx[2 + i] * strides[i] + r[1 + i] * dilations[i] for i in range(ns)]
            return _L.binary("mul", _L.cast(xp[tuple(src)], acc), _L.cast(w[(m, c) + tuple(r[1:])], acc))

        t = b.reduce(out_shape, (Cg,) + kernel, body, "sum", dtype=acc)
    else:
        # the vector side of the GEMM runs along output positions; when they fill whole panels of
        # `nr` (the tiling's choice for this P), im2col writes panels [P/nr, K, nr] so the micro-kernel
        # streams each panel contiguously; 1x1 stride-1 convs read x directly otherwise
        nr = _panel(_static(P), getattr(b, "vector_lanes", 16))
        panels = nr is not None and (not direct or _static(KK) * _static(P) <= (1 << 22))
        if panels:
            col_shape = (N, _L.Const(group), _L.Const(_static(P) // nr), KK, _L.Const(nr))
            # where each output position's window starts, as a flat offset into the padded input: a
            # table read per lane instead of dividing each lane's position by the output width
            # (only for a buffer: an operand still an expression, e.g. an inlined pad or transpose,
            # clamps each index to its dim, so a flat offset in the last index would not reach the next row)
            table = _window_offsets(xp, outs, strides) if getattr(xp, "kind", None) == "buffer" else None
            tab = b.weight(table, "i64") if table is not None else None

            def col_el(n, g, t, k, j):
                c = k // taps
                tp = tap_of(k)
                if tab is not None:
                    last = tab[(t * nr + j,)] + tp[-1] * dilations[-1]
                    src = [n, g * Cg + c] + [tp[i] * dilations[i] for i in range(ns - 1)] + [last]
                    return xp[tuple(src)]
                o = unflat(t * nr + j)
                src = [n, g * Cg + c] + [o[i] * strides[i] + tp[i] * dilations[i] for i in range(ns)]
                return xp[tuple(src)]

            col = b.buffer(b.compute(col_shape, col_el, dtype=x.dtype), "im2col")
        elif direct:
            col = None
        else:
            col_shape = (N, _L.Const(group), KK) + tuple(outs)

            def col_el(n, g, k, *o):
                c = k // taps
                tp = tap_of(k)
                src = [n, g * Cg + c] + [o[i] * strides[i] + tp[i] * dilations[i] for i in range(ns)]
                return xp[tuple(src)]

            col = b.buffer(b.compute(col_shape, col_el, dtype=x.dtype), "im2col")

        def a(bidx, m, k):
            n, g = bidx
            c = k // taps
            return w[(g * Mg + m, c) + tuple(tap_of(k))]

        def bv(bidx, k, p):
            n, g = bidx
            if panels:
                return col[(n, g, p // nr, k, p % nr)]
            if col is None:
                return xp[(n, g * Cg + k) + tuple(unflat(p))]
            return col[(n, g, k) + tuple(unflat(p))]

        def index_of(idx):
            n, m = idx[0], idx[1]
            g = m // Mg if group > 1 else _L.Const(0)
            mm = m % Mg if group > 1 else m
            p = _L.Const(0)
            for i in range(ns):
                p = p * outs[i] + idx[2 + i]
            return (n, g), mm, _L.simplify(p)

        def out_index(bidx, m, p):
            n, g = bidx
            return (n, g * Mg + m) + tuple(unflat(p))

        spec = _GemmSpec((N, _L.Const(group)), Mg, P, KK, a, bv, out_index, acc)
        wv = b.constant_of(w)
        if wv is not None:
            spec.a_array = wv.reshape(group, -1, wv[0].size)  # [G, Mg, Cg*taps]
        t = b.gemm(out_shape, spec, index_of)
    if bias is not None:
        t0 = t
        t = b.compute(out_shape, lambda *i: _L.binary("add", t0[i], _L.cast(bias[(i[1],)], acc)), dtype=acc)
    if acc != x.dtype:
        t1 = t
        return b.compute(out_shape, lambda *i: _L.cast(t1[i], x.dtype), dtype=x.dtype)
    return t


_OPS["conv"].lower = _conv_lower


def _conv_transpose_lower(b, x, w, bias=None, *, strides, dilations, pads, output_padding, group):
    ns = x.ndim - 2
    kernel = tuple(int(_static(s)) for s in w.shape[2:])
    strides = tuple(strides) or (1,) * ns
    dilations = tuple(dilations) or (1,) * ns
    pads = tuple(pads) or (0,) * (2 * ns)
    opad = tuple(output_padding) or (0,) * ns
    acc = _accumulate_dtype(x.dtype)
    N, C = x.shape[0], x.shape[1]
    Mg = w.shape[1]
    Cg = _L.simplify(C // group) if group > 1 else C
    outs = [_L.simplify((x.shape[2 + i] - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 + opad[i]
                        - pads[i] - pads[ns + i]) for i in range(ns)]
    out_shape = (N, _L.simplify(Mg * group)) + tuple(outs)

    def body(idx, r):
        n, m = idx[0], idx[1]
        g = m // Mg if group > 1 else _L.Const(0)
        mm = m % Mg if group > 1 else m
        c = g * Cg + r[0]
        ok = None
        src = [n, c]
        for i in range(ns):
            num = idx[2 + i] + pads[i] - r[1 + i] * dilations[i]
            q = num // strides[i]
            cond = _L.binary("and", _L.binary("ge", num, 0), _L.binary("lt", q, x.shape[2 + i]))
            if strides[i] > 1:
                cond = _L.binary("and", cond, _L.binary("eq", num % strides[i], 0))
            ok = cond if ok is None else _L.binary("and", ok, cond)
            src.append(_L.maximum(_L.minimum(q, x.shape[2 + i] - 1), _L.Const(0)))
        prod = _L.binary("mul", _L.cast(x[tuple(src)], acc), _L.cast(w[(c, mm) + tuple(r[1:])], acc))
        return _L.select(ok, prod, _L.const(0, acc))

    t = b.reduce(out_shape, (Cg,) + kernel, body, "sum", dtype=acc)
    if bias is not None:
        t0 = t
        t = b.compute(out_shape, lambda *i: _L.binary("add", t0[i], _L.cast(bias[(i[1],)], acc)), dtype=acc)
    if acc != x.dtype:
        t1 = t
        return b.compute(out_shape, lambda *i: _L.cast(t1[i], x.dtype), dtype=x.dtype)
    return t


_OPS["conv_transpose"].lower = _conv_transpose_lower


def _pool_geometry(x, kernel, strides, dilations, pads, ceil_mode):
    ns = x.ndim - 2
    strides = tuple(strides) or (1,) * ns
    dilations = tuple(dilations) or (1,) * ns
    pads = tuple(pads) or (0,) * (2 * ns)
    outs, extra = [], []
    for i in range(ns):
        size = _static(x.shape[2 + i])
        if size is None:
            raise NotImplementedError("pooling over a symbolic spatial dim")
        c = window_count(size, kernel[i], strides[i], dilations[i], pads[i], pads[ns + i], ceil_mode)
        outs.append(c)
        need = (c - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1
        extra.append(max(0, need - (size + pads[i] + pads[ns + i])))
    return strides, dilations, pads, outs, extra


def _lowest_value(dt):
    if dt.is_float:
        return float("-inf")
    return int(np.iinfo(dt.np).min)


def _max_pool_lower(b, x, *, kernel, strides, dilations, pads, ceil_mode, with_indices, storage_order):
    ns = x.ndim - 2
    strides, dilations, pads, outs, extra = _pool_geometry(x, kernel, strides, dilations, pads, ceil_mode)
    xp, _ = _padded(b, x, pads, extra, _lowest_value(x.dtype))
    out_shape = tuple(x.shape[:2]) + tuple(_L.Const(o) for o in outs)

    def body(idx, r):
        src = list(idx[:2]) + [idx[2 + i] * strides[i] + r[i] * dilations[i] for i in range(ns)]
        return xp[tuple(src)]

    y = b.reduce(out_shape, tuple(kernel), body, "max")
    if not with_indices:
        return [y]
    am = b.reduce(out_shape, tuple(kernel), body, "argmax")
    spatial = [int(_static(s)) for s in x.shape[2:]]

    def idx_el(*idx):
        t = am[idx]
        taps = []
        rest = t
        for k in reversed(kernel):
            taps.append(rest % k)
            rest = rest // k
        taps = list(reversed(taps))
        flat = _L.Const(0)
        scale = 1
        order = range(ns) if storage_order else reversed(range(ns))
        for i in order:
            pos = idx[2 + i] * strides[i] - pads[i] + taps[i] * dilations[i]
            flat = flat + pos * scale
            scale *= spatial[i]
        return flat + (idx[0] * x.shape[1] + idx[1]) * scale

    return [y, b.compute(out_shape, idx_el, dtype="i64")]


_OPS["max_pool"].lower = _max_pool_lower


def _avg_pool_lower(b, x, *, kernel, strides, dilations, pads, ceil_mode, count_include_pad):
    ns = x.ndim - 2
    strides, dilations, pads, outs, extra = _pool_geometry(x, kernel, strides, dilations, pads, ceil_mode)
    xp, _ = _padded(b, x, pads, extra, 0)
    out_shape = tuple(x.shape[:2]) + tuple(_L.Const(o) for o in outs)
    f = "f64" if x.dtype.bits == 64 or not x.dtype.is_float else "f32"

    def body(idx, r):
        src = list(idx[:2]) + [idx[2 + i] * strides[i] + r[i] * dilations[i] for i in range(ns)]
        return _L.cast(xp[tuple(src)], f)

    total = b.reduce(out_shape, tuple(kernel), body, "sum")

    def count_el(*idx):
        n = None
        for i in range(ns):
            lo, hi = (-pads[i], _static(x.shape[2 + i]) + pads[ns + i]) if count_include_pad else \
                (0, _static(x.shape[2 + i]))
            # taps k with lo <= o*s - p + k*d < hi
            c = _L.Const(0)
            for k in range(kernel[i]):
                pos = idx[2 + i] * strides[i] - pads[i] + k * dilations[i]
                inside = _L.binary("and", _L.binary("ge", pos, lo), _L.binary("lt", pos, hi))
                c = c + _L.cast(inside, "i64")
            n = c if n is None else n * c
        return _L.cast(n, f)

    def el(*idx):
        v = _L.binary("div", total[idx], count_el(*idx))
        if not x.dtype.is_float:
            v = _L.unary("trunc", v)
        return _L.cast(v, x.dtype)

    return b.compute(out_shape, el, dtype=x.dtype)


_OPS["avg_pool"].lower = _avg_pool_lower
