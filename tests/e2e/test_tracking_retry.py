"""The HTTP backend retries a dropped connection, and the retry never doubles a value.

A small TCP relay sits between the client and a real ``shipyard server``: for the first batch it
forwards the request (the server commits it) and then drops the connection instead of relaying the
answer, which is exactly the case where a naive retry would write the batch twice.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
from pathlib import Path
from urllib.parse import urlparse

from shipyard.store.runs import MetricValue
from shipyard.tracking.backends import HttpBackend
from tests.server.live import live_server


def _read_message(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class DroppingRelay:
    """Relays one request per connection; drops the answer to the first batch request."""

    def __init__(self, upstream: str) -> None:
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.dropped = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            request = _read_message(client)
            if not request:
                return
            with socket.create_connection(self.upstream) as up:
                up.sendall(request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
                response = _read_message(up)
            if b"/batch " in request.split(b"\r\n", 1)[0] and self.dropped == 0:
                self.dropped += 1
                client.shutdown(socket.SHUT_RDWR)  # the server has committed; the client never hears
                return
            client.sendall(response)

    def close(self) -> None:
        self.listener.close()


def test_dropped_answer_is_retried_once_without_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    with live_server(root) as url:
        relay = DroppingRelay(url)
        try:
            backend = HttpBackend(relay.url)
            run_id = backend.create_run(experiment="retry", name="r")
            backend.write(run_id, [MetricValue("m", float(i), i, 1) for i in range(500)], {"p": "1"}, {})
            backend.finish(run_id, [], "FINISHED", 2)
            assert relay.dropped == 1
        finally:
            relay.close()
    db = sqlite3.connect(root / ".shipyard" / "shipyard.db")
    assert db.execute("select count(*) from metrics where run_id = ?", (run_id,)).fetchone()[0] == 500
    assert db.execute("select status from runs where id = ?", (run_id,)).fetchone()[0] == "FINISHED"
