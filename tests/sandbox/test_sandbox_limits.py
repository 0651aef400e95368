"""Call limits: 606 rolling window, 615 in flight, 607 daily quota; refusals don't count."""

from __future__ import annotations

import threading

import requests
from contract import validate
from sandbox_client import Client, MakeSandbox, wait_for

DESCRIBE = "/rest/v1/leads/describe.json"


def code(client: Client) -> str | None:
    body = client.get(DESCRIBE).json()
    validate(body, DESCRIBE)
    return None if body["success"] else str(body["errors"][0]["code"])


def test_the_rolling_window_refuses_with_606_then_frees_a_slot(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox(calls_per_window=3, window_seconds=2.0))
    answers = [code(client) for _ in range(5)]
    assert answers == [None, None, None, "606", "606"]
    wait_for(lambda: code(client) is None, timeout=5, what="the window to free a slot")
    stats = client.introspect("stats")
    assert stats["errors"]["606"] >= 2


def test_refused_calls_do_not_count_against_the_window(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox(calls_per_window=2, window_seconds=30.0))
    for _ in range(5):  # 1003 refusals: not counted
        assert client.get("/bulk/v1/leads/batch/1.json").json()["errors"][0]["code"] == "1003"
    assert [code(client), code(client), code(client)] == [None, None, "606"]


def test_the_daily_quota_refuses_with_607(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox(daily_quota=3))
    assert [code(client) for _ in range(5)] == [None, None, None, "607", "607"]


def test_a_call_beyond_max_in_flight_gets_615(make_sandbox: MakeSandbox) -> None:
    # Calls are held by a long injected latency on describe only, which a fault change cuts
    # short: the test never depends on how fast threads are scheduled.
    sandbox = make_sandbox(max_in_flight=3)
    client = Client(sandbox)
    faults = f"{sandbox.base_url}/sandbox/faults.json"
    hold = {"latency_seconds": 60, "latency_rate": 1.0, "endpoints": ["describe"]}
    requests.post(faults, json=hold).raise_for_status()
    held: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: held.append(code(Client(sandbox)))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    wait_for(lambda: client.introspect("stats")["inFlight"] == 3, what="3 calls in flight")
    body = client.get("/rest/v1/leads/partitions.json").json()
    validate(body, "/rest/v1/leads/partitions.json")
    assert body["errors"][0]["code"] == "615"
    requests.post(faults, json={"latency_rate": 0.0}).raise_for_status()  # wakes held calls
    for thread in threads:
        thread.join(timeout=10)
    assert held == [None, None, None]
    assert client.get("/rest/v1/leads/partitions.json").json()["success"] is True
