"""Telling someone a file settled: a webhook, a command, e-mail; never blocking the daemon.

`Notifier.file_settled(event)` only puts deliveries on a bounded schedule and returns; one
worker thread delivers them. A failed delivery is tried again after a growing pause (a failing
webhook waits on the schedule, not in the worker, so other deliveries go ahead meanwhile) and
is given up after its drop box's `tries` with a logged `notification_failed`. Nothing here
raises into the caller.

Secrets: the event carries no credential (keys that look like one are removed), a webhook URL
is logged as its scheme and host only (chat services put their token in the path), and a
command gets a clean environment: the event's DBI_* variables plus PATH, LANG, LC_ALL, TZ and
HOME, never the daemon's own environment, which may hold a client secret.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog

from dropbox_importer.config.model import NotifyConfig, SmtpConfig
from dropbox_importer.logs import SECRET_KEYS
from dropbox_importer.observe import mail
from dropbox_importer.observe.errors import DeliveryError

__all__ = ["DeliveryError", "Notifier", "settled_event"]

log = structlog.get_logger(__name__)

# Variables a command inherits from the daemon; everything else it sees is the event's.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HOME")
# 4xx answers worth another try: time-out and rate limit. Any other 4xx is the request's fault.
RETRYABLE_4XX = frozenset({408, 429})
STDERR_LOGGED = 500


def settled_event(destination: Path) -> dict[str, Any]:
    """The event of a file settled at `destination`, read from its `<file>.result.json`."""
    result_json = destination.with_name(f"{destination.name}.result.json")
    doc = json.loads(result_json.read_bytes())
    return {
        "dropbox": doc["dropbox"],
        "route": doc["route"],
        "file": doc["file"],
        "outcome": doc["outcome"],
        "reason": doc["reason"],
        "destination": str(destination),
        "result_json": str(result_json),
        "counts": doc["counts"],
        "batch_ids": [p["batch_id"] for p in doc["parts"] if p.get("batch_id") is not None],
        "import": doc["import"],
        "finished": doc["timings"]["finished"],
    }


def scrubbed(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event without any key that looks like a credential, at any depth."""
    out: dict[str, Any] = {}
    for key, value in event.items():
        if str(key).lower() in SECRET_KEYS:
            continue
        out[key] = scrubbed(value) if isinstance(value, Mapping) else value
    return out


def event_environment(event: Mapping[str, Any]) -> dict[str, str]:
    """The event as DBI_* variables: scalars by key, `counts` flattened, lists space-joined."""
    env: dict[str, str] = {}
    flat: dict[str, Any] = {**event, **dict(event.get("counts") or {})}
    for key, value in flat.items():
        if isinstance(value, Mapping):
            continue
        if isinstance(value, list | tuple):
            value = " ".join(str(v) for v in value)
        env[f"DBI_{str(key).upper()}"] = "" if value is None else str(value)
    return env


def webhook_label(url: str) -> str:
    """What a log line may say about a webhook: its scheme and host, never its path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def post_webhook(url: str, event: Mapping[str, Any], timeout: float) -> None:
    """POST the event as JSON; DeliveryError unless the answer is 2xx."""
    try:
        response = requests.post(url, json=event, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        # The exception text quotes the URL; only its class name is kept.
        raise DeliveryError(f"no answer ({type(exc).__name__})") from None
    with response:
        if 200 <= response.status_code < 300:
            return
        final = 400 <= response.status_code < 500 and response.status_code not in RETRYABLE_4XX
        raise DeliveryError(f"HTTP {response.status_code}", final=final)


def run_command(argv: tuple[str, ...], event: Mapping[str, Any], timeout: float) -> None:
    """Run argv with the event as JSON on stdin and DBI_* variables; DeliveryError unless exit 0."""
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update(event_environment(event))
    try:
        done = subprocess.run(
            list(argv),
            input=json.dumps(event).encode(),
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DeliveryError(f"still running after {timeout:g} s; it was killed") from None
    except OSError as exc:
        raise DeliveryError(f"cannot run {argv[0]}: {exc.strerror}", final=True) from None
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace").strip()[-STDERR_LOGGED:]
        raise DeliveryError(f"exit status {done.returncode}: {stderr}")


def _file_of(event: Mapping[str, Any]) -> dict[str, Any]:
    """The file an event is about, as every per-file log event names it."""
    route, name = event.get("route") or "", event.get("file")
    return {
        "dropbox": event.get("dropbox"),
        "route": route,
        "file": f"{route}/{name}" if route else name,
        "file_id": event.get("file_id"),
    }


@dataclass
class Delivery:
    """One event for one target, with the tries it has left."""

    kind: str  # webhook | command | email
    event: dict[str, Any]
    policy: NotifyConfig
    attempt: int = 0
    smtp: SmtpConfig | None = None  # the server, for an e-mail

    def target(self) -> str:
        """The target as a log line may name it (an e-mail: its server, not the addresses)."""
        if self.kind == "webhook":
            return webhook_label(self.policy.webhook or "")
        if self.kind == "email":
            return f"smtp://{self.smtp.host}:{self.smtp.port}" if self.smtp else "smtp://?"
        return (self.policy.command or ("?",))[0]

    def send(self) -> None:
        """Try once; DeliveryError if it failed."""
        timeout = self.policy.timeout_seconds
        if self.kind == "webhook":
            post_webhook(self.policy.webhook or "", self.event, timeout)
        elif self.kind == "email":
            if self.smtp is None:
                raise DeliveryError("no smtp section in the config", final=True)
            mail.send(self.smtp, self.policy.email or (), self.event)
        else:
            run_command(self.policy.command or (), self.event, timeout)


@dataclass(frozen=True)
class Backoff:
    """The pause before try n + 1: first, doubled each time, capped."""

    first_seconds: float = 2.0
    max_seconds: float = 300.0

    def pause(self, attempt: int) -> float:
        """Seconds to wait after the `attempt`-th failed try (1-based)."""
        return float(min(self.first_seconds * 2 ** (attempt - 1), self.max_seconds))


class Notifier:
    """Delivers settle events on one worker thread; `file_settled` returns at once."""

    def __init__(
        self,
        policy: Callable[[str], NotifyConfig | None],
        *,
        smtp: Callable[[], SmtpConfig | None] = lambda: None,
        max_pending: int = 1000,
        backoff: Backoff | None = None,
    ) -> None:
        self._policy = policy  # asked per event, so a reloaded config applies to the next file
        self._smtp = smtp
        self._max_pending = max_pending
        self._backoff = backoff or Backoff()
        self._due: list[tuple[float, int, Delivery]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="notify", daemon=True)

    def start(self) -> Notifier:
        """Start the worker thread."""
        self._thread.start()
        return self

    def file_settled(self, event: Mapping[str, Any]) -> bool:
        """Schedule the event's deliveries if its drop box asks for them; never blocks or raises."""
        try:
            return self._schedule(event)
        except Exception:
            log.exception("notification_not_scheduled", dropbox=event.get("dropbox"))
            return False

    def _schedule(self, event: Mapping[str, Any]) -> bool:
        policy = self._policy(str(event.get("dropbox")))
        if policy is None or event.get("outcome") not in policy.when:
            return False
        clean = scrubbed(event)
        targets = (
            ("webhook", policy.webhook),
            ("command", policy.command),
            ("email", policy.email),
        )
        kinds = [kind for kind, on in targets if on]
        smtp = self._smtp() if policy.email else None
        with self._cond:
            if self._stopping or len(self._due) + len(kinds) > self._max_pending:
                log.error(
                    "notification_dropped",
                    **_file_of(clean),
                    reason="stopping" if self._stopping else "too many notifications pending",
                )
                return False
            now = time.monotonic()
            for kind in kinds:
                delivery = Delivery(kind, clean, policy, smtp=smtp)
                heapq.heappush(self._due, (now, next(self._order), delivery))
            self._cond.notify()
        return True

    @property
    def pending(self) -> int:
        """Deliveries not yet made or given up."""
        with self._cond:
            return len(self._due)

    def stop(self, timeout: float = 5.0) -> None:
        """Try each pending delivery once more, no pauses, for at most `timeout`, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)
        with self._cond:
            left, self._due = self._due, []
        for _, _, delivery in left:
            self._give_up(delivery, "the daemon stopped first")

    def _work(self) -> None:
        while (delivery := self._next()) is not None:
            delivery.attempt += 1
            try:
                delivery.send()
            except DeliveryError as exc:
                self._failed(delivery, exc)
            except Exception as exc:  # the worker must outlive any one delivery
                self._failed(delivery, DeliveryError(f"{type(exc).__name__}", final=True))
            else:
                log.info(
                    "notification_sent",
                    kind=delivery.kind,
                    target=delivery.target(),
                    **_file_of(delivery.event),
                    attempt=delivery.attempt,
                )

    def _next(self) -> Delivery | None:
        """The next due delivery, waiting for one; None once stopping and nothing is left."""
        with self._cond:
            while True:
                if self._stopping:
                    # At stop, pending deliveries get one last try each, without their pause.
                    return heapq.heappop(self._due)[2] if self._due else None
                wait = self._due[0][0] - time.monotonic() if self._due else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._due)[2]
                self._cond.wait(wait)

    def _failed(self, delivery: Delivery, exc: DeliveryError) -> None:
        if exc.final or delivery.attempt >= delivery.policy.tries:
            self._give_up(delivery, str(exc))
            return
        pause = self._backoff.pause(delivery.attempt)
        log.warning(
            "notification_retry",
            kind=delivery.kind,
            target=delivery.target(),
            **_file_of(delivery.event),
            attempt=delivery.attempt,
            error=str(exc),
            retry_in_seconds=pause,
        )
        with self._cond:
            if self._stopping:
                self._give_up(delivery, f"{exc}; the daemon is stopping")
                return
            entry = (time.monotonic() + pause, next(self._order), delivery)
            heapq.heappush(self._due, entry)

    @staticmethod
    def _give_up(delivery: Delivery, reason: str) -> None:
        log.error(
            "notification_failed",
            kind=delivery.kind,
            target=delivery.target(),
            **_file_of(delivery.event),
            outcome=delivery.event.get("outcome"),
            attempts=delivery.attempt,
            reason=reason,
        )
