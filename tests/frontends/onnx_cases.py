"""Helpers shared by the ONNX frontend tests: one-node models, run by kiln and by onnxruntime.

A case is an op type, an opset and ``inputs``: a dict from input names to arrays in the node's
input order, where the name ``""`` (with ``None``) stands for an absent optional input. Names listed
in ``initializers`` become initializers holding their arrays; the others are graph inputs, fed at
run time. ``tests/frontends/conftest.py`` puts this folder on ``sys.path``: ``from onnx_cases import ...``.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import helper, numpy_helper  # noqa: E402

import kiln  # noqa: E402
from kiln.frontends.onnx import from_onnx  # noqa: E402


def value_info(name, arr, shape=None):
    """A typed graph input for ``arr``; ``shape`` overrides its shape (strings are symbolic dims)."""
    code = helper.np_dtype_to_tensor_dtype(arr.dtype)
    return helper.make_tensor_value_info(name, code, list(arr.shape) if shape is None else shape)


def feeds_of(inputs, initializers=()):
    """The run-time inputs of a case: the named, present inputs that are not initializers."""
    return {n: a for n, a in inputs.items() if n and a is not None and n not in initializers}


def make_model(op_type, inputs, opset, outputs=("y",), initializers=(), shapes=None, domain="", **attrs):
    """A one-node model of ``op_type``; see the module docstring for ``inputs`` and ``initializers``.

    ``shapes`` maps graph-input names to shapes that replace their arrays' shapes; outputs are left
    untyped (named ``""`` for an absent optional output). A ``domain`` other than the default one
    is imported at version 1.
    """
    shapes = shapes or {}
    node = helper.make_node(op_type, list(inputs), list(outputs), domain=domain or None, **attrs)
    g_inputs = [value_info(n, a, shapes.get(n)) for n, a in feeds_of(inputs, initializers).items()]
    inits = [numpy_helper.from_array(a, n) for n, a in inputs.items() if n and n in initializers]
    g_outputs = [onnx.ValueInfoProto(name=o) for o in outputs if o]  # types left to inference
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph([node], "t", g_inputs, g_outputs, inits), opset_imports=opsets)
    model.ir_version = 8 if opset < 21 else 10
    return model


def run_kiln(model, feeds):
    """Convert ``model`` and interpret it on ``feeds`` (by input name); the list of outputs."""
    g = from_onnx(model)
    return list(kiln.interpret(g, [feeds[n] for n in g.inputs]).values())


def run_ort(model, feeds):
    """Run ``model`` with onnxruntime on the CPU; feeds the model does not take are dropped."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    return sess.run(None, {k: v for k, v in feeds.items() if k in names})


def check(op_type, inputs, opset, outputs=("y",), initializers=(), expected=None, rtol=1e-5, atol=1e-6, **attrs):
    """Compare kiln with onnxruntime (or with the list ``expected``): dtypes, shapes and values.

    Returns kiln's outputs, a list.
    """
    model = make_model(op_type, inputs, opset, outputs, initializers, **attrs)
    feeds = feeds_of(inputs, initializers)
    got = run_kiln(model, feeds)
    if expected is None:
        expected = run_ort(model, feeds)
    assert len(got) == len(expected)
    for a, w in zip(got, expected):
        w = np.asarray(w)
        if w.dtype == np.uint8 and a.dtype.itemsize == 1 and a.dtype.kind == "V":
            w = w.view(a.dtype)  # onnxruntime hands float8 results back as raw bytes
        assert a.dtype == w.dtype and a.shape == w.shape, (a.dtype, a.shape, w.dtype, w.shape)
        np.testing.assert_allclose(a.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol)
    return got
