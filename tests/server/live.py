"""A real ``shipyard server`` (uvicorn) on a free loopback port, for tests that need real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(root: Path, env: dict[str, str] | None = None, *, auth: bool = False) -> Iterator[str]:
    """Start ``shipyard server`` in ``root``; yield its base URL; stop it afterwards.

    Without ``auth`` it runs with ``--no-auth`` (a loopback bind on SQLite, as on a laptop); with it,
    the server prints its first admin token (see ``first_admin_token``) and every route needs one.
    """
    port = free_port()
    binary = str(Path(sys.executable).with_name("shipyard"))
    full_env = {**os.environ, "CI": "true", **(env or {})}
    args = [binary, "server", "--port", str(port)] + ([] if auth else ["--no-auth"])
    proc = subprocess.Popen(args, cwd=root, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"shipyard server exited: {proc.stdout.read().decode() if proc.stdout else ''}")
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
