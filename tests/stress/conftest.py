"""Stress runs are long: they run only under `make stress` (DROPBOX_IMPORTER_STRESS=1)."""

from __future__ import annotations

import os

import pytest

from dropbox_importer.logs import configure
from tests.unprivileged import daemon_runs_unprivileged, tmp_path

# Fixtures, imported so pytest finds them: the daemon runs unprivileged, as the unit runs it.
__all__ = ["daemon_runs_unprivileged", "tmp_path"]

ENABLED = os.environ.get("DROPBOX_IMPORTER_STRESS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every test below tests/stress unless the stress switch is on."""
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="stress run: set DROPBOX_IMPORTER_STRESS=1 (make stress)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here + os.sep):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def quiet_sandbox() -> None:
    """The in-process sandbox logs every batch at debug: keep -s output to the counts."""
    configure(level="warning")
