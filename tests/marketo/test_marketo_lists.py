"""One job of ours per static list in Marketo at once; another integration's 1019 waited out."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest
import requests
from marketo_support import FakeClock, sandbox_stats, wait_for

from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.errors import ImportInProgress
from dropbox_importer.marketo.list_holds import HELD_BY_US, ListHolds
from dropbox_importer.marketo.models import BatchState, BatchStatus, ImportFormat, ImportParams
from dropbox_importer.sandbox import Sandbox
from tests.marketo.conftest import MakeClient

LIST_1001 = ImportParams(ImportFormat.CSV, list_id=1001)
LIST_1002 = ImportParams(ImportFormat.CSV, list_id=1002)
NO_LIST = ImportParams(ImportFormat.CSV)


def leads(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text(f"email\n{name}@example.com\n")
    return path


def finish(client: MarketoClient, batch_id: int) -> BatchStatus:
    pause = threading.Event()

    def status() -> BatchStatus | None:
        got = client.batch_status(batch_id)
        pause.wait(0.02)  # polling interval of a deadline-bounded wait
        return got if got.status.terminal else None

    return wait_for(status, timeout=20, what=f"batch {batch_id}")


def hold_list(sandbox: Sandbox, list_id: int) -> int:
    """Another integration's job on `list_id`, created with plain HTTP; return its batch id."""
    settings = sandbox.settings
    token = requests.post(
        f"{sandbox.base_url}/identity/oauth/token",
        data={"grant_type": "client_credentials", "client_id": settings.client_id,
              "client_secret": settings.client_secret},
        timeout=5,
    ).json()["access_token"]  # fmt: skip
    body = requests.post(
        f"{sandbox.base_url}/bulk/v1/leads.json",
        params={"format": "csv", "listId": list_id},
        files={"file": ("other.csv", b"email\nother@example.com\n", "text/csv")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    ).json()
    assert body["success"], body
    batch_id: int = body["result"][0]["batchId"]
    return batch_id


def test_a_list_held_by_our_own_batch_is_refused_without_a_call_until_it_ends(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox)
    freed = threading.Event()
    client.on_list_freed(freed.set)
    first = client.create_import(leads(tmp_path, "a"), LIST_1001)
    assert client.list_wait(1001) == math.inf
    with pytest.raises(ImportInProgress) as caught:
        client.create_import(leads(tmp_path, "b"), LIST_1001)
    assert caught.value.own and caught.value.list_id == 1001
    assert f"our batch {first}" in caught.value.message
    # Other lists, and no list, are not held up.
    assert client.create_import(leads(tmp_path, "c"), LIST_1002)
    assert client.create_import(leads(tmp_path, "d"), NO_LIST)
    assert sandbox_stats(sandbox)["calls"]["create"] == 3  # the refused one never left
    assert not freed.is_set()
    assert finish(client, first).status is BatchState.COMPLETE
    assert freed.is_set() and client.list_wait(1001) == 0
    finish(client, client.create_import(leads(tmp_path, "b"), LIST_1001))
    assert "1019" not in sandbox_stats(sandbox)["errors"]


def test_strict_1019_from_another_integration_is_waited_out_while_other_lists_go(
    make_sandbox: type, make_client: MakeClient, tmp_path: Path
) -> None:
    sandbox = make_sandbox(profile="strict", job_overhead_seconds=3600.0)
    client = make_client(sandbox)
    other = hold_list(sandbox, 1001)
    with pytest.raises(ImportInProgress) as caught:
        client.create_import(leads(tmp_path, "a"), LIST_1001)
    refused = caught.value
    assert (refused.code, refused.own, refused.list_id) == ("1019", False, 1001)
    assert 0 < refused.retry_in <= 30
    assert 0 < client.list_wait(1001) <= refused.retry_in
    assert client.create_import(leads(tmp_path, "b"), LIST_1002)  # another list goes ahead
    assert client.stats().queued_imports == 1  # the refused create holds no queue slot
    requests.post(f"{sandbox.base_url}/sandbox/speed.json", json={"job_overhead_seconds": 0.0})
    wait_for(
        lambda: (
            client.list_wait(1001) == 0
            and requests.get(f"{sandbox.base_url}/sandbox/batches.json").json()["batches"][0][
                "status"
            ]
            == "Complete"
        ),
        timeout=40,
        what=f"the other integration's batch {other} to end and the back-off to pass",
    )
    assert finish(client, client.create_import(leads(tmp_path, "a"), LIST_1001))
    assert sandbox_stats(sandbox)["errors"] == {"1019": 1}


def test_a_batch_adopted_after_a_restart_holds_its_list(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    first = make_client(sandbox).create_import(leads(tmp_path, "a"), LIST_1001)
    restarted = make_client(sandbox)
    restarted.adopt_batch(first, list_id=1001)
    with pytest.raises(ImportInProgress):
        restarted.create_import(leads(tmp_path, "b"), LIST_1001)
    finish(restarted, first)
    assert restarted.create_import(leads(tmp_path, "b"), LIST_1001)


def test_list_holds_back_off_grows_per_refusal_and_resets_on_a_create() -> None:
    clock = FakeClock()
    holds = ListHolds(2.0, 16.0, clock=clock)
    waits = []
    for _ in range(5):
        assert holds.take(7) == 0
        waits.append(holds.refused(7))
        assert holds.take(7) == pytest.approx(waits[-1])  # held while the back-off runs
        clock.advance(waits[-1])
    caps = [2.0, 4.0, 8.0, 16.0, 16.0]
    assert all(cap / 2 <= wait <= cap for wait, cap in zip(waits, caps, strict=True))
    assert holds.take(7) == 0
    holds.commit(7, 3401)
    assert holds.wait_seconds(7) == HELD_BY_US
    holds.finish(3401)
    assert holds.take(7) == 0
    assert 1 <= holds.refused(7) <= 2  # the accepted create reset the back-off
    # A create with no list holds nothing and is never held by our own batches.
    assert holds.take(None) == 0 and holds.take(None) == 0
