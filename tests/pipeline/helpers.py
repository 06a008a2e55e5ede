"""Small pipelines written into a scratch project for the pipeline tests."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

PY = shlex.quote(sys.executable)


def py(code: str) -> str:
    """A stage command running ``code`` with this interpreter."""
    return f"{PY} -c {shlex.quote(code)}"


def write_config(root: Path, stages: dict[str, Any], **pipeline: Any) -> None:
    (root / "shipyard.yaml").write_text(yaml.safe_dump({"pipeline": {"stages": stages, **pipeline}}, sort_keys=False))


def write_params(root: Path, params: dict[str, Any]) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


COPY_UPPER = "import sys; open(sys.argv[2], 'w').write(open(sys.argv[1]).read().upper())"


def two_stage(root: Path) -> None:
    """raw.txt -> prepare (params prepare.n) -> prepared.txt -> train (params train.k) -> model.txt, metrics.json."""
    (root / "raw.txt").write_text("hello\n")
    write_params(root, {"prepare": {"n": 3}, "train": {"k": 1, "unused": 0}})
    prepare = ("import yaml; n = yaml.safe_load(open('params.yaml'))['prepare']['n']; "
               "open('prepared.txt', 'w').write(open('raw.txt').read() * n); print('prepared', n)")
    train = ("import yaml, json; k = yaml.safe_load(open('params.yaml'))['train']['k']; "
             "open('model.txt', 'w').write(str(k) + open('prepared.txt').read()); "
             "json.dump({'k': k}, open('metrics.json', 'w'))")
    write_config(root, {
        "prepare": {"cmd": py(prepare), "deps": ["raw.txt"], "params": ["prepare.n"], "outs": ["prepared.txt"]},
        "train": {"cmd": py(train), "deps": ["prepared.txt"], "params": ["train.k"], "outs": ["model.txt"],
                  "metrics": [{"metrics.json": {"cache": False}}]},
    })
