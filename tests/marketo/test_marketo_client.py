"""The client against a real sandbox over loopback HTTP: every call, and every fault absorbed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests
from marketo_support import sandbox_stats, wait_for

from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.errors import (
    AccessDenied,
    AuthenticationError,
    ClientBug,
    RequestRejected,
    Stopped,
)
from dropbox_importer.marketo.models import BatchState, BatchStatus, ImportFormat, ImportParams
from dropbox_importer.sandbox import FaultSettings, Sandbox
from tests.marketo.conftest import MakeClient

CSV = ImportParams(ImportFormat.CSV)


def lead_file(tmp_path: Path, rows: int = 3, name: str = "leads.csv", bad: int = 0) -> Path:
    """A CSV of `rows` good leads and `bad` rows with an invalid email."""
    lines = ["email,firstName"]
    lines += [f"lead{i}@example.com,Lead{i}" for i in range(rows)]
    lines += [f"not-an-email-{i},Bad{i}" for i in range(bad)]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def finish(client: MarketoClient, batch_id: int) -> BatchStatus:
    """Poll until the batch is terminal (the sandbox imports in well under a second)."""
    pause = threading.Event()

    def status() -> BatchStatus | None:
        got = client.batch_status(batch_id)
        if got.status.terminal:
            return got
        pause.wait(0.05)  # polling interval of a deadline-bounded wait
        return None

    return wait_for(status, timeout=20, what=f"batch {batch_id}")


def test_import_round_trip_with_failures_file(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox)
    client.check_credentials()
    batch_id = client.create_import(lead_file(tmp_path, rows=2, bad=1), CSV)
    status = finish(client, batch_id)
    assert status.status is BatchState.COMPLETE
    assert (status.leads_processed, status.rows_failed) == (2, 1)
    dest = tmp_path / "out" / "failures.csv"
    dest.parent.mkdir()
    client.download_failures(batch_id, dest)
    assert dest.read_text().splitlines()[0].endswith("Import Failure Reason")
    assert "not-an-email-0" in dest.read_text()
    client.download_warnings(batch_id, tmp_path / "out" / "warnings.csv")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["failures.csv", "warnings.csv"]
    assert client.stats().queued_imports == 0
    # Every call is needed: one create, polls, two downloads, and one token for all of them.
    calls = sandbox_stats(sandbox)["calls"]
    assert calls["identity"] == 1 and calls["create"] == 1


def test_lookups_return_typed_values(sandbox: Sandbox, make_client: MakeClient) -> None:
    client = make_client(sandbox)
    names = {f.name for f in client.describe_fields()}
    assert {"email", "firstName"} <= names
    assert [p.name for p in client.partitions()] == list(sandbox.settings.partitions)
    listed = client.get_list(1001)
    assert listed is not None and listed.name == "Demo list"
    assert client.get_list(424242) is None


def test_unknown_partition_is_rejected_with_its_code(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox)
    params = ImportParams(ImportFormat.CSV, partition_name="Atlantis")
    with pytest.raises(RequestRejected) as caught:
        client.create_import(lead_file(tmp_path), params)
    assert caught.value.code == "1003"
    assert "Atlantis" in caught.value.message
    assert client.stats().queued_imports == 0  # the reserved slot is given back


@pytest.mark.parametrize(("code", "error"), [("603", AccessDenied), ("610", ClientBug)])
def test_permanent_errors_surface_with_their_code_and_no_retry(
    make_sandbox: type, make_client: MakeClient, code: str, error: type
) -> None:
    sandbox = make_sandbox(faults=FaultSettings(rate=1.0, codes=(code,), endpoints=("describe",)))
    client = make_client(sandbox)
    with pytest.raises(error) as caught:
        client.describe_fields()
    assert caught.value.code == code
    assert "acme" in str(caught.value)
    assert sandbox_stats(sandbox)["calls"]["describe"] == 1


def test_bad_credentials_fail_fast_naming_the_instance(
    sandbox: Sandbox, make_client: MakeClient
) -> None:
    client = make_client(sandbox, secret="wrong-secret-value", name="acme-eu")
    with pytest.raises(AuthenticationError, match="acme-eu") as caught:
        client.check_credentials()
    assert "wrong-secret-value" not in str(caught.value)
    with pytest.raises(AuthenticationError):
        client.describe_fields()
    assert sandbox_stats(sandbox)["calls"] == {"identity": 2}


def test_thirty_percent_transient_faults_every_call_still_completes(
    make_sandbox: type, make_client: MakeClient, tmp_path: Path
) -> None:
    faults = FaultSettings(rate=0.15, http_5xx_rate=0.1, drop_rate=0.05, seed=3)
    sandbox = make_sandbox(faults=faults)
    client = make_client(sandbox)
    batches = [client.create_import(lead_file(tmp_path, name=f"f{i}.csv"), CSV) for i in range(6)]
    for batch_id in batches:
        assert finish(client, batch_id).status is BatchState.COMPLETE
        client.download_failures(batch_id, tmp_path / f"{batch_id}.failures.csv")
    for _ in range(5):
        assert client.describe_fields()
        assert client.partitions()
    stats = client.stats()
    errors = sandbox_stats(sandbox)["errors"]
    # Strict answers a failures file with no rows with HTTP 404: an empty file, not a fault.
    errors.pop("404", None)
    total = sum(sandbox_stats(sandbox)["calls"].values())
    assert sum(errors.values()) >= 0.15 * total  # the faults really happened
    # Each injected fault cost exactly one retry, and nothing else was retried.
    assert sum(stats.retries_by_reason.values()) == sum(errors.values())
    assert stats.ambiguous_create_retries <= stats.retries_by_reason.get("dropped", 0)


def test_dropped_create_is_retried_and_counted_as_ambiguous(
    make_sandbox: type, make_client: MakeClient, tmp_path: Path
) -> None:
    sandbox = make_sandbox(faults=FaultSettings(drop_rate=0.5, endpoints=("create",), seed=1))
    client = make_client(sandbox)
    for i in range(6):
        finish(client, client.create_import(lead_file(tmp_path, name=f"f{i}.csv"), CSV))
    dropped = sandbox_stats(sandbox)["errors"].get("dropped", 0)
    assert dropped > 0
    assert client.stats().ambiguous_create_retries == dropped
    # Each possible duplicate held a slot until a later batch of ours ended: none is left.
    assert client.stats().queued_imports == 0


def test_rate_limit_606_is_absorbed_when_the_sandbox_allows_less(
    make_sandbox: type, make_client: MakeClient
) -> None:
    sandbox = make_sandbox(calls_per_window=5, window_seconds=1.0)
    client = make_client(sandbox, calls_per_window=8, window_seconds=1.0)
    run_threads(4, lambda: [client.partitions() for _ in range(4)])
    assert sandbox_stats(sandbox)["errors"].get("606", 0) > 0
    assert client.stats().calls_by_endpoint["partitions"] > 16
    assert client.stats().retries_by_reason["606"] > 0


def test_in_flight_615_is_absorbed_when_the_sandbox_allows_less(
    make_sandbox: type, make_client: MakeClient
) -> None:
    faults = FaultSettings(latency_seconds=0.1, latency_rate=1.0)
    sandbox = make_sandbox(max_in_flight=2, faults=faults)
    client = make_client(sandbox, max_in_flight=8)
    run_threads(6, lambda: [client.partitions() for _ in range(3)])
    assert sandbox_stats(sandbox)["errors"].get("615", 0) > 0
    assert client.stats().retries_by_reason["615"] > 0


def test_full_import_queue_1016_makes_creates_wait_not_fail(
    make_sandbox: type, make_client: MakeClient, tmp_path: Path
) -> None:
    sandbox = make_sandbox(max_queued_jobs=3, job_overhead_seconds=0.3)
    client = make_client(sandbox, max_queued_jobs=8)
    files = [lead_file(tmp_path, name=f"f{i}.csv") for i in range(7)]
    results: list[BatchState] = []

    def submit(path: Path) -> None:
        results.append(finish(client, client.create_import(path, CSV)).status)

    run_threads(len(files), submit, args=files)
    assert results == [BatchState.COMPLETE] * len(files)
    assert sandbox_stats(sandbox)["errors"].get("1016", 0) > 0
    assert client.stats().queued_imports == 0


def test_short_token_lifetime_costs_no_failed_operation(
    make_sandbox: type, make_client: MakeClient
) -> None:
    sandbox = make_sandbox(token_lifetime_seconds=1.5)
    client = make_client(sandbox)
    pause = threading.Event()

    def steady_call() -> bool:
        assert client.partitions()
        pause.wait(0.05)  # a steady trickle of calls, well inside the call budget
        return client.stats().token_fetches >= 4

    wait_for(steady_call, timeout=15, what="token refreshes under steady calls")
    stats = sandbox_stats(sandbox)
    assert stats["errors"].get("602", 0) <= client.stats().token_fetches
    # Refreshing ahead never turns into a storm of identity calls.
    assert stats["calls"]["identity"] == client.stats().token_fetches <= 8


def test_client_alone_never_triggers_606_or_615_under_concurrent_load(
    make_sandbox: type, make_client: MakeClient
) -> None:
    faults = FaultSettings(latency_seconds=0.02, latency_rate=0.5)
    sandbox = make_sandbox(calls_per_window=30, window_seconds=1.0, max_in_flight=3, faults=faults)
    # The client's share equals the whole sandbox: it is the only caller.
    client = make_client(sandbox, calls_per_window=30, window_seconds=1.0, max_in_flight=3)
    run_threads(8, lambda: [client.describe_fields() for _ in range(10)])
    errors = sandbox_stats(sandbox)["errors"]
    assert errors.get("606", 0) == 0 and errors.get("615", 0) == 0
    assert client.stats().calls_by_endpoint["describe"] == 80
    assert client.stats().limiter_waits > 0  # the limiter did hold calls back


def test_stop_interrupts_a_create_waiting_for_a_queue_slot(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox, max_queued_jobs=1)
    client.adopt_batch(777)
    stop = threading.Event()
    outcome: list[BaseException] = []

    def create() -> None:
        try:
            client.create_import(lead_file(tmp_path), CSV, stop=stop)
        except Stopped as exc:
            outcome.append(exc)

    thread = threading.Thread(target=create)
    thread.start()
    wait_for(lambda: client.stats().queue_waits == 1, what="the create to wait")
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and len(outcome) == 1
    assert "create" not in sandbox_stats(sandbox)["calls"]


def test_spent_daily_quota_pauses_the_instance_until_stopped(
    make_sandbox: type, make_client: MakeClient
) -> None:
    from structlog.testing import capture_logs

    sandbox = make_sandbox(daily_quota=2)
    client = make_client(sandbox)
    client.partitions()
    client.partitions()
    done: list[BaseException] = []

    def third() -> None:
        try:
            client.partitions()
        except Stopped as exc:
            done.append(exc)

    with capture_logs() as logs:
        thread = threading.Thread(target=third)
        thread.start()
        wait_for(lambda: client.stats().limiter_waits == 1, what="the pause")
        client.close()
        thread.join(5)
    assert len(done) == 1
    paused = [e for e in logs if e["event"] == "marketo_quota_paused"]
    assert paused and paused[0]["resume_at"].endswith(("-05:00", "-06:00"))
    assert sandbox_stats(sandbox)["errors"] == {"607": 1}


def run_threads(count: int, target: object, args: list[Path] | None = None) -> None:
    """Run `target` in `count` threads (with one arg each if given); re-raise any failure."""
    failures: list[BaseException] = []

    def guarded(*a: object) -> None:
        try:
            target(*a)  # type: ignore[operator]
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=guarded, args=(args[i],) if args else ()) for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if failures:
        raise failures[0]
    assert not any(t.is_alive() for t in threads)


def test_identity_call_keeps_the_secret_out_of_the_url(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox)
    sent: list[requests.PreparedRequest] = []
    # Every request the client's own session sends, as it went on the wire.
    client._session.hooks["response"].append(lambda response, **_: sent.append(response.request))
    client.check_credentials()
    client.create_import(lead_file(tmp_path), CSV)
    secret = sandbox.settings.client_secret
    identity = [r for r in sent if "/identity/oauth/token" in (r.url or "")]
    assert identity and len(sent) > len(identity)  # the token, then the Marketo calls
    for request in sent:
        assert secret not in (request.url or ""), request.url
        assert secret not in str(request.headers)
    [token_request] = identity
    assert token_request.method == "POST"
    body = token_request.body if isinstance(token_request.body, str) else ""
    assert f"client_secret={secret}" in body  # a form body, never the query string


def test_refused_connection_retries_until_stopped_and_is_not_ambiguous(
    sandbox: Sandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(sandbox)
    client.check_credentials()
    sandbox.stop()  # nothing listens any more: connections are refused, never half-sent
    stop = threading.Event()
    outcome: list[BaseException] = []

    def create() -> None:
        try:
            client.create_import(lead_file(tmp_path), CSV, stop=stop)
        except Stopped as exc:
            outcome.append(exc)

    thread = threading.Thread(target=create)
    thread.start()
    wait_for(lambda: client.stats().retries_by_reason.get("dropped", 0) >= 3, what="retries")
    stop.set()
    thread.join(5)
    assert len(outcome) == 1
    assert client.stats().ambiguous_create_retries == 0
    assert client.stats().queued_imports == 0
