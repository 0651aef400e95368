"""Program members and custom objects under the strict profile: every harsher reading applies."""

from __future__ import annotations

from typing import Any

import pytest
from contract import produces, validate
from sandbox_client import Client, MakeSandbox

from dropbox_importer.sandbox import FaultSettings

MEMBERS = "/bulk/v1/program/1001/members/import.json"
MEMBER_BATCH = "/bulk/v1/program/members/import/{batch_id}"
CARS = "/bulk/v1/customobjects/car_c/import.json"
CAR_BATCH = "/bulk/v1/customobjects/car_c/import/{batch_id}"


def strict(make_sandbox: MakeSandbox, **overrides: Any) -> Client:
    return Client(make_sandbox(profile="strict", **overrides))


def members(client: Client, content: str) -> dict[str, Any]:
    body = client.upload(MEMBERS, content, programMemberStatus="Attended").json()
    assert body["success"], body
    return client.finish(
        MEMBER_BATCH.format(batch_id=body["result"][0]["batchId"]) + "/status.json"
    )


def cars(client: Client, content: str) -> dict[str, Any]:
    body = client.upload(CARS, content).json()
    assert body["success"], body
    return client.finish(CAR_BATCH.format(batch_id=body["result"][0]["batchId"]) + "/status.json")


def test_header_names_are_matched_as_sent(make_sandbox: MakeSandbox) -> None:
    client = strict(make_sandbox)
    final = members(client, " email ,lastName\nada@example.com,L\n")
    assert (final["numOfLeadsProcessed"], final["numOfRowsFailed"]) == (0, 1)
    final = cars(client, " vin ,model\nV1,T\n")
    assert (final["numOfObjectsProcessed"], final["numOfRowsFailed"]) == (0, 1)
    assert client.introspect("customobjects")["customObjects"]["car_c"] == []


def test_a_member_whose_email_is_not_ascii_fails(make_sandbox: MakeSandbox) -> None:
    client = strict(make_sandbox)
    final = members(client, "email\nrenée@example.com\nada@example.com\n")
    assert (final["numOfLeadsProcessed"], final["numOfRowsFailed"]) == (1, 1)
    failures = client.get(MEMBER_BATCH.format(batch_id=final["batchId"]) + "/failures.json")
    assert failures.headers["Content-Type"].startswith("application/json")
    assert produces("/bulk/v1/program/members/import/{batchId}/failures.json") == [
        "application/json"
    ]
    assert (
        failures.text.splitlines()[1]
        == "renée@example.com,Invalid email address 'renée@example.com'"
    )


def test_files_without_rows_answer_404_and_unknown_batches_610(make_sandbox: MakeSandbox) -> None:
    client = strict(make_sandbox)
    clean = members(client, "email\nada@example.com\n")
    base = MEMBER_BATCH.format(batch_id=clean["batchId"])
    assert client.get(base + "/failures.json").status_code == 404
    assert client.get(base + "/warnings.json").status_code == 404
    for path in (
        MEMBER_BATCH.format(batch_id=999) + "/status.json",
        CAR_BATCH.format(batch_id=999) + "/status.json",
        CAR_BATCH.format(batch_id=clean["batchId"]) + "/status.json",  # a batch of another kind
    ):
        body = client.get(path).json()
        assert body["errors"][0]["code"] == "610", path


def test_a_failed_batch_carries_the_rows_it_imported(make_sandbox: MakeSandbox) -> None:
    client = strict(make_sandbox, faults=FaultSettings(failed_batch_rate=1.0))
    rows = "".join(f"V{n}\n" for n in range(6))
    final = cars(client, "vin\n" + rows)
    validate(
        client.get(CAR_BATCH.format(batch_id=final["batchId"]) + "/status.json").json(),
        "/bulk/v1/customobjects/{apiName}/import/{batchId}/status.json",
    )
    assert final["status"] == "Failed"
    assert 0 < final["numOfObjectsProcessed"] < 6
    stored = client.introspect("customobjects")["customObjects"]["car_c"]
    assert len(stored) == final["numOfObjectsProcessed"]


@pytest.mark.parametrize("profile", ["kind", "strict"])
def test_a_full_queue_refuses_every_kind_with_1016(make_sandbox: MakeSandbox, profile: str) -> None:
    client = Client(make_sandbox(profile=profile, max_queued_jobs=1, job_overhead_seconds=3600.0))
    assert client.upload(CARS, "vin\nV1\n").json()["success"]
    refused = client.upload(MEMBERS, "email\na@b.co\n", programMemberStatus="Invited").json()
    assert refused["errors"][0]["code"] == "1016"
    if profile == "strict":
        assert refused["errors"][0]["message"].startswith("There are 1 imports currently")
