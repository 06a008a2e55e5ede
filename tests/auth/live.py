"""An app under test on real uvicorn on 127.0.0.1 (optionally with TLS), in a thread of the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.server.live import free_port


@contextmanager
def serve(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app``; yield its base URL (https when ``ssl_certfile`` is given); stop it afterwards."""
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                       **config))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:  # wait for the condition, bounded
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    scheme = "https" if config.get("ssl_certfile") else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=15)
