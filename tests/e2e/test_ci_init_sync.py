"""`shipyard ci init` writes files that parse; `shipyard push` / `pull` share a cache between clones."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from shipyard.ci.templates import JENKINS_STAGES, check_jenkinsfile
from shipyard.objects import ObjectStore
from tests.ci.gitproject import make_project
from tests.conftest import run_cli


def test_ci_init_writes_three_parsing_files(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    project = make_project(repo / "models" / "penguins")
    shutil.rmtree(project / ".git")  # the project lives in a subfolder of a bigger repository
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    for kind in ("github", "gitlab", "jenkins"):
        result = run_cli("ci", "init", kind, cwd=project)
        assert result.returncode == 0, result.stderr
    workflow = yaml.safe_load((repo / ".github/workflows/shipyard.yml").read_text())
    assert workflow["jobs"]["ci"]["defaults"]["run"]["working-directory"] == "models/penguins"
    gitlab = yaml.safe_load((repo / ".gitlab-ci.yml").read_text())
    assert gitlab["shipyard-ci"]["cache"][0]["paths"] == ["models/penguins/.shipyard/objects/"]
    jenkinsfile = (repo / "Jenkinsfile").read_text()
    assert check_jenkinsfile(jenkinsfile) == list(JENKINS_STAGES)
    assert "shipyard run train" in jenkinsfile  # the project's own stage name
    again = run_cli("ci", "init", "github", cwd=project)
    assert again.returncode == 2 and "--force" in again.stderr
    unknown = run_cli("ci", "init", "circleci", cwd=project)
    assert unknown.returncode == 2 and "github, gitlab, jenkins" in unknown.stderr


def test_push_then_pull_in_a_fresh_clone(tmp_path: Path) -> None:
    origin = make_project(tmp_path / "origin")
    remote = tmp_path / "remote"
    oids = ObjectStore.open(origin / ".shipyard" / "objects").put_bytes_many([b"model bytes", b"prepared data"])
    entry = origin / ".shipyard" / "objects" / "runcache" / "v1" / "ab" / ("c" * 30 + ".json")
    entry.parent.mkdir(parents=True)
    entry.write_text('{"outs": {}}')
    pushed = run_cli("push", "--remote", str(remote), "--json", cwd=origin)
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["objects_transferred"] == 2

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    pulled = run_cli("pull", cwd=clone, env={"SHIPYARD_OBJECTS": str(remote)})
    assert pulled.returncode == 0, pulled.stderr
    assert "pulled 2 objects" in pulled.stdout and "1 run-cache entries" in pulled.stdout
    assert ObjectStore.open(clone / ".shipyard" / "objects").get_many(oids)
    assert (clone / ".shipyard" / "objects" / "runcache" / "v1" / "ab" / ("c" * 30 + ".json")).exists()
    nothing = run_cli("pull", "--remote", str(remote), "--json", cwd=clone)
    assert json.loads(nothing.stdout)["objects_transferred"] == 0

    no_remote = run_cli("push", cwd=clone, env={"SHIPYARD_OBJECTS": ""})
    assert no_remote.returncode == 2 and "SHIPYARD_OBJECTS" in no_remote.stderr
