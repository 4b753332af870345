"""`make demo`: compile the bundled example model for this CPU, save the artifact, load it back, run it.

    python examples/demo.py [model.onnx]

Steps: ONNX -> kiln IR (kiln.frontends.onnx.from_onnx) -> graph passes -> kernels (loop IR) -> LLVM ->
a shared library inside one .kiln artifact -> kiln.load -> native inference at two batch sizes, compared
with kiln's reference interpreter and, when installed, onnxruntime.
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import kiln


def main(path=None):
    path = Path(path or Path(__file__).with_name("tiny_cnn.onnx"))
    t0 = time.perf_counter()
    model = kiln.compile(path, progress=False)
    t_compile = time.perf_counter() - t0
    m = model.manifest
    print(f"model: {path.name}: compiled for {m['target']['options'].get('cpu')} in {t_compile:.2f} s, "
          f"{len(m['kernels'])} kernel calls, weights {m['weights']['size'] / 1e3:.1f} kB")
    print("kernels:")
    for k in m["kernels"]:
        print(f"  {k['name']:<28} -> {', '.join(k['outputs'])}")
    with tempfile.TemporaryDirectory() as d:
        art = Path(d) / (path.stem + ".kiln")
        model.save(art)
        print(f"artifact: {art.name}, {art.stat().st_size / 1e3:.1f} kB (manifest.json, model.so, weights.bin, kiln.h)")
        loaded = kiln.load(art)
    graph = model.graph
    (inp,) = graph.inputs
    rng = np.random.default_rng(0)
    for batch in (1, 4):
        shape = [batch if not isinstance(d, int) else d for d in graph.types[inp].shape]
        x = rng.standard_normal(shape).astype(np.float32)
        (y,) = loaded(x)
        t0 = time.perf_counter()
        for _ in range(20):
            loaded(x)
        dt = (time.perf_counter() - t0) / 20
        ref = kiln.interpret(graph, {inp: x})[graph.outputs[0]]
        print(f"batch {batch}: {graph.outputs[0]} {list(y.shape)}  top-1 {y.argmax(-1).tolist()}  "
              f"{dt * 1e3:.3f} ms per inference  max |native - interpreter| = {np.abs(y - ref).max():.2e}")
        try:
            import onnxruntime as ort
        except ImportError:
            continue
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        print(f"batch {batch}: max |kiln - onnxruntime| = {np.abs(y - want).max():.2e}")


if __name__ == "__main__":
    main(*sys.argv[1:])
