"""Bad input and faults against a real gateway on loopback: 422 naming the field, 404, a 50 MB body
(413), and the store going away for a while (PostgreSQL behind a TCP proxy we cut)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.gateway_live import LiveGateway, drive, register_versions
from tests.serving.models import ROW, iris_classifier

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.fixture
def sqlite_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    from shipyard.store import open_store

    store = open_store(tmp_path / "state")
    yield store
    store.close()


def test_bad_requests_over_http(sqlite_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    register_versions(sqlite_store, "iris", [1], champion=1)
    with LiveGateway(sqlite_store, tmp_path / "state", {("iris", 1): iris_classifier()}) as gw, \
            httpx.Client(base_url=gw.url, timeout=60) as client:
        r = client.post("/invocations", json={"dataframe_records": [{"sepal_length": 5.1}]})
        assert r.status_code == 422 and r.json()["field"] == "dataframe_records"
        assert "missing feature 'sepal_width'" in r.json()["error"]
        assert r.headers["x-shipyard-version"] and r.headers["x-request-id"]
        r = client.post("/v2/models/iris/infer", json={"inputs": [{"name": "a", "shape": [1], "datatype": "FP99",
                                                                  "data": [1]}]})
        assert r.status_code == 400 and r.json()["field"] == "inputs[0].datatype"  # as Triton and KServe answer
        r = client.post("/v2/models/tulip/infer", json={"inputs": []})
        assert r.status_code == 404 and "unknown model 'tulip'" in r.json()["error"]
        big = b'{"instances": [' + b"[5.1, 3.5, 1.4, 0.2], " * (50 * 1024 * 1024 // 22) + b"[1, 2, 3, 4]]}"
        assert len(big) > 50_000_000
        try:
            r = client.post("/invocations", content=big, headers={"content-type": "application/json"})
            assert r.status_code == 413 and "limit is" in r.json()["error"]
        except httpx.WriteError:
            pytest.fail("the gateway closed the connection instead of answering 413")
        r = client.post("/invocations", json={"instances": [list(ROW.values())]})
        assert r.status_code == 200 and r.json()["predictions"] == ["setosa"]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.open = False

    def start(self) -> None:
        self.open = True
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if not self.open:  # accepted while cut() ran: refuse it like the closed port would
                client.close()
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        assert self.listener is not None
        self.open = False
        try:  # wakes the thread blocked in accept(); close() alone leaves the port listening until it returns
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.sockets.clear()


@pytest.mark.postgres
@pytest.mark.slow
def test_store_unreachable_keeps_serving_and_says_so(pg_url: str, tmp_path: Path) -> None:
    from shipyard.store import open_store

    direct = open_store(tmp_path / "state", pg_url)
    register_versions(direct, "iris", [1], champion=1)
    url = make_url(pg_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied = open_store(tmp_path / "state", url.set(port=proxy.port).render_as_string(hide_password=False))
    try:
        with LiveGateway(proxied, tmp_path / "state", {("iris", 1): iris_classifier()}) as gw, \
                httpx.Client(base_url=gw.url, timeout=30) as client:
            assert client.get("/ready").json()["stale"] is False
            proxy.cut()
            deadline = time.time() + 20
            while time.time() < deadline and client.get("/ready").json()["stale"] is False:
                time.sleep(0.1)
            ready = client.get("/ready")
            assert ready.status_code == 200 and ready.json()["stale"] is True, ready.text
            assert "store is unreachable" in ready.json()["reason"]
            assert ready.headers["x-shipyard-routing"] == "stale"
            result = asyncio.run(drive(gw.url, "iris", requests=200, concurrency=8))
            assert result.failed == 0 and result.versions == {"1": 200}
            proxy.start()
            deadline = time.time() + 20
            while time.time() < deadline and client.get("/ready").json()["stale"] is True:
                time.sleep(0.1)
            assert client.get("/ready").json()["stale"] is False
    finally:
        proxy.cut()
        proxied.close()
        direct.close()
