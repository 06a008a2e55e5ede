"""One report comment per pull request on GitHub, GitLab, Bitbucket Cloud and Gitea, over REST.

The comment carries a hidden marker; posting again finds it and edits it in place instead of adding a
new comment (CML's watermark idea). Each forge differs only in URLs, auth header, JSON body and
pagination, so a subclass fills in those few hooks (STYLE.md D1). Server errors (5xx, 429,
connection failures) are retried by the one policy of ``shipyard.retry``; each retry lists the
comments again first, so a POST that did land before the error is updated, never duplicated.
"""

from __future__ import annotations

import base64
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from shipyard.errors import EXIT_INTERNAL, NotFound, ShipyardError, UsageError, did_you_mean
from shipyard.retry import Retryable, RetryPolicy, retry_after_seconds, retryable_status

DEFAULT_MARKER = "default"
_MAX_PAGES = 50
_TIMEOUT = 30.0
TOTAL_S = 300.0  # a comment is given up after this long, retries included


class ForgeError(ShipyardError):
    """The forge refused the request (bad token, no permission, no such pull request)."""


class ForgeUnavailable(ShipyardError):
    """The forge kept failing (5xx, timeouts) after every retry; nothing more was attempted."""

    exit_code = EXIT_INTERNAL


@dataclass(frozen=True)
class PlannedRequest:
    """A request as it would be sent (token redacted): what ``ci comment --dry-run`` prints."""

    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "headers": self.headers, "json": self.json,
                "note": self.note}


@dataclass(frozen=True)
class CommentResult:
    action: str  # "created" or "updated"
    comment_id: str
    url: str | None
    requests: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "comment_id": self.comment_id, "url": self.url,
                "requests": self.requests}


@dataclass
class Forge(ABC):
    """A forge's comment API for one pull request. Subclasses fill in the hooks below."""

    api_url: str
    repo: str
    pr: int
    token: str
    token_var: str = ""
    retries: int = 3
    backoff: float = 1.0
    transport: httpx.BaseTransport | None = None
    _requests: int = field(default=0, init=False)

    name = "forge"
    limit = 65_536  # longest comment body the forge accepts

    # -- hooks ---------------------------------------------------------------------------
    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """The header that carries the token."""

    @abstractmethod
    def list_url(self) -> str:
        """First page of the pull request's comments."""

    @abstractmethod
    def create_url(self) -> str:
        """Where a new comment is POSTed."""

    @abstractmethod
    def update_url(self, comment_id: str) -> str:
        """Where an existing comment is edited (with ``update_method``)."""

    update_method = "PATCH"

    def payload(self, body: str) -> dict[str, Any]:
        return {"body": body}

    def comments(self, data: Any) -> Iterator[tuple[str, str]]:
        """(id, body) of each comment in one page of the list response."""
        for item in data if isinstance(data, list) else []:
            yield str(item["id"]), str(item.get("body") or "")

    def next_page(self, response: httpx.Response, data: Any) -> str | None:
        link = response.links.get("next")
        return link.get("url") if link else None

    def html_url(self, data: Any) -> str | None:
        return data.get("html_url") if isinstance(data, dict) else None

    def marker(self, key: str) -> str:
        return f"<!-- shipyard-report:{key} -->"

    # -- the flow ------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "Content-Type": "application/json",
                "User-Agent": "shipyard-ci", **self.auth_headers()}

    def _redacted(self) -> dict[str, str]:
        out = {}
        for key, value in self._headers().items():
            if key.lower() in ("authorization", "private-token"):
                scheme, _, _ = value.partition(" ")
                value = f"{scheme} ***" if " " in value else "***"
            out[key] = value
        return out

    def compose(self, report: str, key: str = DEFAULT_MARKER) -> str:
        """The comment body: marker first, then the report, cut to the forge's size limit."""
        marker = self.marker(key)
        body = f"{marker}\n{report.rstrip()}\n"
        if len(body) > self.limit:
            note = ("\n\n_The report was cut to fit the comment size limit; the full report is in "
                    "the job's artifacts._\n")
            body = body[: self.limit - len(note)] + note
        return body

    def plan(self, report: str, key: str = DEFAULT_MARKER) -> list[PlannedRequest]:
        body = self.compose(report, key)
        headers = self._redacted()
        return [
            PlannedRequest("GET", self.list_url(), {k: v for k, v in headers.items() if k != "Content-Type"},
                           note=f"list comments, looking for {self.marker(key)}"),
            PlannedRequest(self.update_method, self.update_url("{comment_id}"), headers, self.payload(body),
                           note="when a marked comment exists: edit it"),
            PlannedRequest("POST", self.create_url(), headers, self.payload(body),
                           note="otherwise: create it"),
        ]

    def upsert(self, report: str, key: str = DEFAULT_MARKER) -> CommentResult:
        """Create the marked comment, or update it when it exists. Retries on 5xx with backoff."""
        body = self.compose(report, key)
        marker = self.marker(key)
        policy = RetryPolicy(attempts=self.retries + 1, wait_initial=self.backoff, wait_max=60.0, timeout=TOTAL_S)
        with httpx.Client(timeout=_TIMEOUT, transport=self.transport, headers=self._headers()) as client:
            tries = 0

            def once() -> CommentResult:
                nonlocal tries
                tries += 1
                # every attempt lists the comments again: a lost answer to a create is not a second comment
                return self._upsert_once(client, body, marker)

            try:
                return policy.run(once)
            except Retryable as last:
                raise ForgeUnavailable(
                    f"{self.name}: {last} (tried {tries} times with backoff); the comment was not posted",
                    hint="the forge is having trouble; rerun the job later (the report files are on disk)",
                ) from last

    def _upsert_once(self, client: httpx.Client, body: str, marker: str) -> CommentResult:
        existing = self._find(client, marker)
        if existing is not None:
            data = self._send(client, self.update_method, self.update_url(existing), self.payload(body))
            return CommentResult("updated", existing, self.html_url(data), self._requests)
        data = self._send(client, "POST", self.create_url(), self.payload(body))
        comment_id = str(data.get("id")) if isinstance(data, dict) else "?"
        return CommentResult("created", comment_id, self.html_url(data), self._requests)

    def _find(self, client: httpx.Client, marker: str) -> str | None:
        url: str | None = self.list_url()
        alternatives = {marker, _link_marker(marker), _html_marker(marker)}
        for _ in range(_MAX_PAGES):
            if url is None:
                break
            response, data = self._call(client, "GET", url, None)
            for comment_id, text in self.comments(data):
                if any(m in text for m in alternatives):
                    return comment_id
            url = self.next_page(response, data)
        return None

    def _send(self, client: httpx.Client, method: str, url: str, payload: dict[str, Any]) -> Any:
        return self._call(client, method, url, payload)[1]

    def _call(self, client: httpx.Client, method: str, url: str,
              payload: dict[str, Any] | None) -> tuple[httpx.Response, Any]:
        self._requests += 1
        try:
            response = client.request(method, url, json=payload)
        except httpx.TransportError as exc:
            raise Retryable(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if retryable_status(status):
            raise Retryable(f"{method} {url} answered {status} {response.reason_phrase}", status=status,
                            retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        if status == 401:
            raise ForgeError(
                f"{self.name} rejected the token from {self.token_var} (401 {response.reason_phrase} "
                f"at {method} {url}){_detail(response)}",
                hint=f"check that {self.token_var} holds a valid, unexpired token for {self.repo}",
            )
        if status == 403:
            raise ForgeError(
                f"{self.name}: the token from {self.token_var} may not comment on {self.repo} "
                f"(403 at {method} {url}){_detail(response)}",
                hint=_permission_hint(self.name),
            )
        if status == 404:
            raise NotFound(
                f"{self.name}: pull request #{self.pr} of {self.repo} not found (404 at {method} {url})"
                f"{_detail(response)}",
                hint="check the repository and pull-request number (SHIPYARD_REPO, SHIPYARD_PR) and that "
                     f"the token in {self.token_var} can see the repository (private ones answer 404 otherwise)",
            )
        if status >= 400:
            raise ForgeError(f"{self.name}: {method} {url} answered {status} {response.reason_phrase}"
                             f"{_detail(response)}")
        if not response.content:
            return response, None
        try:
            return response, response.json()
        except ValueError as exc:
            raise ForgeError(f"{self.name}: {method} {url} answered {status} with a body that is not JSON "
                             f"({response.text[:120]!r})") from exc


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    if isinstance(data, dict):
        message = data.get("message") or data.get("error") or data.get("error_description")
        if isinstance(message, dict):
            message = message.get("message") or json.dumps(message)
        if message:
            return f": {message}"
    return ""


def _permission_hint(forge: str) -> str:
    return {
        "github": "give the job 'permissions: pull-requests: write' (or a token with repo scope)",
        "gitlab": "use a project or personal access token with the 'api' scope (CI_JOB_TOKEN cannot comment)",
        "bitbucket": "use a repository access token with the 'pullrequest:write' scope",
        "gitea": "use a token with the 'write:issue' scope",
    }.get(forge, "use a token that may write comments")


def _html_marker(marker: str) -> str:
    inner = re.sub(r"^\[//\]: # \((.*)\)$", r"\1", marker)
    return inner if inner.startswith("<!--") else f"<!-- {inner} -->"


def _link_marker(marker: str) -> str:
    inner = re.sub(r"^<!-- (.*) -->$", r"\1", marker)
    return inner if inner.startswith("[//]") else f"[//]: # ({inner})"


class GitHub(Forge):
    name = "github"
    limit = 65_536

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28"}

    def list_url(self) -> str:
        return f"{self.api_url}/repos/{self.repo}/issues/{self.pr}/comments?per_page=100"

    def create_url(self) -> str:
        return f"{self.api_url}/repos/{self.repo}/issues/{self.pr}/comments"

    def update_url(self, comment_id: str) -> str:
        return f"{self.api_url}/repos/{self.repo}/issues/comments/{comment_id}"


class Gitea(GitHub):
    """Gitea's comment API has GitHub's paths; its token header and paging differ."""

    name = "gitea"
    limit = 65_536

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def list_url(self) -> str:
        return f"{self.api_url}/repos/{self.repo}/issues/{self.pr}/comments?limit=50&page=1"


class GitLab(Forge):
    name = "gitlab"
    limit = 1_000_000
    update_method = "PUT"

    def auth_headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.token}

    def _project(self) -> str:
        return self.repo if self.repo.isdigit() else quote(self.repo, safe="")

    def list_url(self) -> str:
        return (f"{self.api_url}/projects/{self._project()}/merge_requests/{self.pr}/notes"
                "?per_page=100&sort=asc&order_by=created_at")

    def create_url(self) -> str:
        return f"{self.api_url}/projects/{self._project()}/merge_requests/{self.pr}/notes"

    def update_url(self, comment_id: str) -> str:
        return f"{self.api_url}/projects/{self._project()}/merge_requests/{self.pr}/notes/{comment_id}"

    def comments(self, data: Any) -> Iterator[tuple[str, str]]:
        for item in data if isinstance(data, list) else []:
            if not item.get("system"):
                yield str(item["id"]), str(item.get("body") or "")

    def next_page(self, response: httpx.Response, data: Any) -> str | None:
        link = response.links.get("next")
        if link:
            return link.get("url")
        page = response.headers.get("X-Next-Page", "").strip()
        if page.isdigit():
            return str(response.request.url.copy_set_param("page", page))
        return None

    def html_url(self, data: Any) -> str | None:
        return None


class Bitbucket(Forge):
    name = "bitbucket"
    limit = 32_768
    update_method = "PUT"
    username: str | None = None

    def auth_headers(self) -> dict[str, str]:
        if self.username:
            raw = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {"Authorization": f"Bearer {self.token}"}

    def marker(self, key: str) -> str:
        # Bitbucket escapes raw HTML, so an HTML comment would show; an empty link reference does not.
        return f"[//]: # (shipyard-report:{key})"

    def payload(self, body: str) -> dict[str, Any]:
        return {"content": {"raw": body}}

    def list_url(self) -> str:
        return f"{self.api_url}/repositories/{self.repo}/pullrequests/{self.pr}/comments?pagelen=100"

    def create_url(self) -> str:
        return f"{self.api_url}/repositories/{self.repo}/pullrequests/{self.pr}/comments"

    def update_url(self, comment_id: str) -> str:
        return f"{self.api_url}/repositories/{self.repo}/pullrequests/{self.pr}/comments/{comment_id}"

    def comments(self, data: Any) -> Iterator[tuple[str, str]]:
        values = data.get("values", []) if isinstance(data, dict) else []
        for item in values:
            if not item.get("deleted"):
                yield str(item["id"]), str((item.get("content") or {}).get("raw") or "")

    def next_page(self, response: httpx.Response, data: Any) -> str | None:
        return data.get("next") if isinstance(data, dict) else None

    def html_url(self, data: Any) -> str | None:
        if isinstance(data, dict):
            return ((data.get("links") or {}).get("html") or {}).get("href")
        return None


FORGES: dict[str, type[Forge]] = {"github": GitHub, "gitlab": GitLab, "bitbucket": Bitbucket, "gitea": Gitea}

# Variables read for the token, in order; SHIPYARD_FORGE_TOKEN works for every forge.
TOKEN_VARS: dict[str, tuple[str, ...]] = {
    "github": ("SHIPYARD_FORGE_TOKEN", "GITHUB_TOKEN", "GH_TOKEN"),
    "gitlab": ("SHIPYARD_FORGE_TOKEN", "GITLAB_TOKEN"),
    "bitbucket": ("SHIPYARD_FORGE_TOKEN", "BITBUCKET_TOKEN"),
    "gitea": ("SHIPYARD_FORGE_TOKEN", "GITEA_TOKEN"),
}

_TOKEN_HOWTO = {
    "github": "in GitHub Actions: env: {GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}} with permissions: pull-requests: write",
    "gitlab": "create a project access token with the 'api' scope and add it as a masked CI/CD variable GITLAB_TOKEN",
    "bitbucket": "add a repository access token (pullrequest:write) as the secured variable BITBUCKET_TOKEN "
                 "(or BITBUCKET_USERNAME + BITBUCKET_APP_PASSWORD)",
    "gitea": "create an access token with write:issue and pass it as GITEA_TOKEN",
}


def token_from_env(forge: str, env: Mapping[str, str], *, required: bool = True) -> tuple[str, str, str | None]:
    """(token, variable it came from, username for Basic auth) or a UsageError naming the variable."""
    for var in TOKEN_VARS[forge]:
        if env.get(var):
            return env[var], var, None
    if forge == "bitbucket" and env.get("BITBUCKET_USERNAME") and env.get("BITBUCKET_APP_PASSWORD"):
        return env["BITBUCKET_APP_PASSWORD"], "BITBUCKET_APP_PASSWORD", env["BITBUCKET_USERNAME"]
    if not required:
        return "", TOKEN_VARS[forge][1], None
    names = " or ".join(TOKEN_VARS[forge][1:])
    raise UsageError(
        f"no {forge} token: set {names} (or SHIPYARD_FORGE_TOKEN) to post the report comment",
        hint=_TOKEN_HOWTO[forge],
    )


def open_forge(forge: str | None, *, api_url: str | None, repo: str | None, pr: int | None,
               env: Mapping[str, str] | None = None, require_token: bool = True,
               retries: int = 3, backoff: float = 1.0,
               transport: httpx.BaseTransport | None = None) -> Forge:
    """A forge client for one pull request, with every missing piece named in the error."""
    env = os.environ if env is None else env
    if not forge:
        raise UsageError("cannot tell which forge hosts this repository",
                         hint="set SHIPYARD_FORGE to one of " + ", ".join(FORGES))
    if forge not in FORGES:
        raise UsageError(f"unknown forge {forge!r}", hint=did_you_mean(forge, FORGES))
    if not repo:
        raise UsageError(f"{forge}: the repository is unknown",
                         hint="set SHIPYARD_REPO=owner/name (GitLab: group/project or the project id)")
    if pr is None:
        raise UsageError(f"{forge}: this job is not for a pull request, so there is nothing to comment on",
                         hint="run 'shipyard ci comment' on pull-request builds, or set SHIPYARD_PR=<number>")
    if not api_url:
        raise UsageError(f"{forge}: the API address is unknown",
                         hint="set SHIPYARD_FORGE_URL, e.g. https://gitea.example.com/api/v1")
    token, var, username = token_from_env(forge, env, required=require_token)
    client = FORGES[forge](api_url=api_url.rstrip("/"), repo=repo.strip("/"), pr=pr, token=token or "<unset>",
                           token_var=var, retries=retries, backoff=backoff, transport=transport)
    if isinstance(client, Bitbucket):
        client.username = username
    return client
