"""Readers: every supported format, folders, and each bad input named in the issue."""

from __future__ import annotations

import polars as pl
import pytest

from shipyard.data.readers import iter_frames, read_frame
from shipyard.errors import InputError


def test_csv_parquet_jsonl_and_folders(tmp_path) -> None:
    df = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    df.write_csv(tmp_path / "d.csv")
    df.write_parquet(tmp_path / "d.parquet")
    df.write_ndjson(tmp_path / "d.jsonl")
    for name in ("d.csv", "d.parquet", "d.jsonl"):
        loaded = read_frame(tmp_path / name)
        assert loaded.frame.equals(df) and loaded.warnings == []
    folder = tmp_path / "parts"
    folder.mkdir()
    df.write_parquet(folder / "1.parquet")
    df.write_parquet(folder / "2.parquet")
    assert read_frame(folder).frame.height == 6
    assert sum(f.height for f in iter_frames(folder, chunk_rows=2)) == 6


def test_empty_file(tmp_path) -> None:
    for name in ("e.csv", "e.parquet", "e.jsonl"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(InputError, match=rf"{name}: the file is empty"):
            read_frame(tmp_path / name)


def test_header_only_reads_as_zero_rows(tmp_path) -> None:
    (tmp_path / "h.csv").write_text("a,b\n")
    assert read_frame(tmp_path / "h.csv").frame.height == 0


def test_non_utf8_names_file_and_line(tmp_path) -> None:
    (tmp_path / "latin.csv").write_bytes(b"name,city\nann,Paris\nbob,Z\xfcrich\n")
    with pytest.raises(InputError, match=r"latin\.csv:3: the file is not UTF-8 text \(byte 0xfc") as exc:
        read_frame(tmp_path / "latin.csv")
    assert "iconv" in (exc.value.hint or "")


def test_mixed_types_warn_with_examples(tmp_path) -> None:
    rows = "\n".join(str(i) for i in range(20_000))
    (tmp_path / "m.csv").write_text(f"n\n{rows}\nabc\n")
    loaded = read_frame(tmp_path / "m.csv")
    assert loaded.frame["n"].dtype == pl.String
    assert len(loaded.warnings) == 1
    assert "column 'n' mixes numbers and text: 1 of 20001" in loaded.warnings[0] and "'abc' (row 20001)" in loaded.warnings[0]


def test_parquet_with_nested_types_is_refused(tmp_path) -> None:
    pl.DataFrame({"id": [1, 2], "tags": [["a"], ["b", "c"]]}).write_parquet(tmp_path / "n.parquet")
    with pytest.raises(InputError, match=r"n\.parquet: column 'tags' has the nested type List"):
        read_frame(tmp_path / "n.parquet")
    with pytest.raises(InputError, match="nested type"):
        list(iter_frames(tmp_path / "n.parquet"))


def test_unknown_format_missing_path_and_bad_json(tmp_path) -> None:
    (tmp_path / "x.xlsx").write_text("nope")
    with pytest.raises(InputError, match=r"unknown data format '\.xlsx'"):
        read_frame(tmp_path / "x.xlsx")
    with pytest.raises(InputError, match="no such file"):
        read_frame(tmp_path / "missing.csv")
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2: not valid JSON Lines"):
        read_frame(tmp_path / "bad.jsonl")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_frame(tmp_path / "broken.parquet")
