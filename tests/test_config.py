from pathlib import Path

import pytest

from shipyard.config import load_config, load_params, lookup_param
from shipyard.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shipyard.yaml"
    path.write_text(text)
    return path


def test_valid_config_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "pipeline:\n  stages:\n    train:\n      cmd: python train.py\n      deps: [train.py]\n"))
    assert cfg.pipeline.stages["train"].deps == ["train.py"]


def test_wrong_type_names_file_line_column_and_key(tmp_path: Path) -> None:
    text = "pipeline:\n  stages:\n    train:\n      cmd: python train.py\n      deps: 5\n"
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert "shipyard.yaml:5:13: pipeline.stages.train.deps: expected a list, got a number" in err.value.message


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "pipeline:\n  stages:\n    train:\n      cmd: x\n      dpes: [a]\n"))
    assert "shipyard.yaml:5:7: pipeline.stages.train.dpes: unknown key (did you mean" in err.value.message
    assert "'deps'" in err.value.message


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "pipeline:\n  stages: [a\n  b: c\n"))
    assert err.value.message.startswith("shipyard.yaml:3:")
    assert "malformed YAML" in err.value.message


def test_env_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_URL", "http://127.0.0.1:9/hook")
    cfg = load_config(write(tmp_path, 'notify:\n  - webhook: "${HOOK_URL}"\n  - webhook: "${OTHER:-http://x}"\n'))
    assert [n.webhook for n in cfg.notify] == ["http://127.0.0.1:9/hook", "http://x"]


def test_unset_env_variable_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_UNSET", raising=False)
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, 'notify:\n  - webhook: "${NOPE_UNSET}"\n'))
    assert "shipyard.yaml:2:14: notify.0.webhook: environment variable NOPE_UNSET is not set" in err.value.message


def test_params_templates_are_left_for_the_pipeline(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "pipeline:\n  stages:\n    t:\n      cmd: python t.py --lr ${train.lr}\n"))
    assert cfg.pipeline.stages["t"].cmd == "python t.py --lr ${train.lr}"


def test_params_lookup(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.1\n")
    params = load_params(tmp_path / "params.yaml")
    assert lookup_param(params, "train.lr") == 0.1
    with pytest.raises(KeyError):
        lookup_param(params, "train.depth")
