"""The instance's access token: fetched lazily, shared by all threads, refreshed ahead of expiry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import structlog

from dropbox_importer.marketo import transport
from dropbox_importer.marketo.errors import AuthenticationError, ClientBug
from dropbox_importer.marketo.settings import InstanceSettings

IDENTITY_PATH = "/identity/oauth/token"


class IdentityUnavailableError(Exception):
    """The identity service could not answer (dropped connection, time-out, HTTP 5xx): retry."""


@dataclass(frozen=True)
class Token:
    """A bearer token and the clock time after which it is no longer used."""

    value: str = ""
    use_until: float = 0.0
    expires_at: float = 0.0


class TokenSource:
    """Hands out the current token; fetches one when none is fresh enough."""

    def __init__(
        self,
        settings: InstanceSettings,
        session: requests.Session,
        headers: dict[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._session = session
        self._headers = headers
        self._clock = clock
        self._lock = threading.Lock()
        self._token = Token()
        self._log = structlog.get_logger("dropbox_importer.marketo").bind(instance=settings.name)
        self.fetches = 0

    def get(self) -> str:
        """The current token, fetched first if missing or close to expiry."""
        with self._lock:
            if not self._token.value or self._clock() >= self._token.use_until:
                self._token = self._fetch(self._token)
            return self._token.value

    def invalidate(self, value: str) -> None:
        """Marketo said `value` is invalid or expired (601/602): the next get() fetches anew."""
        with self._lock:
            # Only the token that failed: a thread holding an older one must not throw away the
            # fresh one another thread just fetched.
            if self._token.value == value:
                self._token = Token()

    def _fetch(self, previous: Token) -> Token:
        settings = self._settings
        started = self._clock()
        # A POST form body keeps the client secret out of every URL (and so out of proxy logs
        # and of the text of requests' exceptions, which quote URLs).
        form = {
            "grant_type": "client_credentials",
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
        }
        self.fetches += 1
        try:
            response = self._session.post(
                settings.base_url + IDENTITY_PATH,
                data=form,
                headers=self._headers,
                timeout=(settings.connect_timeout, settings.read_timeout),
            )
        except requests.RequestException as exc:
            # The cause in words (refused, DNS, time-out); never the URL, which holds no secret
            # here (a POST body) but is the instance's address all the same.
            raise IdentityUnavailableError(transport.describe(exc)) from None
        if response.status_code >= 500:
            raise IdentityUnavailableError(f"HTTP {response.status_code}")
        body = _json_or_none(response)
        if response.status_code in (400, 401, 403):
            detail = body.get("error_description") if body else None
            raise AuthenticationError(
                settings.name,
                None,
                f"the identity service refused client id {settings.client_id!r} "
                f"(HTTP {response.status_code}: {_scrub(str(detail or 'no detail'), settings)}); "
                "check the client id and secret",
                endpoint="identity",
            )
        if response.status_code != 200 or not body or "access_token" not in body:
            raise ClientBug(
                settings.name,
                None,
                f"unexpected identity answer (HTTP {response.status_code})",
                endpoint="identity",
            )
        value = str(body["access_token"])
        expires_in = float(body.get("expires_in", 3600))
        expires_at = started + expires_in
        margin = min(settings.token_refresh_margin_seconds, expires_in / 4)
        use_until = expires_at - margin
        if value == previous.value:
            # Marketo hands back the same token until it expires: refreshing early cannot get a
            # new one, so keep it to the end and let a 601/602 trigger the real refresh. Its
            # `expires_in` is whole seconds rounded down, so near the end it reads 0: ask again
            # at most once a second rather than hammer the identity service.
            use_until = max(expires_at, started + 1.0)
        self._log.info(
            "marketo_token_refreshed",
            expires_in=expires_in,
            same_token=value == previous.value,
        )
        return Token(value=value, use_until=use_until, expires_at=expires_at)


def _json_or_none(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _scrub(text: str, settings: InstanceSettings) -> str:
    """Never echo the secret, even if a server put it in its error text."""
    if settings.client_secret:
        text = text.replace(settings.client_secret, "***")
    return text[:200]
