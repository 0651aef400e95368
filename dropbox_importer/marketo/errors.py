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


class UnknownCode(ClientBug):
    """A code missing from this client's table: the call fails for good, and only it.

    Whoever made the call fails its one file with Marketo's `code` and `message`; nothing else
    waits on it.
    """


class ImportInProgress(MarketoError):  # noqa: N818
    """1019, or one of our own jobs already holds the list: not a failure, try again later.

    Marketo refuses a create whose listId is being imported to. `own` is True when the job
    holding the list is ours (no call was made: we never send two jobs for one list); then the
    list frees when that batch ends. Otherwise another integration holds it and `retry_in` is
    how long to wait before asking again. Other lists are not affected.
    """

    def __init__(
        self,
        instance: str,
        code: str | None,
        message: str,
        *,
        list_id: int | None,
        own: bool,
        retry_in: float,
        endpoint: str = "create",
    ) -> None:
        super().__init__(instance, code, message, endpoint=endpoint)
        self.list_id = list_id
        self.own = own
        self.retry_in = retry_in


class BatchNotFound(MarketoError):  # noqa: N818
    """A status call for a batch Marketo does not know (any code but access denied or auth).

    Marketo answers ids that are unknown or past their 7 days with 1003 in its documentation
    and other codes in practice (610, 1013). `confirmed` is False the first time: a glitch may
    explain one answer, so ask once more; True when the next answer said the same, and from
    then on the batch holds no queue slot and no list.
    """

    def __init__(
        self,
        instance: str,
        code: str | None,
        message: str,
        *,
        batch_id: int,
        confirmed: bool,
        endpoint: str = "status",
    ) -> None:
        super().__init__(instance, code, message, endpoint=endpoint)
        self.batch_id = batch_id
        self.confirmed = confirmed


class Stopped(Exception):  # noqa: N818
    """The caller's stop event was set while the client was waiting (back-off, limiter, queue)."""
