"""Reading tabular files (CSV, Parquet, JSON Lines, or a folder of them) into polars, with errors
that name the file, the line and the column.

Every reader returns a ``polars.DataFrame`` (eager: value checks never run on a lazy plan that
could skip them) plus warnings about things that are legal but suspicious (a column that mixes
numbers and text). ``iter_frames`` yields bounded chunks so a file larger than memory can be
profiled in a stream.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import InputError

if TYPE_CHECKING:
    import polars as pl

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "jsonl", ".ndjson": "jsonl"}
MIXED_SHARE = 0.5  # a text column whose values are mostly numbers "mixes types"


@dataclass
class Loaded:
    """A frame read from ``path`` and the warnings found while reading it."""

    frame: pl.DataFrame
    path: Path
    format: str
    warnings: list[str] = field(default_factory=list)


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unknown data format {path.suffix or '(no extension)'!r}",
            hint="supported: .csv, .tsv, .parquet, .jsonl/.ndjson, or a folder of them",
        )
    return fmt


def data_files(path: Path) -> list[Path]:
    """The data files ``path`` stands for: itself, or the supported files in a folder (sorted)."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise InputError(f"{path}: the folder holds no .csv, .parquet or .jsonl files")
        kinds = {detect_format(f) for f in files}
        if len(kinds) > 1:
            raise InputError(f"{path}: the folder mixes formats ({', '.join(sorted(kinds))})",
                             hint="keep one format per dataset folder")
        return files
    detect_format(path)
    return [path]


def _utf8_error(path: Path) -> InputError | None:
    """Where ``path`` stops being UTF-8 (file:line), or None when it decodes."""
    with open(path, "rb") as handle:
        line = 1
        while True:
            block = handle.read(1 << 20)
            if not block:
                return None
            try:
                block.decode("utf-8")
            except UnicodeDecodeError as exc:
                if exc.reason == "unexpected end of data" and exc.start >= len(block) - 4:
                    extra = handle.read(4)
                    try:
                        (block + extra).decode("utf-8")
                        line += block.count(b"\n")
                        handle.seek(-len(extra), os.SEEK_CUR)
                        continue
                    except UnicodeDecodeError as exc2:
                        exc = exc2
                        block = block + extra
                line += block.count(b"\n", 0, exc.start)
                bad = block[exc.start:exc.start + 1].hex()
                return InputError(
                    f"{path}:{line}: the file is not UTF-8 text (byte 0x{bad}: {exc.reason})",
                    hint=f"convert it first, e.g. iconv -f latin1 -t utf-8 {path} > fixed.csv",
                )
            line += block.count(b"\n")


def _read_csv(path: Path) -> pl.DataFrame:
    import polars as pl

    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes)", hint="expected a header line and data rows")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        try:
            return pl.read_csv(path, separator=sep, infer_schema_length=10_000, try_parse_dates=False)
        except pl.exceptions.ComputeError as exc:
            if "utf-8" in str(exc).lower() or "utf8" in str(exc).lower():
                raise
            # A value further down does not fit the type guessed from the first rows: read the
            # whole column as text so validation can show which values are wrong.
            return pl.read_csv(path, separator=sep, infer_schema_length=None)
    except pl.exceptions.NoDataError as exc:
        raise InputError(f"{path}: the file is empty", hint="expected a header line and data rows") from exc
    except pl.exceptions.ComputeError as exc:
        err = _utf8_error(path)
        if err is not None:
            raise err from exc
        raise InputError(f"{path}: cannot parse as CSV: {str(exc).splitlines()[0]}") from exc


def _read_parquet(path: Path) -> pl.DataFrame:
    import polars as pl

    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes)", hint="expected a Parquet file")
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file: {str(exc).splitlines()[0]}") from exc


def _read_jsonl(path: Path) -> pl.DataFrame:
    import polars as pl

    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes)", hint="expected one JSON object per line")
    try:
        return pl.read_ndjson(path, infer_schema_length=None)
    except pl.exceptions.PolarsError as exc:
        err = _utf8_error(path)
        if err is not None:
            raise err from exc
        line = _bad_json_line(path)
        raise InputError(f"{path}{line}: not valid JSON Lines: {str(exc).splitlines()[0]}",
                         hint="each line must be one JSON object") from exc


def _bad_json_line(path: Path) -> str:
    import json

    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                if not isinstance(json.loads(text), dict):
                    return f":{number}"
            except ValueError:
                return f":{number}"
    return ""


_READERS = {"csv": _read_csv, "parquet": _read_parquet, "jsonl": _read_jsonl}


def check_flat(frame: pl.DataFrame, path: Path) -> None:
    """Refuse nested columns (struct, list, array): schemas and profiles describe flat tables."""
    for name, dtype in frame.schema.items():
        if dtype.is_nested():
            raise InputError(
                f"{path}: column {name!r} has the nested type {dtype}; shipyard data handles flat columns only",
                hint="flatten it first (e.g. polars .unnest() for structs, .explode() or .list.join() for lists)",
            )


def mixed_type_warnings(frame: pl.DataFrame, path: Path) -> list[str]:
    """Text columns whose values are mostly numbers: say which values are not, and where."""
    import polars as pl

    out = []
    for name, dtype in frame.schema.items():
        if dtype != pl.String:
            continue
        col = frame[name]
        present = col.len() - col.null_count()
        if present == 0:
            continue
        parsed = col.str.strip_chars().cast(pl.Float64, strict=False)
        numeric = parsed.len() - parsed.null_count()
        if numeric and numeric / present >= MIXED_SHARE and numeric < present:
            bad = frame.with_row_index("_row").filter(col.is_not_null() & parsed.is_null()).head(3)
            examples = ", ".join(f"{v!r} (row {r + 1})" for r, v in zip(bad["_row"], bad[name], strict=True))
            out.append(f"{path}: column {name!r} mixes numbers and text: {present - numeric} of {present} "
                       f"values are not numbers, e.g. {examples}; it was read as text")
    return out


def read_frame(path: str | os.PathLike[str]) -> Loaded:
    """Read a file or a folder of files into one eager DataFrame (clear errors, never a crash)."""
    import polars as pl

    path = Path(path)
    files = data_files(path)
    fmt = detect_format(files[0])
    frames = []
    for file in files:
        frame = _READERS[fmt](file)
        check_flat(frame, file)
        frames.append(frame)
    if len(frames) == 1:
        frame = frames[0]
    else:
        first = frames[0].columns
        for file, other in zip(files[1:], frames[1:], strict=True):
            if other.columns != first:
                raise InputError(f"{file}: columns {other.columns} differ from {files[0].name}'s {first}",
                                 hint="every file of a dataset folder needs the same header")
        try:
            frame = pl.concat(frames, how="vertical_relaxed")
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"{path}: the files' column types do not agree: {str(exc).splitlines()[0]}") from exc
    return Loaded(frame, path, fmt, mixed_type_warnings(frame, path))


def iter_frames(path: str | os.PathLike[str], chunk_rows: int = 250_000) -> Iterator[pl.DataFrame]:
    """Yield ``path``'s rows in chunks of at most ``chunk_rows`` (Parquet and CSV stream)."""
    import polars as pl

    path = Path(path)
    for file in data_files(path):
        fmt = detect_format(file)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                reader = pq.ParquetFile(file)
            except Exception as exc:
                raise InputError(f"{file}: not a readable Parquet file: {exc}") from exc
            for batch in reader.iter_batches(batch_size=chunk_rows):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                check_flat(frame, file)
                yield frame
        elif fmt == "csv" and file.stat().st_size > 256 << 20:
            sep = "\t" if file.suffix.lower() == ".tsv" else ","
            schema = pl.read_csv(file, separator=sep, n_rows=10_000, infer_schema_length=10_000).schema
            try:
                for frame in pl.scan_csv(file, separator=sep, schema=schema).collect_batches(chunk_size=chunk_rows):
                    yield frame
            except pl.exceptions.ComputeError as exc:
                raise InputError(f"{file}: cannot parse as CSV while streaming: {str(exc).splitlines()[0]}",
                                 hint="a value further down does not fit the column type of the first rows") from exc
        else:
            frame = _READERS[fmt](file)
            check_flat(frame, file)
            for start in range(0, max(frame.height, 1), chunk_rows):
                yield frame.slice(start, chunk_rows)
