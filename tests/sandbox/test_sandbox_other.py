"""Another integration on the instance: its jobs fill the shared queue, its calls the window."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sandbox_client import Client, MakeSandbox, wait_for

from dropbox_importer.sandbox.settings import OtherIntegrationSettings


def other(client: Client, **changes: Any) -> dict[str, Any]:
    response = client.session.post(f"{client.base}/sandbox/other.json", json=changes)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def theirs(client: Client) -> list[dict[str, Any]]:
    batches: list[dict[str, Any]] = client.introspect("batches")["batches"]
    return [b for b in batches if b["owner"] == "other"]


def test_the_other_integration_keeps_its_jobs_queued_and_replaces_each_that_ends(
    make_sandbox: MakeSandbox,
) -> None:
    sandbox = make_sandbox(
        job_overhead_seconds=0.05,
        other_integration=OtherIntegrationSettings(jobs=3, rows=5, poll_seconds=0.5),
    )
    client = Client(sandbox)
    # It ends jobs and makes new ones, never holding more than its 3 at once.
    wait_for(lambda: len(theirs(client)) >= 9, what="the other integration's ninth job")
    stats = client.introspect("stats")
    assert 1 <= stats["otherIntegration"]["in_flight"] <= 3
    assert stats["otherIntegration"]["counts"]["created"] >= 9
    assert set(stats["calls"]) == {"identity"}, "its calls are not counted as the API's"
    # Its jobs imported leads of their own.
    emails = {lead["fields"]["email"] for lead in client.introspect("leads")["leads"]}
    assert any(email.startswith("other-") for email in emails)


def test_a_neighbour_filling_the_queue_makes_creates_answer_1016_until_it_stops(
    make_sandbox: MakeSandbox,
) -> None:
    # Its jobs never end while the test creates, so the queue stays full.
    sandbox = make_sandbox(
        job_overhead_seconds=3600.0,
        other_integration=OtherIntegrationSettings(jobs=10, rows=1),
    )
    client = Client(sandbox)
    wait_for(lambda: len(theirs(client)) == 10, what="ten jobs of the other integration")
    refused = client.create("email\nours@example.com\n").json()
    assert refused["errors"][0]["code"] == "1016"
    # Cut its load and let its jobs end: the queue frees and our create is accepted.
    other(client, jobs=0)
    client.session.post(f"{client.base}/sandbox/speed.json", json={"job_overhead_seconds": 0.01})
    wait_for(
        lambda: client.create("email\nours@example.com\n").json()["success"],
        what="a create accepted once the other integration let go",
    )
    assert not any(b["owner"] == "other" for b in theirs(client)[10:])


def test_a_list_the_neighbour_imports_to_answers_1019_under_strict(
    make_sandbox: MakeSandbox,
) -> None:
    sandbox = make_sandbox(
        profile="strict",
        job_overhead_seconds=3600.0,
        other_integration=OtherIntegrationSettings(jobs=1, rows=1, list_id=1001),
    )
    client = Client(sandbox)
    wait_for(lambda: theirs(client), what="the other integration's job for list 1001")
    refused = client.create("email\nours@example.com\n", listId=1001).json()
    assert refused["errors"][0]["code"] == "1019"
    assert client.create("email\nours@example.com\n", listId=1002).json()["success"]


def test_the_neighbours_list_is_free_between_its_list_jobs_for_a_status_call(
    make_sandbox: MakeSandbox,
) -> None:
    # A list sync learns its list job ended at its next status call: only then the next one.
    sandbox = make_sandbox(
        profile="strict",
        job_overhead_seconds=0.05,
        other_integration=OtherIntegrationSettings(jobs=2, rows=1, list_id=1001, poll_seconds=1),
    )
    client = Client(sandbox)

    def listed() -> list[dict[str, Any]]:
        return [b for b in theirs(client) if b.get("listId") == 1001]

    wait_for(lambda: len(listed()) >= 3, what="the neighbour's third job into list 1001")
    jobs = listed()
    for before, after in itertools.pairwise(jobs[:3]):
        ended = datetime.fromisoformat(before["finished"])
        assert datetime.fromisoformat(after["created"]) - ended >= timedelta(seconds=1)
    # Its other job meanwhile goes into no list; and our job finds the list free in a gap.
    assert any(b.get("listId") is None for b in theirs(client))
    wait_for(
        lambda: client.create("email\nours@example.com\n", listId=1001).json()["success"],
        what="our create for list 1001 accepted between the neighbour's list jobs",
    )


def test_its_calls_use_the_shared_call_window(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(
        calls_per_window=20,
        window_seconds=60.0,
        job_overhead_seconds=3600.0,
        other_integration=OtherIntegrationSettings(jobs=1, rows=1, poll_seconds=0.01),
    )
    client = Client(sandbox)
    wait_for(
        lambda: client.introspect("stats")["otherIntegration"]["counts"].get("606"),
        what="the other integration filling the window",
    )
    answer = client.get("/rest/v1/leads/partitions.json").json()
    assert answer["errors"][0]["code"] == "606"


def test_a_bad_change_is_refused_and_the_load_kept(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox())
    for body in ({"jobs": -1}, {"shoeSize": 3}, {"list_id": 4242}):
        response = client.session.post(f"{client.base}/sandbox/other.json", json=body)
        assert response.status_code == 400, body
    assert other(client)["jobs"] == 0
