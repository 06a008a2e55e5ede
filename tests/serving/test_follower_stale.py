"""A routing poll that hangs (a half-open connection to the store) still makes the table stale."""

from __future__ import annotations

import threading
import time
from typing import Any

from shipyard.serving.follower import Follower, StaticSource
from shipyard.serving.routing import single_table
from tests.serving.models import DictLoader, iris_classifier


class HangingSource(StaticSource):
    """Answers until ``hang`` is set, then blocks every poll until ``release`` is set."""

    def __init__(self, tables: dict[str, dict[str, Any]]) -> None:
        super().__init__(tables)
        self.hang = threading.Event()
        self.release = threading.Event()

    def revision(self) -> int:
        if self.hang.is_set():
            self.release.wait(60)
        return super().revision()


def wait_until(condition: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_hung_poll_turns_the_table_stale_and_an_answer_turns_it_fresh() -> None:
    source = HangingSource({"iris": single_table("iris", 1)})
    follower = Follower(source, DictLoader({("iris", 1): iris_classifier()}), poll_interval=0.05)
    follower.refresh()
    follower.start()
    try:
        assert not follower.stale and follower.problem is None
        source.hang.set()
        hung_at = time.time()
        assert wait_until(lambda: follower.stale)
        assert time.time() - hung_at >= follower.stale_after - 0.2  # not before the allowance
        assert follower.problem is not None and "no routing poll has answered" in follower.problem
        assert follower.stale_time is not None and follower.stale_time <= hung_at
        assert follower.snapshot is not None and "iris" in follower.snapshot.models  # still serving
        source.hang.clear()
        source.release.set()
        assert wait_until(lambda: not follower.stale)
        assert follower.problem is None
    finally:
        source.release.set()
        follower.stop()


def test_without_the_polling_thread_an_old_poll_is_not_stale() -> None:
    """Gateways driven by explicit refresh() calls (tests, --get) are not aged."""
    follower = Follower(StaticSource({"iris": single_table("iris", 1)}),
                        DictLoader({("iris", 1): iris_classifier()}), poll_interval=0.01)
    follower.refresh()
    follower.last_ok = time.time() - 3600
    assert not follower.stale and follower.problem is None
