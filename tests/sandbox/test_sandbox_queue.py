"""The import queue: 10 jobs at most, 2 importing at once, strict FIFO, timed by rows/s."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contract import validate
from sandbox_client import Client, MakeSandbox, wait_for

STATUS = "/bulk/v1/leads/batch/{batchId}.json"


def set_speed(client: Client, **speed: float) -> None:
    response = client.session.post(f"{client.base}/sandbox/speed.json", json=speed)
    response.raise_for_status()


def importing_overlap(batches: list[dict[str, Any]]) -> int:
    """The most batches whose [started, finished) intervals overlap at any instant."""
    events = []
    for batch in batches:
        events.append((datetime.fromisoformat(batch["started"]), 1))
        events.append((datetime.fromisoformat(batch["finished"]), -1))
    running = peak = 0
    for _, step in sorted(events):  # a finish sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def all_complete(client: Client) -> list[dict[str, Any]] | None:
    batches: list[dict[str, Any]] = client.introspect("batches")["batches"]
    return batches if all(b["status"] == "Complete" for b in batches) else None


def test_twelve_creates_give_ten_batches_two_1016_and_a_fifo_two_wide_queue(
    make_sandbox: MakeSandbox,
) -> None:
    # Jobs that cannot finish while the creates run, so the count is exact on any machine.
    client = Client(make_sandbox(job_overhead_seconds=3600.0))
    answers = [client.create(f"email\nlead{i}@example.com\n").json() for i in range(12)]
    accepted = [a["result"][0]["batchId"] for a in answers if a["success"]]
    refused = [a["errors"][0]["code"] for a in answers if not a["success"]]
    assert len(accepted) == 10
    assert refused == ["1016", "1016"]
    assert all(not a["success"] for a in answers[10:])
    states = [b["status"] for b in client.introspect("batches")["batches"]]
    assert states == ["Importing"] * 2 + ["Queued"] * 8

    set_speed(client, job_overhead_seconds=0.02)
    batches = wait_for(lambda: all_complete(client), what="every batch to complete")
    assert [b["batchId"] for b in sorted(batches, key=lambda b: b["startSequence"])] == accepted
    starts = [datetime.fromisoformat(b["started"]) for b in batches]
    assert starts == sorted(starts)
    assert importing_overlap(batches) <= 2
    assert client.introspect("stats")["peakImporting"] == 2
    # With the queue drained, creates are accepted again.
    assert client.create("email\nlate@example.com\n").json()["success"] is True


def test_status_moves_queued_importing_complete_with_running_counts(
    make_sandbox: MakeSandbox,
) -> None:
    # So slow that the one-row blocker holds the only import slot until the speed changes.
    client = Client(make_sandbox(rows_per_second=0.001, job_overhead_seconds=0.0, max_importing=1))
    blocker = client.create("email\nfirst@example.com\n").json()["result"][0]["batchId"]
    rows = "".join(f"lead{i}@example.com\n" for i in range(4))
    batch_id = client.create("email\n" + rows + "bad\n").json()["result"][0]["batchId"]
    queued = client.get(STATUS.format(batchId=batch_id)).json()
    validate(queued, STATUS)
    assert queued["result"][0]["status"] == "Queued"
    assert queued["result"][0]["message"] == "Queued for processing"
    assert client.status(blocker)["status"] == "Importing"
    assert client.status(blocker)["numOfLeadsProcessed"] == 0

    set_speed(client, rows_per_second=2.0)  # the blocker ends; 5 rows take 2.5 s
    history: list[dict[str, Any]] = []

    def complete() -> dict[str, Any] | None:
        history.append(client.status(batch_id))
        return history[-1] if history[-1]["status"] == "Complete" else None

    final = wait_for(complete, what="batch 2 to complete")
    assert "Importing" in [h["status"] for h in history]
    counts = [h["numOfLeadsProcessed"] + h["numOfRowsFailed"] for h in history]
    assert counts == sorted(counts)
    assert final["numOfLeadsProcessed"] == 4
    assert final["numOfRowsFailed"] == 1
    assert final["message"] == "Import completed with errors, 4 records imported, 1 failed"


def test_unknown_and_expired_batch_ids_get_1003(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox(batch_retention_seconds=0.3))
    for path in ("/bulk/v1/leads/batch/999999.json", "/bulk/v1/leads/batch/abc.json"):
        body = client.get(path).json()
        validate(body, STATUS)
        assert body["errors"][0]["code"] == "1003"
    final = client.import_file("email\nada@example.com\n")
    path = STATUS.format(batchId=final["batchId"])
    wait_for(lambda: client.get(path).json()["success"] is False, what="the batch id to expire")
    assert client.get(path).json()["errors"][0]["code"] == "1003"
    failures = client.get(path.replace(".json", "/failures.json")).json()
    assert failures["errors"][0]["code"] == "1003"


def test_leads_program_members_and_custom_objects_share_one_fifo_queue(
    make_sandbox: MakeSandbox,
) -> None:
    client = Client(make_sandbox(job_overhead_seconds=3600.0, max_queued_jobs=3))
    creates = [
        client.upload("/bulk/v1/customobjects/car_c/import.json", "vin\nV1\n"),
        client.create("email\nlead@example.com\n"),
        client.upload(
            "/bulk/v1/program/1001/members/import.json",
            "email\nmember@example.com\n",
            programMemberStatus="Registered",
        ),
    ]
    accepted = [r.json()["result"][0]["batchId"] for r in creates]
    # The fourth job, of any kind, finds the queue full.
    for path, params in (
        ("/bulk/v1/leads.json", {}),
        ("/bulk/v1/program/1001/members/import.json", {"programMemberStatus": "Invited"}),
        ("/bulk/v1/customobjects/car_c/import.json", {}),
    ):
        refused = client.upload(path, "email,vin\nx@example.com,V2\n", **params).json()
        assert refused["errors"][0]["code"] == "1016", path
    batches = client.introspect("batches")["batches"]
    assert [b["kind"] for b in batches] == ["custom_objects", "leads", "program_members"]
    assert [b["status"] for b in batches] == ["Importing", "Importing", "Queued"]
    assert batches[2]["programMemberStatus"] == "Registered"

    set_speed(client, job_overhead_seconds=0.02)
    done = wait_for(lambda: all_complete(client), what="every batch to complete")
    assert [b["batchId"] for b in sorted(done, key=lambda b: b["startSequence"])] == accepted
