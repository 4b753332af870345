"""Artifacts that must be refused, each with a message naming what is wrong; never a bare zipfile, json or
ctypes traceback."""
import json
import os
import sys
import zipfile

import pytest

import kiln
from kiln.runtime.artifact import write_artifact

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "runtime"))
from runtime_cases import BIAS, toy_artifact, toy_lib, toy_manifest, toy_members  # noqa: E402,F401


def _members(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _rezip(path, members: dict):
    """Write ``members`` (raw bytes, manifest.json included, no checksums recomputed) as a zip at ``path``."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _with_manifest(path, out, **changes):
    members = _members(path)
    manifest = json.loads(members["manifest.json"])
    for k, v in changes.items():
        if v is None:
            manifest.pop(k, None)
        else:
            manifest[k] = v
    members["manifest.json"] = json.dumps(manifest)
    return _rezip(out, members)


def _refused(path, match, **kw):
    with pytest.raises(kiln.ArtifactError, match=match) as info:
        kiln.load(path, **kw)
    # the cause is never a library's own exception leaking through
    e = info.value
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)
    return str(info.value)


def test_missing_file(tmp_path):
    _refused(tmp_path / "nope.kiln", "no such artifact file: .*nope.kiln")


def test_directory(tmp_path):
    _refused(tmp_path, "is not a file")


@pytest.mark.parametrize("content", [b"", b"this is not a model at all \x00\xff" * 10, b"PK\x03\x04 truncated"])
def test_not_a_zip(tmp_path, content):
    p = tmp_path / "garbage.kiln"
    p.write_bytes(content)
    _refused(p, r"garbage.kiln is not a kiln artifact \(not a zip archive\)")


def test_zip_without_manifest(tmp_path):
    p = _rezip(tmp_path / "plain.zip", {"readme.txt": b"hello"})
    _refused(p, r"plain.zip is not a kiln artifact \(it has no manifest.json\)")


def test_manifest_not_json(toy_artifact, tmp_path):
    members = _members(toy_artifact)
    members["manifest.json"] = b'{"format": "kiln-artifact", '
    _refused(_rezip(tmp_path / "bad.kiln", members), "manifest.json is not valid JSON")


def test_manifest_not_an_object(toy_artifact, tmp_path):
    members = _members(toy_artifact)
    members["manifest.json"] = b"[1, 2, 3]"
    _refused(_rezip(tmp_path / "bad.kiln", members), "must be a JSON object, got list")


def test_wrong_format(toy_artifact, tmp_path):
    _refused(_with_manifest(toy_artifact, tmp_path / "f.kiln", format="onnx"),
             "not a kiln artifact manifest \\(format 'onnx', expected 'kiln-artifact'\\)")


def test_newer_format_version(toy_artifact, tmp_path):
    msg = _refused(_with_manifest(toy_artifact, tmp_path / "v.kiln", format_version=2),
                   "format version 2 is newer than this kiln reads")
    assert "kiln reads format version 1" in msg and "upgrade kiln" in msg


@pytest.mark.parametrize("version", [0, "1", None])
def test_bad_format_version(toy_artifact, tmp_path, version):
    p = _with_manifest(toy_artifact, tmp_path / "v.kiln", format_version=version)
    _refused(p, "format_version")


def test_missing_member(toy_artifact, tmp_path):
    members = _members(toy_artifact)
    del members["weights.bin"]
    _refused(_rezip(tmp_path / "m.kiln", members), "member 'weights.bin' is missing")


def test_missing_binary(toy_artifact, tmp_path):
    members = _members(toy_artifact)
    del members["model.so"]
    _refused(_rezip(tmp_path / "m.kiln", members), "member 'model.so' is missing")


def test_member_without_checksum(toy_artifact, tmp_path):
    members = _members(toy_artifact)
    manifest = json.loads(members["manifest.json"])
    del manifest["members"]["weights.bin"]
    members["manifest.json"] = json.dumps(manifest)
    _refused(_rezip(tmp_path / "m.kiln", members), "member 'weights.bin' has no checksum")


def test_no_checksums_at_all(toy_artifact, tmp_path):
    _refused(_with_manifest(toy_artifact, tmp_path / "m.kiln", members=None), "'members'.* is missing")


def test_damaged_member_rewritten(toy_artifact, tmp_path):
    """A member changed after the manifest was written: the zip is sound, the sha256 is not."""
    members = _members(toy_artifact)
    w = bytearray(members["weights.bin"])
    w[5] ^= 0x40
    members["weights.bin"] = bytes(w)
    _refused(_rezip(tmp_path / "d.kiln", members), "member 'weights.bin' failed its checksum: the file is damaged")


def test_damaged_byte_in_the_file(toy_artifact, tmp_path):
    """A flipped byte on disk inside a stored member: caught (by the zip's CRC first), same message."""
    data = bytearray(toy_artifact.read_bytes())
    with zipfile.ZipFile(toy_artifact) as zf:
        from kiln.runtime.artifact import member_data_offset

        off = member_data_offset(toy_artifact, "weights.bin")
        assert bytes(data[off:off + 16]) == zf.read("weights.bin") == BIAS.tobytes()
    data[off + 3] ^= 0x01
    p = tmp_path / "flipped.kiln"
    p.write_bytes(bytes(data))
    _refused(p, "member 'weights.bin' failed its checksum: the file is damaged")


def test_damaged_binary_in_the_file(toy_artifact, tmp_path):
    from kiln.runtime.artifact import member_data_offset

    data = bytearray(toy_artifact.read_bytes())
    data[member_data_offset(toy_artifact, "model.so") + 200] ^= 0xFF
    p = tmp_path / "flipped.kiln"
    p.write_bytes(bytes(data))
    _refused(p, "member 'model.so' failed its checksum")


def test_damaged_deflated_member(toy_artifact, tmp_path):
    data = bytearray(toy_artifact.read_bytes())
    with zipfile.ZipFile(toy_artifact) as zf:
        info = zf.getinfo("kiln.h")
    start = info.header_offset + 30 + len(b"kiln.h")
    data[start + 40] ^= 0xFF
    p = tmp_path / "flipped.kiln"
    p.write_bytes(bytes(data))
    _refused(p, "member 'kiln.h' failed its checksum")


def test_truncated_file(toy_artifact, tmp_path):
    data = toy_artifact.read_bytes()
    p = tmp_path / "cut.kiln"
    p.write_bytes(data[: len(data) // 2])
    _refused(p, r"cut.kiln is not a kiln artifact \(not a zip archive\)")


def test_weights_size_disagrees(toy_artifact, tmp_path):
    members = _members(toy_artifact)
    manifest = json.loads(members["manifest.json"])
    manifest["weights"]["size"] = 32
    members["manifest.json"] = json.dumps(manifest)
    _refused(_rezip(tmp_path / "w.kiln", members), "'weights.bin' holds 16 bytes, the manifest says 32")


def test_unknown_executor(toy_artifact, tmp_path):
    members = _members(toy_artifact)
    manifest = json.loads(members["manifest.json"])
    manifest["target"]["executor"] = "tpu"
    members["manifest.json"] = json.dumps(manifest)
    msg = _refused(_rezip(tmp_path / "e.kiln", members), "needs executor 'tpu', which this kiln does not have")
    assert "cpu" in msg


def test_executor_whose_package_is_missing(toy_artifact, tmp_path, monkeypatch):
    from kiln.runtime import module

    monkeypatch.setitem(module._EXECUTORS, "opencl", "kiln_no_such_package.opencl")
    p = tmp_path / "e.kiln"
    _with_manifest(toy_artifact, p, target={"name": "opencl", "executor": "opencl", "options": {}})
    _refused(p, r"executor 'opencl' is unavailable: .*install kiln\[opencl\]")


def test_library_that_fails_to_load(tmp_path):
    manifest = toy_manifest()
    members = {"model.so": b"\x7fELF but not really a shared library", "weights.bin": BIAS.tobytes(), "kiln.h": ""}
    write_artifact(tmp_path / "so.kiln", manifest, members)
    _refused(tmp_path / "so.kiln", "member 'model.so' could not be loaded as a shared library")


def test_library_without_the_entry_point(toy_lib, tmp_path):
    manifest = toy_manifest(entry={"run": "kiln_run_v2"})
    write_artifact(tmp_path / "e.kiln", manifest, toy_members(toy_lib, manifest))
    _refused(tmp_path / "e.kiln", "member 'model.so' lacks the entry point 'kiln_run_v2'")


def test_artifact_for_another_machine(toy_lib, tmp_path):
    manifest = toy_manifest()
    manifest["target"]["options"]["triple"] = "riscv64-unknown-linux-gnu"
    write_artifact(tmp_path / "r.kiln", manifest, toy_members(toy_lib, manifest))
    _refused(tmp_path / "r.kiln", "compiled for riscv64-unknown-linux-gnu; this machine is")


@pytest.mark.parametrize("field, value, match", [
    ("inputs", [{"name": "x", "dtype": "f99", "shape": [1]}], "input 'x' has unknown dtype 'f99'"),
    ("inputs", [{"name": "x", "dtype": "f32", "shape": ["2*"]}], "input 'x' dim 0 is not a dim expression"),
    ("outputs", [{"name": "y", "dtype": "f32", "shape": ["seq"]}], "output 'y' dim 0 .*symbol.*seq"),
    ("symbols", ["batch", "seq"], "symbol 'seq' appears in no input shape"),
    ("target", {"name": "cpu"}, "'target' must be an object with a string 'executor'"),
    ("binary", None, "'binary' must name the member"),
])
def test_malformed_manifest_fields(toy_artifact, tmp_path, field, value, match):
    _refused(_with_manifest(toy_artifact, tmp_path / "m.kiln", **{field: value}), match)


def test_writer_refuses_a_bad_manifest(tmp_path):
    manifest = toy_manifest()
    with pytest.raises(kiln.ArtifactError, match="member 'model.so' is missing"):
        write_artifact(tmp_path / "x.kiln", manifest, {"weights.bin": BIAS.tobytes()})
    assert not (tmp_path / "x.kiln").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_load_takes_a_path():
    with pytest.raises(TypeError, match="path or a binary file object"):
        kiln.load(42)
