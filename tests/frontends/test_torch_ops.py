"""Per-op coverage of the torch frontend: small modules converted, run by ``kiln.interpret``, vs eager.

Floats must agree to a normalised max error (``max|out - ref| / max|ref|``) of 1e-5, integers and
bools exactly, NaNs in the same places. A representative subset is also compiled natively.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.export import Dim  # noqa: E402

import kiln  # noqa: E402
import torch_zoo  # noqa: E402
from kiln.frontends.torch import from_torch  # noqa: E402

TOL = 1e-5
B = Dim("batch")


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def rn(*shape, seed=0):
    return torch.randn(*shape, generator=_g(seed))


def ri(*shape, lo=-5, hi=5, seed=0):
    return torch.randint(lo, hi, shape, generator=_g(seed))


def _seeded(factory):
    torch.manual_seed(0)
    return factory().eval()


X4 = rn(2, 4, 8, 8)
A = rn(3, 6)
IA = ri(3, 6)
Q, K, V = rn(2, 2, 5, 8, seed=1), rn(2, 2, 5, 8, seed=2), rn(2, 2, 5, 8, seed=3)

# name -> (callable or module factory, inputs, dynamic_shapes)
CASES = {
    # matmuls and linear layers
    "linear3d": (lambda: nn.Linear(8, 3), (rn(2, 5, 8),), ({0: B},)),
    "matmul_bcast": (lambda a, b: a @ b, (rn(2, 1, 3, 4), rn(5, 4, 2)), None),
    "mv_dot": (lambda a, v: (a @ v, v @ v), (rn(3, 4), rn(4)), None),
    "baddbmm": (lambda b, x, y: torch.baddbmm(b, x, y, beta=0.5, alpha=2), (rn(2, 3, 5), rn(2, 3, 4), rn(2, 4, 5)),
                None),
    "einsum": (lambda a, b: torch.einsum("bij,bjk->bik", a, b), (rn(2, 3, 4), rn(2, 4, 5)), None),
    # convolutions and padding modes
    "conv1d_groups_dilation": (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2),
                               (rn(2, 4, 17),), None),
    "conv2d_depthwise": (lambda: nn.Conv2d(4, 4, 3, padding=1, groups=4), (X4,), ({0: B},)),
    "conv2d_same": (lambda: nn.Conv2d(4, 4, 4, padding="same"), (X4,), None),
    "conv2d_reflect": (lambda: nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), (X4,), ({0: B},)),
    "conv2d_replicate": (lambda: nn.Conv2d(4, 4, 3, padding=1, padding_mode="replicate"), (X4,), None),
    "conv2d_circular": (lambda: nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"), (X4,), None),
    "conv3d": (lambda: nn.Conv3d(2, 3, 3, padding=1), (rn(1, 2, 4, 5, 6),), None),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1), (X4,),
                         ({0: B},)),
    "conv_transpose2d_groups": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, dilation=2),
                                (X4,), None),
    "pad_modes": (lambda a: (F.pad(a, (1, 2)), F.pad(a, (1, 1, 2, 0), value=3.0),
                             F.pad(a[None], (2, 2), mode="reflect"), F.pad(a[None], (2, 2), mode="replicate"),
                             F.pad(a[None, None], (2, 2, 1, 1), mode="circular")), (A,), None),
    # normalisation
    "batch_norm2d": (lambda: torch_zoo._randomize_bn(nn.BatchNorm2d(4), 3), (X4,), ({0: B},)),
    "batch_norm1d": (lambda: torch_zoo._randomize_bn(nn.BatchNorm1d(4), 3), (rn(3, 4, 5),), None),
    "batch_norm_no_stats": (lambda: nn.BatchNorm2d(4, track_running_stats=False), (X4,), None),
    "instance_norm": (lambda: nn.InstanceNorm2d(4, affine=True), (X4,), None),
    "layer_norm2d": (lambda: nn.LayerNorm([8, 8]), (X4,), ({0: B},)),
    "group_norm": (lambda: nn.GroupNorm(2, 4), (X4,), ({0: B},)),
    # pooling
    "max_pool_ceil": (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (rn(1, 2, 10, 10),), None),
    "max_pool_indices": (lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True), (rn(1, 2, 9, 9),), None),
    "max_pool1d": (lambda: nn.MaxPool1d(3, 2), (rn(2, 3, 11),), None),
    "max_pool3d": (lambda: nn.MaxPool3d(2), (rn(1, 2, 4, 6, 6),), None),
    "avg_pool": (lambda: nn.AvgPool2d(3, 2, 1), (X4,), ({0: B},)),
    "avg_pool_exclude_pad": (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (X4,), None),
    "avg_pool_ceil": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True), (rn(1, 2, 9, 9),), None),
    "avg_pool1d": (lambda: nn.AvgPool1d(3, 2, 1), (rn(2, 3, 11),), None),
    "adaptive_avg_uneven": (lambda x: F.adaptive_avg_pool2d(x, (3, 5)), (X4,), ({0: B},)),
    "adaptive_avg_global": (lambda x: F.adaptive_avg_pool2d(x, 1), (X4,), None),
    "adaptive_avg1d": (lambda: nn.AdaptiveAvgPool1d(4), (rn(2, 3, 11),), None),
    "adaptive_max_uneven": (lambda x: F.adaptive_max_pool2d(x, (3, 5)), (X4,), None),
    "adaptive_max_even": (lambda x: F.adaptive_max_pool2d(x, (4, 2)), (X4,), None),
    # resampling
    "upsample_nearest": (lambda x: (F.interpolate(x, scale_factor=2), F.interpolate(x, scale_factor=1.5),
                                    F.interpolate(x, size=(5, 11))), (X4,), ({0: B},)),
    "upsample_nearest_exact": (lambda x: F.interpolate(x, size=(5, 11), mode="nearest-exact"), (X4,), None),
    "upsample_bilinear": (lambda x: (F.interpolate(x, scale_factor=2, mode="bilinear"),
                                     F.interpolate(x, size=(3, 5), mode="bilinear"),
                                     F.interpolate(x, size=(11, 13), mode="bilinear", align_corners=True)),
                          (X4,), None),
    "upsample_bicubic": (lambda x: (F.interpolate(x, size=(11, 13), mode="bicubic"),
                                    F.interpolate(x, size=(11, 13), mode="bicubic", align_corners=True)), (X4,), None),
    "upsample_linear1d_trilinear": (lambda a, b: (F.interpolate(a, size=13, mode="linear"),
                                                  F.interpolate(b, scale_factor=2, mode="trilinear")),
                                    (rn(2, 3, 7), rn(1, 2, 3, 4, 5)), None),
    "grid_sample": (lambda x, g: F.grid_sample(x, g, align_corners=False), (rn(1, 2, 5, 5), rn(1, 3, 4, 2) * 0.8),
                    None),
    "pixel_shuffle": (lambda x, y: (F.pixel_shuffle(x, 2), F.pixel_unshuffle(y, 2)), (rn(1, 8, 3, 3), rn(1, 2, 4, 6)),
                      None),
    # attention
    "sdpa_causal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), (Q, K, V), None),
    "sdpa_float_mask": (lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), (Q, K, V, rn(5, 5)),
                        None),
    "sdpa_bool_mask": (lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                       (Q, K, V, rn(5, 5, seed=4) > -0.5), None),
    "mha": (lambda: nn.MultiheadAttention(16, 4, batch_first=True), (rn(2, 5, 16),) * 3, None),
    # activations
    "activations": (lambda x: (F.hardswish(x), F.hardsigmoid(x), F.relu6(x), F.leaky_relu(x, 0.2), F.elu(x),
                               F.silu(x), F.gelu(x), F.gelu(x, approximate="tanh"), F.softplus(x), F.mish(x),
                               F.selu(x), F.celu(x, 0.5), F.hardtanh(x, -0.5, 0.5), F.threshold(x, 0.1, 20.0),
                               F.hardshrink(x), F.softshrink(x), F.logsigmoid(x), F.softsign(x), F.tanhshrink(x),
                               F.glu(x)), (A,), None),
    "prelu": (lambda: nn.PReLU(4), (X4,), None),
    "softmax": (lambda x: (x.softmax(1), x.log_softmax(0), F.softmin(x, 1)), (A,), None),
    "masked_softmax": (lambda x: x.masked_fill(torch.ones(3, 6).tril() == 0, float("-inf")).softmax(-1), (A,), None),
    # elementwise math, casts, type promotion
    "math": (lambda x: (x.exp(), x.abs().log(), x.sin(), x.cos(), x.tanh(), x.sigmoid(), x.erf(), x.floor(), x.ceil(),
                        x.round(), x.trunc(), x.sign(), x.reciprocal(), x.abs().rsqrt(), x.abs().sqrt(), x.expm1(),
                        x.abs().log1p(), x.abs().log2(), x.frac(), torch.atan2(x, x.flip(0)), x.exp2(),
                        x.clamp(min=0), x.clamp(-0.5, 0.5), torch.hypot(x, x * 2)), (A,), None),
    "pow": (lambda x: (x ** 2, x.abs() ** 0.5, x ** 3, 2 ** x, x.abs() ** -0.5, x ** -1, x.abs() ** 1.7), (A,), None),
    "int_division": (lambda x: (x // 3, torch.div(x, 3, rounding_mode="trunc"), x / 3, x % 3, torch.fmod(x, 3),
                                torch.div(x, -2, rounding_mode="floor")), (IA,), None),
    "float_division": (lambda x: (x // 0.3, torch.div(x, 0.3, rounding_mode="trunc"), x % 0.3, torch.fmod(x, 0.3)),
                       (A,), None),
    "compare_promote": (lambda x, i: (x > 0.5, i == 2, i <= x, i != 3, x + i + 1, i * 0.5, (i > 0) + (i < 2)),
                        (A, IA), None),
    "logic": (lambda x: (((x > 0) & (x < 1)) | ~(x > 2) ^ (x == 0), torch.logical_xor(x > 0, x < 0.5),
                         torch.isnan(x.log()), torch.isinf(1 / (x * 0)), torch.isfinite(x.log())), (A,), None),
    "casts": (lambda x: (x.to(torch.int32), x.half().float(), (x > 0).float(), x.long(), x.to(torch.float64)),
              (A,), None),
    "where_clamp_tensors": (lambda x, lo, hi: (torch.where(x > 0, x, 0.5), x.clamp(lo, hi),
                                               torch.maximum(x, lo), torch.minimum(x, hi)),
                            (A, rn(6) - 0.5, rn(3, 1) + 0.5), None),
    "nan_to_num": (lambda x: torch.nan_to_num(torch.log(x)), (A,), None),
    # reductions
    "reductions": (lambda x: (x.mean(), x.sum((0, 1), keepdim=True), x.var(), x.std(0), x.var(1, correction=0),
                              x.amax(1), x.amin(0, keepdim=True), x.prod(1), x.logsumexp(1)), (A,), None),
    "var_mean_dyn": (lambda x: torch.var_mean(x, 0), (A,), ({0: B},)),
    "arg_reductions": (lambda x: (x.argmax(1, keepdim=True), x.argmax(), x.argmin(0), x.max(1), x.min(0, keepdim=True)),
                       (A,), None),
    "any_all": (lambda x: ((x > 0).any(1), (x > 0).all(), (x > -5).all(0)), (A,), None),
    "int_reductions": (lambda x: (x.sum(1), (x > 0).sum(), x.cumsum(0), x.prod(1)), (IA,), None),
    "norms": (lambda x: (torch.linalg.vector_norm(x, 2, 1), x.norm(p=1, dim=0),
                         torch.linalg.vector_norm(x, float("inf")), x.norm(p=3), F.normalize(x, dim=1),
                         F.cosine_similarity(x, x.flip(0))), (A,), None),
    "scans": (lambda x: (x.cumsum(1), x.cumprod(0)), (A,), None),
    "topk_sort": (lambda x: (x.topk(2, 1), x.sort(1, descending=True), x.argsort(0)), (A,), None),
    # movement
    "slices_dyn": (lambda x: (x[:, 1:], x[..., -1], x[:, ::2], x[:, 2:-1], x[-1], x[:2]), (rn(4, 6),), ({0: B},)),
    "views_dyn": (lambda x: (x.view(x.shape[0], 2, 3).permute(2, 0, 1).reshape(3, -1),
                             x.unsqueeze(0).unsqueeze(-1).squeeze(0).transpose(0, 1).flatten(), x.t().contiguous()),
                  (rn(4, 6),), ({0: B},)),
    "expand_cat_stack": (lambda x, y: (x[:, None, :].expand(-1, 3, -1) + y, torch.cat([x, x * 2], 0),
                                       torch.stack([x, x + 1], 1)), (rn(4, 6), rn(3, 6)), ({0: B}, None)),
    "split_chunk_unbind": (lambda x: x.split(4, 1) + x.split([1, 2, 3], 1) + x.chunk(3, 1) + x.unbind(0), (A,), None),
    "repeat_flip_roll": (lambda x: (x.repeat(2, 1, 3), x.flip(0, 1), x.roll(2, 1), x.roll((1, -1), (0, 1)), x.roll(2),
                                    x.narrow(1, 1, 3), x.tril(), x.triu(1)), (A,), None),
    # factories
    "factories": (lambda x: (x + torch.arange(6), x + torch.arange(0, 3, 0.5), torch.zeros_like(x) + torch.ones(6),
                             torch.full((2, 3), 7.0), x.new_full((2,), 3.0), torch.eye(3) + 1), (A,), None),
    "factories_dyn": (lambda x: (x + torch.arange(x.shape[0])[:, None], x + torch.full((x.shape[0], 6), 2.0),
                                 torch.zeros_like(x) + torch.ones_like(x) * x), (A,), ({0: B},)),
    # indexing
    "embedding_dyn": (lambda: nn.Embedding(10, 4), (ri(2, 3, lo=0, hi=10),), ({0: B},)),
    "index_tensor": (lambda x, i, j: (x[:, i], x[:, i, j], x[i % 2, :, j], x[:, :, i]), (X4, torch.tensor([0, 2, -1]),
                                                                                    torch.tensor([1, 3, 4])), None),
    "index_select_gather": (lambda x, i, j: (x.index_select(1, i), x.gather(1, j)),
                            (A, torch.tensor([0, 5, 1]), torch.tensor([[0, 5], [1, 1], [2, 3]])), None),
    "scatter": (lambda x, i, s: (x.scatter(1, i, s), x.scatter_add(1, i, s), x.scatter_reduce(1, i, s, "amax"),
                                 x.scatter(1, i, 2.5)), (torch.zeros(3, 5), torch.tensor([[0, 1], [2, 3], [4, 0]]),
                                                         rn(3, 2)), None),
    "index_put": (lambda x, i, v: (x.index_put((i,), v), x.index_put((i,), v, accumulate=True),
                                   x.clone().index_put_((i, i % 3), v[:, 0])),
                  (torch.zeros(5, 3), torch.tensor([0, 2, 0]), rn(3, 3)), None),
    "bucketize": (lambda x: (torch.bucketize(x, torch.tensor([-1.0, 0.0, 1.0])),
                             torch.bucketize(x.round(), torch.tensor([-1.0, 0.0, 1.0]), right=True, out_int32=True)),
                  (A,), None),
    "masked_fill_setitem": (lambda x: (x.masked_fill(x > 0, -1.0), torch.where(x < 0, x, x * 2)), (A,), None),
}

COMPILED = ["conv2d_reflect", "conv_transpose2d", "group_norm", "max_pool_indices", "adaptive_avg_uneven",
            "upsample_bilinear", "sdpa_causal", "int_division", "topk_sort", "index_tensor", "scatter",
            "slices_dyn", "factories_dyn", "embedding_dyn"]


def _model(case):
    fn = case[0]
    if isinstance(fn, type(lambda: 0)) and fn.__code__.co_argcount == 0:
        return _seeded(fn)
    return fn


def _flat(ref):
    if isinstance(ref, torch.Tensor):
        return [ref]
    out = []
    for r in ref:
        out += _flat(r)
    return out


def _compare(outs, model, args, what):
    with torch.no_grad():
        refs = _flat(model(*args))
    assert len(outs) == len(refs), what
    for k, (o, r) in enumerate(zip(outs, refs)):
        r = r.numpy()
        assert o.shape == r.shape and o.dtype == r.dtype, f"{what} output {k}: {o.dtype}{o.shape} vs {r.dtype}{r.shape}"
        if r.dtype.kind == "f":
            assert np.array_equal(np.isnan(o), np.isnan(r)), f"{what} output {k}: NaNs differ"
            ok = ~np.isnan(r)
            err = torch_zoo.rel_err(o[ok], r[ok]) if ok.any() else 0.0
            assert err < TOL, f"{what} output {k}: normalised max error {err:.2e}"
        else:
            np.testing.assert_array_equal(o, r, err_msg=f"{what} output {k}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_interpreted(name):
    case = CASES[name]
    model, args, dyn = _model(case), case[1], case[2]
    graph = from_torch(model, args, dynamic_shapes=dyn)
    outs = list(kiln.interpret(graph, [a.numpy() for a in args]).values())
    _compare(outs, model, args, name)


@pytest.mark.parametrize("name", COMPILED)
def test_compiled(name):
    case = CASES[name]
    model, args, dyn = _model(case), case[1], case[2]
    cm = kiln.compile(model, example_inputs=args, dynamic_shapes=dyn)
    _compare(list(cm(*args)), model, args, name)
    if dyn:  # the batch dim is symbolic: another batch size runs on the same compiled model
        bigger = tuple(torch.cat([a, a[:1]], 0) if s else a for a, s in zip(args, dyn))
        _compare(list(cm(*bigger)), model, bigger, f"{name} (batch + 1)")
