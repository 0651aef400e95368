"""The config schema, defined once: every key with its type, default and one-line meaning.

The loader checks a YAML file against these sections; `config.example.yaml` documents exactly
these keys (a test holds the two together). A `Named` section is a mapping from names the
operator picks (instances, drop boxes, routes) to one fixed section each.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from dropbox_importer.dropbox.routes import API_NAME

# Marketo refuses an import file of 10 MB or more (HTTP 413).
MARKETO_MAX_FILE_BYTES = 10 * 1024 * 1024


class WrongValueError(ValueError):
    """A value of the wrong kind; the message says what was expected."""


class Required(Enum):
    """Marks an option without a default."""

    REQUIRED = "required"


REQUIRED = Required.REQUIRED

Check = Callable[[Any], Any]


def text(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise WrongValueError("a non-empty string (quote values YAML would read as numbers)")
    return value.strip()


def encoding_name(value: Any) -> str:
    """A text encoding Python knows, such as utf-8 or cp1252, or auto."""
    name = text(value)
    if name.lower() == "auto":
        return "auto"
    try:
        codecs.lookup(name)
    except LookupError:
        raise WrongValueError(
            "a known text encoding such as utf-8, cp1252 or latin-1, or auto"
        ) from None
    return name


def encoding_list(value: Any) -> tuple[str, ...]:
    """A non-empty list of text encodings Python knows, such as [cp1252, mac-roman]."""
    names = text_list(value)
    if not names:
        raise WrongValueError("a non-empty list of text encodings, e.g. [cp1252, mac-roman]")
    for name in names:
        try:
            codecs.lookup(name)
        except LookupError:
            raise WrongValueError(
                f"a list of known text encodings; {name!r} is none (e.g. cp1252, mac-roman, "
                "cp1250, cp1251)"
            ) from None
    return names


def boolean(value: Any) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise WrongValueError("true or false")
    return value


def text_list(value: Any) -> tuple[str, ...]:
    """A list of non-empty strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise WrongValueError('a list of non-empty strings, e.g. ["*.part", "*.tmp"]')
    return tuple(value)


def name_map(value: Any) -> dict[str, str]:
    """A mapping of non-empty names to non-empty names."""
    wrong = not isinstance(value, dict) or not all(
        isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
        for k, v in value.items()
    )
    if wrong:
        raise WrongValueError('a mapping of column names to field names, e.g. {"E-Mail": email}')
    return {k.strip(): v.strip() for k, v in value.items()}


def choice(*allowed: str) -> Check:
    """One of the given words."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in allowed:
            raise WrongValueError(f"one of {' | '.join(allowed)}")
        return value.lower()

    return check


def number(low: float, high: float | None = None, *, whole: bool = False) -> Check:
    """A number in [low, high]; `whole` asks for an integer."""
    span = f">= {low:g}" if high is None else f"between {low:g} and {high:g}"
    kind = "a whole number" if whole else "a number"

    def check(value: Any) -> int | float:
        wrong_type = isinstance(value, bool) or not isinstance(value, int | float)
        if wrong_type or (whole and not isinstance(value, int)) or not math.isfinite(value):
            raise WrongValueError(f"{kind} {span}")
        if value < low or (high is not None and value > high):
            raise WrongValueError(f"{kind} {span}")
        checked: int | float = value if whole else float(value)
        return checked

    return check


def positive(value: Any) -> float:
    """A number above 0."""
    checked = number(0.0)(value)
    if checked == 0:
        raise WrongValueError("a number above 0")
    return float(checked)


def listen_address(value: Any) -> str:
    """host:port to listen on, such as 127.0.0.1:9464 or [::1]:9464."""
    message = "host:port such as 127.0.0.1:9464 or [::1]:9464"
    if not isinstance(value, str) or value.count(":") == 0:
        raise WrongValueError(message)
    host, _, port = value.strip().rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise WrongValueError(message)
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise WrongValueError(message + " (an IPv6 address goes in brackets)")
    return value.strip()


def web_url(value: Any) -> str:
    """An http:// or https:// URL."""
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise WrongValueError("an https:// (or http://) URL")
    return value.strip()


def journal_location(value: Any) -> str:
    """sqlite, or a postgresql:// URL with no password in it."""
    message = "sqlite, or a URL such as postgresql://importer@db.example.com:5432/dropbox_importer"
    if not isinstance(value, str) or not value.strip():
        raise WrongValueError(message)
    url = str(value).strip()
    if url.lower() == "sqlite":
        return "sqlite"
    if not url.startswith(("postgresql://", "postgres://")):
        raise WrongValueError(message)
    # Imported here: only a shared journal needs psycopg.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise WrongValueError(message + " (this one does not parse)") from None
    if params.get("password"):
        raise WrongValueError(
            "a URL without a password: put the password in a file and name it in "
            "state.password_file (a bare name is read in $CREDENTIALS_DIRECTORY)"
        )
    return url


def email_address(value: Any) -> str:
    """One e-mail address, local@domain, with nothing that could forge a header."""
    if not isinstance(value, str) or any(c in value for c in '\r\n,<>"; \t'):
        raise WrongValueError("an e-mail address such as ops@example.com")
    local, at, domain = value.strip().rpartition("@")
    if not at or not local or "." not in domain or domain.startswith("."):
        raise WrongValueError("an e-mail address such as ops@example.com")
    return value.strip()


def email_list(value: Any) -> tuple[str, ...]:
    """A non-empty list of e-mail addresses."""
    if not isinstance(value, list) or not value:
        raise WrongValueError('a list of e-mail addresses, e.g. ["ops@example.com"]')
    return tuple(email_address(v) for v in value)


def outcome_list(value: Any) -> frozenset[str]:
    """A non-empty list of outcomes: failed, done."""
    allowed = ("failed", "done")
    if not isinstance(value, list) or not value or any(v not in allowed for v in value):
        raise WrongValueError("a list of outcomes out of [failed, done], e.g. [failed]")
    return frozenset(value)


@dataclass(frozen=True)
class Option:
    """One key: how its value is checked, its default and what it means."""

    check: Check | Section | Named
    default: Any
    doc: str
    secret: bool = False  # never echo the value, not even a wrong one


@dataclass(frozen=True)
class Section:
    """A mapping with fixed keys."""

    options: dict[str, Option]


@dataclass(frozen=True)
class Named:
    """A mapping from operator-chosen names to one section each."""

    section: Section


def _route_key(doc: str, check: Check) -> Option:
    return Option(check, None, doc)


def _list_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WrongValueError("a whole number above 0 (the static list's id)")
    return value


def _program_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WrongValueError("a whole number above 0 (the program's id)")
    return value


def _api_name(value: Any) -> str:
    name = text(value)
    if not API_NAME.fullmatch(name):
        raise WrongValueError("a custom object's API name: letters, digits and _, e.g. car_c")
    return name


# Route parameters: Marketo's own names and the short ones folder names use.
ROUTE = Section(
    {
        "format": _route_key(
            "csv | tsv | ssv (otherwise the file's extension)", choice("csv", "tsv", "ssv")
        ),
        "listId": _route_key("static list every imported lead joins", _list_id),
        "list": _route_key("short for listId", _list_id),
        "partitionName": _route_key("lead partition the leads go to", text),
        "partition": _route_key("short for partitionName", text),
        "lookupField": _route_key("field that finds an existing lead (Marketo: email)", text),
        "lookup": _route_key("short for lookupField", text),
        "programId": _route_key("program the rows join as members (with a status)", _program_id),
        "program": _route_key("short for programId", _program_id),
        "programMemberStatus": _route_key(
            "status the members get: one of the program channel's statuses", text
        ),
        "status": _route_key("short for programMemberStatus", text),
        "object": _route_key("custom object (API name) the rows are records of", _api_name),
    }
)

SANDBOX = Section(
    {
        "rows_per_second": Option(positive, 1000.0, "import speed of the built-in sandbox"),
        "job_overhead_seconds": Option(number(0.0), 1.0, "fixed time each sandbox job takes"),
        "profile": Option(
            choice("kind", "strict"),
            "kind",
            "`strict`: the harsher reading of every uncertain Marketo behaviour (docs/sandbox.md)",
        ),
    }
)

INSTANCE = Section(
    {
        "base_url": Option(text, None, 'REST base URL, or "embedded" for the built-in sandbox'),
        "munchkin_id": Option(text, None, "Munchkin id; an alternative to base_url"),
        "client_id": Option(text, None, "API client id (Admin > LaunchPoint)"),
        "client_secret": Option(text, None, "client secret itself (prefer a file)", secret=True),
        "client_secret_env": Option(text, None, "environment variable holding the secret"),
        "client_secret_file": Option(
            text, None, "file holding the secret; a bare name is read in $CREDENTIALS_DIRECTORY"
        ),
        "calls_per_window": Option(
            number(1, 100, whole=True), 80, "this daemon's share of 100 calls per 20 s"
        ),
        "window_seconds": Option(
            positive, 20.0, "length of the rolling call window (Marketo: 20; shorter for a sandbox)"
        ),
        "max_in_flight": Option(number(1, 10, whole=True), 8, "calls open at once (Marketo: 10)"),
        "max_queued_jobs": Option(
            number(1, 10, whole=True), 8, "import jobs queued at once (Marketo: 10)"
        ),
        "connect_timeout_seconds": Option(positive, 10.0, "time to open a connection"),
        "read_timeout_seconds": Option(positive, 60.0, "time to wait for an answer"),
        "poll_min_seconds": Option(positive, 5.0, "shortest wait between status calls of a batch"),
        "poll_max_seconds": Option(positive, 30.0, "longest wait between status calls of a batch"),
        "outage_error_seconds": Option(
            positive, 300.0, "failing this long, the instance's retries are logged at error"
        ),
        "sandbox": Option(SANDBOX, None, "built-in sandbox settings (base_url: embedded only)"),
    }
)

# Off unless present; `metrics: {}` serves on the default address.
METRICS = Section(
    {
        "listen": Option(
            listen_address, "127.0.0.1:9464", "host:port of the Prometheus /metrics endpoint"
        ),
        "allow_remote": Option(
            boolean, False, "let listen name a non-loopback address (the endpoint has no auth)"
        ),
    }
)

# Off unless present; `web: {}` serves the status page on the default address.
WEB = Section(
    {
        "listen": Option(
            listen_address, "127.0.0.1:9465", "host:port of the read-only status page"
        ),
        "allow_remote": Option(
            boolean, False, "let listen name a non-loopback address (the page has no auth)"
        ),
    }
)

NOTIFY = Section(
    {
        # A webhook URL often carries its own token (chat services put it in the path).
        "webhook": Option(web_url, None, "URL a JSON event is POSTed to", secret=True),
        "command": Option(text_list, None, "argv run with the event on stdin and in DBI_* vars"),
        "email": Option(email_list, None, "addresses e-mailed through the smtp server"),
        # Not `on`: YAML 1.1 readers (PyYAML included) turn that key into the boolean true.
        "when": Option(outcome_list, frozenset({"failed"}), "outcomes that notify: failed, done"),
        "timeout_seconds": Option(positive, 10.0, "longest one delivery may take"),
        "tries": Option(number(1, 20, whole=True), 5, "deliveries tried before giving up"),
    }
)

# Off unless present: the server `notify.email` sends through.
SMTP = Section(
    {
        "host": Option(text, REQUIRED, "SMTP server (a relay or submission server)"),
        "port": Option(number(1, 65535, whole=True), 587, "its port (465 with security: tls)"),
        "security": Option(
            choice("starttls", "tls", "none"), "starttls", "starttls | tls (implicit) | none"
        ),
        "from": Option(email_address, REQUIRED, "the sender address of notifications"),
        "credentials_file": Option(
            text, None, "file holding user:password; a bare name is read in $CREDENTIALS_DIRECTORY"
        ),
        "timeout_seconds": Option(positive, 30.0, "longest one conversation with it may take"),
    }
)

RETENTION = Section(
    {
        "done_days": Option(positive, None, "age at which done/ files expire (absent: never)"),
        "failed_days": Option(positive, None, "age at which failed/ files expire (absent: never)"),
        "action": Option(choice("delete", "archive"), "delete", "what happens to expired files"),
        "archive_dir": Option(text, None, "where action: archive moves them (route path kept)"),
    }
)


def list_ids(value: Any) -> frozenset[int]:
    """A list of static list ids (whole numbers above 0), maybe empty."""
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise WrongValueError("a list of static list ids, e.g. [1234, 1235]")
    return frozenset(value)


def program_ids(value: Any) -> frozenset[int]:
    """A list of program ids (whole numbers above 0), maybe empty."""
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise WrongValueError("a list of program ids, e.g. [1001]")
    return frozenset(value)


def api_names(value: Any) -> frozenset[str]:
    """A list of custom object API names, maybe empty."""
    if not isinstance(value, list) or not all(
        isinstance(v, str) and API_NAME.fullmatch(v.strip()) for v in value
    ):
        raise WrongValueError("a list of custom object API names, e.g. [car_c]")
    return frozenset(v.strip() for v in value)


def name_set(value: Any) -> frozenset[str]:
    """A list of names, maybe empty."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise WrongValueError('a list of names, e.g. ["EMEA"] (quote names YAML reads as numbers)')
    return frozenset(v.strip() for v in value)


# Where a file may be imported; an absent key sets no limit. A named route may narrow or widen
# lists, partitions and lookup fields for itself; which folders count is the drop box's alone.
_ALLOW_TARGETS = {
    "lists": Option(list_ids, None, "listIds a file may be imported into (absent: any)"),
    "partitions": Option(name_set, None, "partitionNames a file may go to (absent: any)"),
    "lookup_fields": Option(
        name_set, None, "lookup fields a file may use, email included (absent: any)"
    ),
    "programs": Option(program_ids, None, "programIds a file may add members to (absent: any)"),
    "objects": Option(api_names, None, "custom objects a file may import into (absent: any)"),
}
ALLOW = Section(
    {
        "folders": Option(
            choice("any", "named"), "any", "named: only route folders named in the config"
        ),
        **_ALLOW_TARGETS,
    }
)
ROUTE_ALLOW = Section(dict(_ALLOW_TARGETS))

# What a partner's columns become; names are matched case-insensitively, trimmed.
COLUMNS = Section(
    {
        "aliases": Option(name_map, None, "partner's column name -> REST field name"),
        "ignore": Option(text_list, (), "partners' column names never sent (kept in the original)"),
        "allow": Option(
            text_list, None, "fields a file may set (absent: any but the protected ones)"
        ),
        "deny": Option(text_list, (), "fields never sent"),
        "on_denied": Option(
            choice("reject", "drop"), "reject", "reject: fail the file; drop: send without them"
        ),
    }
)

# Absent: SQLite in state_dir, for one host. A postgresql:// journal is shared by every host
# whose config names it; one leads, the others stand by (pipeline/leadership.py).
STATE = Section(
    {
        "journal": Option(
            journal_location,
            "sqlite",
            "sqlite (a file in state_dir) or a postgresql:// URL hosts share",
            secret=True,
        ),
        "password_file": Option(
            text,
            None,
            "file holding the database password; a bare name is read in $CREDENTIALS_DIRECTORY",
        ),
        "host_name": Option(text, None, "this host's name in status and the journal"),
        "lease_seconds": Option(
            number(1.0, 600.0), 15.0, "how soon a standby replaces a leader that went silent"
        ),
    }
)

# A route named in the config: its parameters, and rules of its own over the drop box's.
NAMED_ROUTE = Section(
    {
        **ROUTE.options,
        "allow": Option(ROUTE_ALLOW, None, "the drop box's allow, key by key, for this route"),
        "columns": Option(COLUMNS, None, "the drop box's columns, key by key, for this route"),
        "coalesce": Option(boolean, None, "the drop box's coalesce, for this route"),
    }
)

DROPBOX = Section(
    {
        "root": Option(text, REQUIRED, "folder holding inbox/, processing/, done/, failed/"),
        "instance": Option(text, REQUIRED, "name of the instance files are imported into"),
        "watch": Option(choice("auto", "events", "polling"), "auto", "how new files are noticed"),
        "polling_interval_seconds": Option(positive, 5.0, "period of the polling observer"),
        "rescan_seconds": Option(positive, 60.0, "full rescan, a safety net for lost events"),
        "settle_seconds": Option(number(0.0), 5.0, "quiet time before a file counts as written"),
        "close_quiet_seconds": Option(
            number(0.0), 1.0, "quiet time after a local writer closed a file (inotify)"
        ),
        "writer_check": Option(
            choice("auto", "off"), "auto", "lease at the claim: no process may have it open"
        ),
        "empty_file_seconds": Option(
            number(0.0), 60.0, "age a zero-byte file must reach before it is claimed"
        ),
        "unterminated_settle_seconds": Option(
            number(0.0), 60.0, "quiet time when the last line has no line end, writer unseen"
        ),
        "settled_watch_seconds": Option(
            number(0.0), 300.0, "how long settled files are watched for late writes"
        ),
        "ready_marker": Option(
            choice("none", "done", "ok"), "none", "wait for <file>.done / <file>.ok instead"
        ),
        "ignore": Option(
            text_list, (), "name patterns never imported, besides the built-in temporary names"
        ),
        "encoding": Option(encoding_name, "utf-8", "encoding of partner files, or auto"),
        "encoding_candidates": Option(
            encoding_list, ("cp1252", "mac-roman"), "what encoding: auto chooses among"
        ),
        "partial_failure": Option(
            choice("done", "failed"), "done", "where a file goes when some rows failed"
        ),
        "max_part_bytes": Option(
            number(1024, MARKETO_MAX_FILE_BYTES - 1, whole=True),
            9_500_000,
            "files larger are split into parts under this",
        ),
        "preflight": Option(boolean, True, "check header, lists and partitions first"),
        "coalesce": Option(
            boolean, True, "small files of one route and header that would wait go as one job"
        ),
        "defaults": Option(ROUTE, None, "parameters a route folder leaves out"),
        "routes": Option(Named(NAMED_ROUTE), None, "route folders named in the config"),
        "allow": Option(ALLOW, None, "which folders, lists, partitions, lookup fields"),
        "columns": Option(COLUMNS, None, "what the columns of partners' files become"),
        "notify": Option(NOTIFY, None, "webhook or command told when a file settles"),
        "retention": Option(RETENTION, None, "when done/ and failed/ files expire"),
    }
)

TOP = Section(
    {
        "state_dir": Option(text, "/var/lib/dropbox-importer", "journal, lock and split parts"),
        "log_level": Option(
            choice("debug", "info", "warning", "error"), "info", "least severe event logged"
        ),
        "log_format": Option(
            choice("auto", "json", "console"), "auto", "auto: JSON unless a terminal"
        ),
        "instances": Option(Named(INSTANCE), REQUIRED, "Marketo instances, by name"),
        "dropboxes": Option(Named(DROPBOX), REQUIRED, "drop boxes, by name"),
        "metrics": Option(METRICS, None, "Prometheus endpoint (absent: off)"),
        "state": Option(STATE, None, "where the journal lives; a shared one for several hosts"),
        "web": Option(WEB, None, "the read-only status page (absent: off)"),
        "smtp": Option(SMTP, None, "server notify.email sends through (absent: no e-mail)"),
    }
)


def key_paths(section: Section = TOP, prefix: str = "") -> set[str]:
    """Every key of the schema as a dotted path, `*` standing for an operator-chosen name."""
    paths: set[str] = set()
    for name, option in section.options.items():
        path = f"{prefix}{name}"
        paths.add(path)
        if isinstance(option.check, Section):
            paths |= key_paths(option.check, f"{path}.")
        elif isinstance(option.check, Named):
            paths |= key_paths(option.check.section, f"{path}.*.")
    return paths
