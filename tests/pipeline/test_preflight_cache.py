"""The preflight catalog: what exists is cached for an hour, what is missing for a minute."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest

from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.settings import InstanceSettings
from dropbox_importer.pipeline import preflight
from dropbox_importer.pipeline.preflight import Catalog
from dropbox_importer.sandbox import Sandbox

# Later than the minute a missing answer is trusted (NEGATIVE_TTL_SECONDS), well inside the hour.
A_LITTLE_OVER_A_MINUTE = 61.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The catalog's clock, moved by hand (only the catalog's: the client keeps real time)."""
    now = [1000.0]
    monkeypatch.setattr(preflight, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


@pytest.fixture
def client(sandbox: Sandbox) -> Callable[[], MarketoClient]:
    def make() -> MarketoClient:
        return MarketoClient(
            InstanceSettings(
                name="main",
                base_url=sandbox.base_url,
                client_id=sandbox.settings.client_id,
                client_secret=sandbox.settings.client_secret,
            )
        )

    return make


def test_a_list_created_after_it_was_found_missing_is_found_within_a_minute(
    sandbox: Sandbox, client: Callable[[], MarketoClient], clock: list[float]
) -> None:
    catalog = Catalog(client())
    assert not catalog.list_exists(4242)
    sandbox.app.db.lists[4242] = "Created by the operator"
    assert not catalog.list_exists(4242)  # a "no" is trusted briefly
    clock[0] += A_LITTLE_OVER_A_MINUTE
    assert catalog.list_exists(4242)
    del sandbox.app.db.lists[4242]
    clock[0] += A_LITTLE_OVER_A_MINUTE
    assert catalog.list_exists(4242)  # a "yes" is kept for the hour


def test_a_partition_created_after_it_was_found_missing_is_found_within_a_minute(
    sandbox: Sandbox, client: Callable[[], MarketoClient], clock: list[float]
) -> None:
    catalog = Catalog(client())
    assert "Asia" not in catalog.partition_names(missing="Asia")
    sandbox.app.db.partitions = (*sandbox.app.db.partitions, "Asia")
    clock[0] += A_LITTLE_OVER_A_MINUTE
    assert "Asia" not in catalog.partition_names()  # nothing said missing: the hour holds
    assert "Asia" in catalog.partition_names(missing="Asia")
