"""Cost: recorded resources priced by shipyard.yaml's cost: table; budgets alert once and stop sweeps.

A run with no price is "unpriced", never zero; a restored stage costs nothing; a pipeline run costs
its stages.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from shipyard.ci.report import CostRow, Report, load, to_markdown, write
from shipyard.config import Gate
from shipyard.errors import ConfigError
from shipyard.gates.checks import Context, Subject, max_cost
from shipyard.tracking.cost import Cost, PriceTable, Resources, price
from tests.conftest import run_cli
from tests.notify.receiver import Receiver

PY = sys.executable
TABLE = PriceTable(cpu_hour=3.6, memory_gb_hour=0.36, currency="EUR")


def test_price_names_what_it_could_not_price() -> None:
    used = Resources(cpu_seconds=100, memory_gb_seconds=1000)
    assert price(used, TABLE).amount == pytest.approx(0.1 + 0.1)
    partly = price(used, PriceTable(cpu_hour=3.6))
    assert partly.amount == pytest.approx(0.1) and partly.unpriced == ("memory",)
    assert partly.text() == "0.100 USD (memory unpriced)"
    assert price(Resources(cpu_seconds=0.18), PriceTable(cpu_hour=1.0)).text() == "0.0000500 USD"  # never 5e-05
    nothing = price(used, PriceTable())
    assert nothing.amount is None and nothing.text().startswith("unpriced (no price table")
    assert nothing.short() == "unpriced" and price(Resources(recorded=False), TABLE).short() == "-"


def test_a_negative_price_is_refused_naming_the_file_line_and_field(tmp_path: Path) -> None:
    from shipyard.config import load_config

    (tmp_path / "shipyard.yaml").write_text("cost: {cpu_hour: -1}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "shipyard.yaml")
    assert "shipyard.yaml:1" in caught.value.message and "cost.cpu_hour" in caught.value.message
    assert "greater than or equal to 0" in caught.value.message


def _project(root: Path, extra: str = "") -> Path:
    root.mkdir()
    burn = "import time; end = time.process_time() + 0.3\nwhile time.process_time() < end: pass\nopen('b.txt', 'w').write('b')"
    (root / "burn.py").write_text(burn)
    stages = {"a": {"cmd": f"{PY} -c \"open('a.txt', 'w').write('a')\"", "outs": ["a.txt"]},
              "b": {"cmd": f"{PY} burn.py", "deps": ["a.txt", "burn.py"], "outs": ["b.txt"]}}
    text = yaml.safe_dump({"pipeline": {"stages": stages}}) + "cost: {cpu_hour: 36, memory_gb_hour: 0.36, currency: EUR}\n"
    (root / "shipyard.yaml").write_text(text + extra)
    return root


def test_runs_show_the_cost_of_each_stage_and_of_the_pipeline_run(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    assert run_cli("run", cwd=root).returncode == 0
    runs = json.loads(run_cli("runs", "list", "--json", cwd=root).stdout)
    by_name = {r["name"]: r for r in runs}
    a, b, pipeline = (by_name[n]["cost"] for n in ("a", "b", "pipeline"))
    assert b["amount"] >= 36 * 0.25 / 3600  # at least the 0.3 s of CPU it burned, priced
    assert pipeline["amount"] == pytest.approx(a["amount"] + b["amount"])
    assert pipeline["currency"] == "EUR" and not pipeline["unpriced"]
    shown = run_cli("runs", "show", by_name["pipeline"]["run_id"], cwd=root).stdout
    assert f"cost        {pipeline['text']}" in shown
    (root / "b.txt").unlink()
    (root / "a.txt").unlink()
    assert run_cli("run", cwd=root).returncode == 0  # restored from the run cache
    again = json.loads(run_cli("runs", "list", "--json", "-n", "3", cwd=root).stdout)
    assert {r["name"]: r["cost"]["amount"] for r in again} == {"a": 0, "b": 0, "pipeline": 0}
    table = run_cli("runs", "list", cwd=root).stdout
    assert "cost" in table.splitlines()[0] and "EUR" in table


def test_the_ci_report_says_what_this_run_cost_against_the_base() -> None:
    report = Report(project="p", stages=[], cost=CostRow("0.012 EUR", "0.010 EUR", 0.2))
    from shipyard.ci.report import StageRow

    report.stages = [StageRow("train", "ran", 1.0, "params changed")]
    assert "Cost of this run: 0.012 EUR; base: 0.010 EUR (+20%)." in to_markdown(report)


def test_the_ci_report_keeps_its_cost_through_json(tmp_path: Path) -> None:
    from shipyard.ci.report import StageRow

    report = Report(project="p", stages=[StageRow("train", "ran", 1.0, "")], cost=CostRow("unpriced"))
    write(report, tmp_path)
    assert load(tmp_path).cost == CostRow("unpriced")


def _subject(ref: str, cost: Cost | None) -> Subject:
    return Subject(ref, model=None, cost=cost)


def test_the_max_cost_gate_compares_with_its_limit_and_the_champion() -> None:
    gate = Gate(max_cost=1.0, vs="champion", max_increase="50%")
    cheap, dear = Cost(0.5, "EUR"), Cost(0.9, "EUR")
    ok = max_cost(gate, Context(_subject("m@2", cheap), _subject("m@1", Cost(0.4, "EUR")), None, None, Path(), ""))
    assert ok.passed and ok.threshold == {"max": 1.0, "vs_champion": 0.6}
    too_dear = max_cost(gate, Context(_subject("m@2", dear), _subject("m@1", Cost(0.4, "EUR")), None, None, Path(), ""))
    assert not too_dear.passed and "at most +50%" in too_dear.reason
    unpriced = max_cost(Gate(max_cost=1.0), Context(_subject("m@2", Cost(None, "EUR", ("no price table",))), None,
                                                    None, None, Path(), ""))
    assert not unpriced.passed and "unpriced (no price table)" in unpriced.reason
    with pytest.raises(ValueError, match="max_increase"):
        Gate(max_cost=1.0, max_increase="lots")


def test_a_budget_alerts_once_per_threshold_through_the_webhooks(tmp_path: Path) -> None:
    with Receiver() as receiver:
        root = _project(tmp_path / "b", f"budget: {{per_day: 0.0000001}}\nnotify: [{{webhook: '{receiver.url}'}}]\n")
        first = run_cli("run", cwd=root)
        assert first.returncode == 0 and "budget: per_day budget: spent" in first.stdout
        assert receiver.wait_for(1)  # past 100 % at once: the highest threshold reached, not every one
        sent = receiver.json(0)["event"]
        assert (sent["kind"], sent["threshold"], sent["severity"], sent["limit"]) == ("budget.alert", 1.0, "critical",
                                                                                     "per_day")
        assert "budget:" not in run_cli("run", "--force", cwd=root).stdout  # today's thresholds were sent
        assert len(receiver.requests) == 1


def test_config_without_prices_says_unpriced(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        from shipyard.config import load_config

        (tmp_path / "shipyard.yaml").write_text("budget: {alert_at: [0]}\n")
        load_config(tmp_path / "shipyard.yaml")


def _log_predictions(root: Path, model: str, versions: list[int]) -> None:
    """Predictions in the project's request log, written by the gateway's own writer."""
    import time

    import numpy as np

    from shipyard.serving.requestlog import LogEntry, RequestLog

    log = RequestLog(root / ".shipyard" / "requests", root / ".shipyard" / "feedback")
    for i, version in enumerate(versions):
        log.charge_model_cpu((model, version), 0.001 * version)
        log.append(LogEntry(f"r{i}", time.time(), model, version, "primary", "ok", 1.0, None, None,
                            np.array(["a"]), None, True))
    log.flush()


def test_shipyard_cost_shows_compute_storage_and_each_deployments_cpu_per_1000_predictions(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", "")
    config = root / "shipyard.yaml"
    config.write_text(config.read_text().replace("currency: EUR}", "storage_gb_month: 20, currency: EUR}"))
    assert run_cli("run", cwd=root).returncode == 0
    _log_predictions(root, "iris", [1, 1, 2, 2, 2])
    done = run_cli("cost", "--since", "1d", "--json", cwd=root)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["compute"]["cost"]["amount"] >= 36 * 0.25 / 3600  # stage b burned 0.3 s of CPU
    stored = report["storage"]["bytes"]
    assert stored > 0 and report["storage"]["per_month"]["amount"] == pytest.approx(stored / 1024**3 * 20)
    by_version = {d["version"]: d for d in report["deployments"]}
    assert by_version[1]["predictions"] == 2 and by_version[2]["predictions"] == 3
    assert by_version[2]["cpu_seconds_per_1k"] > by_version[1]["cpu_seconds_per_1k"]  # 2 ms of model CPU vs 1 ms
    assert by_version[2]["cost_per_1k"]["amount"] == pytest.approx(by_version[2]["cpu_seconds_per_1k"] * 36 / 3600)
    shown = run_cli("cost", cwd=root).stdout
    assert "EUR per month" in shown and "iris" in shown and "CPU / 1k" in shown
    config.write_text(config.read_text().replace("storage_gb_month: 20, ", ""))
    unpriced = json.loads(run_cli("cost", "--json", cwd=root).stdout)
    assert unpriced["storage"]["per_month"]["amount"] is None  # never a silent zero
    assert "storage_gb_month" in unpriced["storage"]["per_month"]["text"]
    bad = run_cli("cost", "--since", "soon", cwd=root)
    assert bad.returncode == 2 and "--since 'soon'" in bad.stderr
