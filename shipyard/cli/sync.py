"""``shipyard push`` / ``shipyard pull``: share objects and run-cache entries through a remote."""

from __future__ import annotations

import typer

from shipyard.cli.output import echo, plain, print_json

push_app = typer.Typer(add_completion=False)
pull_app = typer.Typer(add_completion=False)

REMOTE_HELP = "Remote: any fsspec URL (s3://bucket/prefix) or a folder. Default: $SHIPYARD_OBJECTS."


def _sync(direction: str, remote: str | None, jobs: int, json_out: bool) -> None:
    import sys

    from shipyard.ci import sync
    from shipyard.pipeline.runcache import PREFIX
    from shipyard.project import find_project

    project = find_project()
    local = project.objects_dir
    url = sync.resolve_remote(remote, local)
    runcache = local / PREFIX  # run-cache entries live inside the local object folder
    last = {"shown": -1}

    def progress(done: int, total: int) -> None:
        if json_out or total < 100:  # small transfers finish before a progress line would help
            return
        tenth = done * 10 // max(total, 1)
        if tenth != last["shown"] and (plain() or done == total):
            last["shown"] = tenth
            print(f"{direction}: {done}/{total} objects", file=sys.stderr, flush=True)

    fn = sync.push if direction == "push" else sync.pull
    result = fn(local, runcache, url, jobs=jobs, progress=progress)
    if json_out:
        print_json(result.to_dict())
    else:
        echo(result.summary())


@push_app.command()
def push(
    remote: str = typer.Option(None, "--remote", "-r", help=REMOTE_HELP),
    jobs: int = typer.Option(16, "--jobs", "-j", min=1, max=256, help="Parallel transfers."),
    json_out: bool = typer.Option(False, "--json", help="Print what moved as JSON."),
) -> None:
    """Upload objects and run-cache entries the remote does not have yet.

    Example: shipyard push --remote s3://team-bucket/shipyard
    """
    _sync("push", remote, jobs, json_out)


@pull_app.command()
def pull(
    remote: str = typer.Option(None, "--remote", "-r", help=REMOTE_HELP),
    jobs: int = typer.Option(16, "--jobs", "-j", min=1, max=256, help="Parallel transfers."),
    json_out: bool = typer.Option(False, "--json", help="Print what moved as JSON."),
) -> None:
    """Download objects and run-cache entries this machine does not have (each one verified).

    Example: SHIPYARD_OBJECTS=s3://team-bucket/shipyard shipyard pull
    """
    _sync("pull", remote, jobs, json_out)
