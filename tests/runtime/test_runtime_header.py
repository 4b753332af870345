"""The generated kiln.h compiles, and a C program using it runs the artifact's library by itself."""
import subprocess
import zipfile

import numpy as np
import pytest

from kiln.compiler.artifact import c_header
from runtime_cases import CC, expected, needs_cc, toy_artifact, toy_lib, toy_manifest  # noqa: F401

MAIN_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "kiln.h"

int main(int argc, char **argv) {
    const int64_t syms[KILN_NUM_SYMBOLS] = {3};
    float x[3 * 4], y[3 * 4];
    for (int i = 0; i < 12; i++) x[i] = (float)i - 5.0f;

    if (argc < 2) return 9;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 10;
    void *weights = aligned_alloc(KILN_ALIGNMENT, 64 * ((KILN_WEIGHTS_SIZE + 63) / 64));
    if (fread(weights, 1, KILN_WEIGHTS_SIZE, f) != KILN_WEIGHTS_SIZE) return 11;
    fclose(f);

    int64_t ws_size = kiln_workspace_size(syms);
    void *workspace = aligned_alloc(KILN_ALIGNMENT, 64 * ((ws_size + 63) / 64));
    const void *inputs[KILN_NUM_INPUTS] = {x};
    void *outputs[KILN_NUM_OUTPUTS] = {y};
    kiln_set_num_threads(1);
    int32_t status = kiln_run(inputs, outputs, syms, workspace, weights);
    if (status != 0) return 12;
    for (int i = 0; i < 12; i++) printf("%.6g\n", y[i]);
    return 0;
}
"""


@needs_cc
def test_c_program_runs_the_artifact(toy_artifact, tmp_path):
    with zipfile.ZipFile(toy_artifact) as zf:
        zf.extractall(tmp_path, members=["model.so", "weights.bin", "kiln.h"])
    (tmp_path / "main.c").write_text(MAIN_C)
    exe = tmp_path / "main"
    build = subprocess.run([CC, "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(tmp_path / "main.c"),
                            str(tmp_path / "model.so"), f"-Wl,-rpath,{tmp_path}"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), str(tmp_path / "weights.bin")], capture_output=True, text=True)
    assert run.returncode == 0, (run.returncode, run.stderr)
    got = np.array([float(v) for v in run.stdout.split()], np.float32).reshape(3, 4)
    x = (np.arange(12, dtype=np.float32) - 5).reshape(3, 4)
    np.testing.assert_allclose(got, expected(x), rtol=1e-6)


@needs_cc
@pytest.mark.parametrize("lang", ["c", "c++"])
def test_header_compiles_cleanly(tmp_path, lang):
    import shutil

    compiler = CC if lang == "c" else shutil.which("c++")
    if compiler is None:
        pytest.skip(f"no {lang} compiler")
    (tmp_path / "kiln.h").write_text(c_header(toy_manifest()))
    src = tmp_path / ("t.c" if lang == "c" else "t.cpp")
    src.write_text('#include "kiln.h"\n#include "kiln.h"\nint f(void) { return KILN_NUM_INPUTS; }\n')
    r = subprocess.run([compiler, "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", str(src), "-o", str(tmp_path / "t.o")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_header_describes_the_signature():
    manifest = toy_manifest()
    manifest["inputs"][0]["name"] = "evil*/name"
    h = c_header(manifest)
    assert "syms[0] = batch" in h
    assert "inputs[0] evil* /name: f32 [batch, 4]" in h
    assert "outputs[0] y: f32 [batch, 4]" in h
    assert "#define KILN_WEIGHTS_SIZE 16" in h
    assert h.count("*/") == h.count("/*")  # no comment closes early
    for decl in ("int64_t kiln_workspace_size(const int64_t *syms);",
                 "int32_t kiln_run(const void *const *inputs, void *const *outputs, const int64_t *syms,",
                 "void kiln_set_num_threads(int32_t n);"):
        assert decl in h
