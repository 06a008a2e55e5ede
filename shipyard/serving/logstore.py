"""Where the request log and the feedback labels live: a local folder or any fsspec URL.

``LogFolder.of("s3://bucket/prefix")`` (or a path) gives one small interface that the writer (the
gateway's request log) and the readers (rollout analysis, the monitor) share:

- ``folder / "model=iris"`` walks down, like ``pathlib.Path``;
- ``write_parquet(table)`` adds ``part-<pid>-<uuid>.parquet`` atomically: locally a temp file,
  fsync and rename; on an object store one PUT, which is atomic (a reader sees all or nothing).
  The pid says which worker wrote a file and keeps names of concurrent workers apart;
- ``files(pattern)`` / ``folders(pattern)`` list what is there now (never a cached listing: other
  processes write there), ``source(path)`` opens a file for ``pyarrow``/``polars`` to read.

Paths handed out by ``files`` are strings (local paths or the filesystem's own paths).
"""

from __future__ import annotations

import os
import uuid
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.errors import InputError


def is_url(location: str | os.PathLike[str]) -> bool:
    """True for an fsspec URL such as ``s3://bucket/prefix`` (``file://`` counts as a local path)."""
    text = os.fspath(location)
    return "://" in text and not text.startswith("file://")


class LogFolder:
    """One folder of Parquet parts, on the local disk or behind an fsspec filesystem."""

    def __init__(self, url: str, fs: Any = None, path: str | None = None) -> None:
        self.url = url
        self.fs = fs  # None: the local disk
        self.path = path if path is not None else url

    @classmethod
    def of(cls, location: str | os.PathLike[str] | LogFolder) -> LogFolder:
        """The folder at ``location``: a LogFolder as is, an fsspec URL, or a local path."""
        if isinstance(location, LogFolder):
            return location
        text = os.fspath(location)
        if not is_url(text):
            return cls(str(Path(text.removeprefix("file://"))))
        import fsspec

        from shipyard.objects.encryption import storage_options

        try:   # the same server-side encryption as the object store (SHIPYARD_OBJECTS_SSE)
            fs, path = fsspec.core.url_to_fs(text, **storage_options(text))
        except (ImportError, ValueError) as exc:
            hint = ('pip install "shipyard[s3]"' if text.startswith(("s3://", "s3a://"))
                    else "use a local folder or an fsspec URL such as s3://bucket/prefix")
            raise InputError(f"request log location {text!r} (deploy.request_log in shipyard.yaml, or "
                             f"SHIPYARD_REQUEST_LOG): cannot open it ({exc})", hint=hint) from exc
        return cls(text.rstrip("/"), fs, path.rstrip("/"))

    @property
    def local(self) -> bool:
        return self.fs is None

    def __truediv__(self, part: str) -> LogFolder:
        if self.fs is None:
            return LogFolder(str(Path(self.path) / part))
        return LogFolder(f"{self.url}/{part}", self.fs, f"{self.path}/{part}")

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"LogFolder({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogFolder) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    # -- writing -------------------------------------------------------------------------------
    def write_parquet(self, table: Any) -> str:
        """Add ``table`` as a new part file; a reader never sees it half written. Returns its path."""
        import pyarrow.parquet as pq

        name = f"part-{os.getpid()}-{uuid.uuid4().hex}.parquet"
        if self.fs is None:
            folder = Path(self.path)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.tmp"
            pq.write_table(table, tmp, compression="zstd")
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, folder / name)
            return str(folder / name)
        buffer = BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        target = f"{self.path}/{name}"
        self.fs.pipe_file(target, buffer.getvalue())  # one PUT: the object appears whole or not at all
        return target

    # -- reading -------------------------------------------------------------------------------
    def is_dir(self) -> bool:
        if self.fs is None:
            return Path(self.path).is_dir()
        self.fs.invalidate_cache(self.path)
        return bool(self.fs.isdir(self.path))

    def files(self, pattern: str) -> list[str]:
        """Paths of the files matching ``pattern`` (relative glob, e.g. ``date=*/*.parquet``), sorted."""
        if self.fs is None:
            folder = Path(self.path)
            return [str(p) for p in sorted(folder.glob(pattern))] if folder.is_dir() else []
        self.fs.invalidate_cache(self.path)
        found = self.fs.glob(f"{self.path}/{pattern}")
        return sorted(p for p in found if not PurePosixPath(p).name.startswith("."))

    def folders(self, pattern: str) -> list[str]:
        """Names of the sub-folders matching ``pattern`` (e.g. ``model=*``), sorted."""
        if self.fs is None:
            folder = Path(self.path)
            return sorted(p.name for p in folder.glob(pattern) if p.is_dir()) if folder.is_dir() else []
        self.fs.invalidate_cache(self.path)
        found = self.fs.glob(f"{self.path}/{pattern}", detail=True)
        return sorted(PurePosixPath(p).name for p, info in found.items() if info.get("type") == "directory")

    def relative(self, path: str) -> PurePosixPath:
        """``path`` (from ``files``) relative to this folder."""
        base = Path(self.path).as_posix() if self.fs is None else self.path
        full = Path(path).as_posix() if self.fs is None else path
        return PurePosixPath(full).relative_to(base)

    def source(self, path: str) -> Any:
        """Something ``pyarrow.parquet.read_table`` and ``polars.read_parquet`` can read ``path`` from."""
        if self.fs is None:
            return path
        return BytesIO(self.fs.cat_file(path))


def log_location(location: str | os.PathLike[str] | LogFolder) -> Path | LogFolder:
    """A local folder as a ``Path`` (what callers and tests already use), an fsspec URL as a LogFolder."""
    if isinstance(location, LogFolder):
        return Path(location.path) if location.local else location
    text = os.fspath(location)
    return LogFolder.of(text) if is_url(text) else Path(text.removeprefix("file://"))
