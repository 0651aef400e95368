"""Marketo's call limits: a rolling window (606), calls in flight (615) and a daily quota (607)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone, tzinfo

try:
    from zoneinfo import ZoneInfo

    # Marketo's daily quota resets at midnight US Central time.
    CENTRAL: tzinfo = ZoneInfo("America/Chicago")
except Exception:  # no tz database on this machine: Central standard time is close enough
    CENTRAL = timezone(timedelta(hours=-6))


class Admission:
    """A call let through the limits; `release(counted=False)` gives its slots back."""

    def __init__(self, limiter: CallLimiter, stamp: float, day: date) -> None:
        """Remember what to give back if the call turns out to be refused."""
        self._limiter = limiter
        self._stamp = stamp
        self._day = day

    def release(self, *, counted: bool) -> None:
        """End the call; a call that ended with an error does not count, as in Marketo."""
        self._limiter._finish(self._stamp, self._day, counted)


class CallLimiter:
    """Admits or refuses calls, exactly and thread-safely."""

    def __init__(
        self,
        calls_per_window: int,
        window_seconds: float,
        max_in_flight: int,
        daily_quota: int,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], date] = lambda: datetime.now(CENTRAL).date(),
    ) -> None:
        """Set the three limits; `clock` and `today` are the time sources."""
        self.calls_per_window = calls_per_window
        self.window_seconds = window_seconds
        self.max_in_flight = max_in_flight
        self.daily_quota = daily_quota
        self._clock = clock
        self._today = today
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._in_flight = 0
        self._day = today()
        self._day_count = 0

    @property
    def in_flight(self) -> int:
        """Calls currently running (for introspection)."""
        return self._in_flight

    def admit(self) -> Admission | str:
        """Reserve a slot in every limit, or return the refusing error code."""
        now = self._clock()
        with self._lock:
            day = self._today()
            if day != self._day:
                self._day, self._day_count = day, 0
            while self._window and self._window[0] <= now - self.window_seconds:
                self._window.popleft()
            if self._in_flight >= self.max_in_flight:
                return "615"
            if len(self._window) >= self.calls_per_window:
                return "606"
            if self._day_count >= self.daily_quota:
                return "607"
            # Reserve now, give back later if refused: concurrent calls can never overshoot.
            self._in_flight += 1
            self._window.append(now)
            self._day_count += 1
            return Admission(self, now, day)

    def _finish(self, stamp: float, day: date, counted: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            if counted:
                return
            with contextlib.suppress(ValueError):  # it may have slid out of the window already
                self._window.remove(stamp)
            if day == self._day:
                self._day_count -= 1
