"""``shipyard server`` also runs the monitor when shipyard.yaml has a ``monitor:`` section."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server.live import free_port


def _serve(root: Path, *args: str, port: int | None = None) -> subprocess.Popen[str]:
    binary = str(Path(sys.executable).with_name("shipyard"))
    return subprocess.Popen([binary, "server", "--port", str(port or free_port()), "--no-auth", *args], cwd=root,
                            env={**os.environ, "CI": "true"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_until_it_answers(proc: subprocess.Popen[str], port: int, timeout: float = 60) -> None:
    """Until GET /health answers 200 (the server decides on its monitor before it listens)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling interval of the condition above, not a wait in place of it
    raise AssertionError(f"the server did not answer on port {port} within {timeout}s")


def _lines_until(proc: subprocess.Popen[str], wanted: str, count: int, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.time() + timeout
    assert proc.stdout is not None
    while time.time() < deadline and sum(wanted in line for line in lines) < count:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    return lines


def test_server_runs_monitor_cycles(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("pipeline: {stages: {}}\nmonitor: {every: 1s}\n")
    proc = _serve(tmp_path)
    try:
        lines = _lines_until(proc, "no closed window yet", 2)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert any("monitor running every 1s" in line for line in lines), lines
    assert sum("no closed window yet" in line for line in lines) >= 2, lines


def test_no_monitor_without_a_monitor_section_or_with_the_flag(tmp_path: Path) -> None:
    """The server prints ``monitor running`` before it starts listening when it runs a monitor (as
    the test above sees); so once it answers, a missing line means no monitor."""
    (tmp_path / "shipyard.yaml").write_text("pipeline: {stages: {}}\nmonitor: {every: 1s}\n")
    for args in ((), ("--no-monitor",)):
        if not args:
            (tmp_path / "shipyard.yaml").write_text("pipeline: {stages: {}}\n")
        port = free_port()
        proc = _serve(tmp_path, *args, port=port)
        try:
            _wait_until_it_answers(proc, port)
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=15)
        assert "shipyard server on" in out, out
        assert not any("monitor" in line for line in out.splitlines() if "MLFLOW" not in line), (args, out)
