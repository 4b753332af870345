"""Building artifacts: the manifest (format version 1), the C header, and the zip writer.

The format itself (reading, checking, writing, checksums) lives in ``kiln.runtime.artifact``, because
the runtime must not import the compiler; this module builds what goes into it::

    manifest = build_manifest(target, inputs, outputs, weights_size=len(blob), kernels=..., memory_plan=...)
    members = make_members(manifest, binary=so_bytes, weights=blob)     # adds kiln.h
    model = CompiledModel(manifest, members)                             # or write_artifact(path, manifest, members)
"""
from __future__ import annotations

import dataclasses

from .. import __version__
from ..ir import dims as _dims
from ..ir import dtypes as _dtypes
from ..runtime.artifact import FORMAT, FORMAT_VERSION, check_manifest, sha256, with_checksums, write_artifact

__all__ = ["build_manifest", "make_members", "c_header", "write_artifact", "sha256", "with_checksums",
           "FORMAT", "FORMAT_VERSION", "DEFAULT_ENTRY"]

DEFAULT_ENTRY = {"run": "kiln_run", "workspace_size": "kiln_workspace_size", "set_num_threads": "kiln_set_num_threads"}

_C_TYPES = {
    "f32": "float", "f64": "double", "f16": "uint16_t (IEEE half)", "bf16": "uint16_t (bfloat16)",
    "i8": "int8_t", "i16": "int16_t", "i32": "int32_t", "i64": "int64_t",
    "u8": "uint8_t", "u16": "uint16_t", "u32": "uint32_t", "u64": "uint64_t", "bool": "uint8_t (0 or 1)",
}


def _tensor(entry) -> dict:
    """A manifest tensor entry from a dict, a (name, dtype, shape) tuple, or an object with those attributes."""
    if isinstance(entry, dict):
        name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
    elif isinstance(entry, (tuple, list)):
        name, dtype, shape = entry
    else:  # a TensorSpec, or a (name, TensorType) pair's pieces
        name, dtype, shape = entry.name, entry.dtype, entry.shape
    return {"name": str(name), "dtype": _dtypes.dtype(dtype).name, "shape": [_dims.canonical(d) for d in shape]}


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return dict(value)


def build_manifest(target, inputs, outputs, *, symbols=None, weights_size: int = 0, kernels=(),
                   memory_plan=None, binary: str = "model.so", header: str | None = "kiln.h",
                   weights_member: str = "weights.bin", weights_alignment: int = 64, entry=None,
                   kiln_version: str = __version__) -> dict:
    """The manifest of an artifact (format version 1), checked; "members" is added when it is written.

    ``target``: ``{"name", "executor", "options"}`` (``options`` may be a dataclass, e.g. a target's
    frozen ``Options``). ``inputs``/``outputs``: dicts or ``(name, dtype, shape)`` with kiln dtypes and
    dims. ``symbols`` defaults to the input dims' symbols in order of first appearance; the binary reads
    them from ``syms[]`` in this order. ``weights_size=None`` means the model has no weights member.
    """
    t = _plain(target)
    if "executor" not in t:
        raise ValueError("target needs an 'executor' (the runtime executor that loads the binary)")
    options = t.get("options") or {}
    t = {"name": t.get("name", t["executor"]), "executor": t["executor"], "options": _plain(options)}
    ins = [_tensor(e) for e in inputs]
    outs = [_tensor(e) for e in outputs]
    if symbols is None:
        symbols = []
        for spec in ins:
            for d in spec["shape"]:
                for s in sorted(_dims.symbols(d)):
                    if s not in symbols:
                        symbols.append(s)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kiln_version": kiln_version,
        "target": t,
        "symbols": list(symbols),
        "inputs": ins,
        "outputs": outs,
        "binary": binary,
        "header": header,
        "weights": None if weights_size is None else
        {"member": weights_member, "alignment": int(weights_alignment), "size": int(weights_size)},
        "entry": {**DEFAULT_ENTRY, **(entry or {})},
        "kernels": [dict(k) for k in kernels],
        "memory_plan": memory_plan,
    }
    check_manifest(manifest, where="build_manifest")
    return manifest


def make_members(manifest: dict, binary: bytes, weights=b"") -> dict:
    """The members of an artifact: the binary, the weights blob and the generated C header."""
    members = {manifest["binary"]: bytes(binary)}
    if manifest.get("weights") is not None:
        w = manifest["weights"]
        if len(weights) != w["size"]:
            raise ValueError(f"weights blob has {len(weights)} bytes, the manifest says {w['size']}")
        members[w["member"]] = weights
    if manifest.get("header"):
        members[manifest["header"]] = c_header(manifest).encode("utf-8")
    return members


def _comment(text) -> str:
    return str(text).replace("*/", "* /")


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def c_header(manifest: dict) -> str:
    """``kiln.h``: the C ABI of the artifact's binary, with its signature in a comment block."""
    entry = {**DEFAULT_ENTRY, **(manifest.get("entry") or {})}
    t = manifest.get("target") or {}
    opts = t.get("options") or {}
    symbols = manifest.get("symbols") or []
    w = manifest.get("weights")
    lines = [
        f"/* {manifest.get('header') or 'kiln.h'} -- generated by kiln {manifest.get('kiln_version', __version__)} "
        f"for one artifact; do not edit.",
        " *",
        f" * target: {_comment(t.get('name', t.get('executor')))}"
        + "".join(f", {k} {_comment(opts[k])}" for k in ("triple", "cpu") if opts.get(k)),
        " *",
        " * symbols, the order of syms[]:" + ("" if symbols else " none (pass any valid pointer)"),
    ]
    lines += [f" *   syms[{i}] = {_comment(s)}" for i, s in enumerate(symbols)]
    for title, key in (("inputs", "inputs"), ("outputs", "outputs")):
        lines += [" *", f" * {title}, the order of {key}[] (contiguous row-major buffers):"]
        for i, spec in enumerate(manifest.get(key) or []):
            ctype = _C_TYPES.get(spec["dtype"], f"{spec['dtype']} (packed)")
            lines.append(f" *   {key}[{i}] {_comment(spec['name'])}: {spec['dtype']} {_shape(spec['shape'])}"
                         f"  -- elements are {ctype}")
    lines += [" *"]
    if w is not None:
        lines.append(f" * weights: member {_comment(w['member'])}, {w.get('size', '?')} bytes; pass it "
                     f"{max(64, w.get('alignment') or 64)}-byte aligned")
    else:
        lines.append(" * weights: none (pass any 64-byte aligned pointer)")
    lines += [
        " */",
        "#ifndef KILN_H",
        "#define KILN_H",
        "",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        f"#define KILN_NUM_SYMBOLS {len(symbols)}",
        f"#define KILN_NUM_INPUTS {len(manifest.get('inputs') or [])}",
        f"#define KILN_NUM_OUTPUTS {len(manifest.get('outputs') or [])}",
        f"#define KILN_WEIGHTS_SIZE {int((w or {}).get('size') or 0)}",
        "#define KILN_ALIGNMENT 64",
        "",
        "/* bytes of scratch memory kiln_run needs for these symbol values (syms in the order above) */",
        f"int64_t {entry['workspace_size']}(const int64_t *syms);",
        "",
        "/* one inference. inputs/outputs: arrays of pointers to contiguous row-major buffers, in the order above.",
        f"   workspace: >= {entry['workspace_size']}(syms) bytes, 64-byte aligned. weights: the weights blob,",
        "   64-byte aligned. returns 0 on success, nonzero on error */",
        f"int32_t {entry['run']}(const void *const *inputs, void *const *outputs, const int64_t *syms,",
        f"{' ' * (len(entry['run']) + 9)}void *workspace, const void *weights);",
    ]
    if entry.get("set_num_threads"):
        lines += [
            "",
            "/* number of threads the library's own thread pool uses (default: all cores) */",
            f"void {entry['set_num_threads']}(int32_t n);",
        ]
    lines += [
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        "#endif /* KILN_H */",
        "",
    ]
    return "\n".join(lines)
