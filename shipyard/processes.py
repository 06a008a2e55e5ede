"""Processes on this machine: is a pid alive, and which host is this (for records shared across hosts)."""

from __future__ import annotations

import os
import socket
from functools import cache


def alive(pid: int | str | None) -> bool:
    """Whether a process with this pid exists on this machine (one owned by another user counts)."""
    try:
        number = int(pid or 0)
    except (TypeError, ValueError):
        return False
    if number <= 0:
        return False
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


@cache
def this_host() -> str:
    """This machine's host name, as runs record it."""
    return socket.gethostname()


def dead_owner(host: str | None, pid: int | None, started_ms: int | None) -> bool:
    """Whether a record a process on ``host`` with ``pid`` left running at ``started_ms`` was left by a
    process that is gone: on this host (or a record that names none) with no such process, or with
    that pid reused by a process started after the record was. A record of another host is never
    judged here: its process may well be running there."""
    if host is not None and host != this_host():
        return False
    if not alive(pid):
        return True
    if started_ms is None:
        return False
    import psutil

    try:
        started_s = psutil.Process(int(pid or 0)).create_time()
    except (psutil.Error, ValueError):
        return True
    return started_s * 1000 > started_ms + 2000  # the pid now belongs to a younger process
