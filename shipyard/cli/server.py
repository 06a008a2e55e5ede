"""``shipyard server``: serve the REST API (Shipyard's and the MLflow-compatible subset)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from shipyard.workspace import Workspace

app = typer.Typer(add_completion=False)


@app.command()
def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(5000, "--port", help="TCP port."),
    get: str = typer.Option(None, "--get", metavar="PATH",
                            help="Build the app, make one in-process GET request for PATH, print the response and exit."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    monitor: bool = typer.Option(True, "--monitor/--no-monitor",
                                 help="Also run the monitor (drift, rules, alerts, retrains) when shipyard.yaml has "
                                      "a monitor: section."),
    monitor_every: str = typer.Option(None, "--monitor-every", metavar="DURATION",
                                      help="Monitor cycle period, e.g. 30s or 5m (default: monitor.every)."),
    tls_cert: Path = typer.Option(None, "--tls-cert", metavar="PEM",
                                  help="Serve HTTPS with this certificate (chain) file; needs --tls-key."),
    tls_key: Path = typer.Option(None, "--tls-key", metavar="PEM", help="The private key of --tls-cert."),
    no_auth: bool = typer.Option(False, "--no-auth",
                                 help="Serve without authentication: only on a loopback bind with the embedded "
                                      "store (a laptop)."),
) -> None:
    """Serve the tracking REST API and the MLflow-compatible API of this project.

    MLflow's client works unchanged: MLFLOW_TRACKING_URI=http://127.0.0.1:5000. Shipyard's own
    client uses it with SHIPYARD_TRACKING_URI=http://127.0.0.1:5000.

    Example: shipyard server --port 5000   (or: shipyard server --get /api/v1/runs)
    """
    from shipyard.errors import require_extra

    require_extra("starlette", "serve")
    require_extra("uvicorn", "serve")
    import importlib

    from shipyard.workspace import Workspace

    # cli and server are sibling interfaces (neither imports the other); the command starts the
    # server app by name, the same way main.py's COMMANDS table loads command modules.
    create_app = importlib.import_module("shipyard.server.app").create_app

    tls = tls_files(tls_cert, tls_key)
    workspace = Workspace.discover()
    if get:
        import httpx

        # one in-process request, no socket: the operator already holds the store, as every other
        # command does, so it goes without authentication (and without a first-start admin)
        application = create_app(workspace, auth_project=None)

        from shipyard.cli.output import echo

        async def once() -> httpx.Response:
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://shipyard") as client:
                return await client.get(get)

        import anyio

        response = anyio.run(once)
        echo(response.text)
        workspace.close()
        if response.status_code >= 400:
            raise typer.Exit(1)
        return
    application = _build_app(create_app, workspace, host, no_auth)
    import uvicorn

    from shipyard.cli.output import echo

    scheme = "https" if tls else "http"
    echo(f"shipyard server on {scheme}://{host}:{port} "
         f"(MLflow clients: MLFLOW_TRACKING_URI={scheme}://{host}:{port})")
    stop = _start_monitor(workspace, monitor_every) if monitor else None
    try:
        uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False, **tls)
    finally:
        if stop is not None:
            stop.set()


def tls_files(cert: Path | None, key: Path | None) -> dict[str, str]:
    """uvicorn's ssl_certfile/ssl_keyfile, after checking both are given, readable and belong together."""
    import ssl

    from shipyard.errors import UsageError

    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        given, missing = ("--tls-cert", "--tls-key") if key is None else ("--tls-key", "--tls-cert")
        raise UsageError(f"{given} needs {missing} too", hint="--tls-cert server.pem --tls-key server.key")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        try:
            path.read_bytes()
        except OSError as exc:
            raise UsageError(f"{option} {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise UsageError(f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and its key ({exc.reason})",
                         hint="the key must be the private key of the certificate's first entry") from None
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def _build_app(create_app: Callable[..., Any], workspace: Workspace, host: str, no_auth: bool) -> Any:
    """The server app, with auth on unless --no-auth (allowed on a laptop only); prints the first admin's token."""
    import importlib

    from shipyard.cli.output import echo

    security = importlib.import_module("shipyard.server.security")
    if no_auth:
        # serve without auth only where --no-auth is allowed: a loopback bind with the embedded
        # store; and say so, on stderr (stdout is for what scripts read)
        from shipyard.store.engine import resolve_url

        # the URL only: a refused --no-auth must not first open (and migrate) a shared store
        echo("warning: " + security.check_no_auth(host, resolve_url(workspace.project.state_dir)), err=True)
        return create_app(workspace, auth_project=None)
    from shipyard.auth.credentials import first_start
    from shipyard.auth.settings import server_project

    project = server_project(workspace.project.root.name)
    made = first_start(workspace.store, project)
    if made is not None:
        token, info = made
        echo(f"first start: created the admin user 'admin' and the project {project!r}. Its token, shown once:\n"
             f"  {token}\n"
             f"keep it in a password manager: it is stored only as a hash (revoke it: shipyard tokens revoke "
             f"{info['prefix']})")
    return create_app(workspace, auth_project=project)


def _start_monitor(workspace: Workspace, every: str | None) -> threading.Event | None:
    """Run monitor cycles in a daemon thread when the project configures a monitor; None otherwise."""
    from shipyard.cli.monitor import show_cycle
    from shipyard.cli.output import echo
    from shipyard.config import load_config, parse_duration
    from shipyard.errors import ShipyardError, UsageError

    config_path = workspace.project.config_path
    if not config_path.exists():
        return None
    config = load_config(config_path)
    if "monitor" not in config.model_fields_set:
        return None
    try:
        period = parse_duration(every) if every else config.monitor.every_s
    except ValueError as exc:
        raise UsageError(f"--monitor-every: {exc}") from None
    from shipyard.monitoring import build_monitor

    mon = build_monitor(workspace, config)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                show_cycle(mon.cycle(), json_out=False)
            except ShipyardError as exc:  # keep serving; say what went wrong and try next cycle
                echo(f"monitor: {exc}", err=True)
            stop.wait(period)
        mon.wait(timeout=0)

    threading.Thread(target=loop, name="shipyard-monitor", daemon=True).start()
    echo(f"monitor running every {period:g}s (--no-monitor to turn it off)")
    return stop
