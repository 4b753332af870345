"""The cpu executor and the artifact round trip, on a hand-written library implementing the kiln C ABI."""
import ctypes
import gc
import io
import json
import threading
import zipfile

import numpy as np
import pytest

import kiln
from kiln.runtime import CompiledModel, artifact, cpu
from runtime_cases import (BIAS, FAIL_BATCH, build_library, expected, host_triple, toy_artifact, toy_lib,  # noqa: F401
                           toy_manifest, toy_members, toy_model)


@pytest.mark.parametrize("batch", [1, 8])
def test_round_trip(toy_artifact, batch):
    model = kiln.load(toy_artifact)
    assert isinstance(model, kiln.CompiledModel)
    x = np.random.default_rng(batch).standard_normal((batch, 4)).astype(np.float32)
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 1
    (y,) = out
    assert y.dtype == np.float32 and y.shape == (batch, 4)
    np.testing.assert_array_equal(y, expected(x))


def test_in_process_model_matches_loaded(toy_lib, toy_artifact):
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(toy_model(toy_lib)(x)[0], kiln.load(toy_artifact)(x)[0])


def test_run_dict_api_and_keywords(toy_artifact):
    model = kiln.load(toy_artifact)
    x = np.ones((2, 4), np.float32)
    out = model.run({"x": x})
    assert list(out) == ["y"]
    np.testing.assert_array_equal(out["y"], expected(x))
    np.testing.assert_array_equal(model(x=x)[0], expected(x))


def test_outputs_are_fresh_per_call(toy_artifact):
    model = kiln.load(toy_artifact)
    x = np.ones((2, 4), np.float32)
    (a,) = model(x)
    (b,) = model(x * 2)
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, expected(x))


def test_workspace_grows_and_shrinking_batches_reuse_it(toy_artifact):
    model = kiln.load(toy_artifact)
    ex = model._executor
    for batch in (1, 64, 3, 200, 2):
        x = np.full((batch, 4), batch, np.float32)
        np.testing.assert_array_equal(model(x)[0], expected(x))
        assert ex._workspace.nbytes >= ex.workspace_size(np.array([batch], np.int64))
        assert ex._workspace.ctypes.data % 64 == 0
    assert ex._workspace.nbytes == ex.workspace_size(np.array([200], np.int64))


def test_zero_batch(toy_artifact):
    (y,) = kiln.load(toy_artifact)(np.empty((0, 4), np.float32))
    assert y.shape == (0, 4)


def test_nonzero_status_is_a_runtime_error(toy_artifact):
    model = kiln.load(toy_artifact)
    with pytest.raises(RuntimeError, match="kiln_run returned 7"):
        model(np.zeros((FAIL_BATCH, 4), np.float32))
    np.testing.assert_array_equal(model(np.zeros((2, 4), np.float32))[0], expected(np.zeros((2, 4))))


def test_one_native_call_per_inference(toy_artifact):
    model = kiln.load(toy_artifact)
    calls = model._executor.lib.toy_calls
    calls.restype = ctypes.c_int64
    before = calls()
    for _ in range(5):
        model(np.ones((3, 4), np.float32))
    assert calls() - before == 5


def test_num_threads(toy_lib, toy_artifact):
    threads = lambda m: m._executor.lib.toy_num_threads()  # noqa: E731
    assert threads(kiln.load(toy_artifact, num_threads=3)) == 3
    # the manifest's target options give the default; the argument wins
    manifest = toy_manifest(num_threads=2)
    members = toy_members(toy_lib, manifest)
    assert threads(CompiledModel(manifest, members)) == 2
    assert threads(CompiledModel(manifest, members, num_threads=5)) == 5
    with pytest.raises(ValueError, match="num_threads"):
        kiln.load(toy_artifact, num_threads=0)


def test_device_argument(toy_artifact):
    kiln.load(toy_artifact, device="cpu")
    with pytest.raises(ValueError, match="cpu"):
        kiln.load(toy_artifact, device="cuda:0")


def test_two_libraries_stay_apart(toy_lib, tmp_path):
    """Each model gets its own library, even when an earlier one was dropped and its fd number reused."""
    triple_lib = build_library(tmp_path, scale=3.0)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    m2 = toy_model(toy_lib)
    m3 = toy_model(triple_lib)
    np.testing.assert_array_equal(m2(x)[0], expected(x, 2.0))
    np.testing.assert_array_equal(m3(x)[0], expected(x, 3.0))
    del m3
    gc.collect()
    for scale, lib in ((3.0, triple_lib), (2.0, toy_lib), (3.0, triple_lib)):
        np.testing.assert_array_equal(toy_model(lib)(x)[0], expected(x, scale))
        gc.collect()


def test_temp_file_fallback(toy_lib, monkeypatch, tmp_path):
    monkeypatch.delattr(cpu.os, "memfd_create", raising=False)
    monkeypatch.setattr(cpu.tempfile, "tempdir", str(tmp_path))
    model = toy_model(toy_lib)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(model(x)[0], expected(x))
    assert list(tmp_path.iterdir()) == []  # the temporary library is gone


def test_concurrent_calls_share_the_workspace_safely(toy_artifact):
    model = kiln.load(toy_artifact)
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(50):
            batch = int(rng.integers(FAIL_BATCH + 1, 400))
            x = rng.standard_normal((batch, 4)).astype(np.float32)
            try:
                if not np.array_equal(model(x)[0], expected(x)):
                    errors.append(seed)
            except Exception as e:  # noqa: BLE001 - an exception in a thread must fail the test
                errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_weights_are_aligned_and_loaded_once(toy_artifact):
    model = kiln.load(toy_artifact)
    w = model._executor._weights
    assert w.ctypes.data % 64 == 0
    np.testing.assert_array_equal(w.view(np.float32), BIAS)
    # read straight from the zip into the aligned buffer the executor uses: no second copy
    assert np.shares_memory(w, np.frombuffer(model._members["weights.bin"], np.uint8))


def test_description(toy_artifact):
    model = kiln.load(toy_artifact)
    assert [(s.name, str(s.dtype), s.shape) for s in model.inputs] == [("x", "f32", ("batch", 4))]
    assert [(s.name, str(s.dtype), s.shape) for s in model.outputs] == [("y", "f32", ("batch", 4))]
    assert model.symbols == ["batch"]
    assert model.target["executor"] == "cpu"
    assert model.kernels[0]["name"] == "k0_mul_add"
    assert model.memory_plan["peak_bytes"] == "16*batch"
    assert "int32_t kiln_run(" in model.header
    assert model.manifest["format_version"] == 1
    assert set(model.manifest["members"]) == {"model.so", "weights.bin", "kiln.h"}
    r = repr(model)
    assert "cpu" in r and host_triple() in r and "x: f32[batch,4]" in r and "y: f32[batch,4]" in r


def test_in_process_manifest_gets_checksums(toy_lib):
    manifest = toy_manifest()
    members = toy_members(toy_lib, manifest)
    model = CompiledModel(manifest, members)
    assert "members" not in manifest  # the caller's dict is left alone
    assert model.manifest["members"]["weights.bin"] == artifact.sha256(BIAS.tobytes())


def test_save_is_deterministic_and_aligned(toy_lib, toy_artifact, tmp_path):
    a, b = tmp_path / "a.kiln", tmp_path / "b.kiln"
    toy_model(toy_lib).save(a)
    kiln.load(toy_artifact).save(b)  # a loaded model saves the same bytes
    assert a.read_bytes() == b.read_bytes() == toy_artifact.read_bytes()
    with zipfile.ZipFile(a) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        assert [i.filename for i in zf.infolist()][0] == "manifest.json"
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos.values())
        assert infos["model.so"].compress_type == zipfile.ZIP_STORED
        assert infos["weights.bin"].compress_type == zipfile.ZIP_STORED
        assert infos["manifest.json"].compress_type == zipfile.ZIP_DEFLATED
        assert infos["kiln.h"].compress_type == zipfile.ZIP_DEFLATED
        manifest = json.loads(zf.read("manifest.json"))
        for name, digest in manifest["members"].items():
            assert artifact.sha256(zf.read(name)) == digest
    data = a.read_bytes()
    for member in ("model.so", "weights.bin"):
        off = artifact.member_data_offset(a, member)
        assert off % 64 == 0
        with zipfile.ZipFile(a) as zf:
            assert data[off:off + infos[member].file_size] == zf.read(member)
    assert manifest["format"] == "kiln-artifact" and manifest["kiln_version"] == kiln.__version__


def test_save_and_load_through_file_objects(toy_lib):
    buf = io.BytesIO()
    artifact.write_artifact(buf, toy_manifest(), toy_members(toy_lib))
    buf.seek(0)
    model = kiln.load(buf)
    x = np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(model(x)[0], expected(x))


def test_large_stored_member_alignment(tmp_path):
    """Alignment holds whatever precedes a stored member (names of every length, earlier members)."""
    manifest = toy_manifest()
    for n in range(1, 70, 7):
        members = {"model.so": b"\x7fELF" * n, "weights.bin": BIAS.tobytes(), "kiln.h": "x" * n,
                   "a" * n + ".bin": bytes(range(n))}
        path = tmp_path / f"t{n}.kiln"
        artifact.write_artifact(path, manifest, members)
        for member in ("model.so", "weights.bin", "a" * n + ".bin"):
            assert artifact.member_data_offset(path, member) % 64 == 0
        m, read = artifact.read_artifact(path)
        assert bytes(read["model.so"]) == members["model.so"]


def test_check_host_refuses_other_machines():
    cpu.check_host({"triple": host_triple(), "features": "+avx2"}, cpuinfo="flags : fpu avx avx2\n")
    with pytest.raises(kiln.ArtifactError, match="compiled for riscv64-unknown-linux-gnu"):
        cpu.check_host({"triple": "riscv64-unknown-linux-gnu"})
    with pytest.raises(kiln.ArtifactError, match=r"avx512f.*lacks.*cpu 'sapphirerapids'"):
        cpu.check_host({"cpu": "sapphirerapids", "features": "+avx2,+avx512f,-amx-tile,+64bit"},
                       cpuinfo="flags : fpu avx avx2 fma\n")
    # features it does not know, and disabled ones, are not held against the machine
    cpu.check_host({"features": "+64bit,-avx512f,+cx8"}, cpuinfo="flags : fpu\n")
