"""The order in which claimed files are submitted: FIFO within a drop box, turns across boxes.

Drop boxes that share a Marketo instance share its import queue; one partner's 500 files must
not starve another partner's one file. Each drop box keeps its own FIFO and the submitter takes
one file from each box in turn.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")


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

    def get(self, timeout: float | None = None) -> T | None:
        """The next item in turn, or None when closed or when `timeout` passes."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._lanes, timeout):
                return None
            if self._closed:
                return None
            key, lane = next(iter(self._lanes.items()))
            item = lane.popleft()
            # The lane goes to the back of the turn order, or away once empty.
            del self._lanes[key]
            if lane:
                self._lanes[key] = lane
            return item

    def close(self) -> None:
        """Wake every waiting `get` with None; later gets return None at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return sum(len(lane) for lane in self._lanes.values())
