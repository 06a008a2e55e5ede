"""Which stage's run makes `shipyard run` register the model: the one whose outs hold model.path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shipyard.cli.pipeline import _producing_stages
from shipyard.pipeline.runner import Context


def context(root: Path) -> Context:
    stages = {
        "prepare": {"cmd": "true", "outs": ["data/prepared/"]},
        "train": {"cmd": "true", "deps": ["data/prepared/"], "outs": ["model/"]},
        "export": {"cmd": "true", "deps": ["model/"], "outs": ["exported/model.onnx"]},
    }
    (root / "shipyard.yaml").write_text(yaml.safe_dump({"pipeline": {"stages": stages}}))
    return Context(root, root / ".shipyard")


@pytest.mark.parametrize(("model_path", "stages"), [
    ("model/", ["train"]),                 # the out itself, written with or without the slash
    ("./model", ["train"]),
    ("model/model.skops", ["train"]),      # a file inside the out folder
    ("exported/", ["export"]),             # a folder holding the out file
    ("exported/model.onnx", ["export"]),
    ("elsewhere/", []),                    # no stage writes it: nothing is registered by `run`
    ("data/prepared-model/", []),          # a shared prefix is not containment
])
def test_the_stage_that_writes_model_path(tmp_path: Path, model_path: str, stages: list[str]) -> None:
    assert _producing_stages(context(tmp_path), model_path) == stages
