"""``shipyard features list|show|diff|materialize`` in process, on a git project with a Feast repo."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml
from click.testing import CliRunner

from shipyard.cli.main import cli
from tests.features.feast_repo import write_definitions

pytestmark = pytest.mark.xdist_group("feast")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"CI": "true"})
    code = getattr(result.exception, "exit_code", result.exit_code) if result.exception else result.exit_code
    # a ShipyardError reaches the runner as the exception (shipyard.cli.main.run prints it for users)
    return code, result.output + (str(result.exception) if result.exception else "")


@pytest.mark.slow
def test_list_show_materialize_diff(project, feast_repo):
    root = project.project.root
    shutil.copytree(feast_repo, root / "feature_repo", ignore=shutil.ignore_patterns("registry.db", "online.db"))
    (root / "shipyard.yaml").write_text(yaml.safe_dump({"features": "feature_repo", "pipeline": {"stages": {
        "train": {"cmd": "true", "outs": ["m.txt"], "features": {
            "refs": ["driver_rank:rank"], "entities": "labels.parquet", "out": "rank.parquet"}}}}}))
    for cmd in (["init", "-q"], ["add", "shipyard.yaml", "feature_repo/definitions.py", "feature_repo/feature_store.yaml"],
                ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "features"]):
        subprocess.run(["git", *cmd], cwd=root, check=True, capture_output=True)
    code, out = invoke("features", "list", "--json")
    assert code == 0, out
    views = {v["name"]: v for v in json.loads(out)}
    assert views["driver_rank"]["stages"] == ["train"] and views["driver_stats"]["ttl_s"] == 7200
    code, out = invoke("features", "show", "driver_stat")
    assert code == 2 and "did you mean 'driver_stats'" in out, out
    code, out = invoke("features", "materialize", "driver_stats", "--start", "2026-10-31", "--end", "2026-11-02",
                       "--json")
    assert code == 0, out
    done = json.loads(out[out.index("{"):])
    assert done["views"] == ["driver_stats"] and done["run_id"]
    code, out = invoke("runs", "show", done["run_id"], "--json")
    assert code == 0 and "features materialize" in out, out
    code, out = invoke("features", "diff", "HEAD")
    assert code == 0 and "no feature view changed" in out, out
    write_definitions(root / "feature_repo", rank_ttl_hours=3)
    code, out = invoke("features", "diff", "HEAD")
    assert code == 1 and "driver_rank: changed (ttl_s)" in out and "driver_stats" not in out, out
