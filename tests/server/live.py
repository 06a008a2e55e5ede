"""A real ``shipyard server`` (uvicorn) on a free loopback port, for tests that need real HTTP."""

from __future__ import annotations

import os
import socket
import ssl
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
def live_server(root: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``shipyard server --no-auth`` in ``root`` (a loopback bind on SQLite, as on a laptop);
    yield its base URL; stop it afterwards."""
    with _running(root, env, auth=False) as (url, _):
        yield url


@contextmanager
def live_server_with_auth(root: Path, env: dict[str, str] | None = None,
                          tls: tuple[Path, Path, Path] | None = None) -> Iterator[tuple[str, str]]:
    """Start ``shipyard server`` with auth on (its default); yield its base URL and the first admin's
    token, which it prints once before it listens. ``tls`` = (cert, key, CA file): it serves https
    with that certificate, and the wait for it trusts that CA."""
    with _running(root, env, auth=True, tls=tls) as (url, proc):
        assert proc.stdout is not None
        printed = []
        for raw in proc.stdout:
            line = raw.decode().strip()
            printed.append(line)
            if line.startswith("shipyard server on"):
                break
        tokens = [line for line in printed if line.startswith("shp_")]
        assert tokens, "the server printed no first admin token:\n" + "\n".join(printed)
        yield url, tokens[0]


@contextmanager
def _running(root: Path, env: dict[str, str] | None, *, auth: bool,
             tls: tuple[Path, Path, Path] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    binary = str(Path(sys.executable).with_name("shipyard"))
    full_env = {**os.environ, "CI": "true", **(env or {})}
    args = [binary, "server", "--port", str(port)] + ([] if auth else ["--no-auth"])
    if tls is not None:
        args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    trusted = ssl.create_default_context(cafile=str(tls[2])) if tls is not None else None
    proc = subprocess.Popen(args, cwd=root, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"shipyard server exited: {proc.stdout.read().decode() if proc.stdout else ''}")
            try:
                urllib.request.urlopen(url + "/health", timeout=2, context=trusted).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
