"""Shared fixtures of the feature tests: one Feast repository per module (Feast imports in 8-10 s,
so every Feast-using test runs in one xdist group and the repository is built once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.features.feast_repo import write_repo


@pytest.fixture(scope="module")
def feast_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Feast repository (two views over Parquet, SQLite online store) in a scratch folder."""
    return write_repo(tmp_path_factory.mktemp("feast") / "feature_repo")
