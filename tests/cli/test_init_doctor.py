import json
from pathlib import Path

from tests.conftest import run_cli


def test_init_then_doctor(tmp_path: Path) -> None:
    result = run_cli("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "shipyard.yaml").exists() and (tmp_path / ".shipyard" / "shipyard.db").exists()
    assert "/.shipyard/" in (tmp_path / ".gitignore").read_text()
    doctor = run_cli("doctor", "--json", cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    checks = {c["check"]: c["status"] for c in json.loads(doctor.stdout)}
    assert checks["store"] == "ok" and checks["objects"] == "ok"


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("pipeline: {stages: {}}\n# mine\n")
    result = run_cli("init", cwd=tmp_path)
    assert result.returncode == 2
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert "# mine" in (tmp_path / "shipyard.yaml").read_text()


def test_unknown_command_suggests(tmp_path: Path) -> None:
    result = run_cli("doctr", cwd=tmp_path)
    assert result.returncode == 2
    assert "did you mean 'doctor'" in result.stderr


def test_help_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = ("import sys; from shipyard.cli.main import cli\n"
            "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('sqlalchemy', 'pandas', 'sklearn', 'torch', 'fastapi', 'typer', 'pydantic') if m in sys.modules]\n"
            "print('heavy=' + ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "heavy="


def test_subcommand_help_and_bad_options_use_the_right_exit_codes(tmp_path: Path) -> None:
    """typer vendors its own click: its Exit and UsageError must map to 0 and 2, not 'internal error'."""
    for args in (["doctor", "--help"], ["audit", "verify", "--help"], ["init", "--help"]):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        assert "Example:" in result.stdout and "internal error" not in result.stderr
    bad = run_cli("doctor", "--bogus", cwd=tmp_path)
    assert bad.returncode == 2 and "No such option: --bogus" in bad.stderr
    assert "internal error" not in bad.stderr
    version = run_cli("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("shipyard ")


def test_init_keep_adopts_an_existing_project(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("pipeline: {stages: {}}\n# mine\n")
    result = run_cli("init", "--keep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "kept shipyard.yaml" in result.stdout
    assert "# mine" in (tmp_path / "shipyard.yaml").read_text()
    assert (tmp_path / ".shipyard" / "shipyard.db").exists()
    both = run_cli("init", "--keep", "--force", cwd=tmp_path)
    assert both.returncode == 2 and "contradict" in both.stderr


def test_init_adopts_a_dvc_project_and_state_is_always_git_ignored(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    result = run_cli("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "adopted dvc.yaml" in result.stdout
    assert not (tmp_path / "shipyard.yaml").exists() and not (tmp_path / "params.yaml").exists()
    assert "/.shipyard/" in (tmp_path / ".gitignore").read_text()
    assert (tmp_path / ".shipyard" / ".gitignore").read_text().endswith("*\n")
    status = run_cli("status", cwd=tmp_path)  # dvc.yaml is the pipeline, not hidden
    assert "s: never-run" in status.stdout, status.stdout + status.stderr
    bare = tmp_path / "bare"  # no init: the first command that creates .shipyard/ ignores it
    bare.mkdir()
    (bare / "dvc.yaml").write_text((tmp_path / "dvc.yaml").read_text())
    assert run_cli("status", cwd=bare).returncode == 0
    assert (bare / ".shipyard" / ".gitignore").read_text().endswith("*\n")
    assert not (bare / ".gitignore").exists()  # the user's files are left alone
