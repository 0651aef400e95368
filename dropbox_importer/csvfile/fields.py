""" "Did you mean" suggestions for header names that are no Marketo lead field."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Below this similarity a suggestion confuses more than it helps ("Phone" for "Notes").
CUTOFF = 0.75


def suggest_fields(unknown: Iterable[str], known: Iterable[str]) -> dict[str, str | None]:
    """Map each unknown header name to the closest known field name (case-insensitive), or None."""
    by_lower: dict[str, str] = {}
    for name in known:
        by_lower.setdefault(name.strip().lower(), name)
    candidates = list(by_lower)
    out: dict[str, str | None] = {}
    for name in unknown:
        key = name.strip().lower()
        if key in by_lower:
            out[name] = by_lower[key]
            continue
        match = difflib.get_close_matches(key, candidates, n=1, cutoff=CUTOFF)
        out[name] = by_lower[match[0]] if match else None
    return out
