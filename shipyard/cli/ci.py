"""``shipyard ci`` (the CI job), ``shipyard ci comment``, ``shipyard ci init`` and ``shipyard report``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from shipyard.cli.output import echo, print_json

app = typer.Typer(add_completion=False, invoke_without_command=True)
report_app = typer.Typer(add_completion=False)

REPORT_DIR_HELP = "Folder for report.md, report.html, report.json and plots/ (relative to the project root)."


@app.callback()
def ci(
    ctx: typer.Context,
    report_dir: Path = typer.Option(Path("shipyard-report"), "--report-dir", help=REPORT_DIR_HELP),
    base: str = typer.Option(None, "--base", help="Branch or commit to compare with (default: the PR's target, else main)."),
    step: list[str] = typer.Option(None, "--step", help="Run only these steps: validate, run, register, gate, report (repeatable)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
    trust: bool = typer.Option(False, "--trust", help="Allow loading pickle models (registered with --trust)."),
    json_out: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Run everything a CI job needs for the current commit; exit 0 all passed, 1 a gate or check failed.

    Steps: validate the data, run the pipeline (cached stages restored), register the candidate
    (tagged with branch, commit and PR), gate it against thresholds and the champion, and write the
    report. Then 'shipyard ci comment' posts it to the pull request.

    Example: shipyard ci --report-dir shipyard-report && shipyard ci comment
    """
    if ctx.invoked_subcommand is not None:
        return
    from shipyard.ci.runner import STEPS, CIOptions, run_ci
    from shipyard.errors import CheckFailed
    from shipyard.workspace import Workspace

    ws = Workspace.discover()
    options = CIOptions(report_dir=report_dir, base=base, steps=tuple(step) if step else STEPS,
                        plots=not no_plots, trust=trust)
    try:
        outcome = run_ci(ws, os.environ, options)
    finally:
        ws.close()
    report = outcome.report
    if json_out:
        print_json(outcome.to_dict())
    else:
        from shipyard.ci.report import headline

        echo(headline(report))
        for note in report.notes:
            echo(f"note: {note}")
        for error in report.errors:
            echo(f"error: {error}")
        for check in report.validation:
            echo(f"data {check.dataset}: " + ("valid" if check.passed else f"{len(check.failures)} check(s) failed"))
            for failure in check.failures[:5]:
                echo(f"  {failure}")
        if report.stages:
            ran = sum(s.status == "ran" for s in report.stages)
            cached = sum(s.status == "cached" for s in report.stages)
            current = sum(s.status == "up-to-date" for s in report.stages)
            echo(f"pipeline: {ran} stages ran, {cached} from the run cache, {current} already up to date")
        for gate in report.gates:
            word = {True: "pass", False: "FAIL", None: "skip"}[gate.passed]
            echo(f"  {word}  {gate.name}: {gate.reason}")
        if "md" in outcome.files:
            echo(f"report: {outcome.files['md']} (+ report.html, report.json, {len(report.plots)} plots)")
        if "candidate" in outcome.files:
            echo(f"candidate {outcome.candidate} passed; deploy it with: shipyard deploy {outcome.candidate}")
    if outcome.exit_code:
        problems = len([g for g in report.gates if g.passed is False]) + len(report.errors) + \
            len([v for v in report.validation if not v.passed]) + len([s for s in report.stages if s.status == "failed"])
        raise CheckFailed(f"shipyard ci: {problems} check(s) failed; see the report",
                          hint="read report.md (or report.html) in the report folder")


@app.command("comment")
def comment(
    report_dir: Path = typer.Option(Path("shipyard-report"), "--report-dir", help=REPORT_DIR_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the requests instead of sending them."),
    marker: str = typer.Option("default", "--marker", help="Name of the hidden marker (one comment per marker)."),
    image_base_url: str = typer.Option(None, "--image-base-url",
                                       help="Link plots under this URL (you upload them); default: list them only."),
    json_out: bool = typer.Option(False, "--json", help="Print the result (or the planned requests) as JSON."),
) -> None:
    """Create or update the one report comment on this pull request (GitHub, GitLab, Bitbucket, Gitea).

    The token comes from GITHUB_TOKEN, GITLAB_TOKEN, BITBUCKET_TOKEN or GITEA_TOKEN (or
    SHIPYARD_FORGE_TOKEN); the forge, repository and PR number from the CI environment
    (override with SHIPYARD_FORGE, SHIPYARD_FORGE_URL, SHIPYARD_REPO, SHIPYARD_PR).

    Example: GITHUB_TOKEN=... shipyard ci comment --dry-run
    """
    from shipyard.ci.env import detect
    from shipyard.ci.forges import open_forge
    from shipyard.ci.report import load, to_markdown
    from shipyard.errors import UsageError
    from shipyard.project import find_project

    project = find_project()
    folder = report_dir if report_dir.is_absolute() else project.root / report_dir
    report = load(folder)
    env = detect(os.environ, project.root)
    body = to_markdown(report, images="link" if image_base_url else "list", image_base=image_base_url,
                       html_ok=env.forge != "bitbucket")
    try:
        retries = int(os.environ.get("SHIPYARD_FORGE_RETRIES", "3"))
        backoff = float(os.environ.get("SHIPYARD_FORGE_BACKOFF", "1.0"))
    except ValueError as exc:
        raise UsageError(f"SHIPYARD_FORGE_RETRIES / SHIPYARD_FORGE_BACKOFF must be numbers ({exc})") from exc
    forge = open_forge(env.forge, api_url=env.forge_url, repo=env.repo, pr=env.pr_number,
                       require_token=not dry_run, retries=max(0, retries), backoff=max(0.0, backoff))
    if dry_run:
        plan = forge.plan(body, marker)
        if json_out:
            print_json([p.to_dict() for p in plan])
            return
        import json

        for request in plan:
            typer.echo(f"# {request.note}")
            typer.echo(f"{request.method} {request.url}")
            for key, value in request.headers.items():
                typer.echo(f"{key}: {value}")
            if request.json is not None:
                typer.echo("")
                typer.echo(json.dumps(request.json, indent=2, ensure_ascii=False))
            typer.echo("")
        return
    result = forge.upsert(body, marker)
    if json_out:
        print_json(result.to_dict())
    else:
        where = f": {result.url}" if result.url else ""
        echo(f"{result.action} the report comment on {env.forge} {env.repo} #{env.pr_number}{where}")


@app.command("init")
def init(
    kind: str = typer.Argument(..., help="github, gitlab or jenkins."),
    main: str = typer.Option("main", "--main", help="The branch that deploys."),
    python: str = typer.Option("3.11", "--python", help="Python version for the job."),
    install: str = typer.Option(None, "--install", help='Install command (default: pip install "shipyard[sklearn]").'),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    print_only: bool = typer.Option(False, "--print", help="Print the file instead of writing it."),
) -> None:
    """Write a ready CI workflow for GitHub Actions, GitLab CI or Jenkins (checked before writing).

    It installs Shipyard, caches .shipyard/objects between runs, runs 'shipyard ci', comments on the
    pull request and, on the main branch, deploys a candidate that passed its gates.

    Example: shipyard ci init github
    """
    from shipyard.ci import git
    from shipyard.ci.templates import DEFAULT_INSTALL, TemplateOptions, render, stage_roles, write
    from shipyard.project import find_project

    project = find_project()
    repo_root = project.root
    workdir = "."
    if git.is_repo(project.root):
        repo_root = git.toplevel(project.root)
        workdir = project.root.resolve().relative_to(repo_root.resolve()).as_posix() or "."
    roles: dict[str, str] = {}
    stages: list[str] = []
    if project.config_path.is_file():
        from shipyard.config import load_config

        stages = list(load_config(project.config_path).pipeline.stages)
    if not stages and (project.root / "dvc.yaml").is_file():  # a DVC project run as it is
        from shipyard.pipeline.dvc import convert, read_doc

        stages = list(convert(read_doc(project.root))[0])
    if stages:
        roles = stage_roles(stages)
    options = TemplateOptions(workdir=workdir, main=main, python=python, install=install or DEFAULT_INSTALL, **roles)
    if print_only:
        typer.echo(render(kind, options), nl=False)
        return
    path = write(kind, repo_root, options, force=force)
    echo(f"wrote {path}")
    if kind == "jenkins":
        echo("add a 'shipyard-forge-token' secret-text credential for the pull-request comment")


@report_app.command()
def report(
    base: str = typer.Option(None, "--base", help="Branch or commit to compare with (default: main)."),
    md: bool = typer.Option(False, "--md", help="Print the Markdown (the default)."),
    html: bool = typer.Option(False, "--html", help="Print the HTML (plots inline)."),
    json_out: bool = typer.Option(False, "--json", help="Print the JSON."),
    report_dir: Path = typer.Option(Path("shipyard-report"), "--report-dir", help=REPORT_DIR_HELP),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
) -> None:
    """Write the report for the working tree against a base revision, without running anything.

    Metrics, params and data are compared with the base commit and the champion; the files go to
    the report folder and one format is printed.

    Example: shipyard report --base main --md
    """
    from shipyard.ci.runner import CIOptions, run_ci
    from shipyard.errors import UsageError
    from shipyard.workspace import Workspace

    if sum([md, html, json_out]) > 1:
        raise UsageError("choose one of --md, --html and --json")
    ws = Workspace.discover()
    try:
        outcome = run_ci(ws, os.environ, CIOptions(report_dir=report_dir, base=base, steps=("report",),
                                                   plots=not no_plots))
    finally:
        ws.close()
    kind = "html" if html else "json" if json_out else "md"
    typer.echo(outcome.files[kind].read_text(encoding="utf-8"), nl=False)
