from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.serving.app import Gateway, GatewaySettings, create_app
from shipyard.serving.follower import Follower, StaticSource
from shipyard.serving.requestlog import RequestLog
from tests.serving.models import DictLoader


class Harness:
    def __init__(self, tmp: Path, models: dict[tuple[str, int], Any], tables: dict[str, dict[str, Any]],
                 settings: GatewaySettings | None = None) -> None:
        self.loader = DictLoader(models)
        self.source = StaticSource(tables)
        self.log = RequestLog(tmp / "requests", tmp / "feedback", flush_interval=3600)
        self.gateway = Gateway(Follower(self.source, self.loader, poll_interval=3600), self.log, settings)
        self.app = create_app(self.gateway)
        self.gateway.startup()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://gateway")

    def rows(self) -> Any:
        import polars as pl

        self.log.flush()
        files = sorted((self.log.root).rglob("part-*.parquet"))
        return pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files], how="diagonal_relaxed") \
            if files else pl.DataFrame()

    def close(self) -> None:
        self.gateway.shutdown()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Any]:
    made: list[Harness] = []

    def make(models: dict[tuple[str, int], Any], tables: dict[str, dict[str, Any]], **kwargs: Any) -> Harness:
        h = Harness(tmp_path / f"h{len(made)}", models, tables, GatewaySettings(**kwargs) if kwargs else None)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


class LiveServer:
    """The gateway app on a real loopback socket (uvicorn in a thread), for the real HTTP clients."""

    def __init__(self, harness: Harness) -> None:
        import socket

        import uvicorn

        self.harness = harness
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        # the harness started the gateway already: run the app without a second lifespan
        config = uvicorn.Config(harness.app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        # uvicorn offers no callback once it listens: wait on its own flag, bounded
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start listening")
            self.thread.join(0.01)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def live(harness: Any) -> Iterator[Any]:
    """``live(models, tables, **settings)``: a gateway listening on 127.0.0.1; returns a LiveServer."""
    servers: list[LiveServer] = []

    def make(models: dict[tuple[str, int], Any], tables: dict[str, dict[str, Any]], **kwargs: Any) -> LiveServer:
        server = LiveServer(harness(models, tables, **kwargs))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
