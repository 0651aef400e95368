"""The sandbox's knobs: credentials, import speed, limits, lead schema and fault injection."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from dropbox_importer.sandbox.profile import PROFILES, ProfileName, Rules, rules_of

if TYPE_CHECKING:
    from dropbox_importer.sandbox.catalog import ObjectCatalog

# Names a fault `endpoints` filter may use; `None` means every Marketo endpoint but identity.
ENDPOINTS = (
    "identity",
    "create",
    "status",
    "failures",
    "warnings",
    "describe",
    "partitions",
    "list",
    # Program members and custom objects (programs_api.py, objects_api.py).
    "program_members_create",
    "program_members_status",
    "program_members_failures",
    "program_members_warnings",
    "program_members_describe",
    "program",
    "channels",
    "customobjects_create",
    "customobjects_status",
    "customobjects_failures",
    "customobjects_warnings",
    "customobjects_describe",
)


@dataclass(frozen=True)
class LeadField:
    """One lead field as `describe.json` reports it: REST name, data type and length."""

    name: str
    data_type: str = "string"
    length: int | None = 255
    display_name: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class FaultSettings:
    """What goes wrong on purpose, how often and where; seeded so a failure can be replayed."""

    # Share of calls answered with one of `codes` (HTTP 200, success false).
    rate: float = 0.0
    # None: the profile's transient codes (kind: 502, 604, 608, 611, 713; strict adds 614).
    codes: tuple[str, ...] | None = None
    # Share of calls answered with a bare HTTP 5xx.
    http_5xx_rate: float = 0.0
    # Share of calls whose connection is closed without an answer, before the call runs.
    drop_rate: float = 0.0
    # Share of calls that run (a create queues its batch) and then lose their answer: the
    # connection is closed before a byte of it is sent.
    lost_answer_rate: float = 0.0
    # Share of calls delayed by `latency_seconds` before they run.
    latency_seconds: float = 0.0
    latency_rate: float = 0.0
    # Share of created batches that end `Failed`.
    failed_batch_rate: float = 0.0
    # Endpoint names (see ENDPOINTS) faults apply to; None: every Marketo endpoint but identity.
    endpoints: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject rates outside [0, 1], unknown endpoints and negative latency."""
        rates = ("rate", "http_5xx_rate", "drop_rate", "lost_answer_rate", "latency_rate")
        for name in (*rates, "failed_batch_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {name} must be between 0 and 1, got {value}")
        if self.latency_seconds < 0:
            raise ValueError(f"fault latency_seconds must be >= 0, got {self.latency_seconds}")
        if self.codes is not None and not self.codes:
            raise ValueError("fault codes must not be empty (null: the profile's own)")
        unknown = set(self.endpoints or ()) - set(ENDPOINTS)
        if unknown:
            raise ValueError(f"unknown fault endpoints {sorted(unknown)}; known: {ENDPOINTS}")

    def updated(self, changes: dict[str, Any]) -> FaultSettings:
        """A copy with the given fields replaced (JSON lists become tuples); ValueError if bad."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}; known: {sorted(known)}")
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "codes":
                clean[key] = None if value is None else tuple(str(code) for code in value)
            elif key == "endpoints":
                clean[key] = None if value is None else tuple(str(name) for name in value)
            elif key == "seed":
                clean[key] = int(value)
            else:
                clean[key] = float(value)
        return replace(self, **clean)

    def to_json(self) -> dict[str, Any]:
        """These settings as a JSON-ready dict."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["codes"] = None if self.codes is None else list(self.codes)
        out["endpoints"] = None if self.endpoints is None else list(self.endpoints)
        return out


@dataclass(frozen=True)
class OtherIntegrationSettings:
    """The neighbour's load: off unless `jobs` is above 0."""

    jobs: int = 0  # its jobs kept queued or importing at once
    rows: int = 100  # leads per job
    list_id: int | None = None  # a static list one of its jobs at a time imports to
    poll_seconds: float = 2.0  # one status call of its own every this many seconds

    def __post_init__(self) -> None:
        """Reject a load that makes no sense."""
        if self.jobs < 0 or self.rows < 1:
            raise ValueError("other integration: jobs must be >= 0 and rows >= 1")
        if self.poll_seconds <= 0:
            raise ValueError("other integration: poll_seconds must be > 0")

    def updated(self, changes: dict[str, Any]) -> OtherIntegrationSettings:
        """A copy with the given fields replaced; ValueError for unknown or bad ones."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown other integration settings {sorted(unknown)}")
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "poll_seconds":
                clean[key] = float(value)
            elif key == "list_id":
                clean[key] = None if value is None else int(value)
            else:
                clean[key] = int(value)
        return replace(self, **clean)


@dataclass(frozen=True)
class SandboxSettings:
    """Everything a running sandbox needs; the defaults are Marketo's own numbers."""

    client_id: str = "sandbox-client"
    client_secret: str = field(default="sandbox-secret", repr=False)
    # Import speed: a job takes job_overhead_seconds + rows / rows_per_second.
    rows_per_second: float = 1000.0
    job_overhead_seconds: float = 1.0
    token_lifetime_seconds: float = 3600.0
    calls_per_window: int = 100
    window_seconds: float = 20.0
    max_in_flight: int = 10
    daily_quota: int = 50000
    max_queued_jobs: int = 10
    max_importing: int = 2
    batch_retention_seconds: float = 7 * 86400.0
    max_file_bytes: int = 10 * 1024 * 1024
    # What a header column that is no lead field does: warn on every row, or fail the batch.
    unknown_column: Literal["warn", "fail"] = "warn"
    # Which reading of Marketo's uncertain behaviours to follow (see profile.py).
    profile: ProfileName = "kind"
    # Strict only: the jobs of a list that make a create for it answer 1019: "queued" (queued
    # or importing, the harsher reading) or "importing" (only a job already importing).
    list_busy_from: Literal["queued", "importing"] = "queued"
    # Seeds the order of the rows in strict failures and warnings files.
    row_order_seed: int = 0
    custom_fields: tuple[LeadField, ...] = ()
    lists: dict[int, str] = field(
        default_factory=lambda: {1001: "Demo list", 1002: "Newsletter", 1003: "Webinar"}
    )
    partitions: tuple[str, ...] = ("Default", "Europe", "Americas")
    # Channels, programs, program member fields and custom object types (catalog.py).
    catalog: ObjectCatalog = field(default_factory=lambda: _default_catalog())
    faults: FaultSettings = field(default_factory=FaultSettings)
    # Another integration keeping jobs of its own in the queue (other.py); off by default.
    other_integration: OtherIntegrationSettings = field(default_factory=OtherIntegrationSettings)
    scope: str = "sandbox-api-user@example.com"
    # Keep every uploaded file for /sandbox/batches/{id}/file (tests); else freed when its
    # batch finishes, as a long run of big files would otherwise hold them all in memory.
    keep_uploads: bool = False

    def __post_init__(self) -> None:
        """Reject settings that would make the sandbox meaningless."""
        if self.rows_per_second <= 0:
            raise ValueError("rows_per_second must be > 0")
        if self.unknown_column not in ("warn", "fail"):
            raise ValueError("unknown_column must be 'warn' or 'fail'")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
        if self.list_busy_from not in ("queued", "importing"):
            raise ValueError("list_busy_from must be 'queued' or 'importing'")
        if not self.partitions:
            raise ValueError("at least one partition is needed")
        if min(self.max_importing, self.max_queued_jobs, self.max_in_flight) < 1:
            raise ValueError("max_importing, max_queued_jobs and max_in_flight must be >= 1")
        other = self.other_integration.list_id
        if other is not None and other not in self.lists:
            raise ValueError(f"other integration: list {other} is not one of the sandbox's lists")

    @property
    def rules(self) -> Rules:
        """The behaviours of the chosen profile."""
        return rules_of(self.profile)


def _default_catalog() -> ObjectCatalog:
    # Imported when called: catalog.py builds on LeadField, defined in this module.
    from dropbox_importer.sandbox.catalog import ObjectCatalog

    return ObjectCatalog()
