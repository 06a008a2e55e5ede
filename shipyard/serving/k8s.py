"""Packaging the gateway for clusters: a Dockerfile and Kubernetes manifests.

``write_manifests`` writes ``configmap.yaml`` (shipyard.yaml and the store/object URLs),
``deployment.yaml`` (the gateway, readiness probe on /ready, liveness probe on /health) and
``service.yaml``. Replicas are stateless apart from the store: each follows the routing table.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from shipyard.project import Project

PORT = 8080


def app_name(project: Project) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", project.root.name.lower()).strip("-") or "shipyard"
    return f"{base[:40]}-gateway"


def manifests(project: Project, *, image: str, replicas: int = 2) -> dict[str, dict[str, Any]]:
    name = app_name(project)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shipyard"}
    config_text = project.config_path.read_text(encoding="utf-8") if project.config_path.is_file() else ""
    data = {"shipyard.yaml": config_text,
            "SHIPYARD_STORE": os.environ.get("SHIPYARD_STORE", "postgresql+psycopg://shipyard@postgres:5432/shipyard"),
            "SHIPYARD_OBJECTS": os.environ.get("SHIPYARD_OBJECTS", "s3://shipyard/objects")}
    probe = {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 10, "failureThreshold": 3}
    container = {
        "name": "gateway",
        "image": image,
        "args": ["shipyard", "serve", "--host", "0.0.0.0", "--port", str(PORT)],
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": [{"name": key, "valueFrom": {"configMapKeyRef": {"name": f"{name}-config", "key": key}}}
                for key in ("SHIPYARD_STORE", "SHIPYARD_OBJECTS")],
        "volumeMounts": [{"name": "config", "mountPath": "/app/shipyard.yaml", "subPath": "shipyard.yaml"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": PORT}, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {**probe, "initialDelaySeconds": 10},
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
    }
    return {
        "configmap.yaml": {"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": f"{name}-config", "labels": labels}, "data": data},
        "deployment.yaml": {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [container],
                                           "volumes": [{"name": "config",
                                                        "configMap": {"name": f"{name}-config"}}]}}}},
        "service.yaml": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
                         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
    }


def write_manifests(project: Project, folder: Path, *, image: str, replicas: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, doc in manifests(project, image=image, replicas=replicas).items():
        path = folder / filename
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written


DOCKERFILE = """\
# Written by 'shipyard build': the Shipyard model gateway for this project.
FROM python:3.11-slim
WORKDIR /app
RUN pip install --no-cache-dir "shipyard[serve,sklearn,postgres,s3]"
COPY shipyard.yaml /app/shipyard.yaml
ENV SHIPYARD_HOME=/app/.shipyard
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health')"
CMD ["shipyard", "serve", "--host", "0.0.0.0", "--port", "8080"]
"""


def write_dockerfile(project: Project) -> Path:
    path = project.root / "Dockerfile.shipyard"
    path.write_text(DOCKERFILE, encoding="utf-8")
    return path


def docker_build(project: Project, dockerfile: Path, tag: str) -> tuple[bool, str]:
    """Build with docker when an engine answers; (False, why) otherwise."""
    docker = shutil.which("docker")
    if docker is None:
        return False, "docker is not installed"
    try:
        probe = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                               timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"docker engine did not answer ({exc})"
    if probe.returncode != 0:
        return False, "no docker engine answers: " + (probe.stderr.strip().splitlines() or ["unknown"])[-1]
    done = subprocess.run([docker, "build", "-f", str(dockerfile), "-t", tag, str(project.root)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return False, "docker build failed: " + done.stderr.strip()[-500:]
    return True, "built"
