"""Where are we running? The CI provider, branch, commit, base ref, PR number and repository.

Each provider is recognised by the variables it documents, and read from them alone (pure: the
environment is passed in as a mapping, so tests give one). A plain shell falls back to git.
``SHIPYARD_FORGE``, ``SHIPYARD_REPO``, ``SHIPYARD_PR``, ``SHIPYARD_BASE`` and ``SHIPYARD_FORGE_URL``
override what was detected (useful on Jenkins and Azure, whose forge is not implied).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

from shipyard.errors import UsageError, did_you_mean

PROVIDERS = ("github", "gitlab", "gitea", "bitbucket", "jenkins", "azure", "local")
FORGES = ("github", "gitlab", "bitbucket", "gitea")


@dataclass(frozen=True)
class CIEnv:
    """What a CI job knows about itself. ``forge`` is where pull-request comments go."""

    provider: str
    branch: str | None = None
    commit: str | None = None
    base_ref: str | None = None
    pr_number: int | None = None
    repo: str | None = None
    forge: str | None = None
    forge_url: str | None = None
    build_url: str | None = None

    @property
    def is_pull_request(self) -> bool:
        return self.pr_number is not None

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "is_pull_request": self.is_pull_request}


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def _strip_ref(ref: str | None) -> str | None:
    if not ref:
        return None
    for prefix in ("refs/heads/", "refs/tags/", "origin/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def slug_from_url(url: str | None) -> tuple[str | None, str | None]:
    """``https://host/owner/repo(.git)`` or ``git@host:owner/repo.git`` -> (host, 'owner/repo')."""
    if not url:
        return None, None
    url = url.strip()
    match = re.match(r"^[\w.-]+@([\w.-]+):(.+?)(?:\.git)?/?$", url)
    if match:
        return match.group(1), match.group(2)
    parsed = urlparse(url)
    path = parsed.path.strip("/").removesuffix(".git")
    # pull-request URLs: .../owner/repo/pull/5, .../group/proj/-/merge_requests/5, .../pull-requests/5
    path = re.split(r"/(?:-/)?(?:pull|pulls|merge_requests|pull-requests)/\d+", path)[0].removesuffix("/-")
    return parsed.hostname, path or None


def _forge_from_host(host: str | None) -> str | None:
    if not host:
        return None
    host = host.lower()
    for forge in ("github", "gitlab", "bitbucket", "gitea"):
        if forge in host:
            return forge
    return None


def _github_like(env: Mapping[str, str], provider: str) -> CIEnv:
    ref = env.get("GITHUB_REF", "")
    pr = None
    match = re.match(r"refs/pull/(\d+)/", ref)
    if match:
        pr = int(match.group(1))
    commit = env.get("GITHUB_SHA")
    event_path = env.get("GITHUB_EVENT_PATH")
    if event_path and Path(event_path).is_file():
        try:
            event = json.loads(Path(event_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            event = {}
        pull = event.get("pull_request") if isinstance(event, dict) else None
        if isinstance(pull, dict):
            pr = pr or _int(str(pull.get("number", "")))
            head = pull.get("head") or {}
            commit = head.get("sha") or commit  # GITHUB_SHA is the merge commit on pull requests
    server = env.get("GITHUB_SERVER_URL", "https://github.com" if provider == "github" else None)
    if provider == "github":
        api = env.get("GITHUB_API_URL", "https://api.github.com")
    else:  # Gitea Actions sets GITHUB_* too; its API lives under /api/v1
        api = f"{server.rstrip('/')}/api/v1" if server else None
    return CIEnv(
        provider=provider,
        branch=env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME") or _strip_ref(ref),
        commit=commit,
        base_ref=env.get("GITHUB_BASE_REF") or None,
        pr_number=pr,
        repo=env.get("GITHUB_REPOSITORY"),
        forge=provider,
        forge_url=api,
        build_url=(f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
                   if server and env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID") else None),
    )


def _gitlab(env: Mapping[str, str]) -> CIEnv:
    return CIEnv(
        provider="gitlab",
        branch=env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or env.get("CI_COMMIT_BRANCH")
        or env.get("CI_COMMIT_REF_NAME"),
        commit=env.get("CI_COMMIT_SHA"),
        base_ref=env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME") or None,
        pr_number=_int(env.get("CI_MERGE_REQUEST_IID")),
        repo=env.get("CI_PROJECT_PATH"),
        forge="gitlab",
        forge_url=env.get("CI_API_V4_URL", "https://gitlab.com/api/v4"),
        build_url=env.get("CI_PIPELINE_URL") or env.get("CI_JOB_URL"),
    )


def _bitbucket(env: Mapping[str, str]) -> CIEnv:
    return CIEnv(
        provider="bitbucket",
        branch=env.get("BITBUCKET_BRANCH"),
        commit=env.get("BITBUCKET_COMMIT"),
        base_ref=env.get("BITBUCKET_PR_DESTINATION_BRANCH") or None,
        pr_number=_int(env.get("BITBUCKET_PR_ID")),
        repo=env.get("BITBUCKET_REPO_FULL_NAME"),
        forge="bitbucket",
        forge_url="https://api.bitbucket.org/2.0",
        build_url=(f"https://bitbucket.org/{env['BITBUCKET_REPO_FULL_NAME']}/pipelines/results/"
                   f"{env['BITBUCKET_BUILD_NUMBER']}" if env.get("BITBUCKET_REPO_FULL_NAME") else None),
    )


def _jenkins(env: Mapping[str, str]) -> CIEnv:
    host, slug = slug_from_url(env.get("CHANGE_URL") or env.get("GIT_URL"))
    branch = env.get("CHANGE_BRANCH") or env.get("BRANCH_NAME") or _strip_ref(env.get("GIT_BRANCH"))
    return CIEnv(
        provider="jenkins",
        branch=branch,
        commit=env.get("GIT_COMMIT"),
        base_ref=env.get("CHANGE_TARGET") or None,
        pr_number=_int(env.get("CHANGE_ID")),
        repo=slug,
        forge=_forge_from_host(host),
        forge_url=_default_api(_forge_from_host(host), host),
        build_url=env.get("BUILD_URL"),
    )


def _azure(env: Mapping[str, str]) -> CIEnv:
    provider_name = env.get("BUILD_REPOSITORY_PROVIDER", "").lower()
    forge = {"github": "github", "githubenterprise": "github", "bitbucket": "bitbucket"}.get(provider_name)
    pr = _int(env.get("SYSTEM_PULLREQUEST_PULLREQUESTNUMBER")) or _int(env.get("SYSTEM_PULLREQUEST_PULLREQUESTID"))
    branch = (_strip_ref(env.get("SYSTEM_PULLREQUEST_SOURCEBRANCH"))
              or _strip_ref(env.get("BUILD_SOURCEBRANCH")) or env.get("BUILD_SOURCEBRANCHNAME"))
    build = None
    if env.get("SYSTEM_COLLECTIONURI") and env.get("SYSTEM_TEAMPROJECT") and env.get("BUILD_BUILDID"):
        build = (f"{env['SYSTEM_COLLECTIONURI'].rstrip('/')}/{env['SYSTEM_TEAMPROJECT']}"
                 f"/_build/results?buildId={env['BUILD_BUILDID']}")
    return CIEnv(
        provider="azure",
        branch=branch,
        commit=env.get("SYSTEM_PULLREQUEST_SOURCECOMMITID") or env.get("BUILD_SOURCEVERSION"),
        base_ref=_strip_ref(env.get("SYSTEM_PULLREQUEST_TARGETBRANCH")),
        pr_number=pr,
        repo=env.get("BUILD_REPOSITORY_NAME"),
        forge=forge,
        forge_url=_default_api(forge, None),
        build_url=build,
    )


def _default_api(forge: str | None, host: str | None) -> str | None:
    if forge == "github":
        return "https://api.github.com" if host in (None, "github.com") else f"https://{host}/api/v3"
    if forge == "gitlab":
        return f"https://{host or 'gitlab.com'}/api/v4"
    if forge == "bitbucket":
        return "https://api.bitbucket.org/2.0"
    if forge == "gitea" and host:
        return f"https://{host}/api/v1"
    return None


def _local(env: Mapping[str, str], root: Path | None) -> CIEnv:
    from shipyard.ci import git

    branch = commit = None
    host = slug = None
    if root is not None and git.is_repo(root):
        commit = git.head_commit(root)
        branch = git.current_branch(root)
        host, slug = slug_from_url(git.remote_url(root))
    forge = _forge_from_host(host)
    return CIEnv(provider="local", branch=branch, commit=commit, repo=slug, forge=forge,
                 forge_url=_default_api(forge, host))


def detect(env: Mapping[str, str], root: Path | None = None) -> CIEnv:
    """The CI environment described by ``env`` (``os.environ`` in practice); git fills gaps locally."""
    if env.get("GITEA_ACTIONS") == "true":
        found = _github_like(env, "gitea")
    elif env.get("GITHUB_ACTIONS") == "true":
        found = _github_like(env, "github")
    elif env.get("GITLAB_CI"):
        found = _gitlab(env)
    elif env.get("BITBUCKET_BUILD_NUMBER"):
        found = _bitbucket(env)
    elif env.get("TF_BUILD", "").lower() == "true":
        found = _azure(env)
    elif env.get("JENKINS_URL") or env.get("JENKINS_HOME"):
        found = _jenkins(env)
    else:
        found = _local(env, root)
    return apply_overrides(found, env)


def apply_overrides(found: CIEnv, env: Mapping[str, str]) -> CIEnv:
    """``SHIPYARD_*`` variables win over what the provider said."""
    changes: dict[str, object] = {}
    if env.get("SHIPYARD_FORGE"):
        changes["forge"] = env["SHIPYARD_FORGE"].strip().lower()
        if changes["forge"] not in FORGES:
            raise UsageError(f"SHIPYARD_FORGE={env['SHIPYARD_FORGE']!r} is not a forge Shipyard can comment on",
                             hint=did_you_mean(str(changes["forge"]), FORGES))
        if not env.get("SHIPYARD_FORGE_URL") and changes["forge"] != found.forge:
            changes["forge_url"] = _default_api(str(changes["forge"]), None)
    if env.get("SHIPYARD_FORGE_URL"):
        changes["forge_url"] = env["SHIPYARD_FORGE_URL"].rstrip("/")
    if env.get("SHIPYARD_REPO"):
        changes["repo"] = env["SHIPYARD_REPO"].strip("/")
    if env.get("SHIPYARD_PR"):
        number = _int(env["SHIPYARD_PR"])
        if number is None:
            raise UsageError(f"SHIPYARD_PR={env['SHIPYARD_PR']!r} is not a pull-request number",
                             hint="set SHIPYARD_PR to the number only, e.g. SHIPYARD_PR=42")
        changes["pr_number"] = number
    if env.get("SHIPYARD_BASE"):
        changes["base_ref"] = env["SHIPYARD_BASE"]
    return replace(found, **changes) if changes else found
