"""The "is the schema current?" check that runs on every store open without importing alembic."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import text

from shipyard.store import open_store
from shipyard.store.migrate import MIGRATIONS, _at_heads_without_alembic, file_heads, heads


def test_heads_read_from_the_files_are_alembics_heads() -> None:
    assert file_heads() == frozenset(heads())


def test_a_migration_file_added_later_changes_the_heads(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    shutil.copytree(MIGRATIONS / "versions", versions, ignore=shutil.ignore_patterns("__pycache__"))
    parent = sorted(heads())[0]
    (versions / "9999_later.py").write_text(f'revision = "9999"\ndown_revision = "{parent}"\n')
    assert file_heads(versions) == (frozenset(heads()) - {parent}) | {"9999"}
    (versions / "9998_merge.py").write_text('revision: str = "9998"\ndown_revision = ("9999", "0001")\n')
    assert "9998" in (file_heads(versions) or ()) and "9999" not in (file_heads(versions) or ())


def test_a_file_the_reader_does_not_understand_means_ask_alembic(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "0001_odd.py").write_text("revision = make_revision()\ndown_revision = None\n")
    assert file_heads(versions) is None
    (versions / "0001_odd.py").write_text("down_revision = None\n")
    assert file_heads(versions) is None


def test_fast_check_sees_a_current_store_and_a_store_behind(store) -> None:  # type: ignore[no-untyped-def]
    assert _at_heads_without_alembic(store)
    some_head = sorted(heads())[0]
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version WHERE version_num = :v"), {"v": some_head})
    assert not _at_heads_without_alembic(store)  # behind: alembic decides (and upgrades)


def test_fast_check_on_a_new_database_falls_back_to_alembic(tmp_path: Path) -> None:
    from shipyard.store.engine import Store

    empty = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert not _at_heads_without_alembic(empty)
    finally:
        empty.close()
    opened = open_store(tmp_path / "state", f"sqlite:///{tmp_path / 'empty.db'}")  # alembic creates it
    try:
        assert _at_heads_without_alembic(opened)
    finally:
        opened.close()


def test_opening_a_current_store_does_not_import_alembic(store_url: str, tmp_path: Path) -> None:
    open_store(tmp_path / "state", store_url).close()  # migrated by alembic, in this process
    probe = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from shipyard.store import open_store
        open_store(Path({str(tmp_path / 'state')!r}), {store_url!r}).close()
        print("ALEMBIC", "alembic" in sys.modules)
        """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "ALEMBIC False" in out.stdout, out.stdout + out.stderr
