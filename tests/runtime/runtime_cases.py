"""A hand-written shared library implementing the kiln C ABI, and artifacts built around it.

The toy model is ``y = x * scale + b`` with ``x, y: f32[batch, 4]`` and ``b`` a 4-float weight. The
library insists on what the ABI promises (aligned workspace and weights, a workspace of the size it
asked for, which it fills entirely and holds across a short sleep, so that two calls sharing it at
once would corrupt each other's results) and fails on purpose for ``batch == 13``.
"""
import os
import platform
import shutil
import subprocess

import numpy as np
import pytest

from kiln.compiler.artifact import build_manifest, make_members
from kiln.runtime import CompiledModel

CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler")

BIAS = np.array([0.5, -1.0, 2.0, 10.0], dtype=np.float32)
FAIL_BATCH = 13

TOY_C = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <string.h>
#include <time.h>

static int32_t num_threads = -1;
static int64_t calls = 0;

int64_t kiln_workspace_size(const int64_t *syms) {
    return syms[0] * 4 * (int64_t)sizeof(float) + 100;  /* depends on the batch */
}

int32_t kiln_run(const void *const *inputs, void *const *outputs, const int64_t *syms,
                 void *workspace, const void *weights) {
    const float *x = (const float *)inputs[0];
    float *y = (float *)outputs[0];
    const float *b = (const float *)weights;
    float *t = (float *)workspace;
    int64_t n = syms[0], i;
    if (((uintptr_t)workspace % 64) || ((uintptr_t)weights % 64)) return 5;
    if (n == FAIL_BATCH) return 7;
    memset(workspace, 0xAB, (size_t)kiln_workspace_size(syms));  /* the whole workspace is ours */
    for (i = 0; i < n * 4; i++) t[i] = x[i] * SCALE;
    struct timespec pause = {0, 20000};  /* 20 us with the workspace half-written: races show */
    nanosleep(&pause, NULL);
    for (i = 0; i < n * 4; i++) y[i] = t[i] + b[i % 4];
    calls++;
    return 0;
}

void kiln_set_num_threads(int32_t n) { num_threads = n; }
int32_t toy_num_threads(void) { return num_threads; }
int64_t toy_calls(void) { return calls; }
"""


def host_triple() -> str:
    return f"{platform.machine()}-unknown-linux-gnu"


def build_library(directory, scale: float = 2.0, source: str = TOY_C) -> bytes:
    """Compile the toy library (``cc -shared -fPIC -O2``) and return its bytes."""
    directory = str(directory)
    c = os.path.join(directory, f"toy_{scale:g}.c")
    so = os.path.join(directory, f"toy_{scale:g}.so")
    with open(c, "w") as f:
        f.write(source)
    subprocess.run([CC, "-shared", "-fPIC", "-O2", f"-DSCALE={float(scale)!r}f", f"-DFAIL_BATCH={FAIL_BATCH}",
                    "-o", so, c], check=True, capture_output=True)
    with open(so, "rb") as f:
        return f.read()


def toy_manifest(num_threads=None, **kw) -> dict:
    target = {"name": "cpu", "executor": "cpu",
              "options": {"triple": host_triple(), "cpu": "generic", "features": "", "opt_level": 2,
                          "num_threads": num_threads}}
    return build_manifest(
        target,
        inputs=[{"name": "x", "dtype": "f32", "shape": ["batch", 4]}],
        outputs=[("y", "f32", ["batch", 4])],
        weights_size=BIAS.nbytes,
        kernels=[{"name": "k0_mul_add", "ops": ["mul", "add"], "inputs": ["x", "b"], "outputs": ["y"]}],
        memory_plan={"buffers": [{"value": "t0", "offset": 0, "bytes": "16*batch"}], "peak_bytes": "16*batch"},
        **kw,
    )


def toy_members(lib: bytes, manifest=None) -> dict:
    return make_members(manifest or toy_manifest(), binary=lib, weights=BIAS.tobytes())


def toy_model(lib: bytes, **kw) -> CompiledModel:
    manifest = toy_manifest()
    return CompiledModel(manifest, toy_members(lib, manifest), **kw)


def expected(x, scale: float = 2.0):
    return np.asarray(x, np.float32) * np.float32(scale) + BIAS


@pytest.fixture(scope="session")
def toy_lib(tmp_path_factory):
    if CC is None:
        pytest.skip("no C compiler")
    return build_library(tmp_path_factory.mktemp("toy"))


@pytest.fixture()
def toy_artifact(toy_lib, tmp_path):
    path = tmp_path / "toy.kiln"
    toy_model(toy_lib).save(path)
    return path
