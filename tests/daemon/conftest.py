"""The daemon under test runs unprivileged, as the unit runs it (see tests/unprivileged.py)."""

from __future__ import annotations

from tests.unprivileged import daemon_runs_unprivileged, tmp_path

__all__ = ["daemon_runs_unprivileged", "tmp_path"]  # fixtures, imported so pytest finds them
