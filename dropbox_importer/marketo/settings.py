"""What the client needs to know about one Marketo instance; the config module builds these."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LimitSettings:
    """This daemon's share of an instance's limits (Marketo's are shared by every integration)."""

    # Marketo allows 100 calls per rolling 20 s; keep headroom for other integrations.
    calls_per_window: int = 80
    window_seconds: float = 20.0
    # Marketo refuses an 11th concurrent call with 615.
    max_in_flight: int = 8
    # Marketo queues at most 10 import jobs per instance (2 importing); 1016 beyond that.
    max_queued_jobs: int = 8


@dataclass(frozen=True)
class InstanceSettings:
    """Connection details of one Marketo instance: base URL, credentials, limits, time-outs."""

    name: str
    base_url: str  # e.g. https://123-ABC-456.mktorest.com (no trailing slash)
    client_id: str
    client_secret: str = field(repr=False)
    limits: LimitSettings = field(default_factory=LimitSettings)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # Upper bound of the exponential back-off between retries of a transient fault.
    max_backoff_seconds: float = 60.0
    # First back-off delay of a transient fault; each retry doubles it up to the ceiling above.
    base_backoff_seconds: float = 0.5
    # A token is refreshed this long before Marketo says it expires (capped at a quarter of its
    # lifetime), so a call never leaves with a token that dies on the way.
    token_refresh_margin_seconds: float = 60.0
    # After a 1019 (another integration imports into the list), the list is left alone for
    # this long, doubling with each further 1019 up to the maximum: a running import's pace,
    # like polling a batch (the daemon passes its poll band).
    list_busy_first_wait_seconds: float = 5.0
    list_busy_max_wait_seconds: float = 30.0
    # An instance failing this long logs its retries (and `instance_outage`) at error.
    outage_error_seconds: float = 300.0


def munchkin_base_url(munchkin_id: str) -> str:
    """The REST base URL of an instance from its Munchkin id (Admin > Web Services)."""
    return f"https://{munchkin_id.strip()}.mktorest.com"
