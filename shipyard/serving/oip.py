"""Open Inference Protocol v2 (KServe, Triton) requests in, responses out, with the binary tensor
data extension (``Inference-Header-Content-Length``) as tritonclient and kserve's client use it.

A request is a JSON header, optionally followed by the raw bytes of the inputs that declare
``parameters.binary_data_size``. Every tensor is checked against its declared datatype and shape
before any model sees it; a mistake is a ``RequestError`` (HTTP 400, as Triton and KServe answer)
naming the tensor. Outputs are ``predict`` and, for classifiers, ``score``; the request's
``outputs`` selects among them and says which come back as binary data.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from shipyard.serving.codec import Inputs, RequestError, loads

HEADER_LENGTH = "inference-header-content-length"
OUTPUTS = ("predict", "score")
BAD = 400  # Triton and KServe answer 400 for a request that does not follow the protocol

# Datatype -> little-endian numpy dtype of its binary form (BYTES is length-prefixed, see below).
_NUMPY = {"BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1",
          "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
_INT_RANGE = {name: (int(np.iinfo(dt).min), int(np.iinfo(dt).max)) for name, dt in _NUMPY.items()
              if name.startswith(("INT", "UINT"))}
DATATYPES = frozenset((*_NUMPY, "BYTES"))


@dataclass(frozen=True)
class Requested:
    """Which outputs the client asked for (None: all) and which of them come back binary."""

    names: tuple[str, ...] | None
    binary: frozenset[str]
    binary_default: bool


@dataclass(frozen=True)
class InferRequest:
    inputs: Inputs
    client_id: str | None
    parameters: dict[str, Any] | None
    outputs: Requested


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """One infer request: the JSON header and, with the binary extension, the tensors' bytes."""
    if header_length is None:
        doc, binary = loads(body), b""
    else:
        try:
            size = int(header_length)
        except ValueError:
            raise RequestError("Inference-Header-Content-Length", f"expected a number of bytes, got {header_length!r}",
                               BAD) from None
        if not 0 < size <= len(body):
            raise RequestError("Inference-Header-Content-Length",
                               f"{size} is not within the body's {len(body)} bytes", BAD)
        doc, binary = loads(body[:size]), body[size:]
    if not isinstance(doc, dict):
        raise RequestError("body", "expected a JSON object with 'inputs'", BAD)
    parameters = doc.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise RequestError("parameters", "expected an object", BAD)
    client_id = doc.get("id")
    if client_id is not None and not isinstance(client_id, str):
        raise RequestError("id", "expected a string", BAD)
    inputs = _inputs(doc.get("inputs"), binary)
    return InferRequest(inputs, client_id, parameters, _requested(doc.get("outputs"), parameters or {}))


def _requested(outputs: Any, parameters: dict[str, Any]) -> Requested:
    binary_default = parameters.get("binary_data_output") is True
    if outputs is None:
        return Requested(None, frozenset(), binary_default)
    if not isinstance(outputs, list) or not outputs:
        raise RequestError("outputs", "expected a non-empty list of {name, parameters?}", BAD)
    names, binary = [], set()
    for i, out in enumerate(outputs):
        name = out.get("name") if isinstance(out, dict) else None
        if name not in OUTPUTS:
            raise RequestError(f"outputs[{i}].name", f"unknown output {name!r}; this model has "
                               + " and ".join(OUTPUTS), BAD)
        if name in names:
            raise RequestError(f"outputs[{i}].name", f"output {name!r} is requested twice", BAD)
        params = out.get("parameters") or {}
        if not isinstance(params, dict):
            raise RequestError(f"outputs[{i}].parameters", "expected an object", BAD)
        names.append(name)
        if params.get("binary_data", binary_default) is True:
            binary.add(name)
    return Requested(tuple(names), frozenset(binary), binary_default)


def _inputs(tensors: Any, binary: bytes) -> Inputs:
    """Either one tensor per feature (shape [n] or [n, 1]) or one 2-D tensor [n, k] of positional
    features, as ``Inputs``."""
    if not isinstance(tensors, list) or not tensors:
        raise RequestError("inputs", "expected a non-empty list of tensors", BAD)
    parsed: list[tuple[str, list[int], list[Any]]] = []
    offset = 0
    for i, tensor in enumerate(tensors):
        name, shape, data, offset = _tensor(tensor, f"inputs[{i}]", binary, offset)
        if any(name == p[0] for p in parsed):
            raise RequestError(f"inputs[{i}].name", f"tensor {name!r} is given twice", BAD)
        parsed.append((name, shape, data))
    if offset != len(binary):
        raise RequestError("inputs", f"the body has {len(binary) - offset} bytes of binary data that no input "
                           "declares (parameters.binary_data_size)", BAD)
    if len(parsed) == 1 and len(parsed[0][1]) == 2 and parsed[0][1][1] > 1:
        _, (n, k), flat = parsed[0]
        return Inputs(None, None, [flat[r * k:(r + 1) * k] for r in range(n)], n)
    n = parsed[0][1][0]
    for i, (name, shape, _) in enumerate(parsed):
        if shape[0] != n or math.prod(shape) != n:
            raise RequestError(f"inputs[{i}].shape", f"tensor {name!r} has shape {shape}; expected [{n}] or "
                               f"[{n}, 1] like inputs[0] (one value per row)", BAD)
    return Inputs([p[0] for p in parsed], {p[0]: p[2] for p in parsed}, None, n)


def _tensor(t: Any, where: str, binary: bytes, offset: int) -> tuple[str, list[int], list[Any], int]:
    """One input tensor checked: (name, shape, flat values, offset after its binary data)."""
    if not isinstance(t, dict):
        raise RequestError(where, "expected an object with name, shape, datatype and data", BAD)
    for key in ("name", "shape", "datatype"):
        if key not in t:
            raise RequestError(f"{where}.{key}", "required field is missing", BAD)
    name, shape, datatype = t["name"], t["shape"], t["datatype"]
    if not isinstance(name, str) or not name:
        raise RequestError(f"{where}.name", "expected a non-empty string", BAD)
    if not isinstance(shape, list) or not shape or not all(type(s) is int and s >= 0 for s in shape):
        raise RequestError(f"{where}.shape", f"tensor {name!r}: expected a list of non-negative integers", BAD)
    count = math.prod(shape)
    if count == 0:
        raise RequestError(f"{where}.shape", f"tensor {name!r} has shape {shape}: no rows to predict", BAD)
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise RequestError(f"{where}.datatype", f"tensor {name!r}: unknown datatype {datatype!r}; expected one of "
                           + ", ".join(sorted(DATATYPES)), BAD)
    params = t.get("parameters")
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if "data" in t:
            raise RequestError(f"{where}.data", f"tensor {name!r} has both data and binary_data_size", BAD)
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise RequestError(f"{where}.parameters.binary_data_size", f"tensor {name!r}: {size!r} bytes are not "
                               f"in the body's binary part ({len(binary) - offset} left)", BAD)
        flat = _from_binary(binary[offset:offset + size], datatype, name, where)
        offset += size
    else:
        if "data" not in t:
            raise RequestError(f"{where}.data", f"tensor {name!r}: required field is missing", BAD)
        data = t["data"]
        if not isinstance(data, list):
            raise RequestError(f"{where}.data", f"tensor {name!r}: expected a list", BAD)
        flat = _flatten(data) if data and isinstance(data[0], list) else data
        _check_values(flat, datatype, name, f"{where}.data")
    if len(flat) != count:
        raise RequestError(f"{where}.data", f"tensor {name!r} has {len(flat)} values but shape {shape} needs "
                           f"{count}", BAD)
    return name, shape, flat, offset


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _check_values(flat: list[Any], datatype: str, name: str, where: str) -> None:
    """Every value fits the declared datatype (a string in an FP64 tensor is the client's mistake)."""
    if datatype == "BYTES":
        ok = lambda v: isinstance(v, str)  # noqa: E731
        expected = "strings"
    elif datatype == "BOOL":
        ok = lambda v: isinstance(v, bool)  # noqa: E731
        expected = "true or false"
    elif datatype in _INT_RANGE:
        low, high = _INT_RANGE[datatype]
        ok = lambda v: type(v) is int and low <= v <= high  # noqa: E731
        expected = f"integers from {low} to {high}"
    else:
        # NaN is a missing value (MLflow's client writes it so); infinity, or a number that
        # overflowed a double (1e999), is no value a model can take
        ok = lambda v: type(v) is int or (type(v) is float and not math.isinf(v))  # noqa: E731
        expected = "finite numbers (or NaN for a missing value)"
    for i, value in enumerate(flat):
        if not ok(value):
            raise RequestError(where, f"{datatype} tensor {name!r} holds {value!r} at position {i}; "
                               f"expected {expected}", BAD)


def _from_binary(raw: bytes, datatype: str, name: str, where: str) -> list[Any]:
    if datatype == "BYTES":
        return _bytes_elements(raw, name, where)
    dtype = np.dtype(_NUMPY[datatype])
    if len(raw) % dtype.itemsize:
        raise RequestError(f"{where}.parameters.binary_data_size", f"tensor {name!r}: {len(raw)} bytes is not a "
                           f"whole number of {datatype} values ({dtype.itemsize} bytes each)", BAD)
    array = np.frombuffer(raw, dtype=dtype)
    if array.dtype.kind == "f" and np.isinf(array).any():
        position = int(np.flatnonzero(np.isinf(array))[0])
        raise RequestError(f"{where}", f"{datatype} tensor {name!r} holds {array[position]!r} at position "
                           f"{position}; expected finite numbers", BAD)
    return array.tolist()


def _bytes_elements(raw: bytes, name: str, where: str) -> list[Any]:
    """BYTES in binary form: each element a 4-byte little-endian length, then that many bytes."""
    out, i = [], 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise RequestError(where, f"BYTES tensor {name!r}: truncated length prefix at byte {i}", BAD)
        (length,) = struct.unpack_from("<I", raw, i)
        i += 4
        if i + length > len(raw):
            raise RequestError(where, f"BYTES tensor {name!r}: element of {length} bytes runs past the data", BAD)
        try:
            out.append(raw[i:i + length].decode())
        except UnicodeDecodeError:
            raise RequestError(where, f"BYTES tensor {name!r}: element at byte {i} is not UTF-8 text", BAD) from None
        i += length
    return out


# -- responses ----------------------------------------------------------------------------------

def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype of a prediction array (labels and other objects are BYTES)."""
    kind = array.dtype.kind
    if kind == "f":
        return "FP64" if array.dtype.itemsize == 8 else "FP32"
    if kind in "iu":
        return "INT64"
    if kind == "b":
        return "BOOL"
    return "BYTES"


def _binary(array: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in array.tolist():
            data = str(value).encode()
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=_NUMPY[datatype]).tobytes()


def encode_response(head: dict[str, Any], results: dict[str, np.ndarray], requested: Requested,
                    jsonable: Any) -> tuple[bytes, dict[str, str], str]:
    """The response body, extra headers and media type: JSON, or a JSON header followed by the
    binary outputs (``Inference-Header-Content-Length``) when any output is asked for in binary."""
    names = requested.names or tuple(results)
    outputs, blobs = [], []
    for name in names:
        array = results[name]
        datatype = datatype_of(array)
        out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [len(array)]}
        if name in requested.binary or (requested.names is None and requested.binary_default):
            blob = _binary(array, datatype)
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = jsonable(array)
        outputs.append(out)
    header = orjson.dumps({**head, "outputs": outputs}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {}, "application/json"
    return header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header))}, "application/octet-stream"
