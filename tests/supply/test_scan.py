"""The scanner over a corpus built here: every malicious file found, no benign file flagged; the CLI's exit codes."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shipyard.cli.main import cli
from shipyard.errors import ShipyardError
from shipyard.supply.pickles import scan_pickle
from shipyard.supply.scan import scan_path
from tests.supply.corpus import GADGETS, Reduce, build_corpus

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bool]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, build_corpus(root)


@pytest.mark.slow
def test_every_malicious_file_is_found_and_no_benign_one_flagged(corpus: tuple[Path, dict[str, bool]]) -> None:
    root, files = corpus
    missed, false_alarms = [], []
    for name, malicious in sorted(files.items()):
        report = scan_path(root / name)
        if malicious and report.clean:
            missed.append(name)
        if not malicious and not report.clean:
            false_alarms.append(f"{name}: {[str(f) for f in report.findings]}")
    assert sum(files.values()) >= 23 and len(files) - sum(files.values()) >= 15
    assert not missed, f"malicious files passed: {missed}"
    assert not false_alarms, "benign files flagged:\n" + "\n".join(false_alarms)


@pytest.mark.slow
def test_findings_name_the_gadget_and_why(corpus: tuple[Path, dict[str, bool]]) -> None:
    root, _ = corpus
    for name, (fn, _) in GADGETS.items():
        text = " ".join(str(f) for f in scan_path(root / name).findings)
        assert fn.__name__ in text and "not on the allow-list" in text, text
    nested = scan_path(root / "nested_compressed.joblib").findings
    assert [f.kind for f in nested] == ["global"] and "nested pickle, level 1" in nested[0].file
    assert "system" in nested[0].detail
    assert {f.kind for f in scan_path(root / "zip_slip.zip").findings} == {"zip-slip"}
    assert {f.kind for f in scan_path(root / "reduce_chain.pkl").findings} >= {"global", "reduce-chain"}
    assert [f.kind for f in scan_path(root / "torch_like.pt").findings] == ["global"]
    assert scan_path(root / "external_escape.onnx").findings[0].kind == "onnx-external-data"
    assert scan_path(root / "lying_header.safetensors").findings[0].kind == "safetensors-header"
    assert scan_path(root / "untrusted_function.skops").findings[0].detail == "holds type posix.system"


def invoke(*args: str) -> tuple[int, str, str]:
    """Run the CLI in process: (exit code as ``shipyard`` would exit, stdout, error message)."""
    result = CliRunner().invoke(cli, list(args))
    exc = result.exception
    if isinstance(exc, ShipyardError):
        return exc.exit_code, result.stdout, exc.message
    assert exc is None or isinstance(exc, SystemExit), result.output
    return result.exit_code, result.stdout, ""


@pytest.mark.slow
def test_cli_exit_codes_and_json(corpus: tuple[Path, dict[str, bool]]) -> None:
    root, _ = corpus
    code, out, error = invoke("scan", str(root / "gadget_pydoc.pkl"), "--json")
    assert code == 1, out
    body = json.loads(out)
    assert body["clean"] is False and body["findings"][0]["detail"] == "imports pydoc.pipepager"
    assert "1 findings" in error
    code, out, _ = invoke("scan", str(root / "mlflow_pyfunc"), "--json")
    assert code == 0, out
    assert json.loads(out)["files"]["model.pkl"] == "pickle"
    code, _, error = invoke("scan", str(root / "no-such-file.pkl"))
    assert code == 2 and "no such file or folder" in error


class Custom:
    """A user's own class in a pickle: off the allow-list until the project names it."""


def test_own_classes_need_the_project_allow_list() -> None:
    data = pickle.dumps(Custom())
    assert [f.kind for f in scan_pickle(data, "x.pkl").findings] == ["global"]
    assert not scan_pickle(data, "x.pkl", extra=["tests.supply.test_scan.Custom"]).findings
    assert not scan_pickle(data, "x.pkl", extra=["tests.supply.test_scan.*"]).findings


def test_allowed_names_do_not_launder_a_call_chain() -> None:
    # collections.OrderedDict is allowed, but calling what a call returned is a finding of its own
    chain = b"\x80\x02ccollections\nOrderedDict\n)R)R."
    assert [f.kind for f in scan_pickle(chain, "c.pkl").findings] == ["reduce-chain"]


def test_truncated_and_garbage_pickles_are_findings_not_passes() -> None:
    data = pickle.dumps(Reduce(os.system, ("id",)))
    cut = scan_pickle(data[:10], "cut.pkl")
    assert not cut.complete and cut.findings and cut.findings[0].kind == "unreadable"
    assert scan_pickle(b"\x80\x04\xff\xff", "junk.pkl").findings[0].kind == "unreadable"


def test_joblib_array_claiming_more_bytes_than_the_file_is_a_finding(tmp_path: Path) -> None:
    import joblib
    import numpy as np

    joblib.dump({"w": np.arange(100.0)}, tmp_path / "w.joblib")
    data: Any = (tmp_path / "w.joblib").read_bytes()
    result = scan_pickle(data[:300], "w.joblib")
    assert not result.complete and "past the end" in result.findings[0].reason


def test_the_project_allow_list_reaches_the_pickle_flavor(project: Any) -> None:
    from shipyard.errors import UnsafeModel
    from shipyard.models import load_model
    from shipyard.registry.project import register_from_project

    root = project.project.root
    (root / "model").mkdir()
    (root / "model" / "model.pkl").write_bytes(pickle.dumps(Custom()))
    with pytest.raises(UnsafeModel, match=r"tests\.supply\.test_scan\.Custom .*not on the allow-list"):
        register_from_project(project.store, project.objects, root, "own", "model", flavor="pickle", trust=True,
                              find_run=False)
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n"
                                        "supply: {allow_globals: [tests.supply.test_scan.Custom], sbom: false}\n")
    version = register_from_project(project.store, project.objects, root, "own", "model", flavor="pickle",
                                    trust=True, find_run=False).version
    assert version.lineage["supply"]["scan"]["clean"]
    assert isinstance(load_model(project.objects, version.model_oid, "pickle", trust=True).native, Custom)


def test_supply_section_reads_a_bare_off_and_names_bad_globals(tmp_path: Path) -> None:
    from shipyard.config import load_config
    from shipyard.errors import ConfigError

    (tmp_path / "shipyard.yaml").write_text("supply:\n  scan: off\n")
    assert load_config(tmp_path / "shipyard.yaml").supply.scan == "off"
    (tmp_path / "shipyard.yaml").write_text("supply:\n  allow_globals: ['os system']\n")
    with pytest.raises(ConfigError, match=r"shipyard.yaml:2:\d+: supply.allow_globals.*module.Name or module.\*"):
        load_config(tmp_path / "shipyard.yaml")
