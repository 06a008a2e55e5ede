"""``shipyard runs|metrics|params`` and ``server --get`` in process, on a git project."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from shipyard.cli.main import cli
from shipyard.tracking import service
from shipyard.workspace import Workspace


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def history(project: Workspace) -> dict[str, str]:
    """Two commits, a run at each: accuracy 0.9 -> 0.95, depth 3 -> 4."""
    root = project.project.root
    _git(root, "init", "-q")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "one")
    _git(root, "branch", "-M", "main")
    out = {}
    for i, (acc, depth) in enumerate(((0.9, "3"), (0.95, "4"))):
        if i:
            _git(root, "checkout", "-q", "-b", "feature")
            _git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "two")
        with project.store.write() as s:
            run_id = service.create_run(s, experiment="proj", name=f"r{i}", start_time=1000 + i,
                                        git={"commit": _git(root, "rev-parse", "HEAD")})
            service.log_batch(s, run_id, metrics=service.parse_metrics([("accuracy", acc)]), params={"depth": depth})
            service.end_run(s, run_id)
        out[f"r{i}"] = run_id
    return out


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_runs_list_filter_and_order(history: dict[str, str]) -> None:
    code, out = _invoke("runs", "list", "--filter", "metrics.accuracy > 0.8 or params.depth = '9'",
                        "--order-by", "metrics.accuracy ASC", "--json")
    assert code == 0, out
    assert [r["name"] for r in json.loads(out)] == ["r0", "r1"]


def test_runs_show_by_prefix(history: dict[str, str]) -> None:
    code, out = _invoke("runs", "show", history["r1"][:8], "--json")
    assert code == 0, out
    assert json.loads(out)["params"] == {"depth": "4"}


def test_metrics_diff_between_git_revisions(history: dict[str, str]) -> None:
    code, out = _invoke("metrics", "diff", "main", "feature", "--md")
    assert code == 0, out
    assert "| accuracy | 0.9 | 0.95 | +0.05 (+5.6%) |" in out
    code, out = _invoke("params", "diff", "main", "HEAD", "--json")
    assert json.loads(out)["rows"] == [{"key": "depth", "old": "3", "new": "4", "delta": None, "changed": True}]


def test_default_diff_is_the_two_newest_runs(history: dict[str, str]) -> None:
    code, out = _invoke("runs", "diff", history["r0"], "latest", "--json")
    kinds = {d["kind"]: d for d in json.loads(out)}
    assert kinds["metrics"]["old"] == history["r0"] and kinds["metrics"]["new"] == history["r1"]
    code, out = _invoke("metrics", "diff", "--json")
    assert code == 0, out
    assert json.loads(out)["old"] == history["r0"]


def test_metrics_show(history: dict[str, str]) -> None:
    code, out = _invoke("metrics", "show", "--json")
    assert code == 0, out
    assert json.loads(out) == {"run_id": history["r1"], "metrics": {"accuracy": 0.95}}


def test_bad_filter_and_unknown_ref_are_clear(history: dict[str, str]) -> None:
    from shipyard.errors import InputError, NotFound

    with pytest.raises(InputError, match="column 20"):
        _invoke("runs", "list", "--filter", "metrics.accuracy > high")
    with pytest.raises(NotFound, match="neither a run id nor a git revision"):
        _invoke("metrics", "diff", "nope", "latest")


def _json_after_notices(out: str) -> dict:
    """The JSON body ``server --get`` prints, after any notice lines (the --no-auth warning)."""
    return json.loads(out[out.index("{"):])


def test_server_get(history: dict[str, str]) -> None:
    code, out = _invoke("server", "--get", f"/api/v1/runs/{history['r0']}")
    assert code == 0 and _json_after_notices(out)["run"]["name"] == "r0"
    code, out = _invoke("server", "--get", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=proj")
    assert _json_after_notices(out)["experiment"]["name"] == "proj"
