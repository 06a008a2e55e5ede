"""``shipyard export kfp|airflow``: the penguins pipeline handed to Kubeflow Pipelines and Airflow.

The KFP YAML is compiled by the kfp SDK, read back by the SDK's own loader and compared with a
golden file. apache-airflow is not installed here (its pins clash with mlflow's and kserve's), so
the DAG file is compiled and its tasks, edges, retries and resources read from its syntax tree.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli

GOLDEN = Path(__file__).parent / "golden" / "penguins.kfp.yaml"
EDGES = {("validate", "prepare"), ("prepare", "train"), ("train", "evaluate"), ("prepare", "evaluate")}


@pytest.fixture
def project(penguins: Path) -> Path:
    """The penguins example with resources and retries on its train stage."""
    config = penguins / "shipyard.yaml"
    text = config.read_text().replace("      outs: [model/]\n",
                                      "      outs: [model/]\n      resources: {cpu: 2, memory: 4Gi}\n      retries: 2\n")
    config.write_text(text)
    return penguins


def _normalised(text: str) -> str:
    return re.sub(r"sdkVersion: kfp-\S+", "sdkVersion: kfp-X", text)


def test_kfp_export_compiles_one_uncached_step_per_stage_with_resources_and_retries(project: Path) -> None:
    from kfp.components import load_component_from_text

    done = run_cli("export", "kfp", "--name", "penguins", "--image", "ghcr.io/team/penguins:1",
                   "--env", "SHIPYARD_OBJECTS=s3://team/shipyard", "-o", "pipeline.yaml", cwd=project)
    assert done.returncode == 0, done.stderr
    text = (project / "pipeline.yaml").read_text()
    assert load_component_from_text(text).name == "penguins"  # the SDK reads its own output back
    spec = yaml.safe_load(text)
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == ["stage-evaluate", "stage-prepare", "stage-train", "stage-validate"]
    edges = {(up.removeprefix("stage-"), name.removeprefix("stage-"))
             for name, task in tasks.items() for up in task.get("dependentTasks", [])}
    assert edges == EDGES
    assert all(task["cachingOptions"] == {} or task["cachingOptions"].get("enableCache") is not True
               for task in tasks.values())  # Shipyard's run cache decides, not KFP's
    assert tasks["stage-train"]["retryPolicy"]["maxRetryCount"] == 2
    train = spec["deploymentSpec"]["executors"]["exec-stage-train"]["container"]
    assert train["resources"]["resourceCpuLimit"] == "2" and train["resources"]["resourceMemoryLimit"] == "4Gi"
    assert "shipyard run train" in train["args"][0] and train["image"] == "ghcr.io/team/penguins:1"
    assert {"name": "SHIPYARD_OBJECTS", "value": "s3://team/shipyard"} in train["env"]
    assert _normalised(text) == _normalised(GOLDEN.read_text()), "the KFP YAML changed: review, then refresh the golden file"


def _calls(tree: ast.Module, operator: str) -> dict[str, dict[str, ast.expr]]:
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == operator:
            keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg}
            found[ast.literal_eval(keywords["task_id"])] = keywords
    return found


def _edges(tree: ast.Module) -> set[tuple[str, str]]:
    edges = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
            left, right = (ast.literal_eval(side.slice) for side in (node.left, node.right))  # tasks['x']
            edges.add((left, right))
    return edges


@pytest.mark.parametrize("operator", ["bash", "kubernetes"])
def test_airflow_export_writes_a_dag_file_with_one_task_per_stage(project: Path, operator: str) -> None:
    done = run_cli("export", "airflow", "--operator", operator, "--image", "ghcr.io/team/penguins:1",
                   "--schedule", "@daily", cwd=project)
    assert done.returncode == 0, done.stderr
    tree = ast.parse(done.stdout)
    compile(tree, "penguins_dag.py", "exec")
    tasks = _calls(tree, "BashOperator" if operator == "bash" else "KubernetesPodOperator")
    assert sorted(tasks) == ["evaluate", "prepare", "train", "validate"]
    assert _edges(tree) == EDGES
    assert ast.literal_eval(tasks["train"]["retries"]) == 2
    command = tasks["train"]["bash_command"] if operator == "bash" else tasks["train"]["arguments"]
    assert "shipyard run train" in ast.unparse(command)
    if operator == "kubernetes":
        assert ast.literal_eval(tasks["train"]["image"]) == "ghcr.io/team/penguins:1"
        resources = ast.unparse(tasks["train"]["container_resources"])
        assert "'cpu': '2'" in resources and "'memory': '4Gi'" in resources
        assert "container_resources" not in tasks["validate"]
    assert "schedule='@daily'" in done.stdout


def test_export_bad_input_names_what_is_wrong(project: Path) -> None:
    bad_env = run_cli("export", "kfp", "--env", "NOEQUALS", cwd=project)
    assert bad_env.returncode == 2 and "--env 'NOEQUALS'" in bad_env.stderr
    bad_operator = run_cli("export", "airflow", "--operator", "celery", cwd=project)
    assert bad_operator.returncode == 2 and "--operator 'celery'" in bad_operator.stderr
    config = project / "shipyard.yaml"
    config.write_text(config.read_text().replace("{cpu: 2, memory: 4Gi}", "{cpu: -1, memory: lots}"))
    bad_resources = run_cli("export", "kfp", cwd=project)
    assert bad_resources.returncode == 2
    assert "train" in bad_resources.stderr and "cpu" in bad_resources.stderr
    assert not (project / "pipeline.yaml").exists()
