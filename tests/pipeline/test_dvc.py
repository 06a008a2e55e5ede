"""dvc.yaml as it is: the environment `dvc repro` gives a stage, top-level metrics/plots and
artifacts, ``import dvc``'s account of what it converted, and shipyard.yaml without stages."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import yaml

from shipyard.pipeline.dvc import dvc_config, import_dvc, model_section, top_level_plots
from shipyard.pipeline.loader import load_pipeline
from shipyard.pipeline.runner import Context, RunOptions, run
from shipyard.store import open_store
from shipyard.store.runs import Run
from tests.pipeline.helpers import py

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dvc-get-started"

EVALUATE = ("import json, os; os.makedirs('eval/plots', exist_ok=True); "
            "json.dump({'roc_auc': {'test': float(open('model.txt').read())}}, open('eval/metrics.json', 'w')); "
            "json.dump({'roc': [{'fpr': 0, 'tpr': 0}, {'fpr': 1, 'tpr': 1}]}, open('eval/plots/roc.json', 'w')); "
            "json.dump({k: os.environ.get(k) for k in ('DVC_ROOT', 'DVC_STAGE')}, open('eval/env.json', 'w'))")


def _dvc_project(root: Path, extra: str = "") -> None:
    (root / "model.txt").write_text("0.75")
    (root / "dvc.yaml").write_text(textwrap.dedent(f"""\
        stages:
          evaluate:
            cmd: {json.dumps(py(EVALUATE))}
            deps: [model.txt]
            outs: [eval]
        metrics:
        - eval/metrics.json
        plots:
        - ROC:
            x: fpr
            y:
              eval/plots/roc.json: tpr
        - eval/plots/importance.png
        artifacts:
          my-model:
            path: model.txt
            type: model
            labels: [x]
        """) + extra)


def test_top_level_metrics_and_plots_become_reports_of_the_stage_that_writes_them(tmp_path):
    _dvc_project(tmp_path)
    loaded = load_pipeline(tmp_path, tmp_path / ".shipyard")
    assert loaded.source == "dvc.yaml"
    assert loaded.dag.stages["evaluate"].reports == (
        ("metrics", "eval/metrics.json"), ("plots", "eval/plots/roc.json"), ("plots", "eval/plots/importance.png"))
    cached = load_pipeline(tmp_path, tmp_path / ".shipyard")  # from the parse cache: reports survive it
    assert cached.dag.stages["evaluate"].reports == loaded.dag.stages["evaluate"].reports


def test_stage_sees_dvc_env_and_its_top_level_metrics_are_logged(tmp_path):
    _dvc_project(tmp_path)
    ctx = Context(tmp_path, tmp_path / ".shipyard", echo=lambda _m: None)
    summary = run(ctx, RunOptions())
    assert summary.ran == ["evaluate"]
    env = json.loads((tmp_path / "eval" / "env.json").read_text())
    assert env == {"DVC_ROOT": str(tmp_path.resolve()), "DVC_STAGE": "evaluate"}
    store = open_store(tmp_path / ".shipyard")
    try:
        with store.read() as session:
            child = session.query(Run).filter(Run.parent_run_id == summary.run_id, Run.name == "evaluate").one()
            from shipyard.tracking.diff import resolve_ref

            record = resolve_ref(session, child.id, tmp_path)
    finally:
        store.close()
    assert record.metrics["roc_auc.test"] == 0.75


def test_shipyard_yaml_without_stages_does_not_hide_dvc_yaml(tmp_path):
    _dvc_project(tmp_path)
    (tmp_path / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")  # what an older init wrote
    loaded = load_pipeline(tmp_path, tmp_path / ".shipyard", use_cache=False)
    assert loaded.source == "dvc.yaml" and list(loaded.dag.stages) == ["evaluate"]


def test_plots_model_and_config_from_dvc_yaml(tmp_path):
    doc = yaml.safe_load((EXAMPLE / "dvc.yaml").read_text())
    plots = {p.title: p for p in top_level_plots(doc)}
    assert plots["ROC"].x == "fpr" and plots["ROC"].y["eval/plots/sklearn/roc/test.json"] == ("tpr",)
    assert plots["Confusion-Matrix"].template == "confusion"
    assert plots["eval/plots/images/importance.png"].files == ("eval/plots/images/importance.png",)
    model, notes = model_section(doc)
    assert model == {"name": "stackoverflow-model", "path": "model.pkl", "flavor": "pickle", "register": "manual"}
    assert "--trust" in notes[0]
    onnx, _ = model_section({"artifacts": {"m": {"path": "m.onnx", "type": "model"}, "d": {"path": "x", "type": "data"}}})
    assert onnx == {"name": "m", "path": "m.onnx", "flavor": "onnx"}
    _dvc_project(tmp_path)
    config = dvc_config(tmp_path)
    assert config.model is not None and config.model.name == "my-model"
    assert config.pipeline.stages["evaluate"].metrics == ["eval/metrics.json"]
    assert "eval/plots/roc.json" in config.pipeline.stages["evaluate"].plots


def test_import_lists_what_it_converted_and_what_it_could_not(tmp_path):
    _dvc_project(tmp_path)
    text = (tmp_path / "dvc.yaml").read_text().replace("outs: [eval]", "outs: [eval, scores.json]")
    (tmp_path / "dvc.yaml").write_text(text.replace("metrics:\n- eval/metrics.json", "metrics:\n- eval/metrics.json\n- scores.json"))
    target, converted, missed = import_dvc(tmp_path)
    written = yaml.safe_load(target.read_text())
    assert written["pipeline"]["stages"]["evaluate"]["outs"] == ["eval"]
    assert written["pipeline"]["stages"]["evaluate"]["metrics"] == ["scores.json"]
    assert written["model"] == {"name": "my-model", "path": "model.txt", "flavor": "pickle", "register": "manual"}
    assert "metrics: scores.json -> stages.evaluate.metrics" in converted
    assert any(line.startswith("artifacts.my-model -> model:") for line in converted)
    assert any("eval/metrics.json lies inside an out of stage 'evaluate'" in line for line in missed)
    assert any("artifacts.my-model: labels dropped" in line for line in missed)
    assert any("axes and templates" in line for line in missed)


TRAIN_WITH_DVCLIVE = ("from dvclive import Live\n"
                      "with Live('live', dvcyaml=False, save_dvc_exp=False) as live:\n"
                      "    for epoch in range(3):\n"
                      "        live.log_metric('train/loss', 1.0 / (epoch + 1))\n"
                      "        live.next_step()\n")


def _histories(root: Path, run_id: str | None) -> dict[str, list[tuple[int, float]]]:
    from shipyard.ci.collect import metric_histories

    store = open_store(root / ".shipyard")
    try:
        with store.read() as session:
            return metric_histories(session, run_id)
    finally:
        store.close()


def test_a_dvclive_folder_among_the_outs_is_logged_with_its_step_history(tmp_path):
    (tmp_path / "train.py").write_text(TRAIN_WITH_DVCLIVE)
    (tmp_path / "dvc.yaml").write_text(textwrap.dedent(f"""\
        stages:
          train:
            cmd: {json.dumps(py("exec(open('train.py').read())"))}
            deps: [train.py]
            outs: [live]
        """))
    ctx = Context(tmp_path, tmp_path / ".shipyard", echo=lambda _m: None)
    summary = run(ctx, RunOptions())
    assert summary.ran == ["train"]
    history = _histories(tmp_path, summary.run_id)
    assert history["train.loss"] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]


def test_dvclive_default_folder_outside_the_outs_is_logged_for_the_stage_that_wrote_it(tmp_path):
    """Live() with its defaults writes dvclive/ and adds dvclive/metrics.json to dvc.yaml's metrics
    while the stage runs; no stage declares it."""
    (tmp_path / "train.py").write_text(TRAIN_WITH_DVCLIVE.replace(
        "Live('live', dvcyaml=False, save_dvc_exp=False)", "Live(save_dvc_exp=False)"))
    (tmp_path / "dvc.yaml").write_text(textwrap.dedent(f"""\
        stages:
          train:
            cmd: {json.dumps(py("exec(open('train.py').read()); open('done.txt', 'w').write('1')"))}
            deps: [train.py]
            outs: [done.txt]
        """))
    summary = run(Context(tmp_path, tmp_path / ".shipyard", echo=lambda _m: None), RunOptions())
    assert summary.ran == ["train"]
    assert "dvclive/metrics.json" in (tmp_path / "dvc.yaml").read_text()  # dvclive wrote it
    history = _histories(tmp_path, summary.run_id)
    assert history["train.loss"] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
