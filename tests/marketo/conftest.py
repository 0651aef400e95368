"""Fixtures of the client tests: a MarketoClient bound to a running sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.settings import InstanceSettings, LimitSettings
from dropbox_importer.sandbox import Sandbox

MakeClient = Callable[..., MarketoClient]


@pytest.fixture(params=["kind", "strict"])
def sandbox_profile(request: pytest.FixtureRequest) -> str:
    """Every client test runs against both readings of Marketo (see docs/sandbox.md)."""
    profile: str = request.param
    return profile


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """`make_client(sandbox, secret=..., **limits)`: a client with fast back-off; closed after."""
    made: list[MarketoClient] = []

    def make(
        sandbox: Sandbox, *, secret: str | None = None, name: str = "acme", **limits: Any
    ) -> MarketoClient:
        settings = InstanceSettings(
            name=name,
            base_url=sandbox.base_url,
            client_id=sandbox.settings.client_id,
            client_secret=sandbox.settings.client_secret if secret is None else secret,
            limits=LimitSettings(**limits),
            connect_timeout=2.0,
            read_timeout=5.0,
            base_backoff_seconds=0.02,
            max_backoff_seconds=0.5,
            list_busy_first_wait_seconds=0.1,
            list_busy_max_wait_seconds=1.0,
        )
        client = MarketoClient(settings)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
