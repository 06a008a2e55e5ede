"""The comment flow of every forge against a strict local fake of its REST API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.ci.forges import ForgeError, ForgeUnavailable, open_forge
from shipyard.errors import NotFound, UsageError
from tests.ci.fakeforge import TOKEN, FakeForge, serve

FORGES = ["github", "gitlab", "bitbucket", "gitea"]
TOKEN_VAR = {"github": "GITHUB_TOKEN", "gitlab": "GITLAB_TOKEN", "bitbucket": "BITBUCKET_TOKEN",
             "gitea": "GITEA_TOKEN"}


@pytest.fixture(params=FORGES)
def fake(request: pytest.FixtureRequest) -> Iterator[FakeForge]:
    forge = serve(FakeForge(request.param))
    yield forge
    assert forge.server is not None
    forge.server.shutdown()
    forge.server.server_close()


def client(fake: FakeForge, token: str = TOKEN, **kw):  # type: ignore[no-untyped-def]
    return open_forge(fake.kind, api_url=fake.base, repo=fake.repo, pr=fake.pr,
                      env={TOKEN_VAR[fake.kind]: token}, backoff=0.01, **kw)


def bodies(fake: FakeForge) -> list[str]:
    return [c["body"] for c in fake.comments]


def test_creates_one_comment_then_updates_it(fake: FakeForge) -> None:
    fake.seed("LGTM, nice work")
    fake.seed("unrelated comment two")
    fake.seed("third one, so the list has two pages")
    first = client(fake).upsert("## Shipyard report\n\naccuracy 0.97")
    assert first.action == "created"
    assert len(fake.comments) == 4
    assert "accuracy 0.97" in fake.comments[-1]["body"]
    marker = client(fake).marker("default")
    assert fake.comments[-1]["body"].startswith(marker)

    post = next(r for r in fake.requests if r.method == "POST")
    expected_path = {
        "github": "/repos/acme/penguins/issues/7/comments",
        "gitea": "/api/v1/repos/acme/penguins/issues/7/comments",
        "gitlab": "/api/v4/projects/acme%2Fpenguins/merge_requests/7/notes",
        "bitbucket": "/2.0/repositories/acme/penguins/pullrequests/7/comments",
    }[fake.kind]
    assert post.path == expected_path
    if fake.kind == "bitbucket":
        assert set(post.body) == {"content"} and post.body["content"]["raw"].startswith(marker)
    else:
        assert set(post.body) == {"body"}
    # The list was paged (page size 2, three comments) before deciding to create.
    assert len([r for r in fake.requests if r.method == "GET"]) == 2

    fake.requests.clear()
    second = client(fake).upsert("## Shipyard report\n\naccuracy 0.98")
    assert second.action == "updated"
    assert second.comment_id == first.comment_id
    assert len(fake.comments) == 4, "the report must be edited in place, not posted twice"
    assert "accuracy 0.98" in fake.comments[-1]["body"] and "0.97" not in fake.comments[-1]["body"]
    update = [r for r in fake.requests if r.method != "GET"]
    assert len(update) == 1
    assert update[0].method == {"github": "PATCH", "gitea": "PATCH", "gitlab": "PUT", "bitbucket": "PUT"}[fake.kind]
    assert update[0].path.endswith(f"/{first.comment_id}")


def test_auth_header_is_the_one_each_forge_expects(fake: FakeForge) -> None:
    client(fake).upsert("report")
    headers = fake.requests[0].headers
    if fake.kind == "github":
        assert headers["authorization"] == f"Bearer {TOKEN}"
        assert headers["accept"] == "application/vnd.github+json"
        assert headers["x-github-api-version"] == "2022-11-28"
    elif fake.kind == "gitlab":
        assert headers["private-token"] == TOKEN and "authorization" not in headers
    elif fake.kind == "gitea":
        assert headers["authorization"] == f"token {TOKEN}"
    else:
        assert headers["authorization"] == f"Bearer {TOKEN}"


def test_bitbucket_app_password_uses_basic_auth() -> None:
    fake = serve(FakeForge("bitbucket"))
    try:
        forge = open_forge("bitbucket", api_url=fake.base, repo=fake.repo, pr=fake.pr,
                           env={"BITBUCKET_USERNAME": "ci-bot", "BITBUCKET_APP_PASSWORD": TOKEN})
        assert forge.upsert("hello").action == "created"
        assert fake.requests[0].headers["authorization"].startswith("Basic ")
    finally:
        fake.server.shutdown()  # type: ignore[union-attr]


def test_other_markers_and_system_notes_are_left_alone(fake: FakeForge) -> None:
    other = client(fake).marker("nightly")
    fake.seed(f"{other}\nnightly report")
    if fake.kind == "gitlab":
        fake.seed(f"{client(fake).marker('default')} quoted in a system note", system=True)
    if fake.kind == "bitbucket":
        fake.seed(f"{client(fake).marker('default')} deleted", deleted=True)
    result = client(fake).upsert("pr report")
    assert result.action == "created"
    assert "nightly report" in bodies(fake)[0]


def test_401_names_the_token_variable(fake: FakeForge) -> None:
    with pytest.raises(ForgeError) as info:
        client(fake, token="wrong").upsert("report")
    message = str(info.value)
    assert "401" in message and TOKEN_VAR[fake.kind] in message
    assert fake.comments == []
    assert len(fake.requests) == 1, "a 401 is not retried"


def test_404_names_the_pull_request(fake: FakeForge) -> None:
    forge = open_forge(fake.kind, api_url=fake.base, repo="acme/nope", pr=fake.pr,
                       env={TOKEN_VAR[fake.kind]: TOKEN}, backoff=0.01)
    with pytest.raises(NotFound) as info:
        forge.upsert("report")
    assert "#7 of acme/nope" in str(info.value) and "404" in str(info.value)
    assert info.value.hint and "SHIPYARD_REPO" in info.value.hint
    assert len(fake.requests) == 1


def test_500_is_retried_then_succeeds(fake: FakeForge) -> None:
    fake.fail_next(500, 503)
    result = client(fake).upsert("report")
    assert result.action == "created"
    assert len(fake.comments) == 1
    assert [r.method for r in fake.requests][:2] == ["GET", "GET"]


def test_500_on_create_does_not_duplicate(fake: FakeForge) -> None:
    # The first POST lands but its answer is a 502; the retry lists again and edits that comment.
    forge = client(fake)
    original = fake.handle

    state = {"posts": 0}

    def flaky(method, path, headers, body):  # type: ignore[no-untyped-def]
        if method == "POST":
            state["posts"] += 1
            if state["posts"] == 1:
                original(method, path, headers, body)  # the comment lands...
                return 502, {"message": "bad gateway"}, {}  # ...but the answer is lost
        return original(method, path, headers, body)

    fake.handle = flaky  # type: ignore[method-assign]
    result = forge.upsert("report")
    assert result.action == "updated"
    assert len(fake.comments) == 1


def test_500_that_persists_fails_clearly(fake: FakeForge) -> None:
    fake.fail_next(500, 500, 500, 500)
    with pytest.raises(ForgeUnavailable) as info:
        client(fake).upsert("report")
    assert "500" in str(info.value) and "tried 4 times" in str(info.value)
    assert info.value.exit_code == 3
    assert fake.comments == []


def test_missing_token_names_the_variable() -> None:
    for forge, var in TOKEN_VAR.items():
        with pytest.raises(UsageError) as info:
            open_forge(forge, api_url="http://127.0.0.1:9", repo="a/b", pr=1, env={})
        assert var in str(info.value) and info.value.exit_code == 2


def test_not_a_pull_request_and_unknown_forge() -> None:
    with pytest.raises(UsageError, match="not for a pull request"):
        open_forge("github", api_url="http://x", repo="a/b", pr=None, env={"GITHUB_TOKEN": "t"})
    with pytest.raises(UsageError) as info:
        open_forge("githib", api_url="http://x", repo="a/b", pr=1, env={"GITHUB_TOKEN": "t"})
    assert "github" in (info.value.hint or "")
    with pytest.raises(UsageError, match="SHIPYARD_REPO"):
        open_forge("github", api_url="http://x", repo=None, pr=1, env={"GITHUB_TOKEN": "t"})


def test_dry_run_plan_redacts_the_token(fake: FakeForge) -> None:
    plan = client(fake).plan("the report")
    assert plan[0].method == "GET" and plan[-1].method == "POST"
    for request in plan:
        assert TOKEN not in str(request.to_dict())
    assert fake.requests == [], "planning sends nothing"


def test_long_report_is_cut_to_the_forge_limit(fake: FakeForge) -> None:
    forge = client(fake)
    body = forge.compose("x" * (forge.limit + 5000))
    assert len(body) <= forge.limit and "cut to fit" in body
