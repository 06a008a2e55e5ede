"""`shipyard report` then `shipyard ci comment` as a CI job runs them, against a local fake forge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ci.fakeforge import TOKEN, FakeForge, serve
from tests.ci.gitproject import make_project
from tests.conftest import run_cli

TOKEN_VAR = {"github": "GITHUB_TOKEN", "gitlab": "GITLAB_TOKEN", "bitbucket": "BITBUCKET_TOKEN",
             "gitea": "GITEA_TOKEN"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("ci") / "proj")
    result = run_cli("report", "--base", "main", "--no-plots", cwd=root)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(params=list(TOKEN_VAR))
def forge(request: pytest.FixtureRequest) -> Iterator[FakeForge]:
    fake = serve(FakeForge(request.param))
    yield fake
    fake.server.shutdown()  # type: ignore[union-attr]


def forge_env(fake: FakeForge, token: str | None = TOKEN) -> dict[str, str]:
    env = {"SHIPYARD_FORGE": fake.kind, "SHIPYARD_FORGE_URL": fake.base, "SHIPYARD_REPO": fake.repo,
           "SHIPYARD_PR": str(fake.pr), "SHIPYARD_FORGE_BACKOFF": "0.01", "GITHUB_TOKEN": "", "GITLAB_TOKEN": "",
           "BITBUCKET_TOKEN": "", "GITEA_TOKEN": "", "SHIPYARD_FORGE_TOKEN": ""}
    if token is not None:
        env[TOKEN_VAR[fake.kind]] = token
    return env


def test_report_markdown(project: Path) -> None:
    md = (project / "shipyard-report" / "report.md").read_text()
    assert "### Metrics" in md and "### Params changed" in md and "### Data changed" in md


def test_comment_created_then_updated(project: Path, forge: FakeForge) -> None:
    first = run_cli("ci", "comment", "--json", cwd=project, env=forge_env(forge))
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["action"] == "created"
    second = run_cli("ci", "comment", cwd=project, env=forge_env(forge))
    assert second.returncode == 0, second.stderr
    assert "updated the report comment" in second.stdout
    assert len(forge.comments) == 1
    body = forge.comments[0]["body"]
    assert "train.n_estimators" in body and "![" not in body, "no local image links in a comment"


def test_github_actions_environment(project: Path) -> None:
    fake = serve(FakeForge("github"))
    try:
        env = {"GITHUB_ACTIONS": "true", "GITHUB_REF": f"refs/pull/{fake.pr}/merge", "GITHUB_REPOSITORY": fake.repo,
               "GITHUB_API_URL": fake.base, "GITHUB_TOKEN": TOKEN, "SHIPYARD_FORGE": "", "SHIPYARD_REPO": "",
               "SHIPYARD_PR": "", "SHIPYARD_FORGE_URL": ""}
        result = run_cli("ci", "comment", cwd=project, env=env)
        assert result.returncode == 0, result.stderr
        assert fake.requests[-1].path == f"/repos/{fake.repo}/issues/{fake.pr}/comments"
    finally:
        fake.server.shutdown()  # type: ignore[union-attr]


def test_missing_token_exit_2(project: Path, forge: FakeForge) -> None:
    result = run_cli("ci", "comment", cwd=project, env=forge_env(forge, token=None))
    assert result.returncode == 2
    assert TOKEN_VAR[forge.kind] in result.stderr
    assert forge.requests == []


@pytest.mark.slow
def test_forge_errors(project: Path, forge: FakeForge) -> None:
    bad = run_cli("ci", "comment", cwd=project, env=forge_env(forge, token="nope"))
    assert bad.returncode == 2 and "401" in bad.stderr and TOKEN_VAR[forge.kind] in bad.stderr
    missing = run_cli("ci", "comment", cwd=project, env={**forge_env(forge), "SHIPYARD_PR": "999"})
    assert missing.returncode == 2 and "404" in missing.stderr and "#999" in missing.stderr
    forge.fail_next(500, 500, 500, 500)
    down = run_cli("ci", "comment", cwd=project, env=forge_env(forge))
    assert down.returncode == 3 and "500" in down.stderr and "tried 4 times" in down.stderr
    forge.fail_next(502)
    flaky = run_cli("ci", "comment", cwd=project, env=forge_env(forge))
    assert flaky.returncode == 0, flaky.stderr
    assert len(forge.comments) == 1


def test_dry_run_sends_nothing(project: Path, forge: FakeForge) -> None:
    result = run_cli("ci", "comment", "--dry-run", cwd=project, env=forge_env(forge, token="secret-value"))
    assert result.returncode == 0, result.stderr
    assert "POST " + forge.base in result.stdout and "secret-value" not in result.stdout
    assert forge.requests == []


def test_not_a_pull_request(project: Path) -> None:
    result = run_cli("ci", "comment", cwd=project,
                     env={"SHIPYARD_FORGE": "github", "SHIPYARD_REPO": "a/b", "GITHUB_TOKEN": "t", "SHIPYARD_PR": ""})
    assert result.returncode == 2 and "not for a pull request" in result.stderr
