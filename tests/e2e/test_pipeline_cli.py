"""The pipeline through the real binary: run, status, dag, explain, import dvc, bad input, import cost."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.pipeline.helpers import py, two_stage, write_config, write_params


@pytest.mark.slow
def test_run_status_dag_explain(tmp_path):
    two_stage(tmp_path)
    first = run_cli("run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "[prepare] prepared 3" in first.stdout  # live output, prefixed with the stage name
    assert "Running stage 'train'" in first.stdout
    second = run_cli("run", cwd=tmp_path)
    assert "Everything is up to date (2 stages); nothing ran." in second.stdout
    write_params(tmp_path, {"prepare": {"n": 3}, "train": {"k": 7, "unused": 0}})
    status = run_cli("status", "--json", cwd=tmp_path)
    rows = {r["stage"]: r for r in json.loads(status.stdout)}
    assert rows["prepare"]["state"] == "up-to-date"
    assert rows["train"]["reasons"] == ["params params.yaml:train.k: 1 -> 7"]
    explain = run_cli("explain", "train", cwd=tmp_path)
    assert "params params.yaml:train.k: 1 -> 7" in explain.stdout
    dag = run_cli("dag", "--mermaid", cwd=tmp_path)
    assert "s0 --> s1" in dag.stdout
    assert 'prepare" -> "train"' in run_cli("dag", "--dot", cwd=tmp_path).stdout
    dry = run_cli("run", "--dry-run", cwd=tmp_path)
    assert "would run stage 'train'" in dry.stdout and "prepare" not in dry.stdout.split("would run")[1:][0][:10]
    summary = json.loads(run_cli("run", "--json", cwd=tmp_path).stdout)
    assert summary["ran"] == ["train"]


@pytest.mark.slow
def test_bad_input_exit_codes_and_messages(tmp_path):
    two_stage(tmp_path)
    unknown = run_cli("run", "trian", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown stage 'trian'" in unknown.stderr and "'train'" in unknown.stderr
    assert run_cli("explain", "nope", cwd=tmp_path).returncode == 2
    write_config(tmp_path, {"bad": {"cmd": py("import sys; sys.stderr.write('kaput\\n'); sys.exit(9)"), "outs": ["o"]}})
    failed = run_cli("run", cwd=tmp_path)
    assert failed.returncode == 1
    assert "exited with code 9" in failed.stdout and "kaput" in failed.stdout + failed.stderr
    write_config(tmp_path, {"a": {"cmd": "x", "deps": ["b.txt"], "outs": ["a.txt"]},
                            "b": {"cmd": "y", "deps": ["a.txt"], "outs": ["b.txt"]}})
    cycle = run_cli("status", cwd=tmp_path)
    assert cycle.returncode == 2 and "cycle" in cycle.stderr
    assert run_cli("run", "--downstream", cwd=tmp_path).returncode == 2


@pytest.mark.slow
def test_dvc_project_runs_unchanged_and_imports(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "data.txt").write_text("3\n1\n2\n")
    write_params(tmp_path, {"sort": {"reverse": False}, "parts": ["a", "b"]})
    sort = "import yaml; r = yaml.safe_load(open('params.yaml'))['sort']['reverse']; " \
           "open('sorted.txt', 'w').writelines(sorted(open('data.txt'), reverse=r))"
    split_cmd = py("import sys; open(f'part-{sys.argv[1]}.txt', 'w').write(open('sorted.txt').read())") + " ${item}"
    (tmp_path / "dvc.yaml").write_text(textwrap.dedent(f"""\
        stages:
          sort:
            cmd: {json.dumps(py(sort))}
            deps: [data.txt]
            params: [sort.reverse]
            outs:
              - sorted.txt:
                  cache: true
                  push: false
            meta: {{owner: someone}}
          split:
            foreach: ${{parts}}
            do:
              cmd: {json.dumps(split_cmd)}
              deps: [sorted.txt]
              outs:
                - part-${{item}}.txt
        """))
    result = run_cli("run", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "sorted.txt").read_text() == "1\n2\n3\n"
    assert (tmp_path / "part-b.txt").read_text() == "1\n2\n3\n"
    assert "Everything is up to date (3 stages)" in run_cli("run", cwd=tmp_path).stdout
    imported = run_cli("import", "dvc", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "stages.sort.meta" in imported.stdout and "push" in imported.stdout
    again = run_cli("run", cwd=tmp_path)  # shipyard.yaml now wins; same stages and fingerprints
    assert "Everything is up to date (3 stages)" in again.stdout, again.stdout + again.stderr
    assert run_cli("import", "dvc", cwd=tmp_path).returncode == 2  # refuses to overwrite stages


@pytest.mark.slow
def test_no_op_run_and_status_import_no_heavy_modules(tmp_path):
    two_stage(tmp_path)
    assert run_cli("run", cwd=tmp_path).returncode == 0
    import os
    import time

    old = time.time() - 5
    for name in ("shipyard.yaml", "params.yaml", "shipyard.lock", "raw.txt", "prepared.txt", "model.txt", "metrics.json"):
        os.utime(tmp_path / name, (old, old))
    assert run_cli("status", cwd=tmp_path).returncode == 0  # refreshes the parse and hash caches
    probe = textwrap.dedent("""
        import sys
        from shipyard.cli.main import cli
        for args in (["run"], ["status"], ["run"]):
            try:
                cli.main(args=args, prog_name="shipyard", standalone_mode=False)
            except SystemExit:
                pass
        heavy = [m for m in ("sqlalchemy", "pandas", "sklearn", "torch", "fastapi", "pydantic", "typer", "alembic")
                 if m in sys.modules]
        print("HEAVY", heavy)
        """)
    import subprocess

    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "Everything is up to date" in out.stdout, out.stdout + out.stderr
    assert "HEAVY []" in out.stdout, out.stdout
    # a params change alone re-renders the stages without validating shipyard.yaml again (no pydantic)
    write_params(tmp_path, {"prepare": {"n": 3}, "train": {"k": 2, "unused": 0}})
    out = subprocess.run([sys.executable, "-c", probe.replace('(["run"], ["status"], ["run"])', '(["status"],)')],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "train: changed" in out.stdout and "HEAVY []" in out.stdout, out.stdout + out.stderr
    assert Path(tmp_path / ".shipyard" / "pipeline" / "parsed.bin").exists()
