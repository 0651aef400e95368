"""SIGTERM at 100 random moments of a busy daemon: every one exits within 10 s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.test_sigterm import sigterm_at_random_moments


@pytest.mark.timeout(1800)  # minutes long by design; pyproject's 120 s is for unit tests
def test_sigterm_at_a_hundred_random_moments_always_stops_within_10_s(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    stops = sigterm_at_random_moments(tmp_path, make_sandbox, moments=100, seed=100)
    print(f"\n100 SIGTERMs: slowest stop {max(stops):.2f} s, median {sorted(stops)[50]:.2f} s")
