"""The opcode scan and the restricted unpickler refuse code-running pickles."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess

import pytest

from shipyard.errors import UnsafeModel
from shipyard.models.pickle_scan import check, restricted_loads, scan


class _Reduce:
    def __init__(self, fn, args):  # type: ignore[no-untyped-def]
        self.fn, self.args = fn, args

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.fn, self.args)


@pytest.mark.parametrize(("fn", "args", "named"), [
    (os.system, ("true",), "system"),
    (subprocess.call, (["true"],), "call"),
    (builtins.eval, ("1+1",), "eval"),
    (builtins.exec, ("x=1",), "exec"),
    (builtins.getattr, ("abc", "upper"), "getattr"),
])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_denied_globals_are_refused(fn, args, named, protocol) -> None:  # type: ignore[no-untyped-def]
    data = pickle.dumps(_Reduce(fn, args), protocol=protocol)
    with pytest.raises(UnsafeModel, match=rf"model\.pkl: pickle imports \S*{named} at byte \d+"):
        check(data, "model.pkl")
    with pytest.raises(UnsafeModel):
        restricted_loads(data)


def test_plain_data_passes() -> None:
    import numpy as np

    data = pickle.dumps({"w": np.arange(3), "name": "ok"})
    result = check(data, "x")
    assert result.complete
    assert restricted_loads(data)["name"] == "ok"


def test_module_alias_is_refused_at_load() -> None:
    # GLOBAL 'shipyard.models.pickle_scan io' (a module object) is off the allow-list: refused by find_class.
    data = b"cshipyard.models.pickle_scan\nio\n."
    assert scan(data).globals[0][:2] == ("shipyard.models.pickle_scan", "io")
    with pytest.raises(UnsafeModel, match=r"pickle_scan\.io .*not on the allow-list"):
        restricted_loads(data)
