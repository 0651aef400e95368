"""Typed failures of a Marketo call: each carries what an operator needs, never a secret.

The names are the contract the daemon codes against, hence no `Error` suffix on some (N818).
"""

from __future__ import annotations


class MarketoError(Exception):
    """A Marketo call that failed for good; `code` and `message` are Marketo's own."""

    def __init__(
        self, instance: str, code: str | None, message: str, *, endpoint: str = ""
    ) -> None:
        self.instance = instance
        self.code = code
        self.message = message
        self.endpoint = endpoint
        where = f" ({endpoint})" if endpoint else ""
        prefix = f"Marketo error {code}" if code else "Marketo error"
        super().__init__(f"instance {instance!r}{where}: {prefix}: {message}")


class AuthenticationError(MarketoError):
    """The identity service refused the client id and secret: fix the credentials."""


class AccessDenied(MarketoError):  # noqa: N818
    """603: the API user's role or the IP allow-list forbids the call; an operator must act."""


class RequestRejected(MarketoError):  # noqa: N818
    """1003/1006/1008: Marketo refused this import's parameters or header; the file fails."""


class ClientBug(MarketoError):  # noqa: N818
    """609/610/612/613 or an unexpected answer: this program sent something wrong; no retry."""


class Stopped(Exception):  # noqa: N818
    """The caller's stop event was set while the client was waiting (back-off, limiter, queue)."""
