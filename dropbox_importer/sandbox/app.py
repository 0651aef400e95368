"""The WSGI application: routing, then auth, limits and faults before each Marketo call."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import structlog
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from dropbox_importer.sandbox import objects_api, programs_api
from dropbox_importer.sandbox.api import MarketoApi
from dropbox_importer.sandbox.customobjects import CustomObjectStore
from dropbox_importer.sandbox.database import LeadDatabase
from dropbox_importer.sandbox.faults import FAULT_MESSAGES, Fault, FaultInjector
from dropbox_importer.sandbox.identity import TokenCheck, TokenIssuer
from dropbox_importer.sandbox.imports import ImportQueue, Speed
from dropbox_importer.sandbox.limits import Admission, CallLimiter
from dropbox_importer.sandbox.other import OtherIntegration
from dropbox_importer.sandbox.programs import ProgramStore
from dropbox_importer.sandbox.responses import error, is_error, json_response
from dropbox_importer.sandbox.settings import SandboxSettings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = structlog.get_logger(__name__)

ROUTES = Map(
    [
        Rule("/identity/oauth/token", endpoint="identity", methods=["GET", "POST"]),
        Rule("/bulk/v1/leads.json", endpoint="create", methods=["POST"]),
        Rule("/bulk/v1/leads/batch/<batch_id>.json", endpoint="status", methods=["GET"]),
        Rule("/bulk/v1/leads/batch/<batch_id>/failures.json", endpoint="failures"),
        Rule("/bulk/v1/leads/batch/<batch_id>/warnings.json", endpoint="warnings"),
        Rule("/rest/v1/leads/describe.json", endpoint="describe", methods=["GET"]),
        Rule("/rest/v1/leads/partitions.json", endpoint="partitions", methods=["GET"]),
        Rule("/rest/v1/lists/<list_id>.json", endpoint="list", methods=["GET"]),
        Rule("/sandbox/leads.json", endpoint="sandbox_leads", methods=["GET"]),
        Rule("/sandbox/batches.json", endpoint="sandbox_batches", methods=["GET", "POST"]),
        Rule("/sandbox/batches/<batch_id>/file", endpoint="sandbox_batch_file", methods=["GET"]),
        Rule("/sandbox/stats.json", endpoint="sandbox_stats", methods=["GET"]),
        Rule("/sandbox/faults.json", endpoint="sandbox_faults", methods=["GET", "POST"]),
        Rule("/sandbox/speed.json", endpoint="sandbox_speed", methods=["GET", "POST"]),
        Rule("/sandbox/other.json", endpoint="sandbox_other", methods=["GET", "POST"]),
        *programs_api.RULES,
        *objects_api.RULES,
        Rule("/sandbox/programs.json", endpoint="sandbox_programs", methods=["GET"]),
        Rule("/sandbox/customobjects.json", endpoint="sandbox_customobjects", methods=["GET"]),
    ],
    strict_slashes=False,
)


class UploadRequest(Request):
    """A request whose uploaded files stay in memory: faster than werkzeug's temp files."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> Any:
        return io.BytesIO()


class CallStats:
    """Counts of calls by endpoint and by error code, refusals included, and where credentials
    travelled: the client secret on identity calls (query string or body), and any secret or
    token seen in a URL."""

    def __init__(self) -> None:
        """All counters at zero."""
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.errors_by_endpoint: dict[str, Counter[str]] = {}
        self.credentials: Counter[str] = Counter({"query": 0, "body": 0})
        self.secrets_in_url: Counter[str] = Counter({"client_secret": 0, "access_token": 0})

    def note(self, counter: Counter[str], key: str) -> None:
        """Count one credential sighting (`credentials` or `secrets_in_url`)."""
        with self._lock:
            counter[key] += 1

    def record(self, endpoint: str, code: str | None) -> None:
        """Count one answered (or dropped) call, with its error code if it was refused."""
        with self._lock:
            self.calls[endpoint] += 1
            if code is not None:
                self.errors[code] += 1
                self.errors_by_endpoint.setdefault(endpoint, Counter())[code] += 1

    def to_json(self) -> dict[str, Any]:
        """The counters as JSON."""
        with self._lock:
            return {
                "calls": dict(self.calls),
                "errors": dict(self.errors),
                "errorsByEndpoint": {k: dict(v) for k, v in self.errors_by_endpoint.items()},
                "identityCredentials": dict(self.credentials),
                "secretsInUrl": dict(self.secrets_in_url),
            }


class SandboxApp:
    """The whole sandbox as one WSGI callable."""

    def __init__(self, settings: SandboxSettings) -> None:
        """Build identity, limits, faults, the database and the (not yet started) queue."""
        self.settings = settings
        self.tokens = TokenIssuer(
            settings.client_id, settings.client_secret, settings.token_lifetime_seconds
        )
        self.limiter = CallLimiter(
            settings.calls_per_window,
            settings.window_seconds,
            settings.max_in_flight,
            settings.daily_quota,
        )
        self.faults = FaultInjector(settings.faults, settings.rules.transient_codes)
        self.db = LeadDatabase(settings)
        self.queue = ImportQueue(settings, self.db)
        self.api = MarketoApi(settings, self.db, self.queue, self.faults)
        self.other = OtherIntegration(
            settings.other_integration,
            self.queue,
            self.limiter,
            list_busy_from=self.api.list_busy_from(),
            partition=self.db.partitions[0],
        )
        self.stats = CallStats()
        # Room for the multipart envelope around a file of the largest allowed size.
        self.request_class = type(
            "SandboxRequest",
            (UploadRequest,),
            {"max_content_length": settings.max_file_bytes + 1024 * 1024},
        )
        self._handlers: dict[str, Callable[[Request, dict[str, str]], Response]] = {
            "create": lambda r, a: self.api.create(r),
            "status": lambda r, a: self.api.status(a["batch_id"]),
            "failures": lambda r, a: self.api.reasons(a["batch_id"], "failures"),
            "warnings": lambda r, a: self.api.reasons(a["batch_id"], "warnings"),
            "describe": lambda r, a: self.api.describe(),
            "partitions": lambda r, a: self.api.partitions(),
            "list": lambda r, a: self.api.static_list(a["list_id"]),
        }
        # Program members and custom objects share the queue and the lead database's lock.
        self.programs = ProgramStore(settings.catalog, self.db)
        self.objects = CustomObjectStore(settings.catalog, self.db.lock)
        for extra in (
            programs_api.ProgramsApi(settings, self.queue, self.programs, self.faults),
            objects_api.ObjectsApi(settings, self.queue, self.objects, self.faults),
        ):
            self._handlers.update(extra.handlers())

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request; never raise except to drop a connection on purpose."""
        request = self.request_class(environ)
        self.check_url(environ)
        try:
            endpoint, args = ROUTES.bind_to_environ(environ).match()
        except HTTPException:
            response = error("610", "Requested resource not found", status=404)
            self.stats.record("unknown", "610")
            return response(environ, start_response)
        if endpoint == "sandbox_batch_file":
            response = self.batch_file(args["batch_id"])
        elif endpoint.startswith("sandbox_"):
            response = self.introspect(endpoint, request)
        elif endpoint == "identity":
            response = self.identity(request, environ)
        else:
            response = self.marketo_call(endpoint, request, dict(args), environ)
        return response(environ, start_response)

    def marketo_call(
        self, endpoint: str, request: Request, args: dict[str, str], environ: WSGIEnvironment
    ) -> Response:
        """Auth, then limits, then faults, then the handler; refusals don't count."""
        check = self.tokens.check(bearer_token(request))
        if check is not TokenCheck.VALID:
            return self.refuse(endpoint, check.value)
        admitted = self.limiter.admit()
        if not isinstance(admitted, Admission):
            return self.refuse(endpoint, admitted)
        response: Response | None = None
        fault = self.faults.draw(endpoint)
        try:
            response = self.injected(fault, endpoint, environ)
            if response is None:
                response = self._handlers[endpoint](request, args)
        finally:
            admitted.release(counted=response is not None and not is_error(response))
        if fault.lose_answer:
            self.lose_answer(endpoint, environ)
        self.stats.record(endpoint, error_code(response))
        return response

    def lose_answer(self, endpoint: str, environ: WSGIEnvironment) -> None:
        """The call has run: close its connection before a byte of the answer is sent."""
        self.stats.record(endpoint, "answer_lost")
        log.debug("sandbox_fault_answer_lost", endpoint=endpoint)
        drop_connection(environ)

    def check_url(self, environ: WSGIEnvironment) -> None:
        """Count a request whose URL carries the client secret or an access token."""
        query = environ.get("QUERY_STRING", "")
        url = unquote_plus(f"{environ.get('PATH_INFO', '')}?{query}")
        if self.settings.client_secret and self.settings.client_secret in url:
            self.stats.note(self.stats.secrets_in_url, "client_secret")
        if "access_token=" in query or self.tokens.appears_in(url):
            self.stats.note(self.stats.secrets_in_url, "access_token")

    def refuse(self, endpoint: str, code: str) -> Response:
        """Answer with a Marketo error code and count the refusal."""
        self.stats.record(endpoint, code)
        if code == "606":
            s = self.settings
            return error(
                code,
                f"Max rate limit '{s.calls_per_window}' exceeded with in "
                f"'{s.window_seconds:g}' secs",
            )
        return error(code)

    def injected(self, fault: Fault, endpoint: str, environ: WSGIEnvironment) -> Response | None:
        """Apply the fault drawn for this call: None lets the call run."""
        if fault.latency_seconds:
            self.faults.delay(fault.latency_seconds)
        if fault.drop:
            self.stats.record(endpoint, "dropped")
            log.debug("sandbox_fault_drop", endpoint=endpoint)
            drop_connection(environ)
        if fault.http_status is not None:
            return Response(
                f"{fault.http_status} injected fault\n",
                status=fault.http_status,
                mimetype="text/plain",
            )
        if fault.code is not None:
            return error(fault.code, FAULT_MESSAGES.get(fault.code, "Injected fault"))
        return None

    def identity(self, request: Request, environ: WSGIEnvironment) -> Response:
        """`GET|POST /identity/oauth/token`: client credentials from the query or form body."""
        fault = self.faults.draw("identity")
        faulted = self.injected(fault, "identity", environ)
        if faulted is not None:
            self.stats.record("identity", str(faulted.status_code))
            return faulted
        for where, source in (("query", request.args), ("body", request.form)):
            if "client_secret" in source:
                self.stats.note(self.stats.credentials, where)
        params = {**request.form.to_dict(), **request.args.to_dict()}
        if params.get("grant_type") != "client_credentials":
            self.stats.record("identity", "invalid_request")
            return json_response(
                {
                    "error": "invalid_request",
                    "error_description": "grant_type must be client_credentials",
                },
                status=400,
            )
        issued = self.tokens.issue(params.get("client_id", ""), params.get("client_secret", ""))
        if issued is None:
            self.stats.record("identity", "unauthorized")
            return json_response(
                {"error": "unauthorized", "error_description": "Bad client credentials"},
                status=401,
            )
        if fault.lose_answer:
            self.lose_answer("identity", environ)
        self.stats.record("identity", None)
        return json_response(
            {
                "access_token": issued.access_token,
                "token_type": "bearer",
                "expires_in": issued.expires_in,
                "scope": self.settings.scope,
            }
        )

    def introspect(self, endpoint: str, request: Request) -> Response:
        """The `/sandbox/*` paths: outside Marketo, exempt from auth, limits and faults."""
        if endpoint == "sandbox_leads":
            return json_response({"leads": self.db.snapshot()})
        if endpoint == "sandbox_batches":
            if request.method == "POST":
                return self.forget_batches(request)
            return json_response({"batches": self.queue.snapshot()})
        if endpoint == "sandbox_programs":
            return json_response({"programs": self.programs.snapshot()})
        if endpoint == "sandbox_customobjects":
            return json_response({"customObjects": self.objects.snapshot()})
        if endpoint == "sandbox_stats":
            stats = self.stats.to_json()
            stats.update(
                peakImporting=self.queue.peak_importing,
                inFlight=self.limiter.in_flight,
                otherIntegration=self.other.to_json(),
            )
            return json_response(stats)
        if endpoint == "sandbox_speed":
            return self.change_speed(request)
        if endpoint == "sandbox_other":
            return self.change_other(request)
        if request.method == "POST":
            try:
                changes = json.loads(request.get_data(as_text=True) or "{}")
                self.faults.update(self.faults.settings.updated(changes))
            except (ValueError, TypeError, AttributeError) as exc:
                return json_response({"error": f"bad fault settings: {exc}"}, status=400)
            log.info("sandbox_faults_changed", **self.faults.settings.to_json())
        return json_response(self.faults.settings.to_json())

    def batch_file(self, batch_id: str) -> Response:
        """`GET /sandbox/batches/{id}/file`: the file a create uploaded, byte for byte."""
        batch = self.queue.find(int(batch_id)) if batch_id.isdigit() else None
        if batch is None:
            return json_response({"error": f"no batch {batch_id}"}, status=404)
        if batch.status in ("Complete", "Failed") and not self.settings.keep_uploads:
            return json_response({"error": "uploads are kept only with keep_uploads"}, status=410)
        return Response(batch.payload, mimetype="application/octet-stream")

    def forget_batches(self, request: Request) -> Response:
        """`POST /sandbox/batches.json {"forget": [ids]}`: those ids become unknown to Marketo.

        What a batch past its 7 days, or an instance that lost it, looks like to a client.
        """
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
            ids = [int(i) for i in body["forget"]]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return json_response({"error": f'expected {{"forget": [batch ids]}}: {exc}'}, 400)
        forgotten = self.queue.forget(ids)
        log.info("sandbox_batches_forgotten", batch_ids=forgotten)
        return json_response({"forgotten": forgotten})

    def change_other(self, request: Request) -> Response:
        """`GET|POST /sandbox/other.json`: read or change the other integration's load."""
        if request.method == "POST":
            try:
                changes = json.loads(request.get_data(as_text=True) or "{}")
                settings = self.other.settings.updated(changes)
                listed = settings.list_id
                if listed is not None and listed not in self.db.lists:
                    raise ValueError(f"list {listed} is not one of the sandbox's lists")
            except (ValueError, TypeError, AttributeError) as exc:
                return json_response({"error": f"bad other integration: {exc}"}, status=400)
            self.other.update(settings)
        return json_response(self.other.to_json())

    def change_speed(self, request: Request) -> Response:
        """`GET|POST /sandbox/speed.json`: read or change the import speed of a running sandbox."""
        if request.method == "POST":
            try:
                changes = json.loads(request.get_data(as_text=True) or "{}")
                speed = Speed(
                    float(changes.get("rows_per_second", self.queue.speed.rows_per_second)),
                    float(
                        changes.get("job_overhead_seconds", self.queue.speed.job_overhead_seconds)
                    ),
                )
                if speed.rows_per_second <= 0 or speed.job_overhead_seconds < 0:
                    raise ValueError("rows_per_second must be > 0, job_overhead_seconds >= 0")
            except (ValueError, TypeError, AttributeError) as exc:
                return json_response({"error": f"bad speed: {exc}"}, status=400)
            self.queue.set_speed(speed)
            log.info("sandbox_speed_changed", **asdict(speed))
        return json_response(asdict(self.queue.speed))


def bearer_token(request: Request) -> str | None:
    """The `Authorization: Bearer` token; a token in the query string is ignored on purpose."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def error_code(response: Response) -> str | None:
    """The Marketo error code (or HTTP status) a response carries, None for a success."""
    if not is_error(response):
        return None
    if response.mimetype == "application/json":
        body = json.loads(response.get_data())
        errors = body.get("errors") or [{}]
        return str(errors[0].get("code", response.status_code))
    return str(response.status_code)


def drop_connection(environ: WSGIEnvironment) -> None:
    """Close the client's socket without an answer, then unwind the request."""
    sock: socket.socket | None = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    # werkzeug treats ConnectionError as a client that went away: it writes nothing back.
    raise ConnectionAbortedError("connection dropped by an injected fault")
