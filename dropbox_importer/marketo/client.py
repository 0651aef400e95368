"""The Marketo client: one per instance, shared by the daemon's threads.

One interface for the three import kinds (leads, program members, custom objects): create,
status, failures, warnings. The kind is in the import's parameters (`ImportParams.kind`); what
differs per kind, its paths and answer shapes, is data in `kinds.py`. Every kind counts against
the same queue slots, as Marketo runs them in one queue.

Every call goes through `_call`, the one place the retry policy (`policy.py`) is applied and the
instance's limiter is respected. Transient faults retry without a count limit (the back-off has a
ceiling) and every wait ends when the caller's `stop` event, or `close()`, is set.

Ambiguous creates: a create whose connection drops or times out after the upload began may or
may not have been accepted. The client retries it (the file must not fail on a network blip), so
Marketo may import it twice; the import is insert-or-update, so a duplicate costs a queue slot and
time but no duplicate leads. Each such retry is logged (`marketo_create_ambiguous`) and counted
in `stats().ambiguous_create_retries`, and the possible duplicate job holds a queue slot of ours
until the next batch we create ends (`ImportSlots`): counted, never leaked.

Lists: a create whose listId one of our batches holds raises ImportInProgress at once, without
a call, and so does Marketo's 1019 (another integration's job): the caller waits for that list
while other lists go ahead (`list_holds.py`).

Batches Marketo no longer knows: a status call refused with any code but access denied raises
BatchNotFound; the second such answer in a row confirms it, and frees the batch's slot and list.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import requests
import structlog
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from dropbox_importer import __version__
from dropbox_importer.marketo import kinds, responses, transport
from dropbox_importer.marketo.download import HTTP_404, Sink, save, sniff
from dropbox_importer.marketo.errors import (
    AccessDenied,
    AuthenticationError,
    BatchNotFound,
    ClientBug,
    ImportInProgress,
    MarketoError,
    RequestRejected,
    Stopped,
)
from dropbox_importer.marketo.health import QUEUE_FULL, HealthSnapshot, InstanceHealth
from dropbox_importer.marketo.limiter import AnyOf, CallLimiter, ImportSlots, StopSignal
from dropbox_importer.marketo.list_holds import HELD_BY_US, ListHolds
from dropbox_importer.marketo.models import (
    BatchStatus,
    Channel,
    ClientStats,
    CustomObjectType,
    ImportParams,
    ImportTarget,
    LeadField,
    ObjectField,
    Partition,
    Program,
    StaticList,
)
from dropbox_importer.marketo.multipart import MultipartFile
from dropbox_importer.marketo.policy import (
    DROPPED,
    TIMEOUT,
    Action,
    Backoff,
    action_for,
    error_type_for,
    quota_resets_at,
)
from dropbox_importer.marketo.responses import MalformedResponseError, Outcome
from dropbox_importer.marketo.settings import InstanceSettings
from dropbox_importer.marketo.token import IdentityUnavailableError, TokenSource

T = TypeVar("T")

# Read errors mid-body are as transient as a refused connection.
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
# The asset API's largest page (`maxReturn`).
_ASSET_PAGE = 200
LEADS = ImportTarget()


class _GuardedAdapter(HTTPAdapter):
    """Asks the guard once more as the request leaves, after every wait and all preparation."""

    def __init__(self, guard: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = guard

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send the request unless the guard refuses."""
        self._guard()
        return super().send(request, stream, timeout, verify, cert, proxies)


class MarketoClient:
    """Thread-safe client of one Marketo instance's bulk import and lookup calls."""

    def __init__(
        self, settings: InstanceSettings, *, guard: Callable[[], None] | None = None
    ) -> None:
        # `guard()` runs before every request and may raise to refuse it: a daemon that no
        # longer leads its journal must not reach Marketo (pipeline/leadership.py).
        self._guard = guard or (lambda: None)
        self._settings = settings
        limits = settings.limits
        self._session = requests.Session()
        # Retries are ours (policy.py): urllib3's own would hide faults and double-submit creates.
        adapter = _GuardedAdapter(self._guard, pool_maxsize=limits.max_in_flight + 2, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._headers = {"User-Agent": f"dropbox-importer/{__version__}"}
        self._tokens = TokenSource(settings, self._session, self._headers)
        self._limiter = CallLimiter(
            limits.calls_per_window, limits.window_seconds, limits.max_in_flight
        )
        self._slots = ImportSlots(limits.max_queued_jobs)
        self._lists = ListHolds(
            settings.list_busy_first_wait_seconds, settings.list_busy_max_wait_seconds
        )
        self._unknown: Counter[int] = Counter()  # batch id -> unknown answers in a row
        # What each batch in Marketo's queue imports into, so its status path can be built
        # from its id alone (the poller knows only ids); forgotten once the batch is final.
        self._targets: dict[int, ImportTarget] = {}
        self._closing = threading.Event()
        self._rng = random.Random()
        self._log = structlog.get_logger("dropbox_importer.marketo").bind(instance=settings.name)
        self.health = InstanceHealth(
            settings.name, outage_error_seconds=settings.outage_error_seconds
        )
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._retries: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._ambiguous = 0

    # -- the public calls -------------------------------------------------------------------

    def check_credentials(self, *, stop: threading.Event | None = None) -> None:
        """Fetch a token now; AuthenticationError if the identity service refuses."""
        self._token(self._stop_of(stop))
        self.health.succeeded()

    @property
    def base_url(self) -> str:
        """The instance's REST base URL."""
        return self._settings.base_url

    def health_snapshot(self) -> HealthSnapshot:
        """The instance's health now, with this client's import queue slots."""
        return self.health.snapshot(
            queued_jobs=self._slots.used, max_queued_jobs=self._settings.limits.max_queued_jobs
        )

    def create_import(
        self, path: Path, params: ImportParams, *, stop: threading.Event | None = None
    ) -> int:
        """Upload `path` as a bulk import of `params.kind` once a queue slot is free.

        Returns the batch id; leads, program members and custom objects share the queue slots.
        Raises ImportInProgress, without waiting, when the listId is held (by a batch of ours,
        or by another integration's job after a 1019); other errors as the policy says.
        """
        signal = self._stop_of(stop)
        list_id = params.list_id
        held = self._lists.take(list_id)
        if held > 0:
            own = held == HELD_BY_US
            holder = self._lists.held().get(list_id) if list_id is not None else None
            by = f"our batch {holder}" if holder else "our create" if own else "another job"
            raise ImportInProgress(
                self._settings.name,
                None,
                f"static list {list_id} is being imported to by {by}",
                list_id=list_id,
                own=own,
                retry_in=held,
            )
        try:
            batch_id = self._create(path, params, signal)
        except ImportInProgress as exc:  # 1019: another integration imports into the list
            retry_in = self._lists.refused(list_id)
            self._log.info(
                "marketo_list_busy",
                list_id=list_id,
                part_file=path.name,
                retry_in=round(retry_in, 2),
            )
            raise ImportInProgress(
                self._settings.name,
                exc.code,
                exc.message,
                list_id=list_id,
                own=False,
                retry_in=retry_in,
            ) from None
        except BaseException:
            self._lists.cancel(list_id)
            raise
        self._lists.commit(list_id, batch_id)
        # The pipeline logs batch_created with the file's context; this is the wire's view.
        self._log.debug(
            "marketo_import_created", batch_id=batch_id, part_file=path.name, kind=params.kind.value
        )
        return batch_id

    def _create(self, path: Path, params: ImportParams, signal: StopSignal) -> int:
        if self._slots.used >= self._settings.limits.max_queued_jobs:
            self.health.waiting(QUEUE_FULL)  # our share of Marketo's queue is taken
        self._slots.reserve(signal)
        try:
            batch_id = self._call(
                kinds.endpoint(params.kind, "create"),
                "POST",
                kinds.create_path(params),
                signal,
                params=params.query(),
                upload=path,
                parse=lambda outcome: responses.parse_batch_id(outcome.result),
            )
        except (RequestRejected, ClientBug):
            self._slots.cancel(refused=True)
            raise
        except BaseException:
            self._slots.cancel()
            raise
        with self._lock:
            self._targets[batch_id] = params.target
        self._slots.commit(batch_id)
        self.health.waiting_over()
        return batch_id

    def list_wait(self, list_id: int | None) -> float:
        """Seconds until a create for `list_id` may be sent: 0 now, `math.inf` until one of our
        batches ends (see `on_list_freed`), else what is left of a 1019 back-off."""
        return self._lists.wait_seconds(list_id)

    def on_list_freed(self, callback: Callable[[], None]) -> None:
        """Call `callback` (any thread) whenever a list one of our batches held frees."""
        self._lists.on_freed(callback)

    def jobs_in_flight(self) -> tuple[int, int]:
        """Our import jobs in Marketo's queue now (created or being created and not yet seen
        ended, possible duplicates of lost answers included), and how many we may have: our
        share of the queue (`max_queued_jobs`), lower while other integrations fill it."""
        return self._slots.used, self._slots.ceiling

    def on_slot_freed(self, callback: Callable[[], None]) -> None:
        """Call `callback` (any thread, no lock held) whenever a job of ours leaves the queue."""
        self._slots.on_freed(callback)

    def batch_status(
        self,
        batch_id: int,
        *,
        target: ImportTarget | None = None,
        stop: threading.Event | None = None,
    ) -> BatchStatus:
        """The batch's status; a terminal one frees its queue slot and list.

        `target` says what the batch imports; without it, what its create or `adopt_batch`
        said, else leads. Raises BatchNotFound when Marketo refuses the call with any code but
        access denied (unknown, expired, or an answer that makes no sense); see
        BatchNotFound.confirmed.
        """
        where = target or self._target_of(batch_id)
        try:
            status = self._call(
                kinds.endpoint(where.kind, "status"),
                "GET",
                kinds.batch_path(where, batch_id, "status"),
                self._stop_of(stop),
                parse=lambda outcome: responses.parse_batch_status(outcome.result),
            )
        except (AccessDenied, AuthenticationError):
            raise
        except MarketoError as exc:
            raise self._unknown_batch(batch_id, exc) from None
        with self._lock:
            self._unknown.pop(batch_id, None)
        if status.status.terminal:
            self._release(batch_id)
        return status

    def _unknown_batch(self, batch_id: int, exc: MarketoError) -> BatchNotFound:
        with self._lock:
            self._unknown[batch_id] += 1
            confirmed = self._unknown[batch_id] >= 2
            if confirmed:
                del self._unknown[batch_id]
        if confirmed:
            # Marketo holds no job for it any more: neither a queue slot nor its list.
            self._release(batch_id)
        self._log.warning(
            "marketo_batch_unknown",
            batch_id=batch_id,
            code=exc.code,
            message=exc.message,
            confirmed=confirmed,
        )
        return BatchNotFound(
            self._settings.name,
            exc.code,
            exc.message,
            batch_id=batch_id,
            confirmed=confirmed,
        )

    def _release(self, batch_id: int) -> None:
        """The batch left Marketo's queue: free its slot and list, forget what it imports."""
        self._slots.finish(batch_id)
        self._lists.finish(batch_id)
        with self._lock:
            self._targets.pop(batch_id, None)

    def _target_of(self, batch_id: int) -> ImportTarget:
        with self._lock:
            return self._targets.get(batch_id, LEADS)

    def adopt_batch(
        self, batch_id: int, list_id: int | None = None, *, target: ImportTarget | None = None
    ) -> None:
        """After a restart: count a batch that is still queued or importing against the cap,
        and as holding its list; `target` (default: leads) is what it imports."""
        with self._lock:
            self._targets[int(batch_id)] = target or LEADS
        self._slots.adopt(int(batch_id))
        if list_id is not None:
            self._lists.adopt(list_id, int(batch_id))

    def download_failures(
        self,
        batch_id: int,
        dest: Path,
        *,
        target: ImportTarget | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Stream the batch's failed rows to `dest` (written to a temporary name, then renamed);
        a batch without any (HTTP 404, as a custom object batch answers) gives an empty file.
        `target` (default: leads) is what the batch imports."""
        self._download("failures", batch_id, dest, target or LEADS, self._stop_of(stop))

    def download_warnings(
        self,
        batch_id: int,
        dest: Path,
        *,
        target: ImportTarget | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Stream the batch's rows with warnings to `dest`; as `download_failures`."""
        self._download("warnings", batch_id, dest, target or LEADS, self._stop_of(stop))

    def describe_fields(self, *, stop: threading.Event | None = None) -> list[LeadField]:
        """Every lead field, by the REST name an import header uses."""
        return self._call(
            "describe",
            "GET",
            "/rest/v1/leads/describe.json",
            self._stop_of(stop),
            parse=lambda outcome: responses.parse_fields(outcome.result),
        )

    def partitions(self, *, stop: threading.Event | None = None) -> list[Partition]:
        """The instance's lead partitions."""
        return self._call(
            "partitions",
            "GET",
            "/rest/v1/leads/partitions.json",
            self._stop_of(stop),
            parse=lambda outcome: responses.parse_partitions(outcome.result),
        )

    def get_list(self, list_id: int, *, stop: threading.Event | None = None) -> StaticList | None:
        """The static list `list_id`, or None when there is no such list."""
        return self._call(
            "list",
            "GET",
            f"/rest/v1/lists/{int(list_id)}.json",
            self._stop_of(stop),
            parse=lambda outcome: responses.parse_list(outcome.result),
            # Marketo answers an unknown list id with 1013 "Object not found" (or an empty result).
            absent_codes=frozenset({"1013"}),
        )

    def describe_program_members(
        self, *, stop: threading.Event | None = None
    ) -> tuple[ObjectField, ...]:
        """The program member fields (`GET /rest/v1/program/members/describe.json`)."""
        return self._call(
            "program_members_describe",
            "GET",
            "/rest/v1/program/members/describe.json",
            self._stop_of(stop),
            parse=lambda outcome: responses.parse_member_fields(outcome.result),
        )

    def get_program(
        self, program_id: int, *, stop: threading.Event | None = None
    ) -> Program | None:
        """The program `program_id` with its channel's name, or None when there is none."""
        return self._call(
            "program",
            "GET",
            f"/rest/asset/v1/program/{int(program_id)}.json",
            self._stop_of(stop),
            parse=lambda outcome: responses.parse_program(outcome.result),
            # The asset API answers an unknown id with an empty result and a warning; some
            # instances answer 702 "No data found" or 1013 instead.
            absent_codes=frozenset({"702", "1013"}),
        )

    def channels(self, *, stop: threading.Event | None = None) -> list[Channel]:
        """Every channel with its program member statuses, all pages read."""
        found: list[Channel] = []
        while True:
            page = self._call(
                "channels",
                "GET",
                "/rest/asset/v1/channels.json",
                self._stop_of(stop),
                params={"maxReturn": str(_ASSET_PAGE), "offset": str(len(found))},
                parse=lambda outcome: responses.parse_channels(outcome.result),
                absent_codes=frozenset({"702"}),  # past the last page, on some instances
            )
            found += page
            if len(page) < _ASSET_PAGE:
                return found

    def describe_custom_object(
        self, api_name: str, *, stop: threading.Event | None = None
    ) -> CustomObjectType | None:
        """The custom object type `api_name` (fields, dedupe fields), or None if there is none."""
        return self._call(
            "customobjects_describe",
            "GET",
            f"/rest/v1/customobjects/{quote(api_name, safe='')}/describe.json",
            self._stop_of(stop),
            parse=lambda outcome: responses.parse_custom_object(outcome.result),
            absent_codes=frozenset({"1013"}),  # "Object not found"
        )

    def stats(self) -> ClientStats:
        """A snapshot of calls, retries, errors and waits so far."""
        with self._lock:
            return ClientStats(
                calls_by_endpoint=dict(self._calls),
                retries_by_reason=dict(self._retries),
                errors_by_code=dict(self._errors),
                ambiguous_create_retries=self._ambiguous,
                token_fetches=self._tokens.fetches,
                limiter_waits=self._limiter.waits,
                limiter_wait_seconds=self._limiter.wait_seconds,
                queue_waits=self._slots.waits,
                queue_wait_seconds=self._slots.wait_seconds,
                queued_imports=self._slots.used,
            )

    def close(self) -> None:
        """End every wait in progress (they raise Stopped) and close the connections."""
        self._closing.set()
        self._session.close()

    # -- the one retry loop -----------------------------------------------------------------

    def _stop_of(self, stop: threading.Event | None) -> StopSignal:
        """What every wait of one call watches: the caller's stop event and close()."""
        return self._closing if stop is None else AnyOf(stop, self._closing)

    def _call(
        self,
        endpoint: str,
        method: str,
        path: str,
        stop: StopSignal,
        *,
        parse: Callable[[Outcome], T],
        params: dict[str, str] | None = None,
        upload: Path | None = None,
        sink: Sink | None = None,
        absent_codes: frozenset[str] = frozenset(),
    ) -> T:
        """Send one call until it succeeds or the policy gives up; return `parse`'s value.

        `sink` makes it a file download (see download.py); a condition in `absent_codes` means
        "nothing there": `parse` gets an empty outcome (and `sink` an empty file).
        """
        backoff = Backoff(self._settings.base_backoff_seconds, self._settings.max_backoff_seconds)
        refreshed: set[str] = set()
        while True:
            if stop.is_set():
                raise Stopped(f"stopped before {endpoint}")
            self._guard()
            token = self._token(stop)
            with self._limiter.admit(stop) as ticket:
                self._count(self._calls, endpoint)
                try:
                    outcome, value = self._attempt(method, path, token, params, upload, sink, parse)
                except _TRANSPORT_ERRORS as exc:
                    outcome = Outcome(
                        _transport_condition(exc),
                        transport.describe(exc),
                        ambiguous=_maybe_sent(exc),
                    )
                    value = None
                if outcome.refused:
                    ticket.refund()  # Marketo does not count calls refused with an error
            if outcome.ok:
                self.health.succeeded()
                return value  # type: ignore[return-value]
            if outcome.condition in absent_codes:
                self.health.succeeded()
                if sink is not None:
                    sink(iter(()))
                return parse(Outcome())
            self._count(self._errors, outcome.condition or "")
            backoff = self._react(endpoint, outcome, token, refreshed, backoff, stop, upload)

    def _attempt(
        self,
        method: str,
        path: str,
        token: str,
        params: dict[str, str] | None,
        upload: Path | None,
        sink: Sink | None,
        parse: Callable[[Outcome], T],
    ) -> tuple[Outcome, T | None]:
        headers = {**self._headers, "Authorization": f"Bearer {token}"}
        body: MultipartFile | None = MultipartFile(upload) if upload is not None else None
        try:
            if body is not None:
                headers["Content-Type"] = body.content_type
            with self._session.request(
                method,
                self._settings.base_url + path,
                params=params,
                data=body,
                headers=headers,
                timeout=(self._settings.connect_timeout, self._settings.read_timeout),
                stream=True,
            ) as response:
                if sink is not None and response.status_code == 200:
                    envelope, chunks = sniff(response)
                    outcome = responses.classify(200, envelope, raw_ok=True)
                    if outcome.ok:
                        sink(chunks)
                else:
                    outcome = responses.classify(response.status_code, _json_body(response))
                if not outcome.ok:
                    return outcome, None
                try:
                    return outcome, parse(outcome)
                except (MalformedResponseError, KeyError, TypeError, ValueError) as exc:
                    return Outcome("malformed", str(exc)[:200]), None
        finally:
            if body is not None:
                body.close()

    def _react(
        self,
        endpoint: str,
        outcome: Outcome,
        token: str,
        refreshed: set[str],
        backoff: Backoff,
        stop: StopSignal,
        upload: Path | None,
    ) -> Backoff:
        """Apply the policy to a failed attempt: wait as it says, or raise; return the back-off."""
        code = outcome.condition or ""
        action = action_for(code)
        log = self._log.bind(endpoint=endpoint, code=code, message=outcome.message)
        if action is Action.FAIL:
            marketo_code = None if code.startswith("http_") or code == "malformed" else code
            error = error_type_for(marketo_code)(
                self._settings.name, marketo_code, outcome.message or code, endpoint=endpoint
            )
            if isinstance(error, RequestRejected):
                # This request's fault (a parameter, a batch id): the instance itself works.
                self.health.succeeded()
                log.warning("marketo_call_failed")
            else:
                log.error("marketo_call_failed")
                self.health.needs_operator(_operator_reason(error), code=error.code)
            raise error
        if action is Action.WAIT_LIST:
            # The caller decides how to wait: it has other lists' files to send meanwhile.
            raise ImportInProgress(
                self._settings.name,
                code,
                outcome.message,
                list_id=None,
                own=False,
                retry_in=0.0,
                endpoint=endpoint,
            )
        self._count(self._retries, code)
        if action is Action.REFRESH_TOKEN:
            if token in refreshed:
                refused = AuthenticationError(
                    self._settings.name,
                    code,
                    "a freshly fetched token was refused",
                    endpoint=endpoint,
                )
                self.health.needs_operator(_operator_reason(refused), code=refused.code)
                raise refused
            refreshed.add(token)
            self._tokens.invalidate(token)
            log.info("marketo_call_retry", reason="token", attempt=backoff.attempt)
            return backoff
        if action is Action.WAIT_WINDOW:
            self._limiter.window_full()
            log.info("marketo_call_retry", reason="rate_limit", attempt=backoff.attempt)
            return backoff
        if action is Action.PAUSE_QUOTA:
            self._pause_for_quota()
            return backoff
        if upload is not None and outcome.ambiguous:
            with self._lock:
                self._ambiguous += 1
            # Marketo may have queued it: count the possible job until it must have ended.
            self._slots.ghost()
            log.warning("marketo_create_ambiguous", part_file=upload.name)
        delay = backoff.delay(self._rng)
        if action is Action.WAIT_QUEUE:
            # Other integrations fill Marketo's queue: routine, and no sign of an outage.
            self.health.waiting(QUEUE_FULL)
            log.info("marketo_call_retry", reason=action.value, attempt=backoff.attempt)
        else:
            self.health.failed(_failure_text(outcome))
            level = self.health.retry_level(backoff.attempt)
            getattr(log, level)(
                "marketo_call_retry", reason=action.value, attempt=backoff.attempt, delay=delay
            )
        if action is Action.WAIT_QUEUE:
            if upload is None:
                raise ClientBug(self._settings.name, code, outcome.message, endpoint=endpoint)
            # Other integrations fill the queue: hold our creates until a slot of ours frees or
            # the back-off ends (theirs may have freed one meanwhile).
            self._slots.queue_full()
            self._slots.wait_for_release(delay, stop)
        elif action is Action.WAIT_IN_FLIGHT and self._limiter.in_flight_full() > 0:
            return backoff  # admit() now waits for one of our running calls to finish
        elif stop.wait(delay):
            raise Stopped(f"stopped while backing off {endpoint}")
        return backoff.next()

    def _token(self, stop: StopSignal) -> str:
        """The current token; identity faults back off like any transient fault."""
        backoff = Backoff(self._settings.base_backoff_seconds, self._settings.max_backoff_seconds)
        while True:
            self._guard()
            try:
                return self._tokens.get()
            except MarketoError as exc:  # credentials refused, or an identity answer we can't use
                self.health.needs_operator(_operator_reason(exc), code=exc.code)
                raise
            except IdentityUnavailableError as exc:
                delay = backoff.delay(self._rng)
                self._count(self._retries, "identity")
                self.health.failed(f"identity service: {exc}")
                getattr(self._log, self.health.retry_level(backoff.attempt))(
                    "marketo_call_retry",
                    endpoint="identity",
                    reason=str(exc),
                    attempt=backoff.attempt,
                    delay=delay,
                )
                if stop.wait(delay):
                    raise Stopped("stopped while fetching a token") from None
                backoff = backoff.next()

    def _pause_for_quota(self) -> None:
        now = datetime.now(UTC)
        resume = quota_resets_at(now)
        seconds = (resume - now).total_seconds()
        self._limiter.pause_until(time.monotonic() + seconds)
        self.health.paused_for_quota(resume)
        self._log.warning(
            "marketo_quota_paused", resume_at=resume.isoformat(), seconds=round(seconds)
        )

    def _download(
        self, call: str, batch_id: int, dest: Path, target: ImportTarget, stop: StopSignal
    ) -> None:
        self._call(
            kinds.endpoint(target.kind, call),
            "GET",
            kinds.batch_path(target, batch_id, call),
            stop,
            parse=lambda _outcome: None,
            sink=lambda chunks: save(chunks, dest),
            # A batch with no such rows: custom objects answer HTTP 404 (and one public client
            # sees it for leads too): an empty file.
            absent_codes=frozenset({HTTP_404}),
        )

    def _count(self, counter: Counter[str], key: str) -> None:
        with self._lock:
            counter[key] += 1


def _failure_text(outcome: Outcome) -> str:
    """A failed attempt as `status` shows it: Marketo's code and message, or the wire's cause."""
    if outcome.condition in (DROPPED, TIMEOUT) or not outcome.condition:
        return outcome.message or outcome.condition or "no answer"
    if outcome.condition.isdigit():
        return f"Marketo error {outcome.condition}: {outcome.message}".rstrip(": ")
    return outcome.message or outcome.condition


def _operator_reason(error: MarketoError) -> str:
    code = f"{error.code}: " if error.code else ""
    return f"{code}{error.message}"


def _json_body(response: requests.Response) -> Any:
    """The JSON body, or None when the answer is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def _maybe_sent(exc: Exception) -> bool:
    """False only when the connection was never made, so Marketo cannot have seen the call."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return not isinstance(reason, NewConnectionError)


def _transport_condition(exc: Exception) -> str:
    return TIMEOUT if isinstance(exc, requests.Timeout) else DROPPED
