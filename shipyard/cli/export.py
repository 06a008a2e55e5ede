"""``shipyard export kfp|airflow``: hand the pipeline to Kubeflow Pipelines or Airflow, one step per stage."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.cli.output import echo

app = typer.Typer(add_completion=False, no_args_is_help=True)

IMAGE_HELP = "Container image holding the project and shipyard (default: <project>-pipeline:latest)."
ENV_HELP = "NAME=VALUE set in every step (repeatable); SHIPYARD_STORE/SHIPYARD_OBJECTS come from the workers."


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text)
    echo(f"wrote {output}")


def _plan(name: str | None):  # type: ignore[no-untyped-def]
    from shipyard.ci.export import plan
    from shipyard.project import find_project

    project = find_project()
    return plan(project.root, project.state_dir, name)


@app.command("kfp")
def kfp_cmd(
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
    image: str | None = typer.Option(None, "--image", help=IMAGE_HELP),
    name: str | None = typer.Option(None, "--name", help="Pipeline name (default: the project folder's name)."),
    env: list[str] = typer.Option([], "--env", help=ENV_HELP),
) -> None:
    """Compile the pipeline to Kubeflow Pipelines v2 YAML (needs the kfp SDK).

    Each stage is a container step running `shipyard run STAGE` against the team's store, so the
    run cache, tracking and lineage still apply; KFP's own caching is off.

    Example: shipyard export kfp --image ghcr.io/team/penguins:1.4 -o pipeline.yaml
    """
    from shipyard.ci.export import to_kfp

    steps = _plan(name)
    _write(to_kfp(steps, image=image or f"{steps.name}-pipeline:latest", env=env), output)


@app.command("airflow")
def airflow_cmd(
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
    operator: str = typer.Option("bash", "--operator", help="bash (BashOperator on the worker) or kubernetes "
                                                            "(KubernetesPodOperator with --image)."),
    image: str | None = typer.Option(None, "--image", help=IMAGE_HELP),
    name: str | None = typer.Option(None, "--name", help="DAG id (default: the project folder's name)."),
    schedule: str | None = typer.Option(None, "--schedule", help="Airflow schedule (cron or preset; default: none)."),
    workdir: str | None = typer.Option(None, "--workdir", help="The project's folder on the worker (bash operator)."),
    env: list[str] = typer.Option([], "--env", help=ENV_HELP),
) -> None:
    """Write an Airflow DAG file: one task per stage running `shipyard run STAGE`.

    Example: shipyard export airflow --operator kubernetes --image ghcr.io/team/penguins:1.4 -o dags/penguins.py
    """
    from shipyard.ci.export import to_airflow

    steps = _plan(name)
    _write(to_airflow(steps, image=image or f"{steps.name}-pipeline:latest", operator=operator, env=env,
                      schedule=schedule, workdir=workdir), output)
