"""OAuth client-credentials tokens: one live token per client, reused until it expires."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class TokenCheck(Enum):
    """The outcome of checking a bearer token; values are Marketo's error codes."""

    VALID = ""
    MISSING = "600"
    INVALID = "601"
    EXPIRED = "602"


@dataclass(frozen=True)
class IssuedToken:
    """An access token and its remaining lifetime in whole seconds."""

    access_token: str
    expires_in: int


class TokenIssuer:
    """Issues tokens for one client and checks the ones presented by calls."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        lifetime_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Remember the one valid credential pair and the token lifetime."""
        self._client_id = client_id
        self._client_secret = client_secret
        self._lifetime = lifetime_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}  # every token ever issued -> when it expires
        self._current: str | None = None

    def issue(self, client_id: str, client_secret: str) -> IssuedToken | None:
        """The live token (a new one if none), or None when the credentials are wrong."""
        good_id = hmac.compare_digest(client_id.encode(), self._client_id.encode())
        good_secret = hmac.compare_digest(client_secret.encode(), self._client_secret.encode())
        if not (good_id and good_secret):
            return None
        now = self._clock()
        with self._lock:
            token = self._current
            if token is None or self._expiry[token] <= now:
                token = secrets.token_hex(16)
                self._expiry[token] = now + self._lifetime
                self._current = token
            remaining = self._expiry[token] - now
        return IssuedToken(token, max(0, int(remaining)))

    def appears_in(self, text: str) -> bool:
        """True if any token ever issued occurs in `text` (a URL, say)."""
        with self._lock:
            return any(token in text for token in self._expiry)

    def check(self, token: str | None) -> TokenCheck:
        """Whether a presented bearer token is valid, missing, unknown or expired."""
        if not token:
            return TokenCheck.MISSING
        with self._lock:
            expiry = self._expiry.get(token)
        if expiry is None:
            return TokenCheck.INVALID
        if expiry <= self._clock():
            return TokenCheck.EXPIRED
        return TokenCheck.VALID
