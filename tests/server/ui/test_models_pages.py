"""``/models``, ``/models/{model}`` and ``/models/{model}/{version}``: versions, aliases, every gate
verdict's checks as the gates computed them, the card, the lineage graph and deployments; empty,
404 and 403."""

from __future__ import annotations

import html
import re

import pytest

from shipyard.config import Gate
from shipyard.gates import evaluate
from shipyard.gates.checks import Subject
from shipyard.registry import record_verdict, register, set_alias
from shipyard.store import runs
from shipyard.store import serving as serving_repo


def judged(ui_app, ref: str, accuracy: float, champion: str | None = None):  # type: ignore[no-untyped-def]
    """Gate ``ref`` on its logged accuracy as ``shipyard gate`` does (metric checks need no model) and store it."""
    gates = [Gate(metric="accuracy", min=0.9), Gate(max_size_mb=20)]
    if champion is None:  # skipped without a champion (with one, it would need an evaluation set)
        gates.append(Gate(metric="accuracy", vs="champion", max_drop=0.01))
    verdict = evaluate(gates, Subject(ref, None, 10, {"accuracy": accuracy}),
                       Subject(champion, None, 10, {"accuracy": 0.95}) if champion else None)
    with ui_app.store.write() as session:
        record_verdict(session, ref, verdict.to_dict(), verdict.to_markdown())
    return verdict


@pytest.fixture(scope="module")
def seeded(ui_app):  # type: ignore[no-untyped-def]
    """iris@1 (passed, champion, from a run with a dataset input), iris@2 (failed, in a rollout)."""
    with ui_app.store.write() as session:
        experiment = runs.experiment_by_name(session, runs.DEFAULT_EXPERIMENT)
        runs.create_run(session, experiment_id=experiment.id, run_id="a" * 32, name="train", git_commit="c0ffee1234567")
        session.add(runs.DatasetInput(run_id="a" * 32, name="iris-data@3", digest="xxh128:feed", context="input",
                                      source="data/iris.csv", source_type="csv", schema="[]", profile=None))
        register(session, "iris", model_oid="sha256:one", flavor="sklearn", run_id="a" * 32, description="first <b>tree</b>")
    first = judged(ui_app, "iris@1", 0.95)
    with ui_app.store.write() as session:
        set_alias(session, "iris", "champion", 1)
        register(session, "iris", model_oid="sha256:two", flavor="sklearn")
    second = judged(ui_app, "iris@2", 0.81, champion="iris@1")
    with ui_app.store.write() as session:
        deployment = serving_repo.create_deployment(session, model="iris", candidate=2, champion=1, strategy="canary",
                                                    state="running", step=0, settings={"steps": [10, 50, 100]})
    return {"first": first, "second": second, "deployment": deployment.id}


def test_no_models_yet(ui_app) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/models")
    assert page.status_code == 200 and 'id="models-empty"' in page.text
    assert "shipyard models register" in page.text


def test_unknown_model_and_version_are_404_pages(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    assert "no model &#39;nope&#39;" in ui_app.client.get("/models/nope").text
    for path in ("/models/nope", "/models/nope/1", "/models/iris/9", "/models/iris/no-such-alias", "/models/iris/@@"):
        assert ui_app.client.get(path).status_code == 404, path


def test_who_may_see_models(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    for path in ("/models", "/models/iris", "/models/iris/1"):
        assert ui_app.outsider().get(path).status_code == 403, path
        assert ui_app.viewer().get(path).status_code == 200, path


def test_models_list_shows_champion_and_gates(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/models").text
    row = re.search(r'<tr class="model-row" data-model="iris">.*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]
    assert "champion → 1" in row and 'href="/models/iris/1">iris@1<' in row
    assert re.search(r'class="champion-gate"><span class="badge ok">passed', row)
    assert re.search(r'class="latest-gate"><span class="badge bad">failed', row)


def test_model_page_shows_every_check_of_every_verdict(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/models/iris").text
    assert 'data-alias="champion" href="/models/iris/1"' in page
    for version, verdict in ((1, seeded["first"]), (2, seeded["second"])):
        section = re.search(rf'<section class="version-verdicts" data-version="{version}">.*?</section>', page, re.S)
        assert section, page
        rows = re.findall(r'<tr class="gate-check" data-check="([^"]*)" data-status="([^"]*)">(.*?)</tr>',
                          section.group(0), re.S)
        assert [(html.unescape(n), s) for n, s, _ in rows] == [(c.name, c.status) for c in verdict.checks]
        for (_, _, cells), check in zip(rows, verdict.checks, strict=True):
            assert html.escape(check.reason, quote=True) in cells
    failed = seeded["second"].checks[0]
    assert failed.status == "FAIL" and failed.value == 0.81
    assert re.search(r'<td class="num check-value">0.81</td>\s*<td class="num check-threshold">min 0.9</td>', page)
    assert "against champion version 1" in page
    assert re.search(r"<td>champion</td><td>1</td>", page)  # the alias history


def test_version_page_card_lineage_and_deployments(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/models/iris/champion")  # an alias names a version too
    assert page.status_code == 200
    text = page.text
    assert 'id="version-ref">iris@1' in text and 'id="version-gate">passed' in text
    svg = re.search(r'<svg id="model-lineage".*?</svg>', text, re.S).group(0)  # type: ignore[union-attr]
    run, model = f"run:{'a' * 32}", "model:iris@1"
    assert 'href="/data/iris-data/3"' in svg  # data version -> run -> commit -> model version
    assert f'data-from="data:iris-data@3:xxh128:feed" data-to="{run}"' in svg
    assert f'data-from="{run}" data-to="commit:c0ffee1234567"' in svg
    assert f'data-from="commit:c0ffee1234567" data-to="{model}"' in svg
    card = re.search(r'<article id="model-card".*?</article>', text, re.S).group(0)  # type: ignore[union-attr]
    assert "<h1>Model card: iris@1</h1>" in card and "<table>" in card
    assert "<b>tree</b>" not in card and "&lt;b&gt;tree&lt;/b&gt;" in card  # markup in a description is text
    candidate = ui_app.client.get("/models/iris/2").text
    assert f'<tr class="deployment" data-deployment="{seeded["deployment"]}">' in candidate
    assert f'data-from="model:iris@2" data-to="deploy:{seeded["deployment"]}"' in candidate
    assert candidate.count('class="gate-check"') == len(seeded["second"].checks)
