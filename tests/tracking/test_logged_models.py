"""Logged models as a service on real SQLite: create, finalize, search, artifacts, downloads."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from shipyard.errors import InputError, NotFound
from shipyard.store import runs as repo
from shipyard.tracking import logged_models as lm
from shipyard.tracking import service


def _run(ws) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    with ws.store.write() as s:
        run_id = service.create_run(s, experiment="exp")
        return run_id, s.get(repo.Run, run_id).experiment_id


def test_create_upload_finalize_download(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_id, exp = _run(project)
    model = lm.create(project.store, exp, name="model", source_run_id=run_id, tags={"t": "1"}, params={"a": "2"})
    assert model.model_id.startswith("m-") and model.status == "PENDING"
    assert model.artifact_location == f"mlflow-artifacts:/{exp}/models/{model.model_id}/artifacts"
    lm.store_artifact(project.store, project.objects, model.model_id, "MLmodel", b"flavors: {}\n")
    lm.store_artifact(project.store, project.objects, model.model_id, "data/model.pkl", b"\x80\x04.")
    assert lm.finalize(project.store, model.model_id, "READY").status == "READY"

    got = lm.get_logged_model(project, model.model_id)
    assert (got.name, got.source_run_id, dict(got.tags), dict(got.params)) == ("model", run_id, {"t": "1"}, {"a": "2"})
    assert [f["path"] for f in lm.list_artifacts(project.store, model.model_id)] == ["MLmodel", "data"]
    dest = lm.download_logged_model(project, model.model_id, tmp_path / "out")
    assert (dest / "MLmodel").read_bytes() == b"flavors: {}\n" and (dest / "data" / "model.pkl").read_bytes() == b"\x80\x04."


def test_unknown_and_deleted_models_are_not_found(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, exp = _run(project)
    with pytest.raises(NotFound, match="Logged model with ID 'm-nope' not found"):
        lm.get_logged_model(project, "m-nope")
    model = lm.create(project.store, exp)
    lm.delete(project.store, model.model_id)
    with pytest.raises(NotFound):
        lm.get_logged_model(project, model.model_id)
    assert lm.get(project.store, model.model_id, allow_deleted=True).lifecycle_stage == "deleted"
    with pytest.raises(NotFound):
        lm.download_logged_model(project, model.model_id, tmp_path / "x")


def test_search_filters_and_pages(project) -> None:  # type: ignore[no-untyped-def]
    run_id, exp = _run(project)
    made = [lm.create(project.store, exp, name=f"m{i}", source_run_id=run_id, params={"i": str(i)}) for i in range(5)]
    found, token = lm.search(project.store, [exp], filter_string="name = 'm3'")
    assert [m.model_id for m in found] == [made[3].model_id] and token is None
    found, _ = lm.search(project.store, [exp], filter_string="name LIKE 'm%' AND params.i != '0'")
    assert len(found) == 4
    first, token = lm.search(project.store, [exp], max_results=2)
    second, _ = lm.search(project.store, [exp], max_results=2, page_token=token)
    assert len(first) == 2 and token and not {m.model_id for m in first} & {m.model_id for m in second}
    with pytest.raises(InputError, match="Invalid attribute key 'colour'"):
        lm.search(project.store, [exp], filter_string="colour = 'red'")


@pytest.mark.parametrize("name", ["a/b", "a.b", "a:b", "", "100%"])
def test_model_names_follow_mlflow(project, name: str) -> None:  # type: ignore[no-untyped-def]
    _, exp = _run(project)
    with pytest.raises(InputError, match="Invalid model name"):
        lm.create(project.store, exp, name=name)


def test_run_artifacts_download_file_or_folder(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_id, _ = _run(project)
    service.store_artifact_bytes(project.store, project.objects, run_id, "model/MLmodel", b"m")
    service.store_artifact_bytes(project.store, project.objects, run_id, "model/sub/w.bin", b"w")
    folder = lm.download_run_artifacts(project, run_id, "model", tmp_path / "f")
    assert (folder / "MLmodel").read_bytes() == b"m" and (folder / "sub" / "w.bin").read_bytes() == b"w"
    single = lm.download_run_artifacts(project, run_id, "model/MLmodel", tmp_path / "s")
    assert (single / "MLmodel").read_bytes() == b"m"
    with pytest.raises(NotFound):
        lm.download_run_artifacts(project, run_id, "nothing", tmp_path / "n")


def test_nan_and_infinite_metrics_round_trip(project) -> None:  # type: ignore[no-untyped-def]
    run_id, _ = _run(project)
    points = [repo.MetricValue("x", math.nan, 0, 1), repo.MetricValue("x", math.inf, 1, 2),
              repo.MetricValue("y", -math.inf, 0, 1)]
    with project.store.write() as s:
        service.log_batch(s, run_id, metrics=points)
    with project.store.read() as s:
        history = service.metric_history(s, run_id, "x")
        record = service.get_run(s, run_id)
    # As MLflow: NaN stays NaN, infinities come back as the largest double.
    assert math.isnan(history[0][0]) and history[1][0] == 1.7976931348623157e308
    assert record.metrics == {"x": 1.7976931348623157e308, "y": -1.7976931348623157e308}
