"""``shipyard scan``: what a model file would do when loaded, read without loading it.

One entry per format, chosen by content (magic bytes) before name:

- pickle / joblib (also compressed joblib): the opcode walk of ``pickles`` against the flavor's
  allow-list, following joblib arrays and nested pickles;
- zip archives (PyTorch ``.pt``, ``.keras``, skops, plain zips): members whose names escape the
  folder (zip-slip), then every member scanned as a file of its own (nested pickles, nested zips);
- skops: types outside the trusted list (the same list the sklearn flavor loads with);
- ONNX: external-data locations that leave the model's folder;
- safetensors: headers whose offsets or sizes disagree with the tensors' dtypes, shapes and the file;
- Keras (``.keras`` config.json, HDF5 ``model_config``): ``Lambda`` layers, which hold Python code.

Native booster files (XGBoost JSON/UBJ, LightGBM text) hold no code and are recorded as scanned.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from math import prod
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.supply import allowlist
from shipyard.supply.pickles import Finding, scan_pickle

SCANNER_VERSION = 1
_MAX_DEPTH = 4
_PICKLE_EXT = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt", ".dill", ".sav")
_LAMBDA = re.compile(rb'"class_name"\s*:\s*"Lambda"')
_ST_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
             "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


@dataclass
class ScanReport:
    """The files scanned (name -> format) and every finding; clean when there are none."""

    target: str
    files: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "clean": self.clean, "scanner_version": SCANNER_VERSION,
                "files": self.files, "findings": [f.to_dict() for f in self.findings]}

    def summary(self) -> dict[str, Any]:
        """What registration records with a version: verdict, counts, the first findings."""
        return {"clean": self.clean, "scanner_version": SCANNER_VERSION, "files": len(self.files),
                "findings": [str(f) for f in self.findings[:20]]}


def sniff(name: str, data: bytes) -> str:
    """The format of a file from its first bytes (then its name)."""
    head = data[:16]
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head[:1] == b"\x80" and len(head) > 1 and 0 < head[1] <= 5:
        return "pickle"
    if name.endswith(".onnx"):
        return "onnx"
    if name.endswith(".safetensors") or _looks_safetensors(data):
        return "safetensors"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ")) or (name.endswith(".joblib") and head[:1] == b"x"):
        return "compressed"
    if name.endswith(_PICKLE_EXT):
        return "pickle"   # protocol 0/1 pickles have no magic byte
    if name.endswith(".sig"):
        return "signature"
    if name.endswith((".ubj", ".json", ".txt", ".model", ".yaml", ".yml", "MLmodel", ".md")):
        return "data"
    return "other"


def _looks_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    (n,) = struct.unpack("<Q", data[:8])
    return n < len(data) and data[8:9] == b"{"


def scan_bytes(name: str, data: bytes, *, flavor: str | None = None, extra: Iterable[str] = (),
               report: ScanReport | None = None, folder: str = "", depth: int = 0) -> ScanReport:
    """Scan one file held in memory; ``name`` is its path inside the model folder."""
    report = report or ScanReport(name)
    kind = sniff(name, data)
    report.files[name] = kind
    extra = tuple(extra)
    if kind == "pickle":
        report.findings.extend(scan_pickle(data, name, flavor, extra).findings)
    elif kind == "compressed":
        _scan_compressed(name, data, flavor, extra, report, folder, depth)
    elif kind == "zip":
        _scan_zip(name, data, flavor, extra, report, depth)
    elif kind == "onnx":
        report.findings.extend(_scan_onnx(name, data, folder))
    elif kind == "safetensors":
        report.findings.extend(_scan_safetensors(name, data))
    elif kind == "hdf5" and _LAMBDA.search(data):
        report.findings.append(Finding(name, "keras-lambda", "a Keras model config with a Lambda layer",
                                       "Lambda layers hold Python bytecode that runs when the model loads"))
    return report


def _scan_compressed(name: str, data: bytes, flavor: str | None, extra: tuple[str, ...], report: ScanReport,
                     folder: str, depth: int) -> None:
    try:
        if data.startswith(b"\x1f\x8b"):
            inner = gzip.decompress(data)
        elif data.startswith(b"BZh"):
            inner = bz2.decompress(data)
        elif data.startswith(b"\xfd7zXZ"):
            inner = lzma.decompress(data)
        else:
            inner = zlib.decompress(data)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        report.findings.append(Finding(name, "unreadable", "a compressed file that does not decompress",
                                       f"{type(exc).__name__}: {exc}; its content is unscanned"))
        return
    if depth >= _MAX_DEPTH:
        report.findings.append(Finding(name, "unreadable", "compressed too many times", "its content is unscanned"))
        return
    inner_name = name if not name.endswith((".gz", ".bz2", ".xz")) else name.rsplit(".", 1)[0]
    kind = sniff(inner_name, inner)
    if kind in ("pickle", "zip", "compressed"):
        scan_bytes(inner_name, inner, flavor=flavor, extra=extra, report=report, folder=folder, depth=depth + 1)
    else:
        report.findings.extend(scan_pickle(inner, name, flavor, extra).findings)


def _escapes(member: str) -> bool:
    """True when an archive member (or external-data path) would land outside its folder."""
    if member.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", member):
        return True
    depth = 0
    for part in re.split(r"[/\\]", member):
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            return True
    return False


def _scan_zip(name: str, data: bytes, flavor: str | None, extra: tuple[str, ...], report: ScanReport,
              depth: int) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        report.findings.append(Finding(name, "unreadable", "a zip archive that cannot be read",
                                       f"{exc}; its members are unscanned"))
        return
    names = [m.filename for m in members]
    if "schema.json" in names:
        report.files[name] = "skops"
        report.findings.extend(_scan_skops(name, data, archive.read("schema.json")))
    for member in members:
        inner = f"{name}!{member.filename}"
        if _escapes(member.filename):
            report.findings.append(Finding(name, "zip-slip", f"member {member.filename!r} escapes the folder",
                                           "extracting the archive would write outside its destination"))
            continue
        if member.is_dir() or depth >= _MAX_DEPTH:
            continue
        content = archive.read(member)
        if member.filename.endswith("config.json") and _LAMBDA.search(content):
            report.findings.append(Finding(inner, "keras-lambda", "a Keras model config with a Lambda layer",
                                           "Lambda layers hold Python bytecode that runs when the model loads"))
        if sniff(member.filename, content) in ("pickle", "zip", "compressed", "safetensors", "hdf5"):
            scan_bytes(inner, content, flavor=flavor, extra=extra, report=report, depth=depth + 1)


_SKOPS_PRIMITIVES = frozenset(f"builtins.{t}" for t in ("str", "int", "float", "bool", "list", "dict", "tuple",
                                                            "NoneType", "bytes", "bytearray", "complex"))
_SKOPS_NAMED_BY_STRING = frozenset({"MethodNode", "OperatorFuncNode", "PartialNode", "ConstructorFromReduceNode"})


def _skops_all_trusted(schema: Any) -> bool:
    """True when every type the schema names (each ``__module__``/``__class__`` pair, at any depth) is
    a primitive or on our trusted list, and no node builds a callable from a bare name: then skops'
    own audit (slow: it builds the node tree) cannot find anything we would not accept."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("__loader__") in _SKOPS_NAMED_BY_STRING:
                return False
            if "__module__" in node and "__class__" in node:
                full = f"{node['__module__']}.{node['__class__']}"
                if full not in _SKOPS_PRIMITIVES and allowlist.untrusted_skops_types([full]):
                    return False
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return True


def _scan_skops(name: str, data: bytes, schema: bytes | None = None) -> list[Finding]:
    if schema is not None:
        try:
            if _skops_all_trusted(json.loads(schema)):
                return []
        except ValueError:
            pass   # skops reports the broken schema below
    try:
        import skops.io as sio
    except ImportError:
        return [Finding(name, "unscanned", "a skops file", "skops is not installed (pip install 'shipyard[sklearn]')")]
    try:
        found = sio.get_untrusted_types(data=data)
    except Exception as exc:
        return [Finding(name, "unreadable", "a skops file whose schema cannot be read", f"{type(exc).__name__}: {exc}")]
    return [Finding(name, "skops-type", f"holds type {t}",
                    "outside the trusted list (sklearn, numpy, scipy.sparse and plain containers); skops would "
                    "rebuild it by importing and calling it")
            for t in allowlist.untrusted_skops_types(found)]


def _scan_onnx(name: str, data: bytes, folder: str) -> list[Finding]:
    try:
        import onnx
    except ImportError:
        return [Finding(name, "unscanned", "an ONNX file", "onnx is not installed (pip install 'shipyard[onnx]')")]
    try:
        model = onnx.ModelProto.FromString(data)
    except Exception as exc:
        return [Finding(name, "unreadable", "an ONNX file that does not parse", f"{type(exc).__name__}: {exc}")]
    base = str(PurePosixPath(name).parent) if "/" in name else ""
    findings = []
    for tensor in _onnx_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if _escapes(location) or _escapes(f"{base}/{location}" if base else location):
            findings.append(Finding(name, "onnx-external-data",
                                    f"tensor {tensor.name!r} reads external data from {location!r}",
                                    "the path leaves the model's folder: loading it reads any file the server can"))
    return findings


def _onnx_tensors(graph: Any) -> Iterable[Any]:
    """Every tensor of a graph: initializers, constant attributes, and those of its subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _onnx_tensors(attr.g)
            for sub in attr.graphs:
                yield from _onnx_tensors(sub)


def _scan_safetensors(name: str, data: bytes) -> list[Finding]:
    def bad(detail: str) -> list[Finding]:
        return [Finding(name, "safetensors-header", detail, "the header lies about the file: a reader trusting it "
                        "reads out of bounds or the wrong bytes")]
    if len(data) < 8:
        return bad("shorter than its 8-byte header length")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        return bad(f"header length {length} is past the end of the file ({len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + length])
    except ValueError as exc:
        return bad(f"header is not JSON ({exc})")
    if not isinstance(header, dict):
        return bad("header is not a JSON object")
    body = len(data) - 8 - length
    spans = []
    for tensor, info in header.items():
        if tensor == "__metadata__":
            continue
        try:
            begin, end = info["data_offsets"]
            size = _ST_SIZES[info["dtype"]] * prod(int(n) for n in info["shape"])
        except (KeyError, TypeError, ValueError):
            return bad(f"tensor {tensor!r} has no valid dtype, shape and data_offsets")
        if not (0 <= begin <= end <= body):
            return bad(f"tensor {tensor!r} spans bytes {begin}..{end} of a {body}-byte body")
        if end - begin != size:
            return bad(f"tensor {tensor!r} claims {end - begin} bytes; its dtype and shape need {size}")
        spans.append((begin, end, tensor))
    spans.sort()
    for (_, end, first), (begin, _, second) in pairwise(spans):
        if begin < end:
            return bad(f"tensors {first!r} and {second!r} overlap")
    return []


def scan_path(path: str | Path, *, flavor: str | None = None, extra: Iterable[str] = ()) -> ScanReport:
    """Scan a file, or every file under a folder (symbolic links leaving the folder are findings)."""
    path = Path(path)
    report = ScanReport(str(path))
    if path.is_file():
        return scan_bytes(path.name, path.read_bytes(), flavor=flavor, extra=extra, report=report)
    root = path.resolve()
    for file in sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink()):
        rel = file.relative_to(path).as_posix()
        if file.is_symlink() and not file.resolve().is_relative_to(root):
            report.findings.append(Finding(rel, "symlink", f"links to {file.resolve()}", "the link leaves the model folder"))
            continue
        if file.is_file():
            scan_bytes(rel, file.read_bytes(), flavor=flavor, extra=extra, report=report, folder=str(path))
    return report


def scan_package(objects: Any, model_oid: str, *, flavor: str | None = None, extra: Iterable[str] = (),
                 target: str | None = None) -> ScanReport:
    """Scan every file of a stored model package (each read verified by the object store)."""
    manifest = objects.manifest(model_oid)
    report = ScanReport(target or model_oid)
    contents = objects.get_many([e.oid for e in manifest.entries])   # one batch, every read verified
    for entry in manifest.entries:
        scan_bytes(entry.path, contents[entry.oid], flavor=_pickle_flavor(flavor), extra=extra, report=report)
    return report


def _pickle_flavor(flavor: str | None) -> str | None:
    """The allow-list a package's pickles are judged by: MLflow and plain pickles may hold any library."""
    return flavor if flavor in allowlist.FLAVOR_ECOSYSTEMS else None
