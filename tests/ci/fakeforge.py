"""A local HTTP server on 127.0.0.1 that speaks the comment APIs of GitHub, GitLab, Bitbucket and Gitea.

It is strict the way the real APIs are: the exact URL path, the auth header each forge expects, the
JSON body shape, pagination. Anything else gets the status the real forge would give (401, 404,
422). Tests can queue failures (``fail_next``) to exercise retries and error messages.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "s3cret-token"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeForge:
    """State of one fake forge: comments per pull request, recorded requests, queued failures."""

    kind: str
    repo: str = "acme/penguins"
    pr: int = 7
    comments: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    page_size: int = 2
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        prefix = {"github": "", "gitea": "/api/v1", "gitlab": "/api/v4", "bitbucket": "/2.0"}[self.kind]
        return f"http://{host}:{port}{prefix}"

    def fail_next(self, *statuses: int) -> None:
        self.failures.extend(statuses)

    def seed(self, body: str, **extra: Any) -> int:
        self.next_id += 1
        self.comments.append({"id": self.next_id, "body": body, **extra})
        return self.next_id

    # -- request handling -------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(raw_path)
        headers = {k.lower(): v for k, v in headers.items()}
        parsed_body = json.loads(body) if body else None
        with self.lock:
            self.requests.append(Recorded(method, parts.path, parse_qs(parts.query), headers, parsed_body))
            if self.failures:
                status = self.failures.pop(0)
                return status, {"message": f"injected {status}"}, {}
        if not self._authorised(headers):
            return 401, {"message": "Bad credentials"}, {}
        routes = getattr(self, f"_{self.kind}_routes")()
        for pattern, allowed in routes:
            match = re.fullmatch(pattern, parts.path)
            if match is None:
                continue
            handler = allowed.get(method)
            if handler is None:
                return 405, {"message": "method not allowed"}, {}
            with self.lock:
                return handler(match, parse_qs(parts.query), parsed_body, headers)
        return 404, {"message": "Not Found"}, {}

    def _authorised(self, headers: dict[str, str]) -> bool:
        lower = headers
        if self.kind == "github":
            return lower.get("authorization") == f"Bearer {TOKEN}"
        if self.kind == "gitea":
            return lower.get("authorization") == f"token {TOKEN}"
        if self.kind == "gitlab":
            return lower.get("private-token") == TOKEN
        basic = "Basic " + base64.b64encode(f"ci-bot:{TOKEN}".encode()).decode()
        return lower.get("authorization") in (f"Bearer {TOKEN}", basic)

    def _page(self, items: list[Any], query: dict[str, list[str]], page_param: str, path: str) -> tuple[list[Any], str | None]:
        page = int(query.get(page_param, ["1"])[0])
        chunk = items[(page - 1) * self.page_size: page * self.page_size]
        more = page * self.page_size < len(items)
        host, port = self.server.server_address[:2]  # type: ignore[union-attr]
        others = {k: v[0] for k, v in query.items() if k != page_param}
        qs = "&".join(f"{k}={v}" for k, v in others.items())
        next_url = f"http://{host}:{port}{path}?{qs}{'&' if qs else ''}{page_param}={page + 1}" if more else None
        return chunk, next_url

    def _body_field(self, body: Any) -> str | None:
        if self.kind == "bitbucket":
            if not isinstance(body, dict) or set(body) != {"content"} or set(body["content"]) != {"raw"}:
                return None
            return body["content"]["raw"]
        if not isinstance(body, dict) or set(body) != {"body"} or not isinstance(body["body"], str):
            return None
        return body["body"]

    def _view(self, comment: dict[str, Any]) -> dict[str, Any]:
        if self.kind == "bitbucket":
            return {"id": comment["id"], "content": {"raw": comment["body"], "markup": "markdown"},
                    "deleted": comment.get("deleted", False),
                    "links": {"html": {"href": f"https://bitbucket.org/{self.repo}/pull-requests/{self.pr}#comment-{comment['id']}"}}}
        view = {"id": comment["id"], "body": comment["body"]}
        if self.kind == "gitlab":
            view["system"] = comment.get("system", False)
        else:
            view["html_url"] = f"https://forge.example/{self.repo}/pull/{self.pr}#issuecomment-{comment['id']}"
        return view

    def _list(self, page_param: str, path_of: str, wrap: bool = False):  # type: ignore[no-untyped-def]
        def handler(match, query, body, headers):  # type: ignore[no-untyped-def]
            views = [self._view(c) for c in self.comments]
            chunk, next_url = self._page(views, query, page_param, match.group(0))
            extra: dict[str, str] = {}
            if wrap:
                payload: Any = {"values": chunk, "pagelen": self.page_size, **({"next": next_url} if next_url else {})}
            else:
                payload = chunk
                if next_url:
                    extra["Link"] = f'<{next_url}>; rel="next"'
                    if self.kind == "gitlab":
                        extra["X-Next-Page"] = str(int(query.get("page", ["1"])[0]) + 1)
            return 200, payload, extra
        return handler

    def _create(self, match, query, body, headers):  # type: ignore[no-untyped-def]
        if headers.get("content-type", "").split(";")[0] != "application/json":
            return 415, {"message": "expected application/json"}, {}
        text = self._body_field(body)
        if text is None:
            return 422 if self.kind != "bitbucket" else 400, {"message": "body is missing or malformed"}, {}
        self.next_id += 1
        comment = {"id": self.next_id, "body": text}
        self.comments.append(comment)
        return 201, self._view(comment), {}

    def _update(self, match, query, body, headers):  # type: ignore[no-untyped-def]
        comment_id = int(match.group("cid"))
        text = self._body_field(body)
        if text is None:
            return 422, {"message": "body is missing or malformed"}, {}
        for comment in self.comments:
            if comment["id"] == comment_id:
                comment["body"] = text
                return 200, self._view(comment), {}
        return 404, {"message": "Not Found"}, {}

    def _github_routes(self):  # type: ignore[no-untyped-def]
        repo = re.escape(self.repo)
        return [
            (rf"/repos/{repo}/issues/{self.pr}/comments", {"GET": self._list("page", ""), "POST": self._create}),
            (rf"/repos/{repo}/issues/comments/(?P<cid>\d+)", {"PATCH": self._update}),
        ]

    def _gitea_routes(self):  # type: ignore[no-untyped-def]
        repo = re.escape(self.repo)
        return [
            (rf"/api/v1/repos/{repo}/issues/{self.pr}/comments", {"GET": self._list("page", ""), "POST": self._create}),
            (rf"/api/v1/repos/{repo}/issues/comments/(?P<cid>\d+)", {"PATCH": self._update}),
        ]

    def _gitlab_routes(self):  # type: ignore[no-untyped-def]
        project = re.escape(self.repo.replace("/", "%2F"))
        base = rf"/api/v4/projects/{project}/merge_requests/{self.pr}/notes"
        return [
            (base, {"GET": self._list("page", ""), "POST": self._create}),
            (base + r"/(?P<cid>\d+)", {"PUT": self._update}),
        ]

    def _bitbucket_routes(self):  # type: ignore[no-untyped-def]
        base = rf"/2.0/repositories/{re.escape(self.repo)}/pullrequests/{self.pr}/comments"
        return [
            (base, {"GET": self._list("page", "", wrap=True), "POST": self._create}),
            (base + r"/(?P<cid>\d+)", {"PUT": self._update}),
        ]


def serve(forge: FakeForge) -> FakeForge:
    """Start the fake forge on 127.0.0.1 (an ephemeral port) in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def _go(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            # Keep the raw (still percent-encoded) path, as a real router sees it.
            status, payload, extra = forge.handle(self.command, self.path, dict(self.headers.items()), body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = _go

        def log_message(self, format: str, *args: Any) -> None:
            pass

    forge.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=forge.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return forge
