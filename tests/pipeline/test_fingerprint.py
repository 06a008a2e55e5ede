"""The fingerprint: what changes it and what does not."""

from __future__ import annotations

from shipyard.pipeline.dag import Out, ParamDep, StageSpec
from shipyard.pipeline.fingerprint import diff, normalize_cmd, stage_inputs

ENV = {"python": "3.11.7"}


def fp(stage: StageSpec, deps: dict, params: dict | None = None, env: dict | None = None) -> str:
    return stage_inputs(stage, deps, params or {}, env or ENV).fingerprint


def test_removing_a_dep_changes_the_fingerprint():
    both = StageSpec("s", ("python train.py",), deps=("a.csv", "train.py"))
    one = StageSpec("s", ("python train.py",), deps=("a.csv",))
    ids = {"a.csv": "xxh128:" + "a" * 32, "train.py": "xxh128:" + "b" * 32}
    assert fp(both, ids) != fp(one, ids)
    changes = diff(stage_inputs(both, ids, {}, ENV).document(), stage_inputs(one, ids, {}, ENV).document())
    assert [(c.kind, c.name, c.new) for c in changes] == [("dep", "train.py", None)]


def test_dep_order_and_command_whitespace_do_not_matter_quoting_does():
    a = StageSpec("s", ("python  train.py   --lr 1",), deps=("x", "y"))
    b = StageSpec("s", ("python train.py --lr 1",), deps=("y", "x"))
    ids = {"x": "1", "y": "2"}
    assert fp(a, ids) == fp(b, ids)
    assert normalize_cmd(["echo 'a  b'"]) != normalize_cmd(["echo 'a b'"])
    assert normalize_cmd(["a\nb"]) != normalize_cmd(["a b"])


def test_params_values_env_outs_and_content_change_it():
    stage = StageSpec("s", ("run",), deps=("x",), params=(ParamDep("params.yaml", "train.lr"),), outs=(Out("m"),))
    base = fp(stage, {"x": "1"}, {"params.yaml": {"train": {"lr": 0.1, "other": 1}}})
    assert fp(stage, {"x": "1"}, {"params.yaml": {"train": {"lr": 0.1, "other": 2}}}) == base  # untracked key
    assert fp(stage, {"x": "1"}, {"params.yaml": {"train": {"lr": 0.2}}}) != base
    assert fp(stage, {"x": "2"}, {"params.yaml": {"train": {"lr": 0.1}}}) != base
    assert fp(stage, {"x": "1"}, {"params.yaml": {"train": {"lr": 0.1}}}, {"python": "3.12.0"}) != base
    other_outs = StageSpec("s", ("run",), deps=("x",), params=stage.params, outs=(Out("m2"),))
    assert fp(other_outs, {"x": "1"}, {"params.yaml": {"train": {"lr": 0.1}}}) != base


def test_diff_names_old_and_new_param_values():
    stage = StageSpec("s", ("run",), params=(ParamDep("params.yaml", "k"),))
    old = stage_inputs(stage, {}, {"params.yaml": {"k": 3}}, ENV).document()
    new = stage_inputs(stage, {}, {"params.yaml": {"k": 4}}, ENV).document()
    (change,) = diff(old, new)
    assert change.describe() == "params params.yaml:k: 3 -> 4"
