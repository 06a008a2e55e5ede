"""Hand a project's pipeline to another orchestrator: Kubeflow Pipelines v2 YAML or an Airflow DAG file.

Each stage becomes one step that runs ``shipyard run STAGE`` in a container holding the project,
against the team's store and object store (``SHIPYARD_STORE``, ``SHIPYARD_OBJECTS``, from the
step's environment or the cluster's secrets), so the run cache, tracking and lineage still apply:
a step whose inputs did not change restores its outputs instead of running. Between steps the run
cache travels through the object store: a step pulls before and pushes after. The orchestrator's
own caching is switched off (a step has no inputs it could see change). Each step carries its
stage's ``resources`` and ``retries`` from shipyard.yaml.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError, UsageError

ENV_PASSED = ("SHIPYARD_STORE", "SHIPYARD_OBJECTS")


@dataclass(frozen=True)
class Step:
    """One stage as an orchestrator step."""

    name: str
    after: tuple[str, ...]
    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    retries: int = 0

    @property
    def script(self) -> str:
        """The shell line the step runs: fetch the run cache, run the stage, share what it made."""
        stage = shlex.quote(self.name)
        # without a remote (one worker sharing the project folder) there is nothing to pull or push
        return (f'{{ [ -z "$SHIPYARD_OBJECTS" ] || shipyard pull; }} && shipyard run {stage} && '
                f'{{ [ -z "$SHIPYARD_OBJECTS" ] || shipyard push; }}')

    @property
    def requests(self) -> dict[str, str]:
        """Kubernetes resource requests (cpu, memory) as declared."""
        return {key: value for key, value in (("cpu", self.cpu), ("memory", self.memory)) if value is not None}

    @property
    def limits(self) -> dict[str, str]:
        """Kubernetes resource limits: the requests, and the GPUs."""
        return {**self.requests, **({"nvidia.com/gpu": str(self.gpu)} if self.gpu else {})}

    @property
    def task_id(self) -> str:
        """The stage name as an identifier orchestrators accept (``train@1`` -> ``train_1``)."""
        return "".join(c if c.isalnum() or c in "_-" else "_" for c in self.name)


@dataclass(frozen=True)
class Plan:
    """The pipeline as steps in a valid order."""

    name: str
    steps: tuple[Step, ...]


def plan(root: Path, state_dir: Path, name: str | None = None) -> Plan:
    """The project's pipeline as steps (stage resources and retries from shipyard.yaml)."""
    from shipyard.config import load_config
    from shipyard.pipeline.loader import load_pipeline
    from shipyard.project import CONFIG_NAME

    loaded = load_pipeline(root, state_dir)
    if not loaded.dag.stages:
        raise ConfigError(f"{root}: the pipeline has no stages to export",
                          hint="declare stages under pipeline.stages in shipyard.yaml (or keep a dvc.yaml)")
    stages = load_config(root / CONFIG_NAME).pipeline.stages if (root / CONFIG_NAME).is_file() else {}
    steps = []
    for stage_name in loaded.dag.order:
        spec = loaded.dag.stages[stage_name]
        declared = stages.get(spec.origin or stage_name)
        resources = declared.resources if declared is not None else None
        steps.append(Step(
            name=stage_name, after=tuple(loaded.dag.upstream.get(stage_name, ())),
            cpu=None if resources is None or resources.cpu is None else str(resources.cpu),
            memory=None if resources is None else resources.memory,
            gpu=None if resources is None else resources.gpu,
            retries=declared.retries if declared is not None else 0))
    return Plan(name or root.name, tuple(steps))


def _env_pairs(env: Sequence[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--env {item!r}: expected NAME=VALUE", hint="--env SHIPYARD_OBJECTS=s3://team/shipyard")
        pairs[key] = value
    return pairs


def to_kfp(plan: Plan, *, image: str, env: Sequence[str] = ()) -> str:
    """Kubeflow Pipelines v2 YAML (compiled by the kfp SDK), one container step per stage."""
    try:
        from kfp import compiler, dsl
    except ImportError as exc:
        raise UsageError("shipyard export kfp needs the kfp SDK", hint="pip install kfp") from exc
    values = _env_pairs(env)

    def component(step: Step) -> Any:
        def body():  # type: ignore[no-untyped-def]  # kfp reads the annotation: none or ContainerSpec
            return dsl.ContainerSpec(image=image, command=["sh", "-c"], args=[step.script])

        body.__name__ = "stage_" + step.task_id.replace("-", "_")
        return dsl.container_component(body)

    components = {step.name: component(step) for step in plan.steps}

    @dsl.pipeline(name=plan.name, description=f"Shipyard pipeline of {plan.name}: one step per stage")
    def pipeline():  # type: ignore[no-untyped-def]  # kfp reads the return annotation too
        tasks: dict[str, Any] = {}
        for step in plan.steps:
            task = components[step.name]().set_display_name(step.name).set_caching_options(False)
            if step.after:
                task.after(*[tasks[up] for up in step.after])
            _kfp_resources(task, step)
            for key, value in values.items():
                task.set_env_variable(key, value)
            tasks[step.name] = task

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(out))
        return out.read_text()


def _kfp_resources(task: Any, step: Step) -> None:
    if step.cpu is not None:
        task.set_cpu_request(step.cpu).set_cpu_limit(step.cpu)
    if step.memory is not None:
        task.set_memory_request(step.memory).set_memory_limit(step.memory)
    if step.gpu:
        task.set_accelerator_limit(step.gpu)
    if step.retries:
        task.set_retry(num_retries=step.retries, backoff_duration="30s", backoff_factor=2)


def to_airflow(plan: Plan, *, image: str, operator: str = "bash", env: Sequence[str] = (),
               schedule: str | None = None, workdir: str | None = None) -> str:
    """An Airflow DAG file: one task per stage (BashOperator, or KubernetesPodOperator with ``image``)."""
    if operator not in ("bash", "kubernetes"):
        raise UsageError(f"--operator {operator!r}: expected bash or kubernetes")
    import jinja2

    template = jinja2.Environment(keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                                  undefined=jinja2.StrictUndefined).from_string(_AIRFLOW)
    return template.render(plan=plan, image=image, operator=operator, env=_env_pairs(env), passed=ENV_PASSED,
                           schedule=schedule, workdir=workdir, py=repr)  # py: a Python literal


_AIRFLOW = '''"""Airflow DAG for the Shipyard pipeline {{ plan.name }}: written by `shipyard export airflow`.

Each task runs `shipyard run STAGE` against the team's store and object store
({{ passed | join(", ") }} come from the worker's environment); unchanged stages restore from the
run cache. Regenerate after changing shipyard.yaml rather than editing this file.
"""

from __future__ import annotations

import os

import pendulum
from airflow import DAG
{% if operator == "bash" %}
from airflow.providers.standard.operators.bash import BashOperator
{% else %}
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s
{% endif %}

ENV = {name: os.environ[name] for name in {{ py(passed | list) }} if name in os.environ}
ENV.update({{ py(env) }})

with DAG(
    dag_id={{ py(plan.name) }},
    schedule={{ py(schedule) }},
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["shipyard"],
) as dag:
    tasks = {}
{% for step in plan.steps %}
{% if operator == "bash" %}
    tasks[{{ py(step.name) }}] = BashOperator(
        task_id={{ py(step.task_id) }},
        bash_command={{ py(step.script) }},
{% if workdir %}
        cwd={{ py(workdir) }},
{% endif %}
        env=ENV,
        append_env=True,
        retries={{ step.retries }},
    )
{% else %}
    tasks[{{ py(step.name) }}] = KubernetesPodOperator(
        task_id={{ py(step.task_id) }},
        name={{ py(("shipyard-" + step.task_id) | lower | replace("_", "-")) }},
        image={{ py(image) }},
        cmds=["sh", "-c"],
        arguments=[{{ py(step.script) }}],
        env_vars=ENV,
        retries={{ step.retries }},
{% if step.limits %}
        container_resources=k8s.V1ResourceRequirements(
            requests={{ py(step.requests) }},
            limits={{ py(step.limits) }},
        ),
{% endif %}
    )
{% endif %}
{% endfor %}
{% for step in plan.steps %}
{% for up in step.after %}
    tasks[{{ py(up) }}] >> tasks[{{ py(step.name) }}]
{% endfor %}
{% endfor %}
'''
