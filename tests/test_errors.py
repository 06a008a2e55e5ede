from shipyard.errors import (
    EXIT_CHECK_FAILED,
    EXIT_INTERNAL,
    EXIT_USAGE,
    CheckFailed,
    ConfigError,
    MissingExtra,
    ObjectCorrupt,
    did_you_mean,
    require_extra,
)


def test_exit_codes_follow_the_contract() -> None:
    assert ConfigError("x").exit_code == EXIT_USAGE
    assert CheckFailed("x").exit_code == EXIT_CHECK_FAILED
    assert ObjectCorrupt("x").exit_code == EXIT_INTERNAL


def test_message_carries_the_hint() -> None:
    assert str(ConfigError("bad", hint="fix it")) == "bad\n  hint: fix it"


def test_did_you_mean_suggests_close_names() -> None:
    assert did_you_mean("trian", ["train", "prepare"]) == "did you mean 'train'?"
    assert did_you_mean("zzz", ["a", "b"]) == "known: a, b"


def test_missing_extra_names_the_pip_command() -> None:
    try:
        require_extra("surely_not_installed_module_xyz", "serve")
    except MissingExtra as exc:
        assert exc.hint == 'pip install "shipyard[serve]"'
    else:
        raise AssertionError("expected MissingExtra")
