"""Program members and custom objects through the client's one import interface."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from marketo_support import sandbox_stats, wait_for

from dropbox_importer.marketo import kinds
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.errors import ClientBug, RequestRejected
from dropbox_importer.marketo.models import (
    BatchState,
    BatchStatus,
    ImportFormat,
    ImportKind,
    ImportParams,
    ImportTarget,
)
from dropbox_importer.marketo.responses import parse_batch_status
from dropbox_importer.sandbox import Channel, ObjectCatalog, Program, Sandbox
from tests.marketo.conftest import MakeClient

MEMBERS = ImportParams(ImportFormat.CSV, program_id=1001, program_member_status="Attended")
CARS = ImportParams(ImportFormat.CSV, object_name="car_c")
LEADS = ImportParams(ImportFormat.CSV)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def finish(client: MarketoClient, batch_id: int) -> BatchStatus:
    """Poll by id alone, as the daemon's poller does, until the batch is terminal."""
    pause = threading.Event()

    def status() -> BatchStatus | None:
        got = client.batch_status(batch_id)
        if got.status.terminal:
            return got
        pause.wait(0.05)  # polling interval of a deadline-bounded wait
        return None

    return wait_for(status, timeout=20, what=f"batch {batch_id}")


def introspect(sandbox: Sandbox, name: str) -> Any:
    return requests.get(f"{sandbox.base_url}/sandbox/{name}.json", timeout=5).json()


def test_program_members_round_trip_with_failures(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox)
    path = write(tmp_path, "attendees.csv", "email,firstName\nada@example.com,Ada\nbroken,B\n")
    batch_id = client.create_import(path, MEMBERS)
    status = finish(client, batch_id)
    assert (status.status, status.leads_processed, status.rows_failed) == (
        BatchState.COMPLETE,
        1,
        1,
    )
    dest = tmp_path / "failures.csv"
    client.download_failures(batch_id, dest, target=MEMBERS.target)
    assert dest.read_text().splitlines()[1] == "broken,B,Invalid email address 'broken'"
    (program,) = [p for p in introspect(sandbox, "programs")["programs"] if p["id"] == 1001]
    assert [(m["email"], m["status"]) for m in program["members"]] == [
        ("ada@example.com", "Attended")
    ]
    calls = client.stats().calls_by_endpoint
    assert calls["program_members_create"] == 1
    assert calls["program_members_failures"] == 1
    assert "create" not in calls


def test_custom_objects_round_trip_and_a_404_rows_file_is_no_rows(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox)
    path = write(tmp_path, "cars.csv", "vin,model,year\nV1,T,1908\nV2,Beetle,old\n")
    batch_id = client.create_import(path, CARS)
    status = finish(client, batch_id)
    assert (status.leads_processed, status.rows_failed) == (1, 1)  # numOfObjectsProcessed
    client.download_failures(batch_id, tmp_path / "f.csv", target=CARS.target)
    assert "Invalid value 'old'" in (tmp_path / "f.csv").read_text()
    # No warned rows: Marketo answers 404, which means an empty file, not an error.
    warnings = tmp_path / "w.csv"
    client.download_warnings(batch_id, warnings, target=CARS.target)
    assert warnings.read_bytes() == b""
    assert not list(tmp_path.glob(".*.part"))
    records = introspect(sandbox, "customobjects")["customObjects"]["car_c"]
    assert [r["fields"]["vin"] for r in records] == ["V1"]


def test_a_batch_of_another_kind_is_unknown_on_a_kinds_paths(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox)
    lead_file = write(tmp_path, "l.csv", "email\na@b.co\n")
    batch_id = finish(client, client.create_import(lead_file, LEADS)).batch_id
    # Under the custom object paths a lead batch is unknown (1003, strict 610), never "empty".
    with pytest.raises((RequestRejected, ClientBug)):
        client.download_failures(batch_id, tmp_path / "x", target=CARS.target)
    assert not (tmp_path / "x").exists()


def test_all_kinds_share_the_clients_queue_slots(
    make_sandbox: type, make_client: MakeClient, tmp_path: Path
) -> None:
    sandbox = make_sandbox(job_overhead_seconds=0.3)
    client = make_client(sandbox, max_queued_jobs=2)
    uploads = [
        (write(tmp_path, "l.csv", "email\nl@example.com\n"), LEADS),
        (write(tmp_path, "m.csv", "email\nm@example.com\n"), MEMBERS),
        (write(tmp_path, "c.csv", "vin\nV9\n"), CARS),
    ]
    finals: list[BatchStatus] = []

    def submit(path: Path, params: ImportParams) -> None:
        finals.append(finish(client, client.create_import(path, params)))

    threads = [threading.Thread(target=submit, args=upload) for upload in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [f.status for f in finals] == [BatchState.COMPLETE] * 3
    assert client.stats().queue_waits >= 1  # the third kind waited for a slot of the other two
    assert client.stats().queued_imports == 0
    assert "1016" not in sandbox_stats(sandbox)["errors"]


def test_an_adopted_batch_is_polled_on_its_own_kinds_path(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    first = make_client(sandbox)
    batch_id = first.create_import(write(tmp_path, "m.csv", "email\nm@example.com\n"), MEMBERS)
    restarted = make_client(sandbox)  # a new process knows the batch only from its journal
    restarted.adopt_batch(batch_id, target=MEMBERS.target)
    assert restarted.stats().queued_imports == 1
    assert finish(restarted, batch_id).status is BatchState.COMPLETE
    assert restarted.stats().queued_imports == 0


def test_lookups_of_programs_channels_and_custom_objects(
    make_sandbox: type, make_client: MakeClient
) -> None:
    # More channels than one page of the asset API holds, to read every page.
    channels = tuple(Channel(n, f"Channel {n}", (f"S{n}",)) for n in range(1, 206))
    webinar = Channel(999, "Webinar", ("Invited", "Registered", "Attended", "No Show"))
    catalog = ObjectCatalog(
        channels=(*channels, webinar), programs=(Program(1001, "Partner webinar", "Webinar"),)
    )
    client = make_client(make_sandbox(catalog=catalog))
    program = client.get_program(1001)
    assert program is not None and program.channel == "Webinar"
    assert client.get_program(4040) is None
    found = {c.name: c.statuses for c in client.channels()}
    assert len(found) == 206
    assert found["Webinar"] == ("Invited", "Registered", "Attended", "No Show")
    car = client.describe_custom_object("car_c")
    assert car is not None and car.dedupe_fields == ("vin",)
    assert {f.name for f in car.fields if not f.read_only} == {"vin", "model", "year"}
    assert client.describe_custom_object("boat_c") is None
    members = {f.name: f.read_only for f in client.describe_program_members()}
    assert members["attendedMinutes"] is False and members["statusName"] is True


def test_each_kind_has_its_own_paths() -> None:
    assert kinds.create_path(MEMBERS) == "/bulk/v1/program/1001/members/import.json"
    assert kinds.batch_path(MEMBERS.target, 7, "status") == (
        "/bulk/v1/program/members/import/7/status.json"
    )
    assert kinds.batch_path(ImportTarget(), 7, "status") == "/bulk/v1/leads/batch/7.json"
    assert kinds.batch_path(ImportTarget(), 7, "failures") == "/bulk/v1/leads/batch/7/failures.json"
    odd = ImportTarget(ImportKind.CUSTOM_OBJECTS, object_name="../x_c")
    assert kinds.batch_path(odd, 7, "warnings") == (
        "/bulk/v1/customobjects/..%2Fx_c/import/7/warnings.json"
    )
    assert MEMBERS.query() == {"format": "csv", "programMemberStatus": "Attended"}
    assert CARS.query() == {"format": "csv"}


@pytest.mark.parametrize(
    "params",
    [
        {"program_id": 1001},
        {"program_member_status": "Attended"},
        {"program_id": 1001, "program_member_status": "Attended", "list_id": 5},
        {"object_name": "car_c", "lookup_field": "email"},
        {"object_name": "car_c", "program_id": 1, "program_member_status": "Attended"},
    ],
)
def test_parameters_of_two_kinds_do_not_mix(params: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ImportParams(ImportFormat.CSV, **params)  # type: ignore[arg-type]


def test_a_custom_object_status_counts_objects() -> None:
    status = parse_batch_status(
        [
            {
                "batchId": 9,
                "operation": "import",
                "status": "Complete",
                "objectApiName": "car_c",
                "numOfObjectsProcessed": 3,
                "numOfRowsFailed": 1,
                "numOfRowsWithWarning": 0,
                "importTime": "2 seconds",
                "message": "Import completed with errors, 3 records imported, 1 failed",
            }
        ]
    )
    assert (status.leads_processed, status.rows_failed) == (3, 1)
