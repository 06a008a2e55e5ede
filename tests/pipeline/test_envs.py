"""Per-stage environments: built once with uv, keyed by the resolved lock, in the stage's fingerprint.

These tests resolve and install ``six`` from PyPI (the package registry this machine reaches) into
an environment cache of their own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from shipyard.errors import ConfigError
from shipyard.pipeline.runner import Context, RunOptions, run
from tests.conftest import run_cli
from tests.pipeline.helpers import write_config

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("envs")]
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
PROBE = "python -c \"import json, six, sys; json.dump([sys.prefix, six.__version__], open('where.json', 'w'))\""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "env-cache"
    monkeypatch.setenv("SHIPYARD_ENV_CACHE", str(folder))
    return folder


def _project(root: Path, requirements: str, extra: dict | None = None) -> Path:  # type: ignore[type-arg]
    root.mkdir(parents=True)
    (root / "requirements.txt").write_text(requirements)
    write_config(root, {**(extra or {}), "probe": {
        "cmd": PROBE, "outs": ["where.json"], "environment": {"python": PYTHON, "requirements": "requirements.txt"}}})
    return root


def _run(root: Path, **options: object) -> tuple[object, list[str]]:
    lines: list[str] = []
    ctx = Context(root, root / ".shipyard")
    ctx.echo = lines.append
    return run(ctx, RunOptions(**options)), lines  # type: ignore[arg-type]


def test_a_stage_runs_in_its_own_environment_built_once_and_shared(cache: Path, tmp_path: Path) -> None:
    root = _project(tmp_path / "one", "six==1.16.0\n")
    assert _run(root)[0].ran == ["probe"]  # type: ignore[attr-defined]
    prefix, version = json.loads((root / "where.json").read_text())
    assert version == "1.16.0" and Path(prefix).parent == cache  # not the interpreter running shipyard
    built = (Path(prefix) / ".shipyard-env-complete").stat().st_mtime_ns
    assert _run(root)[0].up_to_date == ["probe"]  # type: ignore[attr-defined]
    _run(root, force=True)
    other = _project(tmp_path / "two", "six==1.16.0\n")  # another project, the same lock
    _run(other)
    assert json.loads((other / "where.json").read_text())[0] == prefix
    assert (Path(prefix) / ".shipyard-env-complete").stat().st_mtime_ns == built  # nothing was built again
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [Path(prefix).name]
    (root / "requirements.txt").write_text("six==1.17.0\n")  # a new lock: a new fingerprint
    status = run_cli("status", cwd=root, env={"SHIPYARD_ENV_CACHE": str(cache)})
    assert "environment resolved lock" in status.stdout, status.stdout
    _run(root)
    assert json.loads((root / "where.json").read_text())[1] == "1.17.0"
    gone = run_cli("gc", "--older-than", "0", "--json", cwd=root, env={"SHIPYARD_ENV_CACHE": str(cache)})
    assert gone.returncode == 0 and len(json.loads(gone.stdout)["removed"]) == 2
    assert not [p for p in cache.iterdir() if p.is_dir()]


def test_requirements_that_do_not_resolve_stop_the_run_before_any_stage(cache: Path, tmp_path: Path) -> None:
    first = {"first": {"cmd": "echo ran > first.txt", "outs": ["first.txt"]}}
    root = _project(tmp_path / "bad", "no-such-package-shipyard-test==9.9\n", first)
    with pytest.raises(ConfigError) as caught:
        _run(root)
    assert "stage probe: environment: requirements.txt does not resolve" in caught.value.message
    assert "no-such-package-shipyard-test" in caught.value.message  # uv's own words
    assert not (root / "first.txt").exists() and not cache.exists()


def test_an_environment_needs_exactly_one_requirements_or_lock_file(tmp_path: Path) -> None:
    root = tmp_path / "both"
    root.mkdir()
    write_config(root, {"probe": {"cmd": "true", "environment": {"requirements": "a.txt", "lock": "b.txt"}}})
    done = run_cli("run", cwd=root)
    assert done.returncode == 2
    assert "shipyard.yaml:6:9: pipeline.stages.probe.environment" in done.stderr
    assert "exactly one of requirements" in done.stderr
