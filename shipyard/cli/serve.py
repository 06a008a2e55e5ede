"""``shipyard serve``: the model gateway on uvicorn (routing from the store, rollouts in the background).

With ``--workers N`` uvicorn runs N processes on one socket. Each builds its own gateway from the
project: it follows the routing table in the store (a deploy or rollback reaches every worker
within ``deploy.poll_interval``), assigns sticky keys by hash (the same answer whichever worker
serves), writes its own request-log parts (``part-<pid>-...``), and runs a rollout controller loop;
the controller's lease in the store (``serving_leases``) lets only one of them tick, the others
stand by and take over within the lease's 30 s if that one dies. Prometheus counters from all
workers are merged at ``/metrics``: this command points PROMETHEUS_MULTIPROC_DIR at a fresh temporary
folder before the workers start and removes it when they are gone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import typer

from shipyard.cli.output import echo, print_json

app = typer.Typer(add_completion=False, help="Serve the routed model versions over HTTP.")

ENV_ROOT = "SHIPYARD_SERVE_ROOT"
ENV_BATCHING = "SHIPYARD_SERVE_BATCHING"


def build_gateway(root: str | None = None, *, batching: bool | None = None, controller: bool = True) -> Any:
    """The Gateway of the project at ``root`` (or found from the cwd), wired to the store."""
    from shipyard.config import DeploySection, load_config
    from shipyard.durations import parse_duration
    from shipyard.rollout.controller import Controller, ControllerLoop
    from shipyard.rollout.ports import RegistryAdapter, notifier_for
    from shipyard.serving.app import Gateway, GatewaySettings
    from shipyard.serving.follower import Follower, StoreRoutingSource
    from shipyard.serving.loaders import RegistryLoader
    from shipyard.serving.metrics import WorkerMetricsCleanup
    from shipyard.serving.requestlog import RequestLog, feedback_root, requests_root
    from shipyard.workspace import Workspace

    ws = Workspace.discover(root)
    cfg_path = ws.project.config_path
    cfg = load_config(cfg_path) if cfg_path.is_file() else None
    deploy = cfg.deploy if cfg is not None else DeploySection()
    state = ws.project.state_dir
    req_root = requests_root(state, deploy.request_log, ws.project.root)
    fb_root = feedback_root(state, deploy.request_log, ws.project.root)
    policy = cfg.supply.request_log if cfg is not None else None   # docs/guide/security.md
    if policy is not None:
        from shipyard.supply.governance import require_hash_key

        require_hash_key(policy)   # before anything starts: unkeyed digests are refused
    log = RequestLog(req_root, fb_root, flush_interval=parse_duration(deploy.flush_interval),
                     redact=tuple(policy.redact) if policy else (), hashed=tuple(policy.hash) if policy else ())
    follower = Follower(StoreRoutingSource(ws.store), RegistryLoader(ws.store, ws.objects),
                        poll_interval=parse_duration(deploy.poll_interval))
    use_batching = deploy.batching.enabled if batching is None else batching
    settings = GatewaySettings(batching=use_batching, max_batch_size=deploy.batching.max_batch_size,
                               max_latency_ms=deploy.batching.max_latency_ms)
    background: list[Any] = [WorkerMetricsCleanup()]
    if controller:  # one per worker; the controller's lease in the store lets only one of them tick
        ctl = Controller(ws.store, RegistryAdapter(), requests_root=req_root, feedback_root=fb_root,
                         notify=notifier_for(list(cfg.notify) if cfg else []))
        background.append(ControllerLoop(ctl, period=min(1.0, deploy.interval_s / 4)))
    if policy is not None and policy.retention:
        from shipyard.supply.governance import RetentionJob

        # the writer's own location (a folder, or a LogFolder over the same fsspec filesystem)
        background.append(RetentionJob(ws.store, log.root, policy.retention))
    enricher = None
    if cfg is not None and cfg.features is not None and cfg.features.serve is not None:
        from shipyard.serving.features import enricher_for

        enricher = enricher_for(ws.project.root, cfg.features.repo, cfg.features.serve)
    gateway = Gateway(follower, log, settings, background=background, enricher=enricher)
    gateway.metrics.track_routing(follower)
    return gateway


def gateway_app() -> Any:
    """uvicorn factory (one per worker process): reads the project from SHIPYARD_SERVE_ROOT."""
    from shipyard.serving.app import create_app

    batching = os.environ.get(ENV_BATCHING)
    root = os.environ.get(ENV_ROOT)
    app = create_app(build_gateway(root, batching=None if batching is None else batching == "1"))
    secure_gateway(app, root)
    return app


def secure_gateway(app: Any, root: str | None) -> bool:
    """With ``serve.auth: token`` in shipyard.yaml, put the enforcement point in front of the gateway's
    app (tokens of the project ``shipyard server`` serves: SHIPYARD_PROJECT, else the folder's name).
    Returns whether it did."""
    import importlib

    from shipyard.auth.settings import server_project
    from shipyard.config import load_config
    from shipyard.workspace import Workspace

    ws = Workspace.discover(root)
    cfg_path = ws.project.config_path
    if not cfg_path.is_file() or load_config(cfg_path).serve.auth != "token":
        ws.close()
        return False
    # cli and server are sibling interfaces: the enforcement point is loaded by name (as cli/server.py
    # loads the server app); its token cache keeps this workspace's store open for the process's life
    security = importlib.import_module("shipyard.server.security")
    security.secure_gateway(app, ws.store, server_project(ws.project.root.name))
    return True


def bootstrap_routes(root: str | None = None) -> list[str]:
    """Route every model that has a ``champion`` alias but no routing table yet to its champion."""
    from shipyard import audit
    from shipyard.rollout.ports import RegistryAdapter
    from shipyard.serving.routing import single_table
    from shipyard.store import serving as repo
    from shipyard.workspace import Workspace

    ws = Workspace.discover(root)
    try:
        with ws.store.write() as session:
            champions = RegistryAdapter().champions(session)
            routed = repo.routing_tables(session)
            new = {name: single_table(name, version) for name, version in champions.items() if name not in routed}
            if new:
                repo.put_routing(session, new)
                for name, table in new.items():
                    audit.record(session, "serving.route", name, {"champion": table["champion"]})
    finally:
        ws.close()
    return sorted(new)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes (each follows the routing table)."),
    batching: bool | None = typer.Option(None, "--batching/--no-batching",
                                         help="Micro-batching (default: deploy.batching.enabled)."),
    get: str | None = typer.Option(None, "--get", metavar="PATH",
                                   help="Make one GET request in process, print the answer and exit."),
    json_out: bool = typer.Option(False, "--json", help="With --get: print status, headers and body as JSON."),
    tls_cert: Path = typer.Option(None, "--tls-cert", metavar="PEM",
                                  help="Serve HTTPS with this certificate (chain) file; needs --tls-key."),
    tls_key: Path = typer.Option(None, "--tls-key", metavar="PEM", help="The private key of --tls-cert."),
) -> None:
    """Serve the champion (and any rollout's candidate) of every routed model.

    Endpoints: Open Inference Protocol v2 (/v2, /v2/health/live|ready, /v2/models/NAME/infer,
    /v2/models/NAME/versions/V/infer,
    binary tensor data), MLflow's scoring server (/invocations with JSON or CSV, /ping, /version),
    /v1/models/NAME:predict, /health, /ready, /metrics, POST /v1/feedback. Micro-batching is on unless
    --no-batching or deploy.batching.enabled is false. A model with a champion alias is routed to it on
    start; the address is printed once the gateway answers there. With serve.auth: token in
    shipyard.yaml, predictions and feedback need 'Authorization: Bearer <token>' (gateway:invoke).

    Example: shipyard serve --port 8080 --workers 2
    """
    from shipyard.cli.server import tls_files
    from shipyard.workspace import Workspace

    tls = tls_files(tls_cert, tls_key)
    root = str(Workspace.discover().project.root)
    bootstrap_routes(root)
    if get is not None:
        _get(root, get, batching, json_out)
        return
    import uvicorn

    env_batching = None if batching is None else ("1" if batching else "0")
    os.environ[ENV_ROOT] = root
    if env_batching is not None:
        os.environ[ENV_BATCHING] = env_batching
    metrics_dir = _multiprocess_metrics_dir() if workers > 1 else None
    _announce_when_listening(host, port, f"({workers} worker{'s' if workers > 1 else ''})", tls=bool(tls))
    try:
        uvicorn.run("shipyard.cli.serve:gateway_app", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False, loop="auto", http="auto", proxy_headers=False, **tls)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _announce_when_listening(host: str, port: int, what: str, *, tls: bool = False) -> None:
    """Print the address once the gateway answers there, not before (on a loaded machine loading
    the models takes long, and a script reading the line would connect to nothing).

    uvicorn has no hook for "listening" that also covers its worker processes, so a daemon
    thread asks ``/v2/health/live`` on the loopback address until it answers."""
    import sys
    import threading
    import time

    import httpx

    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    scheme = "https" if tls else "http"
    url = f"{scheme}://{f'[{probe}]' if ':' in probe else probe}:{port}/v2/health/live"

    def wait() -> None:
        # the probe asks this process's own socket whether it listens yet; the certificate names the
        # public host, not the loopback address, so it is not checked here (clients check it)
        with httpx.Client(timeout=2, verify=False) as client:
            while True:
                try:
                    if client.get(url).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)  # polling a socket that is not there yet: nothing to wait on
        echo(f"shipyard gateway on {scheme}://{host}:{port} {what}")
        sys.stdout.flush()

    threading.Thread(target=wait, name="shipyard-announce", daemon=True).start()


def _multiprocess_metrics_dir() -> str:
    """A fresh folder for the workers' Prometheus files, set in the environment they inherit.

    Always a new one: files left by an earlier run would be added to this run's counters."""
    from shipyard.serving.metrics import MULTIPROC_ENV

    folder = tempfile.mkdtemp(prefix="shipyard-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    return folder


def _get(root: str, path: str, batching: bool | None, json_out: bool) -> None:
    import asyncio

    import httpx

    from shipyard.serving.app import create_app

    gateway = build_gateway(root, batching=batching, controller=False)
    asgi = create_app(gateway)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://shipyard") as client:
            return await client.get(path)

    gateway.startup()
    try:
        response = asyncio.run(call())
    finally:
        gateway.shutdown()
    if json_out:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        print_json({"status": response.status_code, "headers": dict(response.headers), "body": body})
    else:
        print(response.text)
    if response.status_code >= 400:
        from shipyard.errors import CheckFailed

        raise CheckFailed(f"GET {path} answered {response.status_code}")
