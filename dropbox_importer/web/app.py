"""The status page as a WSGI application: server-rendered HTML from the `status` document.

Pages (GET only; anything else is 405):

    /                overview: daemon, instances, per drop box what waits, what is in flight
                     (with progress) and what finished; a search form narrows it by drop box,
                     file name (a substring, or a glob with * ? [), time and outcome
    /files/<id>      one file's history, as `status --file` prints it
    /status.json     the `status --json` document
    /static/...      the stylesheet

Everything shown comes from `report.collect`, the code `status` runs: the page reads the
journal read-only and the folders, never a secret. Every value goes through Jinja's
autoescaping, so a partner's file named `<script>….csv` is shown as text; the Content Security
Policy forbids scripts outright, as a second wall.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from dropbox_importer.config import Config
from dropbox_importer.observe.leadership import leadership_items
from dropbox_importer.pipeline.journal import JournalError, RecordNotFoundError
from dropbox_importer.report.collect import OUTCOMES, Filters, collect, open_config_journal
from dropbox_importer.report.history import file_history
from dropbox_importer.report.times import age, parse_since

RECENT = 20
# What the page may load: its own stylesheet, nothing else; no script at all.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
URLS = Map(
    [
        Rule("/", endpoint="overview"),
        Rule("/files/<int:file_id>", endpoint="file"),
        Rule("/status.json", endpoint="document"),
        Rule("/static/style.css", endpoint="style"),
    ],
    strict_slashes=False,
)


def _ago(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "never"
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return age((now - moment).total_seconds())


def _percent(rows: dict[str, int]) -> int:
    return 0 if not rows.get("total") else min(100, round(100 * rows["processed"] / rows["total"]))


def environment() -> Environment:
    """Templates from the package, autoescaped (every .html), with the page's small filters."""
    env = Environment(
        loader=PackageLoader("dropbox_importer.web", "templates"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["percent"] = _percent
    env.filters["path"] = lambda item: (
        f"{item['route']}/{item['file']}" if item["route"] else item["file"]
    )
    return env


class StatusPage:
    """The WSGI application; `config()` is asked at each request, so a reload shows at once."""

    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self._env = environment()
        self._css = (resources.files("dropbox_importer.web") / "static" / "style.css").read_bytes()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Answer one request."""
        request = Request(environ)
        try:
            if request.method not in ("GET", "HEAD"):
                raise MethodNotAllowed(valid_methods=["GET", "HEAD"])
            endpoint, values = URLS.bind_to_environ(environ).match()
            response = getattr(self, f"_{endpoint}")(request, **values)
        except HTTPException as exc:
            response = self._html("error.html", status=exc.code or 500, message=exc.description)
        response.headers.update(SECURITY_HEADERS)
        body: Iterable[bytes] = response(environ, start_response)
        return body

    def _html(self, template: str, *, status: int = 200, **context: Any) -> Response:
        html = self._env.get_template(template).render(**context)
        return Response(html, status=status, content_type="text/html; charset=utf-8")

    def _filters(
        self, request: Request, config: Config, now: datetime
    ) -> tuple[Filters, list[str]]:
        """The search form's fields as Filters, and what was wrong with any of them."""
        problems: list[str] = []
        args = request.args
        dropbox = args.get("dropbox") or None
        if dropbox is not None and dropbox not in config.dropboxes:
            problems.append(f"no drop box named '{dropbox}'")
            dropbox = None
        name = (args.get("file") or "").strip() or None
        if name is not None and not any(c in name for c in "*?["):
            name = f"*{name}*"  # a search box finds parts of names
        since = None
        if args.get("since"):
            try:
                since = parse_since(args["since"], now)
            except ValueError as exc:
                problems.append(str(exc))
        outcome = args.get("outcome") or None
        if outcome is not None and outcome not in OUTCOMES:
            problems.append(f"no outcome '{outcome}'")
            outcome = None
        route = (args.get("route") or "").strip() or None
        return Filters(dropbox, route, name, since, outcome), problems

    def _overview(self, request: Request) -> Response:
        config = self._config()
        now = datetime.now(UTC)
        filters, problems = self._filters(request, config, now)
        doc = collect(config, filters, RECENT, now, histories=False)
        searching = any(
            request.args.get(k) for k in ("dropbox", "file", "since", "outcome", "route")
        )
        return self._html(
            "index.html",
            doc=doc,
            now=now,
            ago=lambda stamp: _ago(stamp, now),
            leadership=leadership_items(doc["journal"].get("leadership")),
            shared=config.state.shared,
            form=request.args,
            outcomes=OUTCOMES,
            dropboxes=sorted(config.dropboxes),
            problems=problems,
            searching=searching,
        )

    def _file(self, request: Request, file_id: int) -> Response:
        config = self._config()
        try:
            with open_config_journal(config) as journal:
                if journal is None:
                    raise NotFound("the daemon has not recorded any file yet")
                record = journal.get(file_id)
                box = config.dropboxes.get(record.dropbox)
                root = box.root if box is not None else record.processing_path.parent
                history = file_history(
                    record, journal.parts(file_id), journal.transitions(file_id), root
                )
        except RecordNotFoundError:
            raise NotFound(f"no file {file_id} in the journal") from None
        except JournalError as exc:
            return self._html("error.html", status=503, message=str(exc))
        return self._html("file.html", item=history)

    def _document(self, request: Request) -> Response:
        config = self._config()
        doc = collect(config, Filters(), RECENT, datetime.now(UTC))
        return Response(
            json.dumps(doc, indent=2, ensure_ascii=False), content_type="application/json"
        )

    def _style(self, request: Request) -> Response:
        return Response(self._css, content_type="text/css; charset=utf-8")
