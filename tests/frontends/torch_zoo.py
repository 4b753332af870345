"""Small PyTorch models for the torch frontend tests, built deterministically, and the error measure.

Each zoo entry builds an eval-mode module (fixed seed; batch-norm running statistics set to
non-trivial values so the folding is exercised) and example inputs with a dynamic batch dim.

Accuracy criterion used throughout: the normalised max error ``max|out - ref| / max|ref|``,
compared against a bound (1e-4 for float32 models). It is scale-free, and unlike an elementwise
relative error it does not blow up at outputs that are near zero.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def rel_err(out, ref) -> float:
    """max|out - ref| / max|ref| (0 when both are all zeros)."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref.detach().numpy() if isinstance(ref, torch.Tensor) else ref, dtype=np.float64)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    scale = np.abs(ref).max() if ref.size else 0.0
    err = np.abs(out - ref).max() if ref.size else 0.0
    return float(err / scale) if scale > 0 else float(err)


def _randomize_bn(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return module


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(16, 64), nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc3(F.gelu(self.fc2(F.relu(self.fc1(x)))))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(16 * 3 * 3, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = F.avg_pool2d(F.relu(self.bn2(self.conv2(x))), 3, stride=1, padding=1)
        x = F.adaptive_avg_pool2d(x, (3, 3))  # 8x8 -> 3x3: windows that overlap
        return self.head(torch.flatten(x, 1))


class HandAttention(nn.Module):
    """A pre-norm transformer block written out: fused qkv, heads, softmax attention, MLP."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(approximate="tanh"), nn.Linear(2 * d, d))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / (d // self.heads) ** 0.5
        y = att.softmax(-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
        self.enc_pre = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True, norm_first=True,
                                                  activation="gelu")
        self.hand = HandAttention()

    def forward(self, x):
        return self.hand(self.enc_pre(self.enc(x)))


class CausalAttention(nn.Module):
    """Self-attention with a causal mask, both through SDPA's is_causal and an explicit additive mask."""

    def __init__(self, d=32, heads=4, t=8):
        super().__init__()
        self.heads = heads
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(2 * d, d)
        mask = torch.full((t, t), float("-inf")).triu(1)
        self.register_buffer("mask", mask)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, -1).permute(0, 2, 1, 3) for z in (q, k, v))
        y1 = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y2 = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask)
        y = torch.cat([y1, y2], dim=-1).permute(0, 2, 1, 3).reshape(b, t, 2 * d)
        return self.out(y)


class MobileBlock(nn.Module):
    """An inverted-residual block: expand, depthwise (groups=channels), squeeze-excite, project."""

    def __init__(self, c=8, e=24):
        super().__init__()
        self.expand, self.bn1 = nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e)
        self.dw, self.bn2 = nn.Conv2d(e, e, 3, padding=1, groups=e, bias=False), nn.BatchNorm2d(e)
        self.se1, self.se2 = nn.Conv2d(e, 8, 1), nn.Conv2d(8, e, 1)
        self.project, self.bn3 = nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c)
        self.down = nn.Conv2d(c, 16, 3, stride=2, padding=1, groups=8)

    def forward(self, x):
        y = F.hardswish(self.bn1(self.expand(x)))
        y = F.relu6(self.bn2(self.dw(y)))
        s = F.hardsigmoid(self.se2(F.relu(self.se1(F.adaptive_avg_pool2d(y, 1)))))
        y = self.bn3(self.project(y * s))
        return F.relu6(self.down(x + y))


class EncoderDecoder(nn.Module):
    """A tiny U-Net: strided convs down, ConvTranspose2d and upsampling up, a skip connection."""

    def __init__(self):
        super().__init__()
        self.d1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.d2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, padding_mode="reflect")
        self.up1 = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)
        self.fuse = nn.Conv2d(16, 8, 3, padding="same")
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        a = F.leaky_relu(self.d1(x), 0.1)
        b = F.elu(self.d2(a))
        u = F.relu(self.up1(b))
        u = F.relu(self.fuse(torch.cat([u, a], dim=1)))
        u = F.interpolate(u, scale_factor=2, mode="bilinear", align_corners=False)
        y = torch.sigmoid(self.head(u))
        return y, F.interpolate(y, scale_factor=0.5, mode="nearest")


#: name -> (module factory, example input factory taking the batch size)
ZOO = {
    "mlp": (MLP, lambda b, g: torch.randn(b, 16, generator=g)),
    "cnn": (CNN, lambda b, g: torch.randn(b, 3, 16, 16, generator=g)),
    "transformer": (Transformer, lambda b, g: torch.randn(b, 6, 32, generator=g)),
    "causal_attention": (CausalAttention, lambda b, g: torch.randn(b, 8, 32, generator=g)),
    "mobile_block": (MobileBlock, lambda b, g: torch.randn(b, 8, 12, 12, generator=g)),
    "encoder_decoder": (EncoderDecoder, lambda b, g: torch.randn(b, 3, 16, 16, generator=g)),
}


def build(name: str, seed: int = 0):
    """The eval-mode module ``name`` with deterministic weights."""
    torch.manual_seed(seed)
    return _randomize_bn(ZOO[name][0](), seed + 1).eval()


def example(name: str, batch: int, seed: int = 0):
    """One example input of ``name`` with batch size ``batch``."""
    return ZOO[name][1](batch, torch.Generator().manual_seed(seed + batch))
