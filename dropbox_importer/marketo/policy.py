"""The retry policy as data: a table from Marketo code or HTTP condition to action.

The client applies it in exactly one place (`MarketoClient._call`); call sites never loop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from dropbox_importer.marketo.errors import (
    AccessDenied,
    ClientBug,
    MarketoError,
    RequestRejected,
    UnknownCode,
)


class Action(Enum):
    """What the client does after one attempt of a call."""

    BACKOFF = "backoff"  # transient fault: exponential back-off with jitter, no count limit
    REFRESH_TOKEN = "token_refresh"  # noqa: S105 (not a secret) 601/602: fetch a new token, retry once per token
    WAIT_WINDOW = "wait_window"  # 606: the rolling window is full; wait for it, not a blind sleep
    WAIT_IN_FLIGHT = "wait_in_flight"  # 615: too many concurrent calls; back off
    PAUSE_QUOTA = "pause_quota"  # 607: the daily quota is spent; pause until it resets
    WAIT_QUEUE = "wait_queue"  # 1016: the import queue is full; wait for a slot
    # 1019: the create's listId is being imported to. The caller waits for that list while
    # other lists go ahead, so the client raises ImportInProgress rather than wait itself.
    WAIT_LIST = "wait_list"
    FAIL = "fail"  # permanent: raise the typed error of the code


# Conditions that are not Marketo codes but still need an action.
HTTP_5XX = "http_5xx"
DROPPED = "dropped"  # connection refused, reset or closed before a full answer
TIMEOUT = "timeout"  # connect or read time-out
HTTP_429 = "http_429"

ACTIONS: dict[str, Action] = {
    **dict.fromkeys(("502", "604", "608", "611", "614", "713"), Action.BACKOFF),
    **dict.fromkeys((HTTP_5XX, DROPPED, TIMEOUT), Action.BACKOFF),
    "601": Action.REFRESH_TOKEN,
    "602": Action.REFRESH_TOKEN,
    "606": Action.WAIT_WINDOW,
    HTTP_429: Action.WAIT_WINDOW,
    "615": Action.WAIT_IN_FLIGHT,
    "607": Action.PAUSE_QUOTA,
    "1016": Action.WAIT_QUEUE,
    "1019": Action.WAIT_LIST,
}

# Permanent codes and the exception each raises. A Marketo code listed nowhere raises
# UnknownCode (the one call fails, with Marketo's code and message); an answer without a
# code (malformed, an unexpected HTTP status) is a ClientBug.
FAILURES: dict[str, type[MarketoError]] = {
    "603": AccessDenied,
    **dict.fromkeys(("609", "610", "612", "613"), ClientBug),
    **dict.fromkeys(("1003", "1006", "1008"), RequestRejected),
}


def action_for(condition: str) -> Action:
    """The action for a Marketo code or a transport condition; unknown ones fail loudly."""
    return ACTIONS.get(condition, Action.FAIL)


def error_type_for(code: str | None) -> type[MarketoError]:
    """The exception class a permanent code raises (None: no Marketo code at all)."""
    if code is None:
        return ClientBug
    return FAILURES.get(code, UnknownCode)


@dataclass(frozen=True)
class Backoff:
    """Immutable exponential back-off state: `next()` returns the state after one more wait."""

    base: float = 0.5
    ceiling: float = 60.0
    attempt: int = 0

    def next(self) -> Backoff:
        """The state after this wait; the attempt count only grows."""
        return replace(self, attempt=self.attempt + 1)

    def cap(self) -> float:
        """The upper bound of this attempt's delay: base·2^attempt, never above the ceiling."""
        # min() before the power would overflow for very long outages.
        return min(self.ceiling, self.base * 2.0 ** min(self.attempt, 32))

    def delay(self, rng: random.Random | None = None) -> float:
        """This attempt's delay: "equal jitter", between half the cap and the cap."""
        cap = self.cap()
        return cap / 2 + (rng or random).uniform(0, cap / 2)


MARKETO_TIME = ZoneInfo("America/Chicago")


def quota_resets_at(now: datetime) -> datetime:
    """When a spent daily quota (607) resets: the next midnight, US Central time."""
    local = now.astimezone(MARKETO_TIME)
    # Add a day to the date, not 24 h to the instant: a DST change makes some days 23 or 25 h.
    tomorrow = local.date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0, 0), tzinfo=MARKETO_TIME)
