"""A small git project with a main branch and a feature branch that changes a param, data and metrics."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

CONFIG = """\
pipeline:
  stages:
    train:
      cmd: python train.py
      deps: [train.py, data/raw.csv]
      params: [train]
      metrics: [metrics.json]
"""


def git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args], cwd=root,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def make_project(root: Path) -> Path:
    """main: 3 data rows, n_estimators 100, accuracy 0.95; branch 'more-trees': 4 rows, 300, 0.93."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "shipyard.yaml").write_text(CONFIG)
    (root / "train.py").write_text("print('train')\n")
    (root / ".gitignore").write_text("/.shipyard/\n/shipyard-report/\n")
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "raw.csv").write_text("a,b\n1,x\n2,y\n3,z\n")
    (root / "params.yaml").write_text("train:\n  n_estimators: 100\n  max_depth: 6\n")
    (root / "metrics.json").write_text(json.dumps({"accuracy": 0.95, "log_loss": 0.20}))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "main")
    git(root, "checkout", "-q", "-b", "more-trees")
    (root / "params.yaml").write_text("train:\n  n_estimators: 300\n  max_depth: 6\n")
    (root / "data" / "raw.csv").write_text("a,b,c\n1,x,1\n2,y,1\n3,z,1\n4,w,0\n")
    (root / "metrics.json").write_text(json.dumps({"accuracy": 0.93, "log_loss": 0.18}))
    git(root, "commit", "-qam", "more trees")
    return root
