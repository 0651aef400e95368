"""Shared fixtures: a real sandbox on a free loopback port, fast enough for tests, and a real
PostgreSQL server for the journal on PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog

from dropbox_importer.sandbox import Sandbox, SandboxSettings
from tests import unprivileged
from tests.postgres import PostgresDatabase, PostgresServer, ensure_installed

# Import speed for tests: a 1,000-row file takes 0.25 s, an empty job 0.05 s.
FAST = SandboxSettings(rows_per_second=5000.0, job_overhead_seconds=0.05)

MakeSandbox = Callable[..., Sandbox]


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """Undo any `logs.configure()` a test ran in-process: it binds to that test's stdout."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def sandbox_profile() -> str:
    """The sandbox profile `make_sandbox` uses; a module overrides it to run under both."""
    return "kind"


@pytest.fixture
def make_sandbox(sandbox_profile: str) -> Iterator[MakeSandbox]:
    """A factory: `make_sandbox(**overrides)` starts a sandbox with FAST settings overridden.

    Its profile is the `sandbox_profile` fixture's unless an override names one. Every
    sandbox it starts is stopped at the end of the test.
    """
    started: list[Sandbox] = []

    def make(**overrides: Any) -> Sandbox:
        sandbox = Sandbox(replace(FAST, **{"profile": sandbox_profile, **overrides})).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> Sandbox:
    """A running sandbox with fast import speed and Marketo's default limits."""
    return make_sandbox()


def pytest_report_header() -> str:
    """Say who the daemon under test runs as (root's CI: an unprivileged service account)."""
    return unprivileged.report_header()


@pytest.fixture(scope="session")
def service_account() -> Iterator[unprivileged.ServiceAccount | None]:
    """When root: a system user the daemon runs as in tests/daemon and tests/stress."""
    yield from unprivileged.session_account()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test session's own (tests/postgres.py); skipped where none.

    Debian's package is installed when missing and the tests run as root; only where it cannot
    be had at all are the tests that need it skipped, with the reason in pytest's summary.
    """
    bindir, why_not = ensure_installed()
    if bindir is None:
        print(f"\nPostgreSQL tests skipped: {why_not}", file=sys.stderr)
        pytest.skip(why_not)
    server = PostgresServer.start(bindir)
    yield server
    server.stop()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer, tmp_path: Path) -> PostgresDatabase:
    """A new empty database on the session's server, owned by the daemon's role."""
    return postgres_server.create_database(tmp_path)
