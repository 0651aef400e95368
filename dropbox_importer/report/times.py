"""Times as the operator reads and types them: ISO UTC stamps, short ages, `--since` values."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

SINCE_FORMS = (
    "90m, 2h, 3d or 1w ago; 02:00 (today, or yesterday when that is still to come); "
    "2026-11-29; '2026-11-29 02:00'; 2026-11-29T02:00Z. Without a zone, the machine's local "
    "time, as journalctl --since reads it"
)
_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)", re.I)
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def iso(moment: datetime | None) -> str | None:
    """A moment as status shows it: ISO 8601 UTC to the second, with a Z."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(seconds: float) -> str:
    """A duration the way people read it at a glance: 45s, 12m05s, 3h05m, 2d04h."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def parse_since(text: str, now: datetime, local: tzinfo | None = None) -> datetime:
    """The moment a `--since` value names (an aware datetime); ValueError lists the forms.

    `local` is the zone of times written without one (default: the machine's).
    """
    value = text.strip()
    zone = local or datetime.now().astimezone().tzinfo or UTC
    ago = _AGO.fullmatch(value)
    if ago:
        return now - timedelta(seconds=float(ago.group(1)) * _UNITS[ago.group(2).lower()])
    lowered = value.lower()
    if lowered in ("today", "yesterday"):
        day = now.astimezone(zone).date() - timedelta(days=lowered == "yesterday")
        return datetime.combine(day, time(0), tzinfo=zone)
    try:
        clock = time.fromisoformat(value)
    except ValueError:
        clock = None
    if clock is not None and ":" in value:
        today = now.astimezone(zone).date()
        moment = datetime.combine(today, clock.replace(tzinfo=clock.tzinfo or zone))
        return moment - timedelta(days=1) if moment > now else moment
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=zone)
        moment = datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        raise ValueError(f"'{text}' is not a time: use {SINCE_FORMS}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
