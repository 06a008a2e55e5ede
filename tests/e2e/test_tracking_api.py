"""The Python API as users run it: real processes, the local store and a real server."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.server.live import live_server, live_server_with_auth

SCRIPT = '''
import sys, shipyard
with shipyard.start_run("train"):
    shipyard.log_params({"depth": 3, "lr": 0.1})
    for i in range(2500):
        shipyard.log_metric("loss", 1.0 / (i + 1), step=i)
    shipyard.log_metrics({"acc": 0.9, "f1": 0.8})
    shipyard.set_tags({"team": "a"})
    open("model.bin", "wb").write(b"weights")
    shipyard.log_artifact("model.bin", "model")
    shipyard.log_input("train", path="model.bin", context="training")
    print(shipyard.active_run().run_id)
'''


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    return root


def _python(code: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**full, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def _check(root: Path, run_id: str) -> None:
    shown = run_cli("runs", "show", run_id, "--json", cwd=root)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["status"] == "FINISHED" and record["params"] == {"depth": "3", "lr": "0.1"}
    assert record["metrics"]["loss"] == pytest.approx(1 / 2500) and record["metrics"]["acc"] == 0.9
    assert record["tags"] == {"team": "a"} and [a["path"] for a in record["artifacts"]] == ["model/model.bin"]
    assert record["inputs"][0]["digest"].startswith("xxh128:")
    assert {"system/cpu_seconds", "system/peak_memory_mb", "system/wall_seconds"} <= set(record["metrics"])


def test_local_store(tmp_path: Path) -> None:
    root = _project(tmp_path)
    proc = _python(SCRIPT, root)
    assert proc.returncode == 0, proc.stderr
    _check(root, proc.stdout.strip())
    db = sqlite3.connect(root / ".shipyard" / "shipyard.db")
    assert db.execute("select count(*) from metrics where key = 'loss'").fetchone()[0] == 2500


@pytest.mark.slow
def test_remote_server(tmp_path: Path) -> None:
    root = _project(tmp_path)
    client_dir = tmp_path / "elsewhere"
    client_dir.mkdir()
    with live_server(root) as url:
        proc = _python(SCRIPT, client_dir, {"SHIPYARD_TRACKING_URI": url})
        assert proc.returncode == 0, proc.stderr
    assert not (client_dir / ".shipyard").exists()
    _check(root, proc.stdout.strip())


def test_remote_server_with_auth_on(tmp_path: Path) -> None:
    """The Python API sends SHIPYARD_TOKEN as a Bearer token; without it the server refuses (401)
    and the error names the setting to fix."""
    root = _project(tmp_path)
    client_dir = tmp_path / "elsewhere"
    client_dir.mkdir()
    with live_server_with_auth(root) as (url, token):
        refused = _python(SCRIPT, client_dir, {"SHIPYARD_TRACKING_URI": url})
        wrong = _python(SCRIPT, client_dir, {"SHIPYARD_TRACKING_URI": url, "SHIPYARD_TOKEN": "shp_not_a_token"})
        proc = _python(SCRIPT, client_dir, {"SHIPYARD_TRACKING_URI": url, "SHIPYARD_TOKEN": token})
        assert proc.returncode == 0, proc.stderr
    assert refused.returncode != 0 and "answered 401" in refused.stderr and "SHIPYARD_TOKEN" in refused.stderr
    assert wrong.returncode != 0 and "answered 401" in wrong.stderr
    _check(root, proc.stdout.strip())


def test_bad_tracking_uri_is_a_clear_error(tmp_path: Path) -> None:
    proc = _python("import shipyard; shipyard.log_metric('m', 1.0)", _project(tmp_path),
                   {"SHIPYARD_TRACKING_URI": "ftp://somewhere"})
    assert proc.returncode != 0 and "is not an http(s):// URL" in proc.stderr


def test_attaches_to_the_pipeline_stage_run(tmp_path: Path) -> None:
    root = _project(tmp_path)
    from shipyard.store import open_store
    from shipyard.tracking import service

    store = open_store(root / ".shipyard")
    with store.write() as s:
        parent = service.create_run(s, experiment="proj", name="pipeline")
        stage = service.create_run(s, experiment="proj", name="train", parent_run_id=parent)
    store.close()
    env = {"SHIPYARD_RUN_ID": stage, "SHIPYARD_STAGE": "train", "SHIPYARD_PROJECT_ROOT": str(root)}
    code = "import shipyard; shipyard.log_param('depth', 4); shipyard.log_metric('acc', 0.91); print(shipyard.active_run().run_id)"
    proc = _python(code, root / ".." , env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == stage
    record = json.loads(run_cli("runs", "show", stage, "--json", cwd=root).stdout)
    assert record["metrics"] == {"acc": 0.91} and record["params"] == {"depth": "4"}
    assert record["status"] == "RUNNING"  # the pipeline ends its stage runs, not the stage process
    diff = run_cli("metrics", "show", parent, "--json", cwd=root)
    assert json.loads(diff.stdout)["metrics"] == {"acc": 0.91}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_flushes_the_buffer(tmp_path: Path, signum: int) -> None:
    root = _project(tmp_path)
    code = '''
import shipyard, sys, time
shipyard.start_run("long")
for i in range(3000):
    shipyard.log_metric("loss", float(i), step=i)
print(shipyard.active_run().run_id, flush=True)
time.sleep(60)
'''
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()  # the condition: every point is logged and the handler installed
    proc.send_signal(signum)
    proc.wait(timeout=60)
    record = json.loads(run_cli("runs", "show", run_id, "--json", cwd=root).stdout)
    assert record["status"] == "KILLED"
    db = sqlite3.connect(root / ".shipyard" / "shipyard.db")
    assert db.execute("select count(*) from metrics where run_id = ? and key = 'loss'", (run_id,)).fetchone()[0] == 3000


def test_param_change_is_refused_at_the_call(tmp_path: Path) -> None:
    code = "import shipyard\nshipyard.log_param('depth', 3)\ntry:\n    shipyard.log_param('depth', 4)\nexcept Exception as e:\n    print(type(e).__name__, e)"
    proc = _python(code, _project(tmp_path))
    assert "InputError" in proc.stdout and "params cannot change" in proc.stdout


def test_nan_is_stored_and_a_non_number_refused_at_the_call(tmp_path: Path) -> None:
    root = _project(tmp_path)
    code = ("import math, shipyard\nwith shipyard.start_run('nan') as run:\n    shipyard.log_metric('loss', float('nan'))\n"
            "    shipyard.log_metric('gain', math.inf)\n    try:\n        shipyard.log_metric('bad', 'high')\n"
            "    except Exception as e:\n        print(type(e).__name__, e)\n    print(run.run_id)")
    proc = _python(code, root)
    assert "InputError" in proc.stdout and "valid double" in proc.stdout, proc.stderr
    record = json.loads(run_cli("runs", "show", proc.stdout.strip().splitlines()[-1], "--json", cwd=root).stdout)
    assert record["metrics"]["gain"] == 1.7976931348623157e308 and "bad" not in record["metrics"]
