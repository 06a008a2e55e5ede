"""A stage's feature fingerprint: a source outside the project is hashed by content (a file or a
whole folder), so a change there makes the stage stale like a change inside."""

from __future__ import annotations

from pathlib import Path

from shipyard.features.repo import RepoDefinitions, ViewDef
from shipyard.features.stage import fingerprint_part


def defs_over(repo: Path, source: Path) -> RepoDefinitions:
    view = ViewDef(name="stats", join_keys=("driver_id",), features=("conv_rate",), ttl_s=0.0, source=str(source),
                   timestamp_field="event_timestamp", created_field=None, field_mapping=(), definition="xxh128:1")
    return RepoDefinitions(repo, "drivers", {"stats": view})


def no_hashes(rels: list[str]) -> dict[str, None]:
    assert rels == []  # nothing inside the project to hash
    return {}


def test_a_folder_source_outside_the_project_is_hashed_by_content(tmp_path):
    root, outside = tmp_path / "project", tmp_path / "shared" / "stats"
    (outside / "day=1").mkdir(parents=True)
    root.mkdir()
    (outside / "day=1" / "part-0.parquet").write_bytes(b"first")
    defs = defs_over(root / "feature_repo", outside)
    first = fingerprint_part(defs, root, ["stats:conv_rate"], no_hashes)["sources"]["stats"]
    assert first is not None and first == fingerprint_part(defs, root, ["stats:conv_rate"], no_hashes)["sources"]["stats"]
    (outside / "day=1" / "part-0.parquet").write_bytes(b"second")
    changed = fingerprint_part(defs, root, ["stats:conv_rate"], no_hashes)["sources"]["stats"]
    assert changed != first
    (outside / "day=2").mkdir()
    (outside / "day=2" / "part-0.parquet").write_bytes(b"second")  # a new partition: stale again
    assert fingerprint_part(defs, root, ["stats:conv_rate"], no_hashes)["sources"]["stats"] not in (first, changed)


def test_a_file_source_outside_is_hashed_and_a_missing_one_is_none(tmp_path):
    source = tmp_path / "stats.parquet"
    source.write_bytes(b"rows")
    root = tmp_path / "project"
    root.mkdir()
    got = fingerprint_part(defs_over(root, source), root, ["stats:conv_rate"], no_hashes)["sources"]["stats"]
    assert got is not None
    source.unlink()
    assert fingerprint_part(defs_over(root, source), root, ["stats:conv_rate"], no_hashes)["sources"]["stats"] is None
