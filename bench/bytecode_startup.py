"""Start-up with and without compiled bytecode, on a machine that sets PYTHONDONTWRITEBYTECODE=1.

Such machines (many CI images and Dockerfiles) never write ``.pyc`` files, so whatever `make setup`
did not compile is recompiled by every process. "without" points ``PYTHONPYCACHEPREFIX`` at an empty
folder, so the same venv is read as if nothing were compiled. Each command runs n times per side,
alternating; the table shows medians.

Run: ``.venv/bin/python -m bench.bytecode_startup [N]`` (from the repository root).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"


def _commands() -> dict[str, list[str]]:
    stage = "import shipyard, sklearn.ensemble; shipyard.log_metric('x', 1.0)"
    return {
        "shipyard --help": [str(BIN / "shipyard"), "--help"],
        "shipyard status (penguins)": [str(BIN / "shipyard"), "status"],
        "shipyard gate --help": [str(BIN / "shipyard"), "gate", "--help"],
        "stage start-up (import shipyard and scikit-learn, log_metric)": [str(BIN / "python"), "-c", stage],
    }


def _project(folder: Path) -> Path:
    shutil.copytree(REPO / "examples" / "penguins", folder)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "bench"],
                [str(BIN / "shipyard"), "init", "--keep"]):
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True)
    return folder


def _time(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main(n: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = _project(Path(tmp) / "penguins")
        compiled = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        bare = dict(compiled, PYTHONPYCACHEPREFIX=str(Path(tmp) / "empty-pycache"))
        print("| command | compiled (make setup) | not compiled | ratio |\n|---|---|---|---|")
        for name, cmd in _commands().items():
            runs: dict[str, list[float]] = {"compiled": [], "bare": []}
            for _ in range(n):
                runs["compiled"].append(_time(cmd, project, compiled))
                runs["bare"].append(_time(cmd, project, bare))
            fast, slow = (statistics.median(runs[k]) * 1000 for k in ("compiled", "bare"))
            print(f"| {name} | {fast:.0f} ms | {slow:.0f} ms | {slow / fast:.1f}x |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
