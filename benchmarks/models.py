"""Models for the benchmarks, built in code with ``onnx.helper`` (no downloads), with seeded random weights.

    bert_encoder(layers=6, hidden=384, heads=12, seq=128, ffn=1536)   # MiniLM-L6-shaped, the way HF exports it
    light_zoo("resnet50")                                              # the onnx package's light zoo graphs

The light zoo graphs ship without weights: every weight is a ``ConstantOfShape`` placeholder (zeros).
:func:`light_zoo` replaces each with a seeded random initializer, scaled (He init, positive batch-norm
scales and variances) so that activations stay of order one through the whole network.
``light_resnet50.onnx`` is the real ResNet-50 (Caffe2 export: 53 Conv + BatchNormalization, 16 residual
Sums, input ``1x3x224x224``), so no separate ResNet-50 builder is needed.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

LIGHT_ZOO = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
             "squeezenet", "vgg19", "zfnet512"]


def light_dir() -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def light_zoo(name: str, seed: int = 0, expose_logits: bool = True):
    """``light_<name>.onnx`` from the onnx package with its placeholder weights replaced by seeded random ones.

    ``expose_logits``: also output the tensor feeding the final Softmax: with random weights the softmax
    saturates to nearly one-hot, which would hide most differences between two engines.
    """
    import onnx

    model = with_random_weights(onnx.load(str(light_dir() / f"light_{name}.onnx")), seed)
    if expose_logits:
        for n in model.graph.node:
            if n.op_type == "Softmax":
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(n.input[0]))
    return model


def with_random_weights(model, seed: int = 0):
    """Replace every ConstantOfShape fed by an initializer with a seeded random initializer."""
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consumers = {}
    for n in model.graph.node:
        for k, i in enumerate(n.input):
            consumers.setdefault(i, []).append((n.op_type, k))
    keep, new_inits = [], []
    for n in model.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = tuple(int(d) for d in inits[n.input[0]])
            roles = consumers.get(n.output[0], [])
            if any(op == "BatchNormalization" and k in (1, 4) for op, k in roles):
                arr = rng.uniform(0.5, 1.5, shape)  # scale and variance: positive
            elif any(op == "BatchNormalization" for op, _ in roles) or len(shape) <= 1:
                arr = rng.uniform(-0.1, 0.1, shape)  # biases, means, shifts
            else:
                fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
                arr = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
            new_inits.append(numpy_helper.from_array(arr.astype(np.float32), n.output[0]))
        else:
            keep.append(n)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(keep)
    out.graph.initializer.extend(new_inits)
    used = {i for n in keep for i in n.input}
    live = [t for t in out.graph.initializer if t.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(live)
    live_names = {t.name for t in live}
    inputs = [i for i in out.graph.input if i.name in live_names or i.name not in inits]
    del out.graph.input[:]
    out.graph.input.extend(inputs)
    return out


class _Builder:
    """Nodes and initializers of one graph, with fresh names."""

    def __init__(self, rng):
        self.rng = rng
        self.nodes, self.inits = [], []
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, name: str, arr) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def weight(self, name: str, shape, std: float = 0.02) -> str:
        return self.const(name, (self.rng.standard_normal(shape) * std).astype(np.float32))

    def op(self, op_type: str, inputs, name: str | None = None, **attrs) -> str:
        from onnx import helper

        out = name or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"{op_type}_{out}", **attrs))
        return out


def bert_encoder(layers: int = 6, hidden: int = 384, heads: int = 12, seq: int = 128, ffn: int = 1536,
                 batch_symbolic: bool = True, vocab: int = 30522, max_positions: int = 512, seed: int = 0,
                 opset: int = 17):
    """A BERT encoder shaped like MiniLM-L6 (all-MiniLM-L6-v2), as HF's ONNX export writes it.

    Inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64 ``[batch, seq]``; ``batch`` is a
    symbolic dim unless ``batch_symbolic=False``, then 1); output ``last_hidden_state`` f32
    ``[batch, seq, hidden]``. Embeddings: word + position + token type Gathers, added, LayerNormalization.
    Each layer: Q/K/V MatMul+Add, Reshape (to a shape built from Shape/Gather/Concat, as the export does)
    and Transpose to heads, MatMul QK^T, Div by sqrt(head dim), Add the extended attention mask
    ((1 - mask) * -10000), Softmax, MatMul V, Transpose/Reshape back, output MatMul+Add, residual Add +
    LayerNormalization, FFN MatMul+Add, GELU as the Erf formula (x * 0.5 * (1 + erf(x / sqrt 2))),
    MatMul+Add, residual Add + LayerNormalization. Random weights with a fixed seed, std 0.02; layer-norm
    scales 1 and shifts 0.
    """
    import onnx
    from onnx import TensorProto, helper

    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    dh = hidden // heads
    b = _Builder(np.random.default_rng(seed))
    i64 = lambda name, v: b.const(name, np.asarray(v, dtype=np.int64))  # noqa: E731
    f32 = lambda name, v: b.const(name, np.asarray(v, dtype=np.float32))  # noqa: E731

    def layer_norm(x, prefix):
        g = f32(f"{prefix}.weight", np.ones(hidden))
        beta = f32(f"{prefix}.bias", np.zeros(hidden))
        return b.op("LayerNormalization", [x, g, beta], axis=-1, epsilon=1e-12)

    def linear(x, prefix, n_in, n_out):
        w = b.weight(f"{prefix}.weight", (n_in, n_out))
        bias = b.weight(f"{prefix}.bias", (n_out,))
        return b.op("Add", [b.op("MatMul", [x, w]), bias])

    # embeddings
    word = b.op("Gather", [b.weight("embeddings.word_embeddings.weight", (vocab, hidden)), "input_ids"], axis=0)
    pos_ids = i64("embeddings.position_ids", np.arange(seq)[None, :])
    pos = b.op("Gather", [b.weight("embeddings.position_embeddings.weight", (max_positions, hidden)), pos_ids],
               axis=0)
    typ = b.op("Gather", [b.weight("embeddings.token_type_embeddings.weight", (2, hidden)), "token_type_ids"],
               axis=0)
    h = layer_norm(b.op("Add", [b.op("Add", [word, typ]), pos]), "embeddings.LayerNorm")

    # extended attention mask: [batch, 1, 1, seq], 0 where attended, -10000 where masked
    mask = b.op("Unsqueeze", ["attention_mask", i64("mask_axes", [1, 2])])
    mask = b.op("Cast", [mask], to=TensorProto.FLOAT)
    mask = b.op("Sub", [f32("one", 1.0), mask])
    mask = b.op("Mul", [mask, f32("mask_min", -10000.0)])

    # the head shapes, built at run time from the batch dim like the exporter does
    batch = b.op("Unsqueeze", [b.op("Gather", [b.op("Shape", ["input_ids"]), i64("zero", 0)], axis=0),
                               i64("axis0", [0])])
    heads_shape = b.op("Concat", [batch, i64("heads_tail", [seq, heads, dh])], axis=0)
    merged_shape = b.op("Concat", [batch, i64("merged_tail", [seq, hidden])], axis=0)
    scale = f32("attention_scale", math.sqrt(dh))
    sqrt2 = f32("gelu_sqrt2", math.sqrt(2.0))
    half = f32("gelu_half", 0.5)

    for i in range(layers):
        p = f"encoder.layer.{i}"
        q = b.op("Transpose", [b.op("Reshape", [linear(h, f"{p}.attention.self.query", hidden, hidden),
                                                heads_shape])], perm=[0, 2, 1, 3])
        k = b.op("Transpose", [b.op("Reshape", [linear(h, f"{p}.attention.self.key", hidden, hidden),
                                                heads_shape])], perm=[0, 2, 3, 1])
        v = b.op("Transpose", [b.op("Reshape", [linear(h, f"{p}.attention.self.value", hidden, hidden),
                                                heads_shape])], perm=[0, 2, 1, 3])
        scores = b.op("Add", [b.op("Div", [b.op("MatMul", [q, k]), scale]), mask])
        probs = b.op("Softmax", [scores], axis=-1)
        ctx = b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = b.op("Reshape", [ctx, merged_shape])
        attn = linear(ctx, f"{p}.attention.output.dense", hidden, hidden)
        h = layer_norm(b.op("Add", [attn, h]), f"{p}.attention.output.LayerNorm")
        inter = linear(h, f"{p}.intermediate.dense", hidden, ffn)
        erf = b.op("Erf", [b.op("Div", [inter, sqrt2])])
        gelu = b.op("Mul", [b.op("Mul", [inter, b.op("Add", [erf, f32(f"{p}.gelu_one", 1.0)])]), half])
        out = linear(gelu, f"{p}.output.dense", ffn, hidden)
        h = layer_norm(b.op("Add", [out, h]), f"{p}.output.LayerNorm")

    b.nodes.append(helper.make_node("Identity", [h], ["last_hidden_state"], name="output"))
    bdim = "batch" if batch_symbolic else 1
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, [bdim, seq])
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [bdim, seq, hidden])]
    graph = helper.make_graph(b.nodes, f"bert_l{layers}_h{hidden}", inputs, outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="kiln-benchmarks")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def bert_inputs(batch: int = 1, seq: int = 128, vocab: int = 30522, seed: int = 0) -> dict:
    """Token ids, an attention mask whose last eighth is padding, and zero token types."""
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    mask[:, seq - seq // 8:] = 0
    return {"input_ids": rng.integers(0, vocab, (batch, seq)).astype(np.int64), "attention_mask": mask,
            "token_type_ids": np.zeros((batch, seq), np.int64)}
