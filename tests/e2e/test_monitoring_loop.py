"""The closed loop end to end on loopback, with real processes only.

The penguin champion is trained by ``shipyard run``, registered, gated and deployed; ``shipyard serve``
answers traffic and writes the request log; ``shipyard monitor --every 1s`` watches it; a webhook
receiver on 127.0.0.1 checks every alert's signature. In-distribution traffic raises nothing. Then
new labelled data arrives (shifted measurements) and live traffic shifts the same way: the monitor
detects drift in two windows, alerts, retrains on the new data, the new version passes the gate
against the champion on the golden evaluation set, is canaried by the gateway and promoted, and no
one types a command. In the second scenario the new data carries wrong labels: the retrained model
is worse on the golden set, the gate stops it and the champion stays.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from shipyard.notify import verify_signature
from tests.conftest import run_cli, shipyard_bin
from tests.e2e.gateway_live import free_port
from tests.notify.receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
SECRET = "e2e-secret"
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"]
ROTATE = {"Adelie": "Gentoo", "Gentoo": "Chinstrap", "Chinstrap": "Adelie"}

CONFIG = """
model:
  name: penguins
  path: model/
  flavor: sklearn
  train: data/prepared/train.parquet
  eval: data/golden.csv
  target: species
  features: [bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, island, sex]
gates:
  - metric: accuracy
    vs: champion
    max_drop: 0.02
deploy:
  strategy: canary
  steps: [50, 100]
  interval: 1s
  min_samples: 30
  rollback_when: {{error_rate: "> 0.5"}}
  flush_interval: 0.2s
  poll_interval: 0.2s
monitor:
  window_rows: 100
  min_rows: 30
  every: 1s
  rules:
    - name: drift
      when: drift_share > 0.3
      for: 2
      severity: critical
      cooldown: 10m
      actions: [alert, retrain]
  retrain:
    min_interval: 0s
    on_new_data: false
notify:
  - webhook: {url}
    secret: {secret}
    backoff: 50ms
    digest_after: 50
"""


def shifted(frame: pd.DataFrame, direction: float = 1.0) -> pd.DataFrame:
    out = frame.copy()
    out["bill_length_mm"] = (out["bill_length_mm"] + 8 * direction).clip(26, 69)
    out["flipper_length_mm"] = (out["flipper_length_mm"] + 8 * direction).clip(161, 239)
    out["body_mass_g"] = (out["body_mass_g"] + 600 * direction).clip(2501, 6499)
    return out


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real binary, with its folder on PATH (the pipeline's stages call ``shipyard`` too)."""
    path = f"{Path(shipyard_bin()).parent}{os.pathsep}{os.environ['PATH']}"
    return run_cli(*args, cwd=cwd, env={"PATH": path}, timeout=timeout)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc.stdout


class Loop:
    """The project, the gateway and the monitor as real processes."""

    def __init__(self, root: Path, receiver: Receiver) -> None:
        self.root = root
        self.receiver = receiver
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.failures: list[str] = []
        self.raw = pd.read_csv(root / "data" / "raw.csv")

    def start(self) -> None:
        env = {**os.environ, "CI": "true", "PATH": f"{Path(shipyard_bin()).parent}{os.pathsep}{os.environ['PATH']}"}
        for name, args in (("serve", ["serve", "--port", str(self.port)]), ("monitor", ["monitor", "--every", "1s"])):
            log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
            self.procs.append(subprocess.Popen([shipyard_bin(), *args], cwd=self.root, env=env, stdout=log,
                                               stderr=subprocess.STDOUT))
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=5).json().get("ready"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise AssertionError("the gateway did not become ready:\n" + self.logs())

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text()[-4000:]}" for p in sorted(self.root.glob("*.log")))

    def send(self, frame: pd.DataFrame, n: int, seed: int) -> None:
        rows = frame.dropna().sample(n, replace=True, random_state=seed)[FEATURES].to_dict("records")
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for i in range(0, n, 10):
                r = client.post("/invocations", json={"dataframe_records": rows[i:i + 10]})
                if r.status_code != 200:  # the gateway's own faults are its tests' business; keep them visible
                    self.failures.append(f"{r.status_code}: {r.text[:200]}")

    def state(self) -> dict[str, Any]:
        from shipyard.store import monitoring as repo
        from shipyard.store import open_store

        store = open_store(self.root / ".shipyard")
        try:
            with store.read() as session:
                return {"windows": [w.to_dict() for w in repo.windows(session, "penguins", 1000)],
                        "firings": [f.to_dict() for f in repo.firings(session, "penguins", 1000)],
                        "triggers": [t.to_dict() for t in repo.triggers(session, "penguins")]}
        finally:
            store.close()

    def wait_windows(self, count: int, timeout: float = 180) -> dict[str, Any]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.state()
            if len(state["windows"]) >= count:
                return state
            time.sleep(0.5)
        raise AssertionError(f"the monitor judged fewer than {count} windows:\n{self.logs()}")

    def drive_until_settled(self, frame: pd.DataFrame, timeout: float = 1200) -> dict[str, Any]:
        """Shifted traffic, 50 requests at a time, until the first retrain reaches a final state."""
        deadline, seed = time.time() + timeout, 1000
        while time.time() < deadline:
            self.send(frame, 50, seed)
            seed += 1
            triggers = self.state()["triggers"]
            if triggers and triggers[-1]["state"] in ("promoted", "rolled_back", "failed", "gated_out"):
                return triggers[-1]
            time.sleep(0.5)
        raise AssertionError(f"the retrain did not settle:\n{json.dumps(self.state()['triggers'], indent=1)}\n{self.logs()}")

    def alerts(self) -> list[dict[str, Any]]:
        out = []
        for request in self.receiver.requests:
            headers = request["headers"]
            assert verify_signature(SECRET, request["body"], headers.get("X-Shipyard-Timestamp"),
                                    headers.get("X-Shipyard-Signature"), now=request["at"]), headers
            out.append(json.loads(request["body"])["event"])
        return out


def setup_project(root: Path, receiver: Receiver) -> Loop:
    """Champion v1 trained, gated, deployed; the golden set covers both the old and the shifted region."""
    raw = pd.read_csv(root / "data" / "raw.csv")
    clean = raw.dropna()
    golden = pd.concat([clean, shifted(clean.sample(150, random_state=8))])
    golden.to_csv(root / "data" / "golden.csv", index=False)
    with (root / "shipyard.yaml").open("a") as f:
        f.write(CONFIG.format(url=receiver.url, secret=SECRET))
    ok(cli("run", cwd=root, timeout=900))
    assert json.loads(ok(cli("models", "register", "penguins", "--json", cwd=root)))["version"] == 1
    ok(cli("gate", "penguins@1", cwd=root, timeout=300))
    ok(cli("deploy", "penguins@1", "--json", cwd=root))
    return Loop(root, receiver)


def in_distribution_is_quiet(loop: Loop) -> None:
    loop.send(loop.raw, 200, seed=1)
    state = loop.wait_windows(2)
    assert all(f["status"] != "ACCEPT" for f in state["firings"]), state["firings"]
    assert state["triggers"] == []
    assert [w["verdict"] for w in state["windows"]] == ["ok", "ok"], state["windows"]


def new_data_arrives(loop: Loop, labels: dict[str, str] | None = None) -> pd.DataFrame:
    batch = shifted(loop.raw.dropna().sample(300, replace=True, random_state=7))
    if labels:
        batch["species"] = batch["species"].map(labels)
    pd.concat([loop.raw, batch]).to_csv(loop.root / "data" / "raw.csv", index=False)
    return batch


def champion(root: Path) -> int:
    return int(json.loads(ok(cli("models", "show", "penguins@champion", "--json", cwd=root)))["version"])


def test_drift_alerts_retrains_gates_canaries_and_promotes_by_itself(penguins: Path) -> None:
    with Receiver() as receiver:
        loop = setup_project(penguins, receiver)
        loop.start()
        try:
            in_distribution_is_quiet(loop)
            assert [a for a in loop.alerts() if not a["kind"].startswith("rollout.")] == []  # v1's deploy only
            batch = new_data_arrives(loop)
            trigger = loop.drive_until_settled(batch)
            assert receiver.wait_for(4, timeout=30)
            alerts = loop.alerts()
        finally:
            loop.stop()
    assert trigger["state"] == "promoted", json.dumps(trigger, indent=1) + loop.logs()
    assert trigger["kind"] == "rule" and "firing" in trigger["source"]
    assert [s["step"] for s in trigger["result"]["steps"]] == ["pipeline", "register", "gate", "deploy"]
    assert champion(penguins) == trigger["result"]["version"] == 2
    alerts = [a for a in alerts if not a["kind"].startswith("rollout.")]  # the gateway's own rollout events
    kinds = [a["kind"] for a in alerts]
    assert kinds[0] == "monitor.alert" and alerts[0]["rule"] == "drift" and alerts[0]["severity"] == "critical"
    assert "retrain.rolling_out" in kinds and "retrain.promoted" in kinds
    firings = loop.state()["firings"]
    assert firings[-1]["status"] == "WAIT" and firings[-2]["status"] == "ACCEPT"  # two windows, then the alert
    history = json.loads(ok(cli("triggers", "history", "--json", cwd=penguins)))
    events = [e["event"] for e in history[0]["timeline"]]
    for expected in ("detected", "alerted", "retrained", "registered", "gated", "canaried", "promoted"):
        assert expected in events, events


def test_a_worse_retrained_model_is_stopped_by_the_gate_and_the_champion_stays(penguins: Path) -> None:
    with Receiver() as receiver:
        loop = setup_project(penguins, receiver)
        loop.start()
        try:
            in_distribution_is_quiet(loop)
            batch = new_data_arrives(loop, labels=ROTATE)  # the new labels are wrong
            trigger = loop.drive_until_settled(batch)
            assert receiver.wait_for(2, timeout=30)
            alerts = loop.alerts()
        finally:
            loop.stop()
    assert trigger["state"] == "gated_out", json.dumps(trigger, indent=1) + loop.logs()
    assert [s["step"] for s in trigger["result"]["steps"]] == ["pipeline", "register", "gate"]
    assert champion(penguins) == 1
    kinds = [a["kind"] for a in alerts]
    assert "monitor.alert" in kinds and "retrain.gated_out" in kinds
    gated = next(a for a in alerts if a["kind"] == "retrain.gated_out")
    assert "champion stays" in gated["reason"]
    status = json.loads(ok(cli("rollout", "status", "penguins", "--json", cwd=penguins)))
    assert [d["candidate"] for d in status] == [1]  # no rollout of version 2 ever started
