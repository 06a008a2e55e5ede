"""The gateway's CLI through the real binary: serve --get, deploy --export k8s, build, rollout."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import run_cli


def test_serve_get_ready_in_process(project) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("serve", "--get", "/ready", "--json", cwd=project.project.root)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == 200 and doc["body"]["ready"] is True and doc["body"]["models"] == {}
    assert doc["headers"]["x-shipyard-routing"] == "fresh" and "x-request-id" in doc["headers"]
    done = run_cli("serve", "--get", "/v2/models/iris", cwd=project.project.root)
    assert done.returncode == 1 and "unknown model 'iris'" in done.stdout


def test_export_k8s_manifests_have_probes_and_matching_labels(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "k8s"
    done = run_cli("deploy", "--export", "k8s", str(out), "--image", "reg.example/gw:1", "--replicas", "3",
                   "--json", cwd=project.project.root)
    assert done.returncode == 0, done.stderr
    assert sorted(Path(p).name for p in json.loads(done.stdout)["written"]) == \
        ["configmap.yaml", "deployment.yaml", "service.yaml"]
    config = yaml.safe_load((out / "configmap.yaml").read_text())
    deployment = yaml.safe_load((out / "deployment.yaml").read_text())
    service = yaml.safe_load((out / "service.yaml").read_text())
    assert (config["apiVersion"], config["kind"]) == ("v1", "ConfigMap")
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
    assert "pipeline:" in config["data"]["shipyard.yaml"] and config["data"]["SHIPYARD_STORE"]
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"] == labels == service["spec"]["selector"]
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == "reg.example/gw:1"
    assert container["args"][:2] == ["shipyard", "serve"]
    port = container["ports"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port["containerPort"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": port["containerPort"]}
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    refs = {e["valueFrom"]["configMapKeyRef"]["name"] for e in container["env"]}
    volumes = {v["configMap"]["name"] for v in spec["template"]["spec"]["volumes"]}
    assert refs == volumes == {config["metadata"]["name"]}
    assert {e["valueFrom"]["configMapKeyRef"]["key"] for e in container["env"]} <= set(config["data"])


def test_export_to_an_unknown_target_is_a_usage_error(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("deploy", "--export", "nomad", str(tmp_path / "x"), cwd=project.project.root)
    assert done.returncode == 2 and "unknown export target 'nomad'" in done.stderr
    assert not (tmp_path / "x").exists()


def test_build_writes_a_dockerfile(project) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("build", "--no-build", "--json", cwd=project.project.root)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["built"] is False and doc["note"] == "skipped (--no-build)"
    text = Path(doc["dockerfile"]).read_text()
    assert "FROM python:3.11-slim" in text and '"shipyard", "serve"' in text and "EXPOSE 8080" in text


def test_deploy_needs_name_at_version(project) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("deploy", "iris", cwd=project.project.root)
    assert done.returncode == 2 and "'iris' is not NAME@VERSION" in done.stderr


def test_rollout_commands_without_rollouts(project) -> None:  # type: ignore[no-untyped-def]
    done = run_cli("rollout", "status", "--json", cwd=project.project.root)
    assert done.returncode == 0 and json.loads(done.stdout) == []
    done = run_cli("rollout", "pause", "iris", cwd=project.project.root)
    assert done.returncode == 2 and "model 'iris' has no running or paused rollout" in done.stderr
    done = run_cli("rollback", "iris", cwd=project.project.root)
    assert done.returncode == 2 and "no rollout to roll back" in done.stderr
