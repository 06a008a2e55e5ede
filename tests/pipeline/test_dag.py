"""The graph: templating, foreach/matrix, and every bad graph refused before anything runs."""

from __future__ import annotations

import pytest

from shipyard.errors import ConfigError, NotFound, PathEscapeError
from shipyard.pipeline.loader import load_pipeline
from tests.pipeline.helpers import write_config, write_params


def load(root):  # type: ignore[no-untyped-def]
    return load_pipeline(root, root / ".shipyard", use_cache=False)


def test_edges_order_and_slices(tmp_path):
    write_config(tmp_path, {
        "train": {"cmd": "t", "deps": ["data/prepared/train.csv"], "outs": ["model"]},
        "prepare": {"cmd": "p", "deps": ["raw.csv"], "outs": ["data/prepared"]},
        "report": {"cmd": "r", "deps": ["model", "data/prepared"], "outs": ["report.md"]},
        "lint": {"cmd": "l"},
    })
    dag = load(tmp_path).dag
    assert dag.order.index("prepare") < dag.order.index("train") < dag.order.index("report")
    assert set(dag.upstream["report"]) == {"train", "prepare"}
    assert set(dag.select(["train"]).stages) == {"train", "prepare"}
    assert set(dag.select(["train"], downstream=True).stages) == {"train", "report"}


def test_cycle_is_printed(tmp_path):
    write_config(tmp_path, {
        "a": {"cmd": "a", "deps": ["c.txt"], "outs": ["a.txt"]},
        "b": {"cmd": "b", "deps": ["a.txt"], "outs": ["b.txt"]},
        "c": {"cmd": "c", "deps": ["b.txt"], "outs": ["c.txt"]},
    })
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert "cycle" in str(err.value)
    for name in ("a", "b", "c"):
        assert name in err.value.message.split("cycle:")[1]


def test_two_stages_writing_one_path_names_both(tmp_path):
    write_config(tmp_path, {"one": {"cmd": "x", "outs": ["model.pkl"]}, "two": {"cmd": "y", "outs": ["model.pkl"]}})
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert "'one'" in err.value.message and "'two'" in err.value.message and "model.pkl" in err.value.message
    assert "shipyard.yaml:" in err.value.message


def test_out_inside_another_stages_out(tmp_path):
    write_config(tmp_path, {"one": {"cmd": "x", "outs": ["data"]}, "two": {"cmd": "y", "outs": ["data/x.csv"]}})
    with pytest.raises(ConfigError, match="overlapping"):
        load(tmp_path)


@pytest.mark.parametrize("bad", ["../outside.txt", "/etc/passwd", "data/../../x"])
def test_out_outside_the_project(tmp_path, bad):
    write_config(tmp_path, {"one": {"cmd": "x", "outs": [bad]}})
    with pytest.raises(PathEscapeError) as err:
        load(tmp_path)
    assert bad in err.value.message


def test_unknown_params_key_suggests_the_closest(tmp_path):
    write_params(tmp_path, {"train": {"lr": 0.1, "epochs": 3}})
    write_config(tmp_path, {"train": {"cmd": "x", "params": ["train.lr", "train.epoch"]}})
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    message = err.value.message
    assert "train.epoch" in message and "train.epochs" in message and "shipyard.yaml:" in message


def test_missing_params_file(tmp_path):
    write_config(tmp_path, {"train": {"cmd": "x", "params": [{"other.yaml": ["a"]}]}})
    with pytest.raises(ConfigError, match=r"other\.yaml does not exist"):
        load(tmp_path)


def test_foreach_and_matrix_expand_with_templates(tmp_path):
    write_params(tmp_path, {"sizes": ["small", "large"], "epochs": 5})
    write_config(tmp_path, {
        "train": {"foreach": "${sizes}", "do": {"cmd": "train --size ${item} --epochs ${epochs}",
                                                "outs": ["models/${item}.pkl"]}},
        "grid": {"matrix": {"model": ["rf", "lr"], "seed": [1, 2]}, "cmd": "fit ${item.model} ${item.seed}",
                 "outs": ["grid/${item.model}-${item.seed}.json"]},
        "by_key": {"foreach": {"us": {"rows": 10}, "eu": {"rows": 20}},
                   "do": {"cmd": "split ${key} ${item.rows}", "outs": ["split/${key}.csv"]}},
    })
    dag = load(tmp_path).dag
    assert dag.stages["train@small"].cmd == ("train --size small --epochs 5",)
    assert dag.stages["train@large"].out_paths == ("models/large.pkl",)
    assert {n for n in dag.stages if n.startswith("grid@")} == {"grid@rf-1", "grid@rf-2", "grid@lr-1", "grid@lr-2"}
    assert dag.stages["grid@lr-2"].cmd == ("fit lr 2",)
    assert dag.stages["by_key@eu"].cmd == ("split eu 20",)


def test_undefined_template_variable(tmp_path):
    write_params(tmp_path, {"epochs": 5})
    write_config(tmp_path, {"train": {"cmd": "train ${epoch}"}})
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert "${epoch}" in err.value.message and "epochs" in str(err.value)


def test_unknown_stage_suggests_closest(tmp_path):
    write_config(tmp_path, {"prepare": {"cmd": "p"}, "train": {"cmd": "t"}})
    with pytest.raises(NotFound) as err:
        load(tmp_path).dag.select(["trian"])
    assert "'train'" in err.value.message


def test_stage_without_cmd_names_the_line(tmp_path):
    (tmp_path / "shipyard.yaml").write_text("pipeline:\n  stages:\n    train:\n      deps: [a]\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert "cmd" in err.value.message and "shipyard.yaml:" in err.value.message


def test_parse_cache_is_used_and_invalidated(tmp_path):
    import os
    import time

    write_params(tmp_path, {"train": {"lr": 0.1}})
    write_config(tmp_path, {"train": {"cmd": "x ${train.lr}", "params": ["train.lr"]}})
    old = time.time() - 10
    for name in ("shipyard.yaml", "params.yaml"):
        os.utime(tmp_path / name, (old, old))
    first = load_pipeline(tmp_path, tmp_path / ".shipyard")
    assert (tmp_path / ".shipyard" / "pipeline" / "parsed.bin").exists()
    assert load_pipeline(tmp_path, tmp_path / ".shipyard").dag.stages["train"].cmd == first.dag.stages["train"].cmd
    write_params(tmp_path, {"train": {"lr": 0.25}})
    assert load_pipeline(tmp_path, tmp_path / ".shipyard").dag.stages["train"].cmd == ("x 0.25",)
