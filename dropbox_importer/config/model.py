"""The loaded config as typed, frozen values: what the daemon and the commands read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dropbox_importer.csvfile.header import ColumnRules
from dropbox_importer.dropbox.policy import AllowRules, Policy
from dropbox_importer.dropbox.routes import RouteSpec
from dropbox_importer.marketo.settings import InstanceSettings, LimitSettings

# `base_url` of an instance served by the built-in sandbox, in the daemon's own process.
EMBEDDED = "embedded"


@dataclass(frozen=True)
class SandboxOptions:
    """How the built-in sandbox of an `embedded` instance behaves."""

    rows_per_second: float = 1000.0
    job_overhead_seconds: float = 1.0
    profile: str = "kind"  # kind | strict


@dataclass(frozen=True)
class Timeouts:
    """How long a call to Marketo may take to connect and to answer."""

    connect_seconds: float = 10.0
    read_seconds: float = 60.0


@dataclass(frozen=True)
class InstanceConfig:
    """One Marketo instance as configured; its secret was resolved at load."""

    name: str
    base_url: str  # no trailing slash, or EMBEDDED
    client_id: str  # "" for an embedded instance: the sandbox brings its own
    secret: str = field(repr=False)
    limits: LimitSettings = field(default_factory=LimitSettings)
    timeouts: Timeouts = field(default_factory=Timeouts)
    poll_min_seconds: float = 5.0
    poll_max_seconds: float = 30.0
    outage_error_seconds: float = 300.0
    sandbox: SandboxOptions | None = None

    @property
    def embedded(self) -> bool:
        """True when the built-in sandbox stands in for Marketo."""
        return self.base_url == EMBEDDED

    def settings(
        self,
        *,
        base_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> InstanceSettings:
        """The client's settings; the overrides carry a running embedded sandbox's details."""
        url = base_url or self.base_url
        if url == EMBEDDED:
            raise ValueError(
                f"instance {self.name!r} is embedded: pass the running sandbox's base_url"
            )
        return InstanceSettings(
            name=self.name,
            base_url=url.rstrip("/"),
            client_id=self.client_id if client_id is None else client_id,
            client_secret=self.secret if client_secret is None else client_secret,
            limits=self.limits,
            connect_timeout=self.timeouts.connect_seconds,
            read_timeout=self.timeouts.read_seconds,
            list_busy_first_wait_seconds=self.poll_min_seconds,
            list_busy_max_wait_seconds=self.poll_max_seconds,
            outage_error_seconds=self.outage_error_seconds,
        )


@dataclass(frozen=True)
class MetricsConfig:
    """Where a listener (the Prometheus endpoint, the status page) listens."""

    host: str = "127.0.0.1"  # an IPv6 address without its brackets
    port: int = 9464
    allow_remote: bool = False


@dataclass(frozen=True)
class NotifyConfig:
    """Who is told when a file of a drop box settles, and for which outcomes."""

    webhook: str | None = field(default=None, repr=False)  # its path may carry a token
    command: tuple[str, ...] | None = None
    when: frozenset[str] = frozenset({"failed"})
    timeout_seconds: float = 10.0
    tries: int = 5
    email: tuple[str, ...] | None = None  # recipients, sent through the config's smtp


@dataclass(frozen=True)
class SmtpConfig:
    """The server e-mail notifications go through; its password was read at load."""

    host: str
    sender: str
    port: int = 587
    security: str = "starttls"  # starttls | tls | none
    username: str | None = None
    password: str = field(default="", repr=False)
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class RetentionConfig:
    """When settled files expire and what then happens to them."""

    done_days: float | None = None  # None: kept forever
    failed_days: float | None = None
    action: str = "delete"  # delete | archive
    archive_dir: Path | None = None


@dataclass(frozen=True)
class DropboxConfig:
    """One drop box: where it lives, how it is watched and how its route folders import."""

    name: str
    root: Path
    instance: str
    watch: str = "auto"  # auto | events | polling
    polling_interval_seconds: float = 5.0
    rescan_seconds: float = 60.0
    settle_seconds: float = 5.0
    close_quiet_seconds: float = 1.0
    writer_check: str = "auto"  # auto | off
    empty_file_seconds: float = 60.0
    unterminated_settle_seconds: float = 60.0
    settled_watch_seconds: float = 300.0
    ready_marker: str = "none"  # none | done | ok
    ignore: tuple[str, ...] = ()  # added to ready.BUILTIN_IGNORE
    encoding: str = "utf-8"  # a codec, or "auto"
    encoding_candidates: tuple[str, ...] = ("cp1252", "mac-roman")
    partial_failure: str = "done"  # done | failed
    max_part_bytes: int = 9_500_000
    preflight: bool = True
    coalesce: bool = True  # files that would wait for Marketo go as one job (coalesce.py)
    defaults: RouteSpec = field(default_factory=RouteSpec)
    routes: dict[str, RouteSpec] = field(default_factory=dict)
    allow: AllowRules = field(default_factory=AllowRules)
    columns: ColumnRules = field(default_factory=ColumnRules)
    # Named routes with rules of their own: the drop box's, overridden key by key.
    route_policies: dict[str, Policy] = field(default_factory=dict)
    # Named routes that set `coalesce` themselves, over the drop box's.
    route_coalesce: dict[str, bool] = field(default_factory=dict)
    notify: NotifyConfig | None = None
    retention: RetentionConfig | None = None

    @property
    def policy(self) -> Policy:
        """The drop box's own rules, before any named route's overrides."""
        return Policy(self.allow, self.columns)


@dataclass(frozen=True)
class StateConfig:
    """Where the journal lives: SQLite in state_dir, or PostgreSQL shared by several hosts."""

    journal: str = "sqlite"  # or a postgresql:// URL, never with a password
    password: str | None = field(default=None, repr=False)  # read from password_file
    unreadable_password: str | None = None  # why password_file could not be read (status)
    host_name: str = ""  # the machine's host name unless configured
    lease_seconds: float = 15.0

    @property
    def shared(self) -> bool:
        """True for a PostgreSQL journal, which hosts share and one of them leads."""
        return self.journal != "sqlite"


@dataclass(frozen=True)
class Config:
    """A whole config file, checked and resolved."""

    path: Path
    state_dir: Path
    log_level: str
    log_format: str  # auto | json | console
    instances: dict[str, InstanceConfig]
    dropboxes: dict[str, DropboxConfig]
    metrics: MetricsConfig | None = None  # None: no endpoint
    state: StateConfig = field(default_factory=StateConfig)
    web: MetricsConfig | None = None  # the status page's listener; None: off
    smtp: SmtpConfig | None = None  # None: no e-mail
