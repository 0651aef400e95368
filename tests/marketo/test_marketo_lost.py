"""Answers lost on the way, batches Marketo forgot, codes nobody listed, files that are empty."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
import requests
from marketo_support import sandbox_stats, wait_for

from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.errors import BatchNotFound, ImportInProgress, UnknownCode
from dropbox_importer.marketo.models import BatchState, BatchStatus, ImportFormat, ImportParams
from dropbox_importer.sandbox import FaultSettings, Sandbox
from tests.marketo.conftest import MakeClient

CSV = ImportParams(ImportFormat.CSV)


def leads(tmp_path: Path, name: str = "leads.csv", bad: int = 0) -> Path:
    path = tmp_path / name
    rows = [f"{name}-{i}@example.com" for i in range(3)] + [f"bad-{i}" for i in range(bad)]
    path.write_text("email\n" + "\n".join(rows) + "\n")
    return path


def finish(client: MarketoClient, batch_id: int) -> BatchStatus:
    pause = threading.Event()

    def status() -> BatchStatus | None:
        got = client.batch_status(batch_id)
        pause.wait(0.02)  # polling interval of a deadline-bounded wait
        return got if got.status.terminal else None

    return wait_for(status, timeout=20, what=f"batch {batch_id}")


def first_lost_then_answered(rate: float = 0.5) -> int:
    """A fault seed whose first create loses its answer and whose second does not."""
    for seed in range(100):
        draws = random.Random(seed)
        if draws.random() < rate <= draws.random():
            return seed
    raise AssertionError("no such seed")


def batches(sandbox: Sandbox) -> list[dict[str, object]]:
    found: list[dict[str, object]] = requests.get(
        f"{sandbox.base_url}/sandbox/batches.json", timeout=5
    ).json()["batches"]
    return found


def test_a_create_whose_answer_is_lost_is_sent_again_and_leaks_no_slot(
    make_sandbox: type, make_client: MakeClient, tmp_path: Path
) -> None:
    faults = FaultSettings(
        lost_answer_rate=0.5, endpoints=("create",), seed=first_lost_then_answered()
    )
    sandbox = make_sandbox(faults=faults)
    client = make_client(sandbox)
    batch_id = client.create_import(leads(tmp_path), CSV)
    assert sandbox_stats(sandbox)["errors"] == {"answer_lost": 1}
    # Marketo queued the first attempt too: two jobs, the file imported (twice, harmlessly).
    assert [b["batchId"] for b in batches(sandbox)] == [batch_id - 1, batch_id]
    stats = client.stats()
    assert stats.ambiguous_create_retries == 1
    assert stats.queued_imports == 2  # ours, and the one whose id never came back
    assert finish(client, batch_id).status is BatchState.COMPLETE
    assert client.stats().queued_imports == 0  # both freed together: nothing leaked


def test_strict_lost_answer_for_a_list_meets_its_own_ghost_as_1019_then_goes_through(
    make_sandbox: type, make_client: MakeClient, tmp_path: Path
) -> None:
    faults = FaultSettings(
        lost_answer_rate=0.5, endpoints=("create",), seed=first_lost_then_answered()
    )
    # The unseen job stays queued until the test lets it go.
    sandbox = make_sandbox(profile="strict", faults=faults, job_overhead_seconds=3600.0)
    client = make_client(sandbox)
    params = ImportParams(ImportFormat.CSV, list_id=1001)
    with pytest.raises(ImportInProgress) as caught:
        client.create_import(leads(tmp_path), params)
    assert caught.value.code == "1019" and not caught.value.own
    assert client.stats().ambiguous_create_retries == 1
    requests.post(f"{sandbox.base_url}/sandbox/speed.json", json={"job_overhead_seconds": 0.0})
    wait_for(lambda: batches(sandbox)[0]["status"] == "Complete", what="the unseen job to end")
    created = wait_for(
        lambda: _try_create(client, leads(tmp_path), params), timeout=40, what="the create"
    )
    assert finish(client, created).status is BatchState.COMPLETE
    assert client.stats().queued_imports == 0


def _try_create(client: MarketoClient, path: Path, params: ImportParams) -> int | None:
    try:
        return client.create_import(path, params)
    except ImportInProgress:
        return None


def test_a_batch_marketo_forgot_is_confirmed_once_then_frees_its_slot_and_list(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox)
    params = ImportParams(ImportFormat.CSV, list_id=1002)
    batch_id = client.create_import(leads(tmp_path), params)
    requests.post(f"{sandbox.base_url}/sandbox/batches.json", json={"forget": [batch_id]})
    code = "610" if sandbox.settings.profile == "strict" else "1003"
    with pytest.raises(BatchNotFound) as first:
        client.batch_status(batch_id)
    assert (first.value.confirmed, first.value.code, first.value.batch_id) == (
        False,
        code,
        batch_id,
    )
    assert client.stats().queued_imports == 1  # one answer may be a glitch: still held
    with pytest.raises(BatchNotFound) as second:
        client.batch_status(batch_id)
    assert second.value.confirmed
    assert client.stats().queued_imports == 0
    assert client.list_wait(1002) == 0


def test_an_answer_in_between_resets_the_confirmation(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox)
    batch_id = client.create_import(leads(tmp_path), CSV)
    unknown = FaultSettings(rate=1.0, codes=("1013",), endpoints=("status",))
    requests.post(f"{sandbox.base_url}/sandbox/faults.json", json=unknown.to_json())
    with pytest.raises(BatchNotFound) as caught:
        client.batch_status(batch_id)
    assert not caught.value.confirmed and caught.value.code == "1013"
    requests.post(f"{sandbox.base_url}/sandbox/faults.json", json={"rate": 0.0})
    assert client.batch_status(batch_id)
    requests.post(f"{sandbox.base_url}/sandbox/faults.json", json={"rate": 1.0})
    with pytest.raises(BatchNotFound) as again:
        client.batch_status(batch_id)
    assert not again.value.confirmed


def test_a_code_the_client_does_not_know_fails_that_call_with_marketos_words(
    make_sandbox: type, make_client: MakeClient, tmp_path: Path
) -> None:
    faults = FaultSettings(rate=1.0, codes=("1077",), endpoints=("create",))
    sandbox = make_sandbox(faults=faults)
    client = make_client(sandbox)
    with pytest.raises(UnknownCode) as caught:
        client.create_import(leads(tmp_path), CSV)
    assert (caught.value.code, caught.value.message) == ("1077", "Injected fault")
    assert sandbox_stats(sandbox)["calls"]["create"] == 1  # never retried
    assert client.stats().queued_imports == 0
    assert client.describe_fields()  # other calls are not affected


def test_row_files_download_whatever_their_content_type_and_404_is_an_empty_file(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox)
    batch_id = client.create_import(leads(tmp_path, bad=2), CSV)
    assert finish(client, batch_id).rows_failed == 2
    failures, warnings = tmp_path / "failures.csv", tmp_path / "warnings.csv"
    client.download_failures(batch_id, failures)
    client.download_warnings(batch_id, warnings)
    lines = failures.read_text().splitlines()
    assert lines[0].endswith("Import Failure Reason")
    assert sorted(line.split(",")[0] for line in lines[1:]) == ["bad-0", "bad-1"]
    if sandbox.settings.profile == "strict":
        assert warnings.read_bytes() == b""  # HTTP 404: no rows
    else:
        assert warnings.read_text() == "email,Import Warning Reason\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "failures.csv",
        "leads.csv",
        "warnings.csv",
    ]
