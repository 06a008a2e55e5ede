"""Notifications: signed webhooks in three formats, retries, stored failures, digests, no blocking."""

from __future__ import annotations

import json

import pytest

from shipyard.config import Notifier
from shipyard.notify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Dispatcher,
    NullNotifier,
    redeliver,
    render,
    send,
    sign,
    verify_signature,
)
from shipyard.notify.core import redact
from shipyard.store import monitoring as repo
from tests.notify.receiver import Receiver, dead_url

EVENT = {"kind": "monitor.alert", "model": "penguins", "version": 3, "severity": "critical",
         "reason": "drift_share 0.45 > 0.3 for 2 windows", "rule": "drift"}


def fast(url: str, **extra: object) -> Notifier:
    return Notifier(webhook=url, secret="s3cret", backoff="10ms", timeout="2s", **extra)  # type: ignore[arg-type]


class TestSignature:
    def test_round_trip(self) -> None:
        body = b'{"a":1}'
        now = 1_700_000_000
        signature = sign("k", str(now), body)
        assert signature.startswith("sha256=")
        assert verify_signature("k", body, str(now), signature, now=now + 10)

    def test_rejects_other_secret_body_and_old_timestamp(self) -> None:
        body, now = b'{"a":1}', 1_700_000_000
        signature = sign("k", str(now), body)
        assert not verify_signature("other", body, str(now), signature, now=now)
        assert not verify_signature("k", b'{"a":2}', str(now), signature, now=now)
        assert not verify_signature("k", body, str(now + 1), signature, now=now)  # timestamp is signed
        assert not verify_signature("k", body, str(now), signature, now=now + 301)
        assert not verify_signature("k", body, "soon", signature, now=now)
        assert not verify_signature("k", body, str(now), None, now=now)


class TestFormats:
    def test_generic_json_carries_the_event(self) -> None:
        body = json.loads(render(EVENT, "json"))
        assert body["kind"] == "monitor.alert" and body["event"] == EVENT
        assert body["summary"] == "[critical] monitor.alert penguins@3: drift_share 0.45 > 0.3 for 2 windows"

    def test_slack_has_text_and_blocks(self) -> None:
        body = json.loads(render(EVENT, "slack"))
        assert body["text"].startswith("[critical] monitor.alert")
        assert body["blocks"][0]["type"] == "section"

    def test_teams_is_an_adaptive_card(self) -> None:
        body = json.loads(render(EVENT, "teams"))
        card = body["attachments"][0]
        assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert card["content"]["body"][0]["text"].startswith("[critical]")

    def test_digest_lists_its_events(self) -> None:
        digest = {"kind": "digest", "count": 2, "events": [EVENT, {**EVENT, "model": "other"}]}
        assert "2 events" in json.loads(render(digest, "slack"))["text"]
        assert "other" in render(digest, "teams").decode()


class TestDelivery:
    def test_delivers_a_signed_body_that_verifies(self, store) -> None:  # type: ignore[no-untyped-def]
        with Receiver() as receiver:
            results = send(EVENT, [fast(receiver.url)], store=store, wait=10)
        assert [r.status for r in results] == ["delivered"], results
        request = receiver.requests[0]
        assert verify_signature("s3cret", request["body"], request["headers"][TIMESTAMP_HEADER],
                                request["headers"][SIGNATURE_HEADER])
        with store.read() as session:
            rows = repo.deliveries(session)
        assert [(d.status, d.attempts, d.http_status) for d in rows] == [("delivered", 1, 200)]

    def test_send_returns_before_delivery(self, store) -> None:  # type: ignore[no-untyped-def]
        dispatcher = Dispatcher()
        with Receiver() as receiver:
            results = dispatcher.send(EVENT, [fast(receiver.url)], store)
            assert [r.status for r in results] == ["queued"]
            assert dispatcher.flush(10)
            assert len(receiver.requests) == 1

    def test_retries_5xx_then_succeeds(self, store) -> None:  # type: ignore[no-untyped-def]
        with Receiver(codes=[503, 500]) as receiver:
            results = send(EVENT, [fast(receiver.url)], store=store, wait=10)
        assert results[0].status == "delivered" and results[0].attempts == 3
        assert [r["code"] for r in receiver.requests] == [503, 500, 200]

    def test_4xx_is_final(self, store) -> None:  # type: ignore[no-untyped-def]
        with Receiver(codes=[400]) as receiver:
            results = send(EVENT, [fast(receiver.url)], store=store, wait=10)
        assert results[0].status == "failed" and results[0].attempts == 1
        assert "HTTP 400" in (results[0].error or "")

    def test_endpoint_down_retries_then_stores_the_failure(self, store) -> None:  # type: ignore[no-untyped-def]
        url = dead_url()
        results = send(EVENT, [fast(url, retries=2)], store=store, wait=10)
        assert results[0].status == "failed" and results[0].attempts == 3
        with store.read() as session:
            (row,) = repo.deliveries(session)
        assert row.status == "failed" and row.attempts == 3 and "Connect" in (row.error or "")
        assert json.loads(row.event) == EVENT  # nothing lost: the event is kept for redelivery

    def test_redeliver_sends_stored_failures_once_the_endpoint_is_back(self, store) -> None:  # type: ignore[no-untyped-def]
        with Receiver(codes=[503, 503]) as receiver:
            notifier = fast(receiver.url, retries=1)
            assert send(EVENT, [notifier], store=store, wait=10)[0].status == "failed"
            assert redeliver(store, [notifier]) == 1
            from shipyard.notify import flush

            assert flush(10)
            assert receiver.json(-1)["event"] == EVENT
        with store.read() as session:
            (row,) = repo.deliveries(session)
        assert row.status == "delivered" and row.attempts == 3

    def test_events_filter(self, store) -> None:  # type: ignore[no-untyped-def]
        with Receiver() as receiver:
            results = send(EVENT, [fast(receiver.url, events=["rollout."])], store=store, wait=5)
        assert [r.status for r in results] == ["filtered"] and receiver.requests == []

    def test_storm_becomes_a_digest(self, store) -> None:  # type: ignore[no-untyped-def]
        dispatcher = Dispatcher()
        with Receiver() as receiver:
            notifier = fast(receiver.url, digest_after=2, digest_window="1h")
            for i in range(6):
                dispatcher.send({**EVENT, "window": i}, [notifier], store)
            assert dispatcher.flush(10)
        bodies = [json.loads(r["body"]) for r in receiver.requests]
        assert [b["kind"] for b in bodies] == ["monitor.alert", "monitor.alert", "digest"]
        assert bodies[2]["event"]["count"] == 4
        assert [e["window"] for e in bodies[2]["event"]["events"]] == [2, 3, 4, 5]
        with store.read() as session:
            statuses = sorted(d.status for d in repo.deliveries(session))
        assert statuses == ["delivered"] * 7  # 2 sent, 4 held then delivered in the digest, 1 digest

    def test_digest_goes_out_when_the_window_ends(self, store) -> None:  # type: ignore[no-untyped-def]
        dispatcher = Dispatcher()
        with Receiver() as receiver:
            notifier = fast(receiver.url, digest_after=1, digest_window="300ms")
            dispatcher.send(EVENT, [notifier], store)
            dispatcher.send(EVENT, [notifier], store)
            assert receiver.wait_for(2, timeout=10)
            assert json.loads(receiver.requests[1]["body"])["kind"] == "digest"

    def test_no_notifiers_is_the_null_notifier(self) -> None:
        assert send(EVENT, []) == []
        null = NullNotifier()
        assert null(EVENT) == [] and null.events == [EVENT]


class TestConfig:
    def test_rejects_a_non_http_url(self) -> None:
        with pytest.raises(ValueError, match="http"):
            Notifier(webhook="ftp://x")

    def test_redact_keeps_tokens_out(self) -> None:
        assert redact("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/services/..."
        assert redact("http://user:pw@127.0.0.1:9/hook") == "http://127.0.0.1:9/hook"

