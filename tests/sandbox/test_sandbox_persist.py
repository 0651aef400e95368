"""A sandbox with a state file remembers its leads and batches across a restart."""

from __future__ import annotations

from pathlib import Path

from sandbox_client import Client

from dropbox_importer.sandbox import Sandbox, SandboxSettings
from tests.waiting import wait_for

SLOW = SandboxSettings(rows_per_second=50.0, job_overhead_seconds=0.05)


def created(client: Client, content: str) -> int:
    body = client.create(content).json()
    assert body["success"], body
    batch_id: int = body["result"][0]["batchId"]
    return batch_id


def emails(client: Client) -> set[str]:
    return {lead["fields"]["email"] for lead in client.introspect("leads")["leads"]}


def test_a_restarted_sandbox_knows_its_batches_and_leads_and_goes_on(tmp_path: Path) -> None:
    state = tmp_path / "state" / "sandbox.json"
    first = Sandbox(SLOW, state_file=state).start()
    try:
        client = Client(first)
        done = created(client, "email\n" + "".join(f"d{n}@x.org\n" for n in range(3)))
        wait_for(lambda: client.status(done)["status"] == "Complete", what="first batch done")
        slow = created(client, "email\n" + "".join(f"s{n}@x.org\n" for n in range(200)))
        wait_for(lambda: client.status(slow)["status"] == "Importing", what="importing")
    finally:
        first.stop()
    assert state.exists()

    second = Sandbox(SLOW, state_file=state).start()
    try:
        client = Client(second)
        assert client.status(done)["status"] == "Complete"
        assert client.status(done)["numOfLeadsProcessed"] == 3
        wait_for(lambda: client.status(slow)["status"] == "Complete", timeout=30, what="resumed")
        assert client.status(slow)["numOfLeadsProcessed"] == 200
        known = emails(client)
        assert {"d0@x.org", "s199@x.org"} <= known and len(known) == 203
        assert created(client, "email\nnext@x.org\n") == slow + 1  # ids go on
    finally:
        second.stop()


def test_an_unreadable_state_file_starts_a_fresh_sandbox(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    state.write_text("{not json")
    with Sandbox(SLOW, state_file=state) as sandbox:
        assert emails(Client(sandbox)) == set()


def test_members_records_and_their_batches_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    held = SandboxSettings(job_overhead_seconds=0.05, max_importing=1)
    first = Sandbox(held, state_file=state).start()
    try:
        client = Client(first)
        members = client.upload(
            "/bulk/v1/program/1001/members/import.json",
            "email\nada@x.org\n",
            programMemberStatus="Attended",
        ).json()["result"][0]["batchId"]
        client.finish(f"/bulk/v1/program/members/import/{members}/status.json")
        client.session.post(
            f"{client.base}/sandbox/speed.json", json={"job_overhead_seconds": 3600}
        )
        cars = client.upload("/bulk/v1/customobjects/car_c/import.json", "vin\nV1\n").json()
        car_batch = cars["result"][0]["batchId"]
    finally:
        first.stop()

    second = Sandbox(SLOW, state_file=state).start()
    try:
        client = Client(second)
        (webinar,) = [p for p in client.introspect("programs")["programs"] if p["id"] == 1001]
        assert [(m["email"], m["status"]) for m in webinar["members"]] == [
            ("ada@x.org", "Attended")
        ]
        status = f"/bulk/v1/program/members/import/{members}/status.json"
        assert client.get(status).json()["result"][0]["status"] == "Complete"
        final = client.finish(f"/bulk/v1/customobjects/car_c/import/{car_batch}/status.json")
        assert final["numOfObjectsProcessed"] == 1
        records = client.introspect("customobjects")["customObjects"]["car_c"]
        assert [r["fields"]["vin"] for r in records] == ["V1"]
        # The restored record is found again by its dedupe value, not created twice.
        again = client.upload("/bulk/v1/customobjects/car_c/import.json", "vin,year\nv1,1999\n")
        client.finish(
            f"/bulk/v1/customobjects/car_c/import/{again.json()['result'][0]['batchId']}/status.json"
        )
        (record,) = client.introspect("customobjects")["customObjects"]["car_c"]
        assert record["fields"] == {"vin": "V1", "year": 1999}
    finally:
        second.stop()
