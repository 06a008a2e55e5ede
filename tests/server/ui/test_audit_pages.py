"""The audit page: filters by actor, kind and resource in the URL, keyset pages, the chain's state
(intact, or where an edited row breaks it), and only for those who hold audit:read."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

from shipyard import audit


def record(ui: Any, n: int, kind: str, actor: str) -> None:
    with ui.store.write() as session:
        for i in range(n):
            audit.record(session, kind, f"thing/{i}", {"i": i, "long": "x" * (300 if i == 0 else 1)}, actor=actor)


def seqs(page: str) -> list[int]:
    return [int(s) for s in re.findall(r'<tr class="event" data-seq="(\d+)"', page)]


def test_filters_and_keyset_pages(ui_app) -> None:  # type: ignore[no-untyped-def]
    record(ui_app, 60, "test.ui.paged", "tessa")
    record(ui_app, 3, "test.ui.other", "tessa via shp_AbCd1234")
    first = ui_app.client.get("/audit?actor=tessa&kind=test.ui.paged")
    assert first.status_code == 200, first.text
    shown = seqs(first.text)
    assert len(shown) == 50 and shown == sorted(shown, reverse=True)  # newest first, one page
    assert 'hx-get="/audit/chain" hx-trigger="load"' in first.text  # the chain's state comes after the events
    chain = ui_app.client.get("/audit/chain", headers={"HX-Request": "true"})
    assert chain.status_code == 200 and "<html" not in chain.text
    assert 'data-ok="true"' in chain.text and "Chain verified" in chain.text
    older = re.search(r'href="([^"]+)" id="audit-older"', first.text)
    assert older and f"before={shown[-1]}" in older.group(1)
    second = ui_app.client.get(older.group(1).replace("&amp;", "&"))
    rest = seqs(second.text)
    assert len(rest) == 10 and max(rest) < min(shown) and 'id="audit-older"' not in second.text
    assert 'id="audit-newest"' in second.text and 'value="tessa"' in second.text  # the filters stay in the URL

    by_prefix = ui_app.client.get("/audit?kind=test.ui.&resource=thing/1").text
    assert set(re.findall(r">(test\.ui\.\w+)</a>", by_prefix)) == {"test.ui.paged", "test.ui.other"}
    assert all(s.startswith("thing/1") for s in re.findall(r'resource=[^"]+">([^<]+)</a>', by_prefix))
    through_token = ui_app.client.get("/audit?actor=tessa&kind=test.ui.other").text  # also what she did with a token
    assert len(seqs(through_token)) == 3 and "tessa via shp_AbCd1234" in through_token
    assert 'href="/audit?actor=tessa"' in through_token  # no token prefix in a URL: the server refuses those
    assert "<details><summary>" in ui_app.client.get("/audit?resource=thing/0&kind=test.ui.paged").text
    empty = ui_app.client.get("/audit?actor=nobody")
    assert empty.status_code == 200 and "No event matches these filters" in empty.text


def test_bad_paging_is_a_400_and_audit_needs_audit_read(ui_app) -> None:  # type: ignore[no-untyped-def]
    bad = ui_app.client.get("/audit?before=abc")
    assert bad.status_code == 400 and "before=&#39;abc&#39;" in bad.text
    assert ui_app.client.get("/audit?actor=" + "a" * 300).status_code == 400
    refused = ui_app.viewer().get("/audit")
    assert refused.status_code == 403 and "audit:read" in refused.text
    assert ui_app.viewer().get("/audit/chain").status_code == 403
    assert ui_app.outsider().get("/audit").status_code == 403


def test_an_edited_event_breaks_the_chain_where_it_was_edited(ui_app_noauth) -> None:  # type: ignore[no-untyped-def]
    record(ui_app_noauth, 5, "test.ui.chain", "tessa")
    with ui_app_noauth.store.read() as session:
        target = audit.events(session, kind="test.ui.chain")[2].seq
    with ui_app_noauth.store.write() as session:
        session.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = :seq"), {"seq": target})
    page = ui_app_noauth.client.get("/audit/chain")  # a whole page when opened on its own
    assert page.status_code == 200 and "<html" in page.text and 'data-ok="false"' in page.text
    assert f'data-verified="{target - 1}" data-broken="{target}"' in page.text
    assert f"event {target} (test.ui.chain thing/2) was edited" in page.text
