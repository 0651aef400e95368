"""Seeded fault injection: error answers, bare 5xx, dropped connections, lost answers, latency,
failed batches."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from dropbox_importer.sandbox.settings import FaultSettings

# Marketo's texts for the codes a fault can answer with.
FAULT_MESSAGES = {
    "502": "Bad Gateway",
    "604": "Request time-out",
    "608": "API Temporarily Unavailable",
    "611": "System error",
    "614": "Invalid Subscription",
    "713": "Transient Error",
    # Not transient, but injectable to see a client stop for them.
    "603": "Access denied",
    "607": "Daily quota reached",
}
HTTP_5XX = (500, 502, 503, 504)


@dataclass(frozen=True)
class Fault:
    """What to do to one call; every field empty means: nothing."""

    latency_seconds: float = 0.0
    drop: bool = False
    http_status: int | None = None
    code: str | None = None
    # The call runs, then its connection is closed without an answer.
    lose_answer: bool = False


class FaultInjector:
    """Draws faults from one seeded random stream; settings can change while it runs."""

    def __init__(self, settings: FaultSettings, default_codes: tuple[str, ...]) -> None:
        """Start with these settings and their seed; `default_codes` when they name none."""
        self._lock = threading.Lock()
        self._default_codes = default_codes
        self._settings = settings
        self._random = random.Random(settings.seed)
        # Set when settings change, so calls sleeping on an old latency wake up at once.
        self._changed = threading.Event()

    @property
    def settings(self) -> FaultSettings:
        """The settings in force."""
        return self._settings

    def update(self, settings: FaultSettings) -> None:
        """Replace the settings, re-seed the stream and wake every delayed call."""
        with self._lock:
            self._settings = settings
            self._random = random.Random(settings.seed)
            changed, self._changed = self._changed, threading.Event()
        changed.set()

    def applies(self, endpoint: str) -> bool:
        """Whether faults are injected on this endpoint."""
        chosen = self._settings.endpoints
        return endpoint != "identity" if chosen is None else endpoint in chosen

    def draw(self, endpoint: str) -> Fault:
        """The fault (possibly none) for one call on this endpoint."""
        if not self.applies(endpoint):
            return Fault()
        with self._lock:
            s, rnd = self._settings, self._random
            latency = s.latency_seconds if s.latency_rate and rnd.random() < s.latency_rate else 0
            if s.drop_rate and rnd.random() < s.drop_rate:
                return Fault(latency_seconds=latency, drop=True)
            if s.http_5xx_rate and rnd.random() < s.http_5xx_rate:
                return Fault(latency_seconds=latency, http_status=rnd.choice(HTTP_5XX))
            if s.rate and rnd.random() < s.rate and endpoint != "identity":
                return Fault(latency_seconds=latency, code=rnd.choice(self.codes))
            lost = bool(s.lost_answer_rate) and rnd.random() < s.lost_answer_rate
            return Fault(latency_seconds=latency, lose_answer=lost)

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes a coded fault is drawn from."""
        return self._settings.codes or self._default_codes

    def batch_fails(self, endpoint: str = "create") -> bool:
        """Whether a batch newly created on this endpoint is doomed to end `Failed`."""
        if not self.applies(endpoint):
            return False
        with self._lock:
            rate = self._settings.failed_batch_rate
            return bool(rate) and self._random.random() < rate

    def delay(self, seconds: float) -> None:
        """Wait out an injected latency; cut short when the fault settings change."""
        self._changed.wait(seconds)
