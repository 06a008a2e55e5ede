"""``shipyard monitor`` and ``shipyard triggers`` through the real binary."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.monitoring.logs import traffic, write_log

pytestmark = pytest.mark.slow

CONFIG = """
monitor:
  window_rows: 100
  min_rows: 30
  rules:
    - name: errors
      when: error_rate > 0.2
      severity: warning
      actions: [alert]
    - name: drift
      when: drift_share > 0.3
      for: 2
      actions: [alert, retrain]
  retrain:
    watch: [data.csv]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "shipyard.yaml").write_text(CONFIG)
    (tmp_path / "data.csv").write_text("a\n1\n")
    start = time.time() - 600
    write_log(tmp_path / ".shipyard" / "requests", traffic(250, seed=1, start=start, error_every=3))
    return tmp_path


def test_monitor_once_judges_windows_and_fires(project: Path) -> None:
    out = run_cli("monitor", "--once", "--no-retrain", "--json", cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert [w["rows"] for w in report["windows"]] == [100, 100]  # the tail of 50 waits for more traffic
    assert {w["verdict"] for w in report["windows"]} == {"no_reference"}  # no registered version: traffic only
    assert [(f["rule"], f["status"]) for f in report["firings"]] == [("errors", "ACCEPT"), ("errors", "REJECT")]
    listed = run_cli("triggers", "list", "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    kinds = {(r["trigger"], r["what"]) for r in json.loads(listed.stdout)}
    assert ("rule", "drift_share > 0.3 for 2") in kinds and ("new_data", "path data.csv") in kinds
    history = run_cli("triggers", "history", "--json", cwd=project)
    assert history.returncode == 0 and json.loads(history.stdout) == []


def test_unknown_metric_exits_2_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("monitor:\n  rules:\n    - when: drift_shar > 0.3\n")
    out = run_cli("monitor", "--once", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "shipyard.yaml:3:" in out.stderr and "unknown metric 'drift_shar'" in out.stderr
    assert "drift_share" in out.stderr


def test_approve_refuses_an_unknown_trigger(project: Path) -> None:
    out = run_cli("triggers", "approve", "42", cwd=project)
    assert out.returncode == 2 and "no trigger #42" in out.stderr
