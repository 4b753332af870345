"""The ``.kiln`` artifact: one zip holding ``manifest.json``, the binary, the C header and one weights blob.

This module reads, verifies and writes artifacts. It is the single home of the format: the compiler's
``kiln.compiler.artifact`` builds manifests and re-uses :func:`write_artifact` from here, because the
runtime must never import the compiler.

Layout of an artifact (format version 1)::

    manifest.json   the contract between compiler and runtime (see ``check_manifest``); deflated
    kiln.h          the C header of the binary's ABI; deflated
    model.so        the binary (name from manifest "binary"); stored, its data 64-byte aligned in the file
    weights.bin     the weights blob (manifest "weights"); stored, its data 64-byte aligned in the file

``manifest["members"]`` maps every member but ``manifest.json`` to the sha256 of its bytes; a reader
refuses a member whose bytes do not match. Writing is deterministic: the same manifest and members give
the same bytes (fixed timestamps and permissions, members in name order).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
import zlib

import numpy as np

from ..errors import ArtifactError
from ..ir import dims as _dims
from ..ir import dtypes as _dtypes

FORMAT = "kiln-artifact"
#: The newest manifest format version this kiln reads and the one it writes.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: File extensions written deflated; everything else (binary, weights) is stored uncompressed.
_TEXT_SUFFIXES = (".json", ".h", ".c", ".txt", ".cl", ".ptx", ".cu", ".ll", ".s")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ALIGN = 64
_PAD_EXTRA_ID = 0xD935  # the zip extra-field id Android's zipalign uses for alignment padding
_CHUNK = 1 << 22


def sha256(data) -> str:
    """Hex sha256 of a bytes-like object."""
    return hashlib.sha256(memoryview(data).cast("B")).hexdigest()


def aligned_empty(nbytes: int, alignment: int = _ALIGN) -> np.ndarray:
    """An uninitialised uint8 array of ``nbytes`` whose data starts on an ``alignment``-byte boundary.

    Over-allocates and slices; the returned view keeps its base (and so the memory) alive.
    """
    nbytes = int(nbytes)
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start:start + nbytes]


def _name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", None) or "<file object>"


# ----------------------------------------------------------------------------------------- manifest


def _fail(where: str, what: str):
    raise ArtifactError(f"{where}: {what}")


def _known_dtype(name) -> bool:
    try:
        _dtypes.dtype(name)
    except (ValueError, TypeError):
        return False
    return isinstance(name, str)


def _dim_symbols(d):
    try:
        return _dims.symbols(d)
    except ValueError:
        return None


def _check_tensor_list(m: dict, key: str, symbols: list, where: str) -> None:
    specs = m.get(key)
    if not isinstance(specs, list):
        _fail(where, f"'{key}' must be a list of {{name, dtype, shape}}")
    seen = set()
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            _fail(where, f"{key}[{i}] must be an object with a string 'name'")
        name = spec["name"]
        if name in seen:
            _fail(where, f"{key} name '{name}' appears twice")
        seen.add(name)
        if not _known_dtype(spec.get("dtype")):
            _fail(where, f"{key[:-1]} '{name}' has unknown dtype {spec.get('dtype')!r}")
        shape = spec.get("shape")
        if not isinstance(shape, list):
            _fail(where, f"{key[:-1]} '{name}' shape must be a list")
        for j, d in enumerate(shape):
            if isinstance(d, bool) or not isinstance(d, (int, str)):
                _fail(where, f"{key[:-1]} '{name}' dim {j} must be an int or a symbolic expression, got {d!r}")
            if isinstance(d, int):
                if d < 0:
                    _fail(where, f"{key[:-1]} '{name}' dim {j} is negative ({d})")
                continue
            used = _dim_symbols(d)
            if used is None:
                _fail(where, f"{key[:-1]} '{name}' dim {j} is not a dim expression: {d!r}")
            unknown = sorted(used - set(symbols))
            if unknown:
                _fail(where, f"{key[:-1]} '{name}' dim {j} ({d}) uses symbol(s) {', '.join(unknown)} "
                             f"missing from 'symbols'")


def check_manifest(manifest, members=None, *, where: str = MANIFEST) -> dict:
    """Raise :class:`ArtifactError` naming the first field of ``manifest`` that breaks format version 1.

    With ``members`` (a name → bytes mapping), also check that every member the manifest names is there.
    Checksums are not checked here (see :func:`verify_members`). Returns ``manifest``.
    """
    m = manifest
    if not isinstance(m, dict):
        _fail(where, f"the manifest must be a JSON object, got {type(m).__name__}")
    if m.get("format") != FORMAT:
        raise ArtifactError(f"{where}: not a kiln artifact manifest (format {m.get('format')!r}, "
                            f"expected {FORMAT!r})")
    v = m.get("format_version")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        _fail(where, f"bad format_version {v!r}")
    if v > FORMAT_VERSION:
        raise ArtifactError(f"{where}: artifact format version {v} is newer than this kiln reads "
                            f"(kiln reads format version {FORMAT_VERSION}); upgrade kiln to load it")
    target = m.get("target")
    if not isinstance(target, dict) or not isinstance(target.get("executor"), str):
        _fail(where, "'target' must be an object with a string 'executor'")
    if not isinstance(target.get("options", {}), dict):
        _fail(where, "'target.options' must be an object")
    symbols = m.get("symbols")
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        _fail(where, "'symbols' must be a list of symbol names")
    if len(set(symbols)) != len(symbols):
        _fail(where, "'symbols' names a symbol twice")
    _check_tensor_list(m, "inputs", symbols, where)
    _check_tensor_list(m, "outputs", symbols, where)
    from_inputs = set()
    for spec in m["inputs"]:
        for d in spec["shape"]:
            from_inputs |= _dims.symbols(d)
    for s in symbols:
        if s not in from_inputs:
            _fail(where, f"symbol '{s}' appears in no input shape, so no call can determine it")
    if not isinstance(m.get("binary"), str):
        _fail(where, "'binary' must name the member holding the compiled binary")
    if m.get("header") is not None and not isinstance(m["header"], str):
        _fail(where, "'header' must name a member or be null")
    w = m.get("weights")
    if w is not None:
        if not isinstance(w, dict) or not isinstance(w.get("member"), str):
            _fail(where, "'weights' must be null or an object with a string 'member'")
        for k in ("size", "alignment"):
            if k in w and (isinstance(w[k], bool) or not isinstance(w[k], int) or w[k] < 0):
                _fail(where, f"'weights.{k}' must be a non-negative int")
    if not isinstance(m.get("entry", {}), dict):
        _fail(where, "'entry' must be an object")
    listed = m.get("members")
    if listed is not None and (not isinstance(listed, dict)
                               or not all(isinstance(v, str) for v in listed.values())):
        _fail(where, "'members' must map member names to sha256 hex strings")
    if members is not None:
        for name in referenced_members(m):
            if name not in members:
                raise ArtifactError(f"{where}: member '{name}' is missing")
    return m


def referenced_members(manifest: dict) -> list:
    """The members ``manifest`` needs: those in its "members" table plus binary, header and weights."""
    names = list((manifest.get("members") or {}).keys())
    for name in (manifest.get("binary"), manifest.get("header"), (manifest.get("weights") or {}).get("member")):
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names


# ------------------------------------------------------------------------------------------- read


def read_artifact(source) -> tuple:
    """Read and verify an artifact: ``(manifest, members)``.

    ``source`` is a path or a binary file object. Every member named by the manifest is read and its
    sha256 compared with the manifest's; the weights member comes back as a read-only memoryview over a
    64-byte-aligned buffer (read straight from the zip, no second copy), other members as ``bytes``.
    Raises :class:`ArtifactError` naming what is wrong.
    """
    name = _name(source)
    if isinstance(source, (str, os.PathLike)):
        if not os.path.exists(source):
            raise ArtifactError(f"no such artifact file: {name}")
        if not os.path.isfile(source):
            raise ArtifactError(f"{name} is not a file, so not a kiln artifact")
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise ArtifactError(f"{name} is not a kiln artifact (not a zip archive)") from None
    except OSError as e:
        raise ArtifactError(f"cannot read {name}: {e.strerror or e}") from None
    with zf:
        try:
            info = zf.getinfo(MANIFEST)
        except KeyError:
            raise ArtifactError(f"{name} is not a kiln artifact (it has no {MANIFEST})") from None
        raw = _read_member(zf, info, name)
        try:
            manifest = json.loads(bytes(raw).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ArtifactError(f"{name}: {MANIFEST} is not valid JSON ({e})") from None
        where = f"{name}: {MANIFEST}"
        check_manifest(manifest, where=where)
        if not isinstance(manifest.get("members"), dict):
            _fail(where, "'members' (member name -> sha256) is missing")
        listed = manifest["members"]
        weights_member = (manifest.get("weights") or {}).get("member")
        members = {}
        for member in referenced_members(manifest):
            if member not in listed:
                _fail(where, f"member '{member}' has no checksum in 'members'")
            try:
                minfo = zf.getinfo(member)
            except KeyError:
                raise ArtifactError(f"{name}: member '{member}' is missing") from None
            data = _read_member(zf, minfo, name, aligned=member == weights_member)
            if sha256(data) != listed[member]:
                raise ArtifactError(f"{name}: member '{member}' failed its checksum: the file is damaged")
            members[member] = data
        w = manifest.get("weights")
        if w is not None and "size" in w and len(members[w["member"]]) != w["size"]:
            raise ArtifactError(f"{name}: member '{w['member']}' holds {len(members[w['member']])} bytes, "
                                f"the manifest says {w['size']}: the file is damaged")
    return manifest, members


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, aligned: bool = False):
    try:
        if not aligned:
            return zf.read(info)
        buf = aligned_empty(info.file_size)
        view = memoryview(buf)
        pos = 0
        with zf.open(info) as f:
            while pos < info.file_size:
                n = f.readinto(view[pos:pos + _CHUNK])
                if not n:
                    break
                pos += n
            if pos != info.file_size or f.read(1):
                raise zipfile.BadZipFile("size mismatch")
        buf.flags.writeable = False
        return memoryview(buf)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError):
        raise ArtifactError(f"{name}: member '{info.filename}' failed its checksum: the file is damaged") from None
    except OSError as e:
        raise ArtifactError(f"{name}: cannot read member '{info.filename}': {e}") from None


# ------------------------------------------------------------------------------------------ write


def with_checksums(manifest: dict, members: dict) -> dict:
    """A copy of ``manifest`` whose "members" maps every member (in name order) to its sha256."""
    out = {k: v for k, v in manifest.items() if k != "members"}
    out["members"] = {n: sha256(members[n]) for n in sorted(members) if n != MANIFEST}
    return out


def write_artifact(path_or_file, manifest: dict, members: dict) -> dict:
    """Write an artifact; returns the manifest as written (with its "members" checksums).

    ``members`` maps member names to bytes-like data (``str`` is encoded as UTF-8). Stored members
    (everything but text: the binary, the weights) have their data 64-byte aligned in the file so that
    a reader may map them. A path is written through a temporary file and renamed into place.
    """
    members = {n: (v.encode("utf-8") if isinstance(v, str) else v) for n, v in members.items()}
    if MANIFEST in members:
        raise ValueError(f"'{MANIFEST}' is written from the manifest; do not pass it as a member")
    manifest = with_checksums(manifest, members)
    check_manifest(manifest, members, where=f"writing {_name(path_or_file)}")
    text = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    if not isinstance(path_or_file, (str, os.PathLike)):
        _write_zip(path_or_file, text, members)
        return manifest
    path = os.fspath(path_or_file)
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            _write_zip(f, text, members)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return manifest


def _write_zip(f, manifest_text: bytes, members: dict) -> None:
    with zipfile.ZipFile(f, "w", allowZip64=True) as zf:
        _add(zf, MANIFEST, manifest_text)
        for name in sorted(members):
            _add(zf, name, members[name])


def _add(zf: zipfile.ZipFile, name: str, data) -> None:
    data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.create_system = 3
    info.external_attr = 0o644 << 16
    info.file_size = len(data)
    # zip64 decided here, not by zipfile's own size heuristic, so that the header length is known
    zip64 = len(data) > zipfile.ZIP64_LIMIT // 2
    if name.endswith(_TEXT_SUFFIXES):
        info.compress_type = zipfile.ZIP_DEFLATED
    else:
        info.compress_type = zipfile.ZIP_STORED
        # pad the local header with an extra field so that the member's data starts 64-byte aligned
        encoded = name.encode("ascii" if name.isascii() else "utf-8")
        start = zf.fp.tell() + 30 + len(encoded) + 6 + (20 if zip64 else 0)
        pad = (-start) % _ALIGN
        info.extra = struct.pack("<HHH", _PAD_EXTRA_ID, 2 + pad, _ALIGN) + b"\0" * pad
    with zf.open(info, "w", force_zip64=zip64) as dest:
        for i in range(0, len(data), _CHUNK):
            dest.write(data[i:i + _CHUNK])


def member_data_offset(path, member: str) -> int:
    """Byte offset of a stored member's data in the artifact file (for mapping it directly)."""
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        info = zf.getinfo(member)
        f.seek(info.header_offset)
        header = f.read(30)
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        return info.header_offset + 30 + name_len + extra_len
