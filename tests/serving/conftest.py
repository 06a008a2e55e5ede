from __future__ import annotations

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
