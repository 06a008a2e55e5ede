"""MLflow scoring-server parity for ``/invocations``: the content types MLflow accepts and how.

``application/json`` (one of dataframe_split, dataframe_records, instances, inputs; a ``NaN``
literal is a missing value) and ``text/csv`` (a header row, as ``DataFrame.to_csv(index=False)``
writes) are read; any other content type, or a charset other than UTF-8, is a 415 as MLflow
answers. A request without a content type is read as JSON.
"""

from __future__ import annotations

import io
from typing import Any

from shipyard.serving import codec
from shipyard.serving.codec import Inputs, RequestError

JSON = "application/json"
CSV = "text/csv"
UNSUPPORTED = 415


def parse_invocation(body: bytes, content_type: str | None) -> tuple[Inputs, str]:
    """The inputs of one ``/invocations`` body and the field its rows came from."""
    mime = _mime(content_type)
    if mime == CSV:
        return _csv(body), "body"
    return parse_json(body)


def parse_json(body: bytes) -> tuple[Inputs, str]:
    """The inputs of one MLflow JSON body and the key its rows came from."""
    doc = codec.loads(body)
    return codec.parse_mlflow(doc), next((k for k in codec.MLFLOW_KEYS if k in doc), "body")


def _mime(content_type: str | None) -> str:
    if not content_type:
        return JSON
    mime, *params = (part.strip() for part in content_type.split(";"))
    mime = mime.lower()
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() != "charset":
            raise RequestError("content-type", f"unrecognized content type parameter {key.strip()!r}", UNSUPPORTED)
        if value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise RequestError("content-type", "only UTF-8 is supported", UNSUPPORTED)
    if mime not in (JSON, CSV):
        raise RequestError("content-type", f"got {content_type!r}; send {JSON} (dataframe_split, "
                           f"dataframe_records, instances or inputs) or {CSV} with a header row", UNSUPPORTED)
    return mime


def _csv(body: bytes) -> Inputs:
    """A CSV body with a header row, read as MLflow does (pandas ``read_csv``): empty cells are NaN."""
    import pandas as pd

    if not body.strip():
        raise RequestError("body", "the CSV body is empty; send a header row and at least one row")
    try:
        frame = pd.read_csv(io.BytesIO(body), encoding="utf-8")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise RequestError("body", f"not a CSV table with a header row ({str(exc).strip()[:200]})") from None
    if frame.empty:
        raise RequestError("body", "the CSV body has a header but no rows")
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns) or any(c.startswith("Unnamed: ") for c in columns):
        raise RequestError("body", "the CSV header must name every column once")
    values: dict[str, list[Any]] = {c: frame[col].tolist() for c, col in zip(columns, frame.columns, strict=True)}
    return Inputs(columns, values, None, len(frame))
