"""The one retry policy (shipyard.retry, on stamina): what is retried, how many times, for how long."""

from __future__ import annotations

import pytest

from shipyard.retry import (
    RETRY_AFTER_MAX_S,
    Retryable,
    RetryPolicy,
    _hook,
    retry_after_seconds,
    retryable_status,
)


def counting(outcomes: list[object]) -> tuple[list[int], object]:
    calls: list[int] = []

    def attempt() -> object:
        calls.append(1)
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return calls, attempt


def test_retryable_failures_are_tried_again_until_one_works() -> None:
    calls, attempt = counting([Retryable("503"), Retryable("503"), "ok"])
    assert RetryPolicy(attempts=4, wait_initial=0.001).run(attempt) == "ok"  # type: ignore[arg-type]
    assert len(calls) == 3


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    calls, attempt = counting([Retryable("first"), Retryable("last")])
    with pytest.raises(Retryable, match="last"):
        RetryPolicy(attempts=2, wait_initial=0.001).run(attempt)  # type: ignore[arg-type]
    assert len(calls) == 2


def test_total_time_is_bounded_whatever_the_attempts() -> None:
    calls, attempt = counting([Retryable("down")])
    with pytest.raises(Retryable):
        RetryPolicy(attempts=10_000, wait_initial=0.02, wait_max=0.02, timeout=0.2).run(attempt)  # type: ignore[arg-type]
    assert 1 < len(calls) < 100  # the time budget, not the attempts, ended it


def test_anything_else_is_not_retried() -> None:
    calls, attempt = counting([ValueError("a 4xx answer")])
    with pytest.raises(ValueError):
        RetryPolicy(attempts=5, wait_initial=0.001).run(attempt)  # type: ignore[arg-type]
    assert len(calls) == 1


def test_retry_after_replaces_the_wait_and_is_capped() -> None:
    assert _hook(Retryable("429", status=429, retry_after=2.0)) == 2.0
    assert _hook(Retryable("429", status=429, retry_after=3600.0)) == RETRY_AFTER_MAX_S
    assert _hook(Retryable("reset")) is True and _hook(KeyError("x")) is False
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert [retryable_status(s) for s in (500, 503, 429, 408, 404, 401)] == [True, True, True, True, False, False]


def test_a_policy_that_cannot_end_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_the_tracking_client_makes_the_policys_attempts_and_no_more() -> None:
    """Against a real server that always answers 503: five requests in all (the transport under the
    old loop retried too), then a StoreError naming the server."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from shipyard.errors import StoreError
    from shipyard.tracking.backends import RETRY, HttpBackend

    seen: list[str] = []

    class Busy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(StoreError, match="answered 503"):
            HttpBackend(url).create_run(name="r")
    finally:
        server.shutdown()
    assert len(seen) == RETRY.attempts == 5
