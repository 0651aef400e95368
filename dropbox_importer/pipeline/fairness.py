"""The order in which claimed files are submitted: turns across drop boxes, FIFO per list.

Drop boxes that share a Marketo instance share its import queue; one partner's 500 files must
not starve another partner's one file. Each drop box keeps its own FIFO and the submitter takes
one file from each box in turn.

Some files must wait for something that has nothing to do with the others: a static list that
one of our batches (or another integration's, after a 1019) is importing into. `get(hold=...)`
then passes over them and takes the next file in turn that may go, so files of other lists, or
of no list, are never stuck behind them. Files waiting on one thing keep their order among
themselves, as long as `hold` gives them the same answer (files of one list do); a file put
back with `put_front` goes before the rest of its drop box again.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

# Seconds an item must still wait: 0 means it may go now, math.inf until a `wake()`.
Hold = Callable[[T], float]


class FairQueue(Generic[T]):
    """A blocking queue that round-robins across keys and is FIFO within each key."""

    def __init__(self) -> None:
        self._lanes: OrderedDict[str, deque[T]] = OrderedDict()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, key: str, item: T) -> None:
        """Append `item` to the lane of `key`."""
        with self._cond:
            self._lanes.setdefault(key, deque()).append(item)
            self._cond.notify()

    def put_front(self, key: str, item: T) -> None:
        """Put `item` back at the head of its lane: it was taken, but cannot go on yet.

        The lane keeps its place in the turn order (or joins at the back if it had emptied).
        """
        with self._cond:
            self._lanes.setdefault(key, deque()).appendleft(item)
            self._cond.notify()

    def wake(self) -> None:
        """Something a held item waits for changed (a list freed): look at the holds again."""
        with self._cond:
            self._cond.notify_all()

    def get(
        self,
        timeout: float | None = None,
        *,
        hold: Hold[T] | None = None,
        key: Callable[[T], Hashable] | None = None,
    ) -> T | None:
        """The next item in turn that may go, or None when closed or when `timeout` passes.

        Without `hold` every item may go. `hold` is called with the queue's lock held: it must
        be quick and must not call back into the queue. With `key`, items of one key share the
        hold of the first of them on each look (thousands of files of one held list cost one
        `hold` call, not thousands).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                item, soonest = self._take(hold, key)
                if item is not None:
                    return item[0]
                remaining = math.inf if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wait = min(remaining, soonest)
                self._cond.wait(None if math.isinf(wait) else wait)
            return None

    def _take(
        self, hold: Hold[T] | None, key: Callable[[T], Hashable] | None
    ) -> tuple[tuple[T] | None, float]:
        """(the first item in turn that may go, wrapped; else None and the soonest hold)."""
        soonest = math.inf
        holds: dict[Hashable, float] = {}
        for name, lane in self._lanes.items():
            for position, item in enumerate(lane):
                if hold is None:
                    wait = 0.0
                elif key is None:
                    wait = hold(item)
                else:
                    group = key(item)
                    wait = holds.get(group, -1.0)
                    if wait < 0:
                        wait = holds[group] = hold(item)
                if wait <= 0:
                    del lane[position]
                    # The lane goes to the back of the turn order, or away once empty.
                    del self._lanes[name]
                    if lane:
                        self._lanes[name] = lane
                    return (item,), 0.0
                soonest = min(soonest, wait)
        return None, soonest

    def lane(self, key: str) -> list[T]:
        """A copy of the items waiting in the lane of `key`, in order."""
        with self._cond:
            return list(self._lanes.get(key, ()))

    def waiting(self) -> list[T]:
        """A copy of every item waiting, lane by lane."""
        with self._cond:
            return [item for lane in self._lanes.values() for item in lane]

    def remove(self, key: str, items: Collection[T]) -> set[T]:
        """Take `items` out of the lane of `key` (they go with one already taken); return those
        that were there. The lane keeps its place in the turn order."""
        wanted = set(items)
        with self._cond:
            lane = self._lanes.get(key)
            if lane is None or not wanted:
                return set()
            kept = deque(item for item in lane if item not in wanted)
            found = wanted.intersection(lane)
            if kept:
                self._lanes[key] = kept  # assigning an existing key keeps its position
            else:
                del self._lanes[key]
            return found

    def close(self) -> None:
        """Wake every waiting `get` with None; later gets return None at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return sum(len(lane) for lane in self._lanes.values())
