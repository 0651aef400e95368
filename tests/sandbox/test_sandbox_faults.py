"""Fault injection: coded errors, bare 5xx, dropped connections, latency, failed batches."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from contract import validate
from sandbox_client import Client, MakeSandbox

from dropbox_importer.sandbox import FaultSettings, Sandbox

DESCRIBE = "/rest/v1/leads/describe.json"


def set_faults(sandbox: Sandbox, **faults: Any) -> dict[str, Any]:
    response = requests.post(f"{sandbox.base_url}/sandbox/faults.json", json=faults)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def outcome(client: Client, path: str = DESCRIBE) -> str:
    """'ok', a Marketo error code, 'http NNN' or 'dropped'."""
    try:
        response = client.get(path)
    except requests.ConnectionError:
        return "dropped"
    if response.status_code != 200:
        return f"http {response.status_code}"
    body = response.json()
    return "ok" if body["success"] else str(body["errors"][0]["code"])


def test_every_call_can_be_answered_with_a_transient_code(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    set_faults(sandbox, rate=1.0)
    seen = {outcome(client) for _ in range(40)}
    assert seen == {"502", "604", "608", "611", "713"}
    body = client.get(DESCRIBE).json()
    validate(body, DESCRIBE)
    stats = client.introspect("stats")
    assert sum(stats["errorsByEndpoint"]["describe"].values()) == 41


def test_bare_5xx_and_dropped_connections(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    set_faults(sandbox, http_5xx_rate=1.0)
    assert outcome(client).startswith("http 5")
    set_faults(sandbox, http_5xx_rate=0.0, drop_rate=1.0)
    assert outcome(client) == "dropped"
    assert Client(sandbox).introspect("stats")["errors"]["dropped"] == 1
    set_faults(sandbox, drop_rate=0.0)
    assert outcome(client) == "ok"


def test_a_dropped_create_creates_nothing(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    set_faults(sandbox, drop_rate=1.0, endpoints=["create"])
    with pytest.raises(requests.ConnectionError):
        client.create("email\na@example.com\n")
    assert client.introspect("batches")["batches"] == []


def test_faults_can_target_one_endpoint(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    set_faults(sandbox, rate=1.0, codes=["611"], endpoints=["status"])
    assert outcome(client) == "ok"
    assert outcome(client, "/bulk/v1/leads/batch/1.json") == "611"


def test_identity_is_faulted_only_when_named(sandbox: Sandbox) -> None:
    set_faults(sandbox, http_5xx_rate=1.0)
    Client(sandbox)  # gets a token: identity is not in the default endpoints
    set_faults(sandbox, http_5xx_rate=1.0, endpoints=["identity"])
    with pytest.raises(requests.HTTPError):
        Client(sandbox)


def test_the_same_seed_replays_the_same_faults(make_sandbox: MakeSandbox) -> None:
    faults = FaultSettings(rate=0.3, http_5xx_rate=0.1, seed=7)
    runs = []
    for _ in range(2):
        client = Client(make_sandbox(faults=faults))
        runs.append([outcome(client) for _ in range(30)])
    assert runs[0] == runs[1]
    assert set(runs[0]) - {"ok"}  # some faults happened
    assert "ok" in runs[0]


def test_latency_delays_the_answer(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    set_faults(sandbox, latency_seconds=0.3, latency_rate=1.0)
    response = client.get(DESCRIBE)
    assert response.json()["success"] is True
    assert response.elapsed.total_seconds() >= 0.3


def test_doomed_batches_end_failed(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    set_faults(sandbox, failed_batch_rate=1.0)
    final = client.import_file("email\na@example.com\n")
    assert final["status"] == "Failed"
    assert final["message"] == "Import failed: system error"
    assert client.introspect("leads")["leads"] == []


def test_introspection_is_never_faulted_or_limited(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(daily_quota=1, faults=FaultSettings(rate=1.0, drop_rate=1.0))
    client = Client(sandbox)
    for _ in range(5):
        assert client.introspect("stats")["inFlight"] == 0


def test_bad_fault_settings_are_refused_with_400(sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url}/sandbox/faults.json"
    for body in ({"rate": 2}, {"nonsense": 1}, {"endpoints": ["nowhere"]}):
        assert requests.post(url, json=body).status_code == 400
    assert requests.post(url, data=b"{not json").status_code == 400
    assert requests.get(url).json()["rate"] == 0.0
