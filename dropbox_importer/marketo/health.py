"""One instance's health as its calls go: fine, failing, down for long, paused, or stuck on us.

The client reports every attempt here; this decides what the on-call admin is told and how
loudly. A retry is routine (info) for its first attempts, a warning from the third on, and an
error once the instance has been failing for `outage_error_seconds`. Each change of state is
one event, never repeated while the state lasts:

    ok ──(3 failures in a row)──> unhealthy ──(outage_error_seconds)──> outage
     ^                                │                                   │
     └────────── instance_recovered ──┴───────────────────────────────────┘
    ok ──(access denied, credentials refused)──> needs_operator ──(a call works)──> ok
    ok ──(607, daily quota spent)──> paused_quota ──(a call works)──> ok

`instance_unhealthy` and `instance_recovered` are warnings, so a `log_level: warning` still
sees both halves of the pair; `instance_outage` and `instance_needs_operator` are errors.
`snapshot()` is what the daemon writes to its journal for `status` and the status page.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog

# Failed calls in a row (of any endpoint) before the instance counts as unhealthy.
UNHEALTHY_AFTER_FAILURES = 3
# A call's retries are logged at warning from this attempt on (attempts count from 0).
WARN_FROM_ATTEMPT = 2
DEFAULT_OUTAGE_ERROR_SECONDS = 300.0


class HealthState(StrEnum):
    """Where an instance stands, as `status` shows it."""

    OK = "ok"
    UNHEALTHY = "unhealthy"  # calls keep failing; retried
    OUTAGE = "outage"  # failing for longer than outage_error_seconds; still retried
    NEEDS_OPERATOR = "needs_operator"  # access denied or credentials refused; retried slowly
    PAUSED_QUOTA = "paused_quota"  # the daily quota is spent; waits for its reset


# Why creates wait while the instance itself is fine.
QUEUE_FULL = "queue_full"  # Marketo's import queue (or our share of it) is full
LIST_BUSY = "list_busy"  # another import into the same static list runs


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _moment(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) and text else None


@dataclass(frozen=True)
class HealthSnapshot:
    """An instance's health at one moment: what `status` and the status page show."""

    instance: str
    state: HealthState = HealthState.OK
    since: datetime | None = None  # when the current state began (None: ok from the start)
    last_call_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    failures: int = 0  # failed calls in a row
    paused_until: datetime | None = None
    operator_reason: str | None = None
    waiting_for: str | None = None  # QUEUE_FULL, LIST_BUSY or None
    waiting_since: datetime | None = None
    queued_jobs: int = 0
    max_queued_jobs: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; times as ISO 8601 UTC."""
        out = asdict(self)
        out["state"] = self.state.value
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = _iso(value)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HealthSnapshot:
        """The snapshot `to_json` wrote; unknown keys (from a newer daemon) are ignored."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("since", "last_call_at", "last_ok_at", "last_error_at", "paused_until"):
            known[key] = _moment(known.get(key))
        known["waiting_since"] = _moment(known.get("waiting_since"))
        known["state"] = HealthState(known.get("state", "ok"))
        return cls(**known)


def _now() -> datetime:
    return datetime.now(UTC)


class InstanceHealth:
    """Thread-safe tracker of one instance's calls; logs each change of state once."""

    def __init__(
        self,
        instance: str,
        *,
        outage_error_seconds: float = DEFAULT_OUTAGE_ERROR_SECONDS,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.instance = instance
        self.outage_error_seconds = outage_error_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._snap = HealthSnapshot(instance)
        self._first_failure: datetime | None = None
        self.version = 0  # grows at every change: the daemon writes the journal when it moved
        self._log = structlog.get_logger("dropbox_importer.marketo").bind(instance=instance)

    def snapshot(self, *, queued_jobs: int = 0, max_queued_jobs: int = 0) -> HealthSnapshot:
        """The health now, with the client's queue slots filled in."""
        with self._lock:
            return replace(self._snap, queued_jobs=queued_jobs, max_queued_jobs=max_queued_jobs)

    def _set(self, **changes: Any) -> None:
        self._snap = replace(self._snap, **changes)
        self.version += 1

    # -- what the client reports ----------------------------------------------------------

    def succeeded(self) -> None:
        """A call got a good answer: the instance works (again)."""
        now = self._clock()
        with self._lock:
            previous = self._snap
            self._first_failure = None
            if previous.state is HealthState.OK:
                self._set(last_call_at=now, last_ok_at=now, failures=0)
                return
            self._set(
                state=HealthState.OK,
                since=now,
                last_call_at=now,
                last_ok_at=now,
                failures=0,
                paused_until=None,
                operator_reason=None,
            )
        began = previous.since or now
        self._log.warning(
            "instance_recovered",
            was=previous.state.value,
            down_seconds=round((now - began).total_seconds(), 1),
            failures=previous.failures,
        )

    def failed(self, error: str, *, transient: bool = True) -> None:
        """A call failed; `transient` failures (5xx, dropped, time-outs) make an outage."""
        now = self._clock()
        event: tuple[str, str, dict[str, Any]] | None = None
        with self._lock:
            failures = self._snap.failures + 1
            self._set(last_call_at=now, last_error_at=now, last_error=error, failures=failures)
            if not transient:
                return
            if self._first_failure is None:
                self._first_failure = now
            state = self._snap.state
            began = self._first_failure
            if state is HealthState.OK and failures >= UNHEALTHY_AFTER_FAILURES:
                self._set(state=HealthState.UNHEALTHY, since=began)
                event = ("warning", "instance_unhealthy", {"failures": failures})
            elif (
                state is HealthState.UNHEALTHY
                and (now - began).total_seconds() >= self.outage_error_seconds
            ):
                self._set(state=HealthState.OUTAGE)
                event = ("error", "instance_outage", {"failures": failures})
        if event is not None:
            level, name, extra = event
            getattr(self._log, level)(
                name,
                error=error,
                since=_iso(began),
                outage_error_seconds=self.outage_error_seconds,
                **extra,
            )

    def needs_operator(self, reason: str, *, code: str | None = None) -> None:
        """Access denied or credentials refused: nothing but a person can fix it."""
        now = self._clock()
        with self._lock:
            if self._snap.state is HealthState.NEEDS_OPERATOR:
                self._set(last_call_at=now, last_error_at=now, last_error=reason)
                return
            self._set(
                state=HealthState.NEEDS_OPERATOR,
                since=now,
                last_call_at=now,
                last_error_at=now,
                last_error=reason,
                operator_reason=reason,
            )
        self._log.error("instance_needs_operator", code=code, reason=reason)

    def paused_for_quota(self, until: datetime) -> None:
        """Marketo said the daily quota is spent (607): no call until `until`."""
        now = self._clock()
        with self._lock:
            self._set(
                state=HealthState.PAUSED_QUOTA,
                since=self._snap.since if self._snap.state is HealthState.PAUSED_QUOTA else now,
                last_call_at=now,
                last_error_at=now,
                last_error="daily API quota spent (607)",
                paused_until=until,
            )

    def waiting(self, kind: str) -> None:
        """Creates wait: the import queue is full (QUEUE_FULL), or the list is busy."""
        with self._lock:
            if self._snap.waiting_for != kind:
                self._set(waiting_for=kind, waiting_since=self._clock())

    def waiting_over(self) -> None:
        """A create went through: nothing holds creates back any more."""
        with self._lock:
            if self._snap.waiting_for is not None:
                self._set(waiting_for=None, waiting_since=None)

    def retry_level(self, attempt: int) -> str:
        """How loudly to log a retry: info, warning from the third attempt, error in an outage."""
        with self._lock:
            state = self._snap.state
        if state is HealthState.OUTAGE:
            return "error"
        if state is HealthState.UNHEALTHY or attempt >= WARN_FROM_ATTEMPT:
            return "warning"
        return "info"
