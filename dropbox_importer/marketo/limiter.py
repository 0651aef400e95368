"""Per-instance limits every call goes through: rolling-window budget, in-flight cap, queue slots.

Marketo counts calls per instance (100 per rolling 20 s, 10 in flight, 10 queued imports) across
every integration; this daemon keeps to its configured share so that it never provokes 606, 615
or 1016 by itself.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from dropbox_importer.marketo.errors import Stopped

Clock = Callable[[], float]

# Longest single sleep on a condition: how quickly a set stop event is noticed.
_STOP_POLL_SECONDS = 0.1


class StopSignal(Protocol):
    """What a wait watches to end early: a `threading.Event` or an `AnyOf` several."""

    def is_set(self) -> bool:
        """True once waiting should end."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or `timeout`; True if set."""
        ...


class AnyOf:
    """Set as soon as any of its events is: the caller's stop or the client's close."""

    def __init__(self, *events: threading.Event) -> None:
        self._events = events

    def is_set(self) -> bool:
        """True when any event is set."""
        return any(event.is_set() for event in self._events)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until any event is set or `timeout` passes; True if one is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            remaining = _STOP_POLL_SECONDS if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._events[0].wait(min(remaining, _STOP_POLL_SECONDS))
        return True


def wait_until(
    cond: threading.Condition,
    ready: Callable[[], float],
    stop: StopSignal | None,
    clock: Clock,
) -> float:
    """Wait on `cond` (held) until `ready()` returns 0; return the seconds waited.

    `ready()` returns how long until the state can change by itself (or any positive number when
    only a notify can change it); a set `stop` raises Stopped.
    """
    started = clock()
    while True:
        if stop is not None and stop.is_set():
            raise Stopped("stopped while waiting for a Marketo limit")
        remaining = ready()
        if remaining <= 0:
            return clock() - started
        cond.wait(min(remaining, _STOP_POLL_SECONDS))


@dataclass
class Ticket:
    """One admitted call; `refund()` when Marketo says it did not count (a 6xx answer)."""

    refunded: bool = False

    def refund(self) -> None:
        """Mark the call as not counted by Marketo (response-level errors are not)."""
        self.refunded = True


class CallLimiter:
    """Rolling-window call budget plus a cap on calls in flight, shared by all threads."""

    def __init__(
        self,
        calls_per_window: int,
        window_seconds: float,
        max_in_flight: int,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self._budget = calls_per_window
        self._window = window_seconds
        self._max_in_flight = max_in_flight
        # Lowered after a 615 (others' calls fill Marketo's 10), raised back by each success.
        self._in_flight_cap = max_in_flight
        self._clock = clock
        self._cond = threading.Condition()
        # End times of finished calls: a call is stamped when its answer arrives, which is never
        # earlier than Marketo's own stamp, so our window ages out no sooner than Marketo's.
        self._done: deque[float] = deque()
        self._in_flight = 0
        self._blocked_until = 0.0
        self.waits = 0
        self.wait_seconds = 0.0

    def _delay(self) -> float:
        """Seconds until one more call may start; 0 when it may start now."""
        now = self._clock()
        while self._done and self._done[0] + self._window <= now:
            self._done.popleft()
        if now < self._blocked_until:
            return self._blocked_until - now
        if self._in_flight >= self._in_flight_cap:
            return _STOP_POLL_SECONDS  # only a finishing call frees a slot; it notifies
        if len(self._done) + self._in_flight >= self._budget:
            if not self._done:
                return _STOP_POLL_SECONDS
            return self._done[0] + self._window - now
        return 0.0

    @contextmanager
    def admit(self, stop: StopSignal | None = None) -> Iterator[Ticket]:
        """Wait for room in the window and in flight, then hold a slot while the call runs."""
        with self._cond:
            if self._delay() > 0:
                self.waits += 1
                self.wait_seconds += wait_until(self._cond, self._delay, stop, self._clock)
            self._in_flight += 1
        ticket = Ticket()
        try:
            yield ticket
        finally:
            with self._cond:
                self._in_flight -= 1
                if not ticket.refunded:
                    self._done.append(self._clock())
                    self._in_flight_cap = min(self._max_in_flight, self._in_flight_cap + 1)
                self._cond.notify_all()

    def in_flight_full(self) -> int:
        """After a 615: cap calls in flight at those still running; return how many run."""
        with self._cond:
            self._in_flight_cap = max(1, self._in_flight)
            return self._in_flight

    def window_full(self) -> None:
        """After a 606: treat the window as full until our oldest counted call ages out."""
        with self._cond:
            now = self._clock()
            # Other integrations' calls are invisible to us; with none of ours to age out,
            # a tenth of the window is a guess that the back-off ceiling of the caller bounds.
            until = self._done[0] + self._window if self._done else now + self._window / 10
            self._blocked_until = max(self._blocked_until, until)

    def pause_until(self, deadline: float) -> None:
        """Admit no call before `deadline` (clock time): the daily quota is spent."""
        with self._cond:
            self._blocked_until = max(self._blocked_until, deadline)

    def resume(self) -> None:
        """Lift any pause at once (tests, or an operator who raised the quota)."""
        with self._cond:
            self._blocked_until = 0.0
            self._cond.notify_all()


class ImportSlots:
    """Import jobs this daemon keeps in Marketo's queue: reserved, committed to a batch, freed.

    A create whose answer was lost may have queued a job we never learn the id of (a ghost).
    It is counted from then on and rides along with the next batch we do learn about: Marketo's
    queue is FIFO, so the ghost, created earlier, ends no later than that batch, and both
    slots free together. Ghosts not yet tied to a batch only count while some batch of ours is
    in flight (its end is what frees slots), so a run of lost answers can never leave `reserve`
    waiting for a release that nothing will bring.
    """

    def __init__(self, capacity: int, *, clock: Clock = time.monotonic) -> None:
        self._capacity = capacity
        self._ceiling = capacity
        self._clock = clock
        self._cond = threading.Condition()
        self._reserved = 0
        self._batches: dict[int, int] = {}  # batch id -> slots it frees (1 + ghosts before it)
        self._ghosts = 0  # possible jobs of lost answers, not yet tied to a batch
        self._releases = 0
        self._listeners: list[Callable[[], None]] = []
        self.waits = 0
        self.wait_seconds = 0.0

    @property
    def used(self) -> int:
        """Slots held: reservations, possible ghosts, and batches not yet seen terminal."""
        with self._cond:
            return self._used()

    @property
    def ceiling(self) -> int:
        """Slots we may hold now: our share of Marketo's queue, lowered while others fill it."""
        with self._cond:
            return self._ceiling

    def _used(self) -> int:
        ghosts = self._ghosts if self._batches else 0
        return self._reserved + ghosts + sum(self._batches.values())

    def _delay(self) -> float:
        if self._used() < self._ceiling:
            return 0.0
        return _STOP_POLL_SECONDS

    def reserve(self, stop: StopSignal | None = None) -> None:
        """Wait until a slot is free and hold it for a create that is about to be sent."""
        with self._cond:
            if self._delay() > 0:
                self.waits += 1
                self.wait_seconds += wait_until(self._cond, self._delay, stop, self._clock)
            self._reserved += 1

    def commit(self, batch_id: int) -> None:
        """The create succeeded: the reservation (and any ghost) becomes the batch's slot."""
        with self._cond:
            self._reserved -= 1
            self._batches[batch_id] = 1 + self._ghosts
            self._ghosts = 0

    def ghost(self) -> None:
        """A create's answer was lost: Marketo may hold a job of ours we have no id for."""
        with self._cond:
            self._ghosts += 1

    def cancel(self, *, refused: bool = False) -> None:
        """The create failed: give the reservation back.

        `refused`: Marketo refused it for good (a bad parameter, say); an earlier attempt whose
        answer was lost was refused just the same, so no ghost of it is left either.
        """
        with self._cond:
            self._reserved -= 1
            if refused:
                self._ghosts = 0
            self._freed()
        self._notify()

    def finish(self, batch_id: int) -> None:
        """The batch reached a terminal status: its slot is free."""
        with self._cond:
            if batch_id not in self._batches:
                return
            del self._batches[batch_id]
            self._freed()
        self._notify()

    def on_freed(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from any thread, no lock held) whenever a slot of ours frees."""
        with self._cond:
            self._listeners.append(callback)

    def _notify(self) -> None:
        with self._cond:
            listeners = list(self._listeners)
        for callback in listeners:
            callback()

    def adopt(self, batch_id: int) -> None:
        """Count a batch submitted before a restart that is still queued or importing."""
        with self._cond:
            self._batches[batch_id] = 1

    def queue_full(self) -> None:
        """After a 1016: others fill Marketo's queue; hold further creates until a slot frees."""
        with self._cond:
            self._ceiling = max(1, self._used())

    def wait_for_release(self, timeout: float, stop: StopSignal | None = None) -> bool:
        """Wait until one of our slots frees or `timeout` passes; True if one freed."""
        with self._cond:
            seen = self._releases
            deadline = self._clock() + timeout

            def ready() -> float:
                return 0.0 if self._releases != seen else deadline - self._clock()

            wait_until(self._cond, ready, stop, self._clock)
            return self._releases != seen

    def _freed(self) -> None:
        # A slot of ours freed one in Marketo's queue too: probe the full capacity again.
        self._releases += 1
        self._ceiling = self._capacity
        self._cond.notify_all()
