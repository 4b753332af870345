"""Torch dtypes and tensors as kiln dtypes and numpy arrays."""
from __future__ import annotations

import numpy as np

from ...errors import ConversionError
from ...ir import dtypes as kd


def torch_dtype(dt):
    """The kiln dtype of a torch dtype."""
    import torch

    table = {
        torch.float32: kd.float32, torch.float16: kd.float16, torch.bfloat16: kd.bfloat16, torch.float64: kd.float64,
        torch.int8: kd.int8, torch.uint8: kd.uint8, torch.int16: kd.int16, torch.int32: kd.int32,
        torch.int64: kd.int64, torch.bool: kd.bool_,
    }
    for tname, kname in (("uint16", "u16"), ("uint32", "u32"), ("uint64", "u64"), ("float8_e4m3fn", "f8e4m3fn"),
                         ("float8_e5m2", "f8e5m2"), ("float8_e4m3fnuz", "f8e4m3fnuz"),
                         ("float8_e5m2fnuz", "f8e5m2fnuz")):
        if hasattr(torch, tname):
            table[getattr(torch, tname)] = kd.dtype(kname)
    if dt not in table:
        raise ConversionError(f"torch dtype {dt} has no kiln equivalent")
    return table[dt]


def to_numpy(t) -> np.ndarray:
    """A torch tensor's values as a numpy array (bfloat16 and float8 through ml_dtypes)."""
    import torch

    t = t.detach().cpu()
    if not t.is_contiguous():
        t = t.contiguous()
    kdt = torch_dtype(t.dtype)
    if t.dtype in (torch.bfloat16,) or kdt.kind == "float" and kdt.bits == 8:
        raw = t.view(torch.int16 if kdt.bits == 16 else torch.uint8).numpy()
        return raw.view(kdt.np).copy()
    return t.numpy().copy()
