"""Signed versions: signed at registration, verified wherever loaded; a flipped byte and a swapped
signature are refused by the gateway; the scan and signed gate kinds; the registration scan policy."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard import registry
from shipyard.errors import ObjectCorrupt, UnsafeModel
from shipyard.hashing import FileEntry, Manifest
from shipyard.models import load_model, save_model
from shipyard.registry.project import register_from_project
from shipyard.supply.signing import SIG_FILE

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.anyio]
ROW = {"a": 0.2, "b": 0.9}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _key(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _project(root: Path, supply: str, gates: str = "") -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.random(60), "b": rng.random(60)})
    frame["y"] = np.where(frame["a"] > 0.5, "yes", "no")
    (root / "data").mkdir(exist_ok=True)
    frame.to_csv(root / "data" / "train.csv", index=False)
    (root / "shipyard.yaml").write_text(
        "pipeline:\n  stages: {}\nmodel: {name: m, path: model, flavor: sklearn, train: data/train.csv, target: y}\n"
        f"supply: {supply}\n" + gates)


def _train(root: Path, c: float, folder: str = "model") -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    frame = pd.read_csv(root / "data" / "train.csv")
    save_model(LogisticRegression(C=c).fit(frame[["a", "b"]], frame["y"]), root / folder, "sklearn")


def _register(ws: Any, **kwargs: Any) -> Any:
    from shipyard.config import load_config

    cfg = load_config(ws.project.config_path).model
    return register_from_project(ws.store, ws.objects, ws.project.root, "m", "model", model_cfg=cfg,
                                 find_run=False, new=True, **kwargs).version


def _reassemble(objects: Any, oid: str, *, model_bytes: bytes | None = None, sig_from: str | None = None) -> str:
    """A package rebuilt around changed parts (hashes consistent), as someone with write access could."""
    entries = {e.path: e for e in objects.manifest(oid).entries}
    meta = next(p for p in entries if p.endswith(".json"))
    model = next(p for p in entries if p not in (meta, SIG_FILE))
    if model_bytes is not None:
        entries[model] = FileEntry(model, objects.put_bytes(model_bytes), len(model_bytes))
    if sig_from is not None:
        entries[SIG_FILE] = next(e for e in objects.manifest(sig_from).entries if e.path == SIG_FILE)
    return objects.put_manifest(Manifest(tuple(sorted(entries.values(), key=lambda e: e.path))))


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One signed project for the module (two versions); tests that change it put it back."""
    from shipyard.project import Project
    from shipyard.workspace import Workspace

    root = tmp_path_factory.mktemp("signed")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("SHIPYARD_STORE", raising=False)
        patch.delenv("SHIPYARD_OBJECTS", raising=False)
        _key(root / "sign.pem")
        _project(root, "{signing_key: sign.pem}", "gates:\n  - {signed: true}\n  - {scan: clean}\n")
        ws = Workspace(Project(root))
        _train(root, 1.0)
        first = _register(ws)
        _train(root, 0.01)
        second = _register(ws)
        yield {"ws": ws, "first": first, "second": second}
        ws.close()


def _gateway(ws: Any, tmp: Path) -> Any:
    from shipyard.serving.app import Gateway, create_app
    from shipyard.serving.follower import Follower, StaticSource
    from shipyard.serving.loaders import RegistryLoader
    from shipyard.serving.requestlog import RequestLog
    from shipyard.serving.routing import single_table

    source = StaticSource({"m": single_table("m", 1)})
    gateway = Gateway(Follower(source, RegistryLoader(ws.store, ws.objects), poll_interval=3600),
                      RequestLog(tmp / "requests", tmp / "feedback", flush_interval=3600))
    gateway.startup()
    return gateway, source, create_app(gateway)


@pytest.mark.slow
async def test_gateway_serves_signed_and_refuses_flipped_byte_and_swapped_signature(signed: dict[str, Any],
                                                                                    tmp_path: Path) -> None:
    ws, first, second = signed["ws"], signed["first"], signed["second"]
    facts = first.lineage["supply"]
    assert facts["signature"]["file"] == SIG_FILE and facts["scan"]["clean"] and facts["sbom"]["components"] > 10
    model_file = next(e for e in ws.objects.manifest(first.model_oid).entries if e.path.endswith(".skops"))
    data = bytearray(ws.objects.get_bytes(model_file.oid))
    data[len(data) // 2] ^= 0x01
    flipped = _reassemble(ws.objects, first.model_oid, model_bytes=bytes(data))
    swapped = _reassemble(ws.objects, first.model_oid, sig_from=second.model_oid)
    with ws.store.write() as session:
        v_flipped = registry.register(session, "m", model_oid=flipped, flavor="sklearn").version
        v_swapped = registry.register(session, "m", model_oid=swapped, flavor="sklearn").version
    gateway, source, app = _gateway(ws, tmp_path)
    from shipyard.serving.routing import single_table

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            ok = await client.post("/invocations", json={"dataframe_records": [ROW]})
            assert ok.status_code == 200 and ok.headers["x-shipyard-version"] == "1", ok.text
            for version in (v_flipped, v_swapped):
                source.set({"m": single_table("m", version)})
                gateway.follower.refresh()
                refused = await client.post("/invocations", json={"dataframe_records": [ROW]})
                assert refused.status_code >= 500, refused.text
                assert "signature does not verify" in refused.json()["error"], refused.text
                assert refused.headers.get("x-shipyard-version") != str(version)
    finally:
        gateway.shutdown()
    for oid in (flipped, swapped):
        with pytest.raises(UnsafeModel, match="signature does not verify"):
            load_model(ws.objects, oid, "sklearn")


def test_signed_and_scan_gates(signed: dict[str, Any]) -> None:
    from shipyard.config import load_config
    from shipyard.gates.runner import run_gate

    ws = signed["ws"]
    config = load_config(ws.project.config_path)
    verdict = run_gate(ws.store, ws.objects, "m@1", config, ws.project.root, record=False).verdict
    assert verdict.passed, verdict.to_dict()
    assert {c.kind for c in verdict.checks} == {"signed", "scan"}
    # a second key only: the old signature no longer verifies (rotation done wrong) -> refused
    root = ws.project.root
    _key(root / "new.pem")
    original = (root / "shipyard.yaml").read_text()
    (root / "shipyard.yaml").write_text(original.replace("sign.pem", "new.pem"))
    try:
        with pytest.raises(UnsafeModel, match="does not verify"):
            run_gate(ws.store, ws.objects, "m@1", load_config(ws.project.config_path), root, record=False)
    finally:
        (root / "shipyard.yaml").write_text(original)


def test_rotation_keeps_old_versions_loading(signed: dict[str, Any]) -> None:
    from shipyard.supply.signing import Keys, public_key, verify_package

    ws, root = signed["ws"], signed["ws"].project.root
    old_public = public_key((root / "sign.pem").read_bytes())
    new_public = public_key(_key(root / "new.pem").read_bytes())
    assert verify_package(ws.objects, signed["first"].model_oid, Keys((new_public, old_public)))["verified"]
    with pytest.raises(UnsafeModel):
        verify_package(ws.objects, signed["first"].model_oid, Keys((new_public,)))


def test_a_corrupted_stored_object_is_refused_before_verification(signed: dict[str, Any]) -> None:
    ws, second = signed["ws"], signed["second"]   # last user of the module's project
    sig = next(e for e in ws.objects.manifest(second.model_oid).entries if e.path == SIG_FILE)
    path = next(p for p in ws.project.objects_dir.rglob("*") if p.is_file() and sig.oid.split(":")[-1][2:] in p.name)
    blob = bytearray(path.read_bytes())
    blob[-2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(blob))
    with pytest.raises(ObjectCorrupt):
        load_model(ws.objects, second.model_oid, "sklearn")


def test_unsigned_versions_and_the_scan_policy(project: Any) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from shipyard.config import load_config
    from shipyard.gates.runner import run_gate

    root = project.project.root
    _project(root, "{scan: refuse, sbom: false}", "gates:\n  - {signed: true}\n  - {scan: clean}\n")
    (root / "model").mkdir()
    sio.dump(FunctionTransformer(func=math.sqrt), root / "model" / "model.skops")   # math.sqrt: off the trusted list
    with pytest.raises(UnsafeModel, match=r"scan found 1 problems.*math\.sqrt"):
        register_from_project(project.store, project.objects, root, "m", "model", flavor="sklearn", trust=True,
                              find_run=False)
    (root / "shipyard.yaml").write_text((root / "shipyard.yaml").read_text().replace("refuse", "record"))
    version = register_from_project(project.store, project.objects, root, "m", "model", flavor="sklearn", trust=True,
                                    find_run=False).version
    assert version.lineage["supply"]["scan"]["clean"] is False and "sbom" not in version.lineage["supply"]
    verdict = run_gate(project.store, project.objects, "m@1", load_config(project.project.config_path), root,
                       trust=True, record=False).verdict
    assert not verdict.passed
    reasons = {c.kind: (c.passed, c.reason) for c in verdict.checks}
    assert reasons["signed"][0] is False and "not signed" in reasons["signed"][1]
    assert reasons["scan"][0] is False and "math.sqrt" in reasons["scan"][1]
