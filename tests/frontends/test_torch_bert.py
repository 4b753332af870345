"""A Hugging Face BERT encoder (built in code, small sizes, no download) through kiln.

``kiln.compile`` with dynamic batch and sequence dims (eager attention), and
``torch.compile(backend="kiln")`` (SDPA attention), each against eager PyTorch: the normalised
max error ``max|out - ref| / max|ref|`` of every output is below 1e-3.
"""
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import kiln  # noqa: E402
import torch_zoo  # noqa: E402
from torch.export import Dim  # noqa: E402

TOL = 1e-3


def _bert(attn: str):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=64, attn_implementation=attn)
    return transformers.BertModel(cfg).eval()


def _inputs(batch: int, seq: int):
    g = torch.Generator().manual_seed(batch * 100 + seq)
    ids = torch.randint(0, 120, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq // 2:] = 0  # padding in the last sequence
    return ids, mask


def test_kiln_compile_with_dynamic_batch_and_seq_matches_eager():
    model = _bert("eager")
    batch, seq = Dim("batch"), Dim("seq", max=64)
    spec = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    cm = kiln.compile(model, example_inputs=_inputs(2, 8), dynamic_shapes=spec)
    assert [(s.name, s.shape) for s in cm.inputs] == [("input_ids", ("batch", "seq")),
                                                        ("attention_mask", ("batch", "seq"))]
    assert [s.name for s in cm.outputs] == ["last_hidden_state", "pooler_output"]
    for b, t in ((2, 8), (3, 13)):
        ids, mask = _inputs(b, t)
        with torch.no_grad():
            ref = model(ids, attention_mask=mask)
        hidden, pooled = cm(ids, mask)
        assert torch_zoo.rel_err(hidden, ref.last_hidden_state) < TOL
        assert torch_zoo.rel_err(pooled, ref.pooler_output) < TOL


def test_torch_compile_backend_matches_eager():
    model = _bert("sdpa")
    ids, mask = _inputs(2, 8)
    with torch.no_grad():
        ref = model(ids, attention_mask=mask)
        out = torch.compile(model, backend="kiln", options={"fallback": False})(ids, attention_mask=mask)
    assert torch_zoo.rel_err(out.last_hidden_state, ref.last_hidden_state) < TOL
    assert torch_zoo.rel_err(out.pooler_output, ref.pooler_output) < TOL
