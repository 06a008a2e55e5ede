"""Search spaces as written on the command line, and the checks made before any trial runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import UsageError
from shipyard.sweep.paramsfile import set_values
from shipyard.sweep.space import check_against_stage, grid, parse_dimension, parse_space


def test_every_distribution_form_parses() -> None:
    assert parse_dimension("train.lr=loguniform(1e-4,1e-1)").kind == "loguniform"
    depth = parse_dimension("train.depth=int(2, 8)")
    assert (depth.kind, depth.low, depth.high) == ("int", 2, 8)
    assert parse_dimension("train.kernel=choice(rbf,linear)").choices == ("rbf", "linear")
    assert parse_dimension("train.depth=[2,4,8]").choices == (2, 4, 8)
    assert grid(parse_space(["a.b=[1,2]", "a.c=choice(x,y)"])) == {"a.b": [1, 2], "a.c": ["x", "y"]}
    assert grid(parse_space(["a.b=[1,2]", "a.c=uniform(0,1)"])) is None


@pytest.mark.parametrize(("spec", "message"), [
    ("train.lr=uniform(0.5,0.1)", "low 0.5 must be below high 0.1"),
    ("train.lr=uniform(1,1)", "low 1 must be below high 1"),
    ("train.lr=loguniform(0,1)", "needs a positive low bound"),
    ("train.lr=normal(0,1)", "unknown distribution 'normal(0,1)'"),
    ("train.lr=uniform(0)", "takes two bounds"),
    ("train.lr=uniform(a,1)", "'a' is not a finite number"),
    ("train.depth=int(1.5,4)", "bounds must be whole numbers"),
    ("train.depth=[3]", "at least two values"),
    ("train.lr", "expected PARAM=DISTRIBUTION"),
])
def test_a_bad_distribution_names_the_param_and_the_problem(spec: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_dimension(spec)
    assert f"-p {spec}" in caught.value.message and message in caught.value.message


def test_a_param_the_stage_does_not_read_is_refused_before_any_trial() -> None:
    params = {"train": {"lr": 0.1}, "prepare": {"n": 3}}
    dims = parse_space(["prepare.n=int(1,5)"])
    with pytest.raises(UsageError, match="stage 'train' does not read this param"):
        check_against_stage(dims, "train", [("params.yaml", "train")], params)
    with pytest.raises(UsageError, match=r"params\.yaml has no such param"):
        check_against_stage(parse_space(["train.momentum=uniform(0,1)"]), "train", [("params.yaml", "train")], params)
    check_against_stage(parse_space(["train.lr=uniform(0,1)"]), "train", [("params.yaml", "train")], params)
    with pytest.raises(UsageError, match="swept twice"):
        parse_space(["train.lr=uniform(0,1)", "train.lr=[1,2]"])


def test_applying_the_best_params_keeps_the_comments_of_params_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("# tuned by hand\ntrain:\n  lr: 0.1  # learning rate\n  depth: 3\nprepare:\n  n: 1\n")
    assert set_values(path, {"train.lr": 0.003, "prepare.n": 7})
    assert path.read_text() == "# tuned by hand\ntrain:\n  lr: 0.003  # learning rate\n  depth: 3\nprepare:\n  n: 7\n"
    path.write_text("train: {lr: 0.1}\n")  # flow style: rewritten, and set_values says so
    assert not set_values(path, {"train.lr": 0.5})
    assert "lr: 0.5" in path.read_text()
