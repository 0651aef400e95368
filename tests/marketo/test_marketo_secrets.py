"""The client secret and the access token reach no log event and no exception text."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests
from structlog.testing import capture_logs

from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.errors import AuthenticationError, MarketoError
from dropbox_importer.marketo.models import ImportFormat, ImportParams
from dropbox_importer.sandbox import FaultSettings
from tests.marketo.conftest import MakeClient

SECRET = "very-secret-client-secret-42"


def current_token(base_url: str) -> str:
    """The token the sandbox is handing out now (the one the client used)."""
    response = requests.post(
        f"{base_url}/identity/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": SECRET,
        },
        timeout=5,
    )
    token: str = response.json()["access_token"]
    return token


def test_secret_and_token_never_logged_nor_in_errors(
    make_sandbox: type, make_client: MakeClient, tmp_path: Path
) -> None:
    faults = FaultSettings(rate=0.3, codes=("604", "713"), drop_rate=0.1, http_5xx_rate=0.1)
    sandbox = make_sandbox(client_secret=SECRET, faults=faults)
    good = make_client(sandbox)
    bad = make_client(sandbox, secret=SECRET + "-typo", name="typo")
    leads = tmp_path / "leads.csv"
    leads.write_text("email\na@example.com\n")
    messages: list[str] = []
    with capture_logs() as logs:
        good.check_credentials()
        good.create_import(leads, ImportParams(ImportFormat.CSV))
        for _ in range(10):
            good.describe_fields()
        for call in (
            bad.check_credentials,
            lambda: good.create_import(
                leads, ImportParams(ImportFormat.CSV, partition_name="Nowhere")
            ),
        ):
            with pytest.raises(MarketoError) as caught:
                call()
            messages += [str(caught.value), repr(caught.value)]
    token = current_token(sandbox.base_url)
    assert len(logs) > 3 and any(e["event"] == "marketo_call_retry" for e in logs)
    assert any(isinstance(m, str) and "typo" in m for m in messages)
    for text in [repr(event) for event in logs] + messages:
        assert SECRET not in text
        assert token not in text


def test_settings_repr_hides_the_secret(make_sandbox: type, make_client: MakeClient) -> None:
    sandbox = make_sandbox(client_secret=SECRET)
    client = make_client(sandbox)
    assert SECRET not in repr(client._settings)
    with pytest.raises(AuthenticationError) as caught:
        make_client(sandbox, secret="x" + SECRET).check_credentials()
    assert SECRET not in str(caught.value)


# Public methods of the client that send nothing to Marketo.
LOCAL_METHODS = {
    "adopt_batch",
    "close",
    "health_snapshot",
    "jobs_in_flight",
    "list_wait",
    "on_list_freed",
    "on_slot_freed",
    "stats",
}


def test_no_client_call_sends_the_secret_or_the_token_in_a_url(
    make_sandbox: type, make_client: MakeClient, tmp_path: Path
) -> None:
    sandbox = make_sandbox(client_secret=SECRET)
    client = make_client(sandbox)
    leads = tmp_path / "leads.csv"
    leads.write_text("email\na@example.com\nnot-an-email\n")
    batch_id = 0

    def create() -> None:
        nonlocal batch_id
        batch_id = client.create_import(leads, ImportParams(ImportFormat.CSV, list_id=1001))

    def status() -> None:
        while not client.batch_status(batch_id).status.terminal:
            threading.Event().wait(0.02)  # polling interval; the sandbox ends it in ms

    calls = {
        "check_credentials": client.check_credentials,
        "create_import": create,
        "batch_status": status,
        "download_failures": lambda: client.download_failures(batch_id, tmp_path / "f.csv"),
        "download_warnings": lambda: client.download_warnings(batch_id, tmp_path / "w.csv"),
        "describe_fields": client.describe_fields,
        "partitions": client.partitions,
        "get_list": lambda: client.get_list(1001),
        "describe_program_members": client.describe_program_members,
        "get_program": lambda: client.get_program(1001),
        "channels": client.channels,
        "describe_custom_object": lambda: client.describe_custom_object("car_c"),
    }
    public = {
        name
        for name in dir(MarketoClient)
        if not name.startswith("_") and callable(getattr(MarketoClient, name))
    }
    assert public - LOCAL_METHODS == set(calls), "a new call must be checked here too"
    for call in calls.values():
        call()
    stats = requests.get(f"{sandbox.base_url}/sandbox/stats.json", timeout=5).json()
    assert stats["calls"]["identity"] == 1
    assert stats["identityCredentials"] == {"query": 0, "body": 1}
    assert stats["secretsInUrl"] == {"client_secret": 0, "access_token": 0}
