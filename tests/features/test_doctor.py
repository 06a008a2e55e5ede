"""``shipyard doctor`` with ``features:``: the Feast repository loads and its views are listed, the
online store answers (a store that is down is a failing line and exit 1); without ``features:``
doctor imports nothing of Feast."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid

import pytest
import yaml

from tests.e2e.gateway_live import free_port
from tests.features.feast_repo import REDIS_ONLINE, STORE_YAML
from tests.features.test_cli import invoke

pytestmark = pytest.mark.xdist_group("feast")


def doctor() -> tuple[int, dict[str, dict[str, str]]]:
    code, out = invoke("doctor", "--json")
    rows = json.loads(out[out.index("["):out.rindex("]") + 1])
    return code, {r["check"]: r for r in rows}


def test_doctor_checks_the_feast_repo_and_its_online_store(project, feast_repo):
    root = project.project.root
    repo = root / "feature_repo"
    shutil.copytree(feast_repo, repo, ignore=shutil.ignore_patterns("registry.db", "online.db"))
    (root / "shipyard.yaml").write_text(yaml.safe_dump({"features": "feature_repo", "pipeline": {"stages": {}}}))
    code, checks = doctor()
    assert code == 0, checks
    assert "driver_stats (3 features)" in checks["features"]["detail"] and "driver_rank (1 feature)" in checks["features"]["detail"]
    online = checks["online store"]
    assert online["status"] == "ok" and "Sqlite online store reachable" in online["detail"], online
    assert "nothing materialized yet for driver_rank, driver_stats" in online["detail"], online

    project_name = f"doctor_{uuid.uuid4().hex[:8]}"  # the real Redis: reachable, holds nothing of this project
    (repo / "feature_store.yaml").write_text(STORE_YAML.format(online=REDIS_ONLINE, project=project_name))
    code, checks = doctor()
    assert code == 0 and checks["online store"]["detail"] == "Redis online store reachable", checks

    down = REDIS_ONLINE.replace("6379", str(free_port()))  # Redis down: nothing listens on that port
    (repo / "feature_store.yaml").write_text(STORE_YAML.format(online=down, project=project_name))
    code, checks = doctor()
    assert code == 1, checks
    failed = checks["online store"]
    assert failed["status"] == "fail" and "Redis online store of" in failed["detail"], failed
    assert "cannot be read" in failed["detail"] and "ConnectionError" in failed["detail"], failed
    assert checks["features"]["status"] == "ok" and checks["store"]["status"] == "ok"

    (repo / "definitions.py").write_text("from feast import Entity\nthis is not python\n")
    code, checks = doctor()
    assert code == 1
    assert checks["features"]["status"] == "fail" and "definitions.py" in checks["features"]["detail"], checks
    assert checks["online store"]["detail"] == "not checked: the feature repository did not load"


def test_doctor_without_features_imports_nothing_of_feast(project):
    root = project.project.root
    code = ("import sys\nfrom shipyard.cli.main import run\n"
            "try:\n    run(['doctor', '--json'])\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('FEAST' if [m for m in sys.modules if m == 'feast' or m.startswith('feast.')] else 'CLEAN')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(done.stdout[done.stdout.index("["):done.stdout.rindex("]") + 1])
    assert "features" not in {r["check"] for r in rows}
    assert done.stdout.strip().splitlines()[-1] == "CLEAN", done.stdout + done.stderr
