"""``shipyard server``: serve the REST API (Shipyard's and the MLflow-compatible subset)."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False)


@app.command()
def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(5000, "--port", help="TCP port."),
    get: str = typer.Option(None, "--get", metavar="PATH",
                            help="Build the app, make one in-process GET request for PATH, print the response and exit."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
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
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)
