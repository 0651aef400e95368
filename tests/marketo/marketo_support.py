"""Helpers for the client tests: deadline-bounded waits, a hand-moved clock, sandbox counters."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from dropbox_importer.sandbox import Sandbox

T = TypeVar("T")


def wait_for(check: Callable[[], T], *, timeout: float = 10.0, what: str = "condition") -> T:
    """The first truthy value of `check()`; fails the test at the deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        pause.wait(0.01)  # polling interval of a deadline-bounded wait, not synchronisation


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


def sandbox_stats(sandbox: Sandbox) -> dict[str, Any]:
    """The sandbox's own counters of calls and error codes."""
    body: dict[str, Any] = requests.get(f"{sandbox.base_url}/sandbox/stats.json", timeout=5).json()
    return body
