"""`shipyard ci`'s register step follows the registry's rule: one version per model content."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.ci.env import CIEnv
from shipyard.ci.runner import step_register
from shipyard.config import load_config
from shipyard.registry import find_versions
from shipyard.workspace import Workspace


@pytest.fixture
def ws(project: Workspace) -> Workspace:
    """The conftest project, with a model section."""
    project.project.config_path.write_text("pipeline: {stages: {}}\nmodel: {name: tree, path: model/}\n")
    return project


def train(root: Path, depth: int) -> None:
    from sklearn.tree import DecisionTreeClassifier

    from shipyard.models import save_model

    rows = [[float(i % 7), float(i % 5)] for i in range(60)]
    labels = [int(a > 3) + int(b > 2) for a, b in rows]
    save_model(DecisionTreeClassifier(max_depth=depth, random_state=0).fit(rows, labels), root / "model", "sklearn")


def job(commit: str, branch: str = "main", pr: int | None = None) -> CIEnv:
    return CIEnv(provider="github", branch=branch, commit=commit, pr_number=pr)


def test_rerun_and_unchanged_model_reuse_the_version_with_fresh_ci_tags(ws: Workspace) -> None:
    config = load_config(ws.project.config_path)
    train(ws.project.root, 2)
    assert step_register(ws, config, job("c1"), None) == "tree@1"
    assert step_register(ws, config, job("c1"), None) == "tree@1"  # a rerun of the same job
    # another commit (a README change, say) that leaves the model file as it was
    assert step_register(ws, config, job("c2", "docs", pr=7), None) == "tree@1"
    with ws.store.read() as session:
        [version] = find_versions(session, "tree")
    assert version.tags["git.commit"] == "c2" and version.tags["git.branch"] == "docs" and version.tags["ci.pr"] == "7"
    assert version.tags["ci.model_hash"].startswith("xxh128:")
    train(ws.project.root, 4)
    assert step_register(ws, config, job("c3"), None) == "tree@2"
