"""Static lists held by import jobs: ours until our batch ends, another's after a 1019.

Marketo refuses a create whose listId is being imported to with 1019 "Import in progress"
(whether a job merely queued for the list already blocks is uncertain; the strict reading is
yes). So this client never has two jobs of its own for one listId in Marketo's queue: a list is
taken before its create is sent and held until that batch is seen Complete or Failed (or is
confirmed lost). A 1019 can still come from another integration's job: the list is then left
alone for a back-off that grows with each refusal and resets at the next accepted create.
Nothing here blocks: callers ask how long a list is held and do other work meanwhile.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable

from dropbox_importer.marketo.policy import Backoff

Clock = Callable[[], float]

# A list held by one of our own batches frees only when that batch ends: no time tells.
HELD_BY_US = math.inf


class ListHolds:
    """Which lists our jobs hold, and which another integration was seen holding."""

    def __init__(
        self,
        first_wait: float = 5.0,
        max_wait: float = 30.0,
        *,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._backoff = Backoff(first_wait, max_wait)
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._ours: dict[int, int | None] = {}  # list -> our batch (None: create on the wire)
        self._batch_list: dict[int, int] = {}  # our batch -> its list
        self._refused_until: dict[int | None, float] = {}
        self._refusals: dict[int | None, int] = {}
        self._listeners: list[Callable[[], None]] = []

    def wait_seconds(self, list_id: int | None) -> float:
        """0 when a create for `list_id` may go now; HELD_BY_US; else seconds of back-off left."""
        with self._lock:
            return self._wait(list_id)

    def _wait(self, list_id: int | None) -> float:
        if list_id is not None and list_id in self._ours:
            return HELD_BY_US
        return max(0.0, self._refused_until.get(list_id, 0.0) - self._clock())

    def take(self, list_id: int | None) -> float:
        """Hold `list_id` for a create about to be sent and return 0; or return why not (as
        `wait_seconds`). A create without a list holds nothing."""
        with self._lock:
            wait = self._wait(list_id)
            if wait == 0 and list_id is not None:
                self._ours[list_id] = None
            return wait

    def commit(self, list_id: int | None, batch_id: int) -> None:
        """The create was accepted: the list is held by `batch_id` until it ends."""
        with self._lock:
            self._refusals.pop(list_id, None)
            self._refused_until.pop(list_id, None)
            if list_id is not None:
                self._ours[list_id] = batch_id
                self._batch_list[batch_id] = list_id

    def cancel(self, list_id: int | None) -> None:
        """The create was not accepted (and no 1019): give the list back."""
        with self._lock:
            if list_id is not None and self._ours.get(list_id, 0) is None:
                del self._ours[list_id]
        self._notify()

    def refused(self, list_id: int | None) -> float:
        """Marketo answered 1019: another job holds the list. Return the back-off started."""
        with self._lock:
            if list_id is not None and self._ours.get(list_id, 0) is None:
                del self._ours[list_id]
            attempt = self._refusals.get(list_id, 0)
            self._refusals[list_id] = attempt + 1
            delay = Backoff(self._backoff.base, self._backoff.ceiling, attempt).delay(self._rng)
            self._refused_until[list_id] = self._clock() + delay
            return delay

    def adopt(self, list_id: int, batch_id: int) -> None:
        """After a restart: a batch of ours still queued or importing holds its list."""
        with self._lock:
            self._ours[list_id] = batch_id
            self._batch_list[batch_id] = list_id

    def finish(self, batch_id: int) -> None:
        """The batch ended (or is confirmed lost): its list is free again."""
        with self._lock:
            list_id = self._batch_list.pop(batch_id, None)
            if list_id is None or self._ours.get(list_id) != batch_id:
                return
            del self._ours[list_id]
        self._notify()

    def held(self) -> dict[int, int | None]:
        """The lists our jobs hold now, and by which batch (None: its create is on the wire)."""
        with self._lock:
            return dict(self._ours)

    def on_freed(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from any thread, no lock held) whenever a list of ours frees."""
        with self._lock:
            self._listeners.append(callback)

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback()
