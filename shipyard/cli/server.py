"""``shipyard server``: serve the REST API (Shipyard's and the MLflow-compatible subset)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

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

    workspace = Workspace.discover()
    application = create_app(workspace)
    if get:
        import httpx

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
    import uvicorn

    from shipyard.cli.output import echo

    if host not in ("127.0.0.1", "localhost", "::1"):
        echo(f"warning: binding {host}: anyone who can reach this machine can read and write runs", err=True)
    echo(f"shipyard server on http://{host}:{port} (MLflow clients: MLFLOW_TRACKING_URI=http://{host}:{port})")
    stop = _start_monitor(workspace, monitor_every) if monitor else None
    try:
        uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        if stop is not None:
            stop.set()


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
