"""CI provider detection from each provider's documented environment variables."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shipyard.ci.env import detect, slug_from_url
from shipyard.errors import UsageError


def test_github_pull_request(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42, "head": {"sha": "abc123head"}}}))
    env = {"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/pull/42/merge", "GITHUB_SHA": "mergesha",
           "GITHUB_HEAD_REF": "feature/more-trees", "GITHUB_BASE_REF": "main",
           "GITHUB_REPOSITORY": "acme/penguins", "GITHUB_EVENT_PATH": str(event),
           "GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "99"}
    found = detect(env)
    assert (found.provider, found.branch, found.commit, found.base_ref, found.pr_number, found.repo) == (
        "github", "feature/more-trees", "abc123head", "main", 42, "acme/penguins")
    assert found.forge == "github" and found.forge_url == "https://api.github.com"
    assert found.build_url == "https://github.com/acme/penguins/actions/runs/99"


def test_github_push_to_main() -> None:
    found = detect({"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main",
                    "GITHUB_SHA": "c0ffee", "GITHUB_REPOSITORY": "acme/penguins"})
    assert found.branch == "main" and found.pr_number is None and not found.is_pull_request
    assert found.base_ref is None


def test_gitea_actions_is_not_mistaken_for_github() -> None:
    found = detect({"GITEA_ACTIONS": "true", "GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/pull/3/head",
                    "GITHUB_SERVER_URL": "https://git.example.org", "GITHUB_REPOSITORY": "team/repo"})
    assert found.provider == "gitea" and found.forge == "gitea" and found.pr_number == 3
    assert found.forge_url == "https://git.example.org/api/v1"


def test_gitlab_merge_request() -> None:
    found = detect({"GITLAB_CI": "true", "CI_COMMIT_SHA": "deadbeef", "CI_COMMIT_REF_NAME": "feature",
                    "CI_MERGE_REQUEST_IID": "17", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
                    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature", "CI_PROJECT_PATH": "group/sub/proj",
                    "CI_API_V4_URL": "https://gitlab.example.com/api/v4"})
    assert (found.provider, found.pr_number, found.base_ref, found.repo, found.forge_url) == (
        "gitlab", 17, "main", "group/sub/proj", "https://gitlab.example.com/api/v4")


def test_jenkins_multibranch_pull_request() -> None:
    found = detect({"JENKINS_URL": "https://ci.example.com/", "GIT_COMMIT": "1234", "BRANCH_NAME": "PR-5",
                    "CHANGE_ID": "5", "CHANGE_TARGET": "main", "CHANGE_BRANCH": "feature",
                    "CHANGE_URL": "https://github.com/acme/penguins/pull/5",
                    "BUILD_URL": "https://ci.example.com/job/p/5/"})
    assert (found.provider, found.branch, found.pr_number, found.base_ref, found.repo, found.forge) == (
        "jenkins", "feature", 5, "main", "acme/penguins", "github")


def test_jenkins_plain_job_with_git_branch() -> None:
    found = detect({"JENKINS_HOME": "/var/jenkins", "GIT_BRANCH": "origin/main", "GIT_COMMIT": "1",
                    "GIT_URL": "git@gitlab.com:group/proj.git"})
    assert (found.branch, found.pr_number, found.repo, found.forge) == ("main", None, "group/proj", "gitlab")


def test_azure_pipelines_github_pr() -> None:
    found = detect({"TF_BUILD": "True", "BUILD_SOURCEVERSION": "merge", "BUILD_SOURCEBRANCH": "refs/pull/9/merge",
                    "SYSTEM_PULLREQUEST_PULLREQUESTNUMBER": "9", "SYSTEM_PULLREQUEST_SOURCEBRANCH": "refs/heads/feat",
                    "SYSTEM_PULLREQUEST_TARGETBRANCH": "refs/heads/main", "SYSTEM_PULLREQUEST_SOURCECOMMITID": "head",
                    "BUILD_REPOSITORY_NAME": "acme/penguins", "BUILD_REPOSITORY_PROVIDER": "GitHub"})
    assert (found.provider, found.branch, found.commit, found.base_ref, found.pr_number, found.forge) == (
        "azure", "feat", "head", "main", 9, "github")


def test_bitbucket_pipelines() -> None:
    found = detect({"BITBUCKET_BUILD_NUMBER": "12", "BITBUCKET_COMMIT": "cafe", "BITBUCKET_BRANCH": "feature",
                    "BITBUCKET_PR_ID": "3", "BITBUCKET_PR_DESTINATION_BRANCH": "main",
                    "BITBUCKET_REPO_FULL_NAME": "team/penguins"})
    assert (found.provider, found.pr_number, found.base_ref, found.repo, found.forge) == (
        "bitbucket", 3, "main", "team/penguins", "bitbucket")


def test_plain_shell_reads_git(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q", "-b", "topic")
    (tmp_path / "f").write_text("x")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "one")
    git("remote", "add", "origin", "https://gitea.example.org/team/repo.git")
    found = detect({}, tmp_path)
    assert found.provider == "local" and found.branch == "topic" and len(found.commit or "") == 40
    assert found.repo == "team/repo" and found.forge == "gitea"


def test_overrides_win_and_bad_ones_are_named() -> None:
    found = detect({"JENKINS_URL": "x", "SHIPYARD_FORGE": "gitea", "SHIPYARD_FORGE_URL": "http://127.0.0.1:3000/api/v1/",
                    "SHIPYARD_REPO": "a/b", "SHIPYARD_PR": "8", "SHIPYARD_BASE": "develop"})
    assert (found.forge, found.forge_url, found.repo, found.pr_number, found.base_ref) == (
        "gitea", "http://127.0.0.1:3000/api/v1", "a/b", 8, "develop")
    with pytest.raises(UsageError, match="SHIPYARD_PR"):
        detect({"JENKINS_URL": "x", "SHIPYARD_PR": "PR-8"})
    with pytest.raises(UsageError) as info:
        detect({"JENKINS_URL": "x", "SHIPYARD_FORGE": "gitlub"})
    assert "gitlab" in (info.value.hint or "")


@pytest.mark.parametrize(("url", "host", "slug"), [
    ("https://github.com/acme/penguins.git", "github.com", "acme/penguins"),
    ("git@github.com:acme/penguins.git", "github.com", "acme/penguins"),
    ("https://gitlab.com/group/sub/proj/-/merge_requests/4", "gitlab.com", "group/sub/proj"),
    ("https://bitbucket.org/team/repo/pull-requests/2", "bitbucket.org", "team/repo"),
])
def test_slug_from_url(url: str, host: str, slug: str) -> None:
    assert slug_from_url(url) == (host, slug)
