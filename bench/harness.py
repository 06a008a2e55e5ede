"""The benchmark harness: ours and the peer's, alternately, n times each, min/median and ratio.

Peers live in their own virtual environments under ``bench/.peers/<name>`` (one per peer, pinned in
``bench/peers/<name>.txt``) so their dependencies never touch ours; ``peer_bin`` installs on first
use. Timings run the two sides alternately so drift in machine load hits both equally.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / ".peers"
WORK = BENCH / ".work"


def peer_env(name: str) -> Path:
    """The venv holding peer ``name`` (created from bench/peers/<name>.txt on first use)."""
    venv = PEERS / name
    spec = BENCH / "peers" / f"{name}.txt"
    stamp = venv / ".installed"
    if not stamp.exists() or stamp.read_text() != spec.read_text():
        uv = shutil.which("uv") or "uv"
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "-r", str(spec)],
                       check=True)
        stamp.write_text(spec.read_text())
    return venv


def peer_bin(name: str, program: str | None = None) -> str:
    """Path of a peer's console script (``program`` defaults to the peer's name)."""
    return str(peer_env(name) / "bin" / (program or name))


def ours_bin(program: str = "shipyard") -> str:
    """Our console script, from the venv running the benchmarks."""
    return str(Path(sys.executable).with_name(program))


@dataclass
class Sample:
    seconds: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Comparison:
    name: str
    ours: Sample
    peer: Sample
    peer_name: str

    @property
    def ratio(self) -> float:
        """How many times faster we are (peer median / our median)."""
        return self.peer.median / self.ours.median

    def row(self) -> str:
        mem = ""
        if self.ours.peak_rss_mb and self.peer.peak_rss_mb:
            mem = f" | {max(self.ours.peak_rss_mb):.0f} MB / {max(self.peer.peak_rss_mb):.0f} MB"
        return (f"| {self.name} | {self.ours.best * 1000:.1f} / {self.ours.median * 1000:.1f} ms "
                f"| {self.peer.best * 1000:.1f} / {self.peer.median * 1000:.1f} ms ({self.peer_name}) "
                f"| **{self.ratio:.1f}x**{mem} |")


_LAUNCHER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
tail = (proc.stdout[-2000:] + b"\\n" + proc.stderr[-2000:]).decode(errors="replace")
print(json.dumps({"rc": proc.returncode, "wall": wall, "peak_mb": peak, "tail": tail}))
"""


def time_command(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
                 setup: Callable[[], None] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run of ``cmd`` (its whole process tree).

    The command runs under a tiny launcher process that times it and reads its peak RSS: a child
    forked straight from this (large) process would report our own memory as its peak.
    """
    if setup:
        setup()
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, *cmd], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"launcher failed for {' '.join(cmd)}: {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result['rc']}):\n{result['tail']}")
    return result["wall"], result["peak_mb"]


def compare(name: str, ours: Callable[[], float | tuple[float, float]], peer: Callable[[], float | tuple[float, float]],
            peer_name: str, n: int = 5, warmup: int = 1) -> Comparison:
    """Run ``ours`` and ``peer`` alternately; each returns seconds (or (seconds, peak MB))."""
    result = Comparison(name, Sample(), Sample(), peer_name)
    for i in range(warmup + n):
        for side, fn in ((result.ours, ours), (result.peer, peer)):
            out = fn()
            seconds, peak = out if isinstance(out, tuple) else (out, None)
            if i >= warmup:
                side.seconds.append(seconds)
                if peak is not None:
                    side.peak_rss_mb.append(peak)
    print(result.row(), flush=True)
    return result


def commands(name: str, ours: list[str], peer: list[str], peer_name: str, cwd: Path | None = None,
             n: int = 5, setup: Callable[[], None] | None = None, peer_setup: Callable[[], None] | None = None,
             env: dict[str, str] | None = None) -> Comparison:
    """``compare`` for two shell commands (wall time and peak RSS of each)."""
    return compare(
        name,
        lambda: time_command(ours, cwd, env, setup),
        lambda: time_command(peer, cwd, env, peer_setup or setup),
        peer_name, n=n,
    )


HEADER = "| benchmark | Shipyard min / median | peer min / median | ratio (peer / ours)"
