"""Generated CI files parse and have the shape their CI system expects."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shipyard.ci.templates import (
    JENKINS_STAGES,
    TemplateOptions,
    check_jenkinsfile,
    parse_groovy_blocks,
    render,
    stage_roles,
    write,
)
from shipyard.errors import AlreadyExists, InputError, UsageError


def steps_text(workflow: dict) -> str:
    return "\n".join(str(s.get("run", "")) + str(s.get("with", "")) for s in workflow["jobs"]["ci"]["steps"])


def test_github_workflow() -> None:
    text = render("github", TemplateOptions(workdir="examples/penguins"))
    data = yaml.safe_load(text)
    triggers = data[True]  # PyYAML reads 'on' as True
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    assert data["permissions"]["pull-requests"] == "write"
    steps = data["jobs"]["ci"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout") for u in uses)
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))
    assert cache["with"]["path"] == "examples/penguins/.shipyard/objects"
    runs = steps_text(data)
    for command in ('pip install "shipyard[sklearn]"', "shipyard ci", "shipyard ci comment", "shipyard pull",
                    "shipyard push", 'shipyard deploy "$(cat shipyard-report/candidate)"'):
        assert command in runs, command
    deploy = next(s for s in steps if "shipyard deploy" in s.get("run", ""))
    assert "refs/heads/main" in deploy["if"] and "push" in deploy["if"]
    comment = next(s for s in steps if "ci comment" in s.get("run", ""))
    assert comment["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert data["jobs"]["ci"]["defaults"]["run"]["working-directory"] == "examples/penguins"


def test_gitlab_pipeline() -> None:
    data = yaml.safe_load(render("gitlab", TemplateOptions(main="trunk", python="3.12")))
    assert data["stages"] == ["ci", "deploy"]
    assert data["default"]["image"] == "python:3.12"
    job = data["shipyard-ci"]
    assert job["cache"][0]["paths"] == [".shipyard/objects/"]
    script = "\n".join(job["script"])
    assert "shipyard ci --report-dir" in script and "shipyard ci comment" in script
    assert "CI_MERGE_REQUEST_IID" in script
    assert job["artifacts"]["when"] == "always"
    assert data["deploy"]["needs"] == ["shipyard-ci"]
    assert "$CI_DEFAULT_BRANCH" in data["deploy"]["rules"][0]["if"]


def test_jenkinsfile_structure() -> None:
    text = render("jenkins", TemplateOptions(prepare="featurize", train="fit", evaluate="score"))
    assert check_jenkinsfile(text) == list(JENKINS_STAGES)
    assert text.count("{") == text.count("}")
    for command in ("shipyard run featurize", "shipyard run fit", "shipyard run score", "shipyard ci --step validate",
                    "shipyard ci comment", "shipyard deploy", "branch 'main'"):
        assert command in text, command


def test_jenkins_checker_rejects_broken_files() -> None:
    good = render("jenkins", TemplateOptions())
    with pytest.raises(InputError, match="never closed"):
        check_jenkinsfile(good.rstrip().removesuffix("}"))
    with pytest.raises(InputError, match="without a matching"):
        check_jenkinsfile(good + "\n}\n")
    with pytest.raises(InputError, match="expected"):
        check_jenkinsfile(good.replace("stage('Train')", "stage('Training')"))
    with pytest.raises(InputError, match="no 'steps'"):
        check_jenkinsfile("pipeline { agent any\n stages { stage('A') { echo 'x' } } }")
    # braces and quotes inside strings and comments do not count
    tree = parse_groovy_blocks("pipeline { // a } comment\n stages { stage('x {') { steps { sh 'echo }' } } } }")
    assert tree.children[0].children[0].children[0].arg == "x {"


def test_install_command_is_quoted_for_yaml() -> None:
    data = yaml.safe_load(render("github", TemplateOptions(install="pip install -r requirements.txt # pinned")))
    runs = [s["run"] for s in data["jobs"]["ci"]["steps"] if "run" in s]
    assert "pip install -r requirements.txt # pinned" in runs
    with pytest.raises(UsageError, match="single quotes"):
        render("jenkins", TemplateOptions(install="pip install 'shipyard'"))


def test_unknown_kind_and_overwrite(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        render("gitlub", TemplateOptions())
    assert "gitlab" in (info.value.hint or "")
    path = write("github", tmp_path, TemplateOptions())
    assert path == tmp_path / ".github/workflows/shipyard.yml"
    path.write_text("# mine\n")
    with pytest.raises(AlreadyExists, match="--force"):
        write("github", tmp_path, TemplateOptions())
    assert path.read_text() == "# mine\n"
    write("github", tmp_path, TemplateOptions(), force=True)
    assert "shipyard ci" in path.read_text()


def test_stage_roles() -> None:
    assert stage_roles(["validate", "prepare", "train", "evaluate"]) == {
        "prepare": "prepare", "train": "train", "evaluate": "evaluate"}
    assert stage_roles(["featurize", "fit_model", "metrics"]) == {
        "prepare": "featurize", "train": "fit_model", "evaluate": "metrics"}
    assert stage_roles([]) == {}
