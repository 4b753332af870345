"""`make demo`: import the bundled example model, optimize it, run it, compare with onnxruntime.

    python examples/demo.py [model.onnx]

Steps: ONNX -> kiln IR (kiln.frontends.onnx.from_onnx) -> graph passes (kiln.passes) -> verify ->
run with kiln's reference interpreter at two batch sizes -> outputs, timing, and agreement with
onnxruntime when it is installed. (Native code generation arrives with the CPU target.)
"""
import sys
import time
from pathlib import Path

import numpy as np

import kiln
from kiln.frontends.onnx import from_onnx
from kiln.passes import PassContext, PassManager, default_pipeline


def main(path=None):
    path = Path(path or Path(__file__).with_name("tiny_cnn.onnx"))
    t0 = time.perf_counter()
    graph = from_onnx(path)
    t_import = time.perf_counter() - t0
    pm = PassManager(default_pipeline(), PassContext(debug=True))
    optimized = pm.run(graph)
    kiln.verify(optimized)
    print(f"model: {path.name}: imported in {t_import * 1e3:.1f} ms, "
          f"{len(graph.nodes)} nodes -> {len(optimized.nodes)} after passes")
    print(pm.report)
    print()
    print(optimized)
    print()
    rng = np.random.default_rng(0)
    (inp,) = optimized.inputs
    for batch in (1, 4):
        shape = [batch if not isinstance(d, int) else d for d in optimized.types[inp].shape]
        x = rng.standard_normal(shape).astype(np.float32)
        t0 = time.perf_counter()
        out = kiln.interpret(optimized, {inp: x})
        dt = time.perf_counter() - t0
        for name, y in out.items():
            print(f"batch {batch}: {name} {list(y.shape)}  top-1 {y.argmax(-1).tolist()}  "
                  f"first row {np.array2string(y[0], precision=4, max_line_width=200)}")
        print(f"batch {batch}: interpreted in {dt * 1e3:.2f} ms")
        try:
            import onnxruntime as ort
        except ImportError:
            continue
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        want = sess.run(None, {inp: x})
        err = max(float(np.max(np.abs(a - b))) for a, b in zip(out.values(), want))
        print(f"batch {batch}: max |kiln - onnxruntime| = {err:.2e}")


if __name__ == "__main__":
    main(*sys.argv[1:])
