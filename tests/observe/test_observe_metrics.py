"""The Prometheus endpoint, scraped over real HTTP: daemon counters and live client stats."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dropbox_importer.config.model import MetricsConfig
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.models import ClientStats
from dropbox_importer.marketo.settings import InstanceSettings
from dropbox_importer.observe.leadership import LeadershipCollector
from dropbox_importer.observe.metrics import Metrics, MetricsServer
from dropbox_importer.pipeline.postgres import Database, open_postgres
from dropbox_importer.sandbox import Sandbox
from tests.postgres import PostgresDatabase

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def served() -> Iterator[tuple[Metrics, MetricsServer]]:
    """Metrics in a registry of their own, served on a free loopback port."""
    metrics = Metrics()
    server = metrics.serve(MetricsConfig("127.0.0.1", 0))
    yield metrics, server
    server.stop()


def scrape(server: MetricsServer) -> Samples:
    """Every sample of one scrape, keyed by name and labels."""
    response = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
    response.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_settled_files_and_rows_are_counted_by_dropbox_and_outcome(
    served: tuple[Metrics, MetricsServer],
) -> None:
    metrics, server = served
    metrics.file_settled("acme", "done")
    metrics.file_settled("acme", "done")
    metrics.file_settled("acme", "failed")
    metrics.rows("acme", imported=120, failed=3, warned=1)
    metrics.rows("acme", imported=5, failed=0, warned=0)
    samples = scrape(server)
    files = "dropbox_importer_files_settled_total"
    assert value(samples, files, dropbox="acme", outcome="done") == 2
    assert value(samples, files, dropbox="acme", outcome="failed") == 1
    rows = "dropbox_importer_rows_total"
    assert value(samples, rows, dropbox="acme", outcome="imported") == 125
    assert value(samples, rows, dropbox="acme", outcome="failed") == 3
    assert value(samples, rows, dropbox="acme", outcome="warned") == 1
    stamp = value(
        samples, "dropbox_importer_last_settled_timestamp_seconds", dropbox="acme", outcome="done"
    )
    assert stamp > 1_700_000_000


def test_batches_in_flight_follow_created_and_finished_never_below_zero(
    served: tuple[Metrics, MetricsServer],
) -> None:
    metrics, server = served
    for _ in range(3):
        metrics.batch_created("main")
    metrics.batch_finished("main", "Complete")
    in_flight = "dropbox_importer_batches_in_flight"
    assert value(scrape(server), in_flight, marketo_instance="main") == 2
    for status in ("Failed", "Complete", "Complete"):  # one more than was created
        metrics.batch_finished("main", status)
    samples = scrape(server)
    assert value(samples, in_flight, marketo_instance="main") == 0
    assert value(samples, "dropbox_importer_batches_created_total", marketo_instance="main") == 3
    finished = "dropbox_importer_batches_finished_total"
    assert value(samples, finished, marketo_instance="main", status="Complete") == 3
    assert value(samples, finished, marketo_instance="main", status="Failed") == 1


def test_client_stats_are_read_at_scrape_time(
    served: tuple[Metrics, MetricsServer], make_sandbox: Callable[..., Sandbox]
) -> None:
    metrics, server = served
    sandbox = make_sandbox()
    settings = InstanceSettings(
        name="main",
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
    )
    client = MarketoClient(settings)
    try:
        metrics.watch_clients("main", client)
        before = scrape(server)
        assert (
            "dropbox_importer_api_calls_total",
            frozenset({("marketo_instance", "main"), ("endpoint", "describe")}),
        ) not in before
        client.describe_fields()
        client.describe_fields()
        client.partitions()
        samples = scrape(server)
        stats = client.stats()
    finally:
        client.close()
    calls = "dropbox_importer_api_calls_total"
    assert value(samples, calls, marketo_instance="main", endpoint="describe") == 2
    assert value(samples, calls, marketo_instance="main", endpoint="partitions") == 1
    assert stats.calls_by_endpoint == {"describe": 2, "partitions": 1}
    assert value(samples, "dropbox_importer_token_fetches_total", marketo_instance="main") == 1
    waits = value(samples, "dropbox_importer_limiter_waits_total", marketo_instance="main")
    assert waits == stats.limiter_waits
    assert value(
        samples, "dropbox_importer_limiter_wait_seconds_total", marketo_instance="main"
    ) == (pytest.approx(stats.limiter_wait_seconds))
    assert value(samples, "dropbox_importer_import_jobs_queued", marketo_instance="main") == 0


def test_callbacks_report_waiting_files_and_states_and_a_broken_one_is_left_out(
    served: tuple[Metrics, MetricsServer],
) -> None:
    metrics, server = served
    waiting = {"acme": 4}
    metrics.watch_waiting("acme", lambda: waiting["acme"])
    metrics.watch_waiting("broken", lambda: 1 // 0)
    metrics.watch_states(lambda: {"polling": 2, "done": 7})
    samples = scrape(server)
    assert value(samples, "dropbox_importer_files_waiting", dropbox="acme") == 4
    assert ("dropbox_importer_files_waiting", frozenset({("dropbox", "broken")})) not in samples
    assert value(samples, "dropbox_importer_files", state="polling") == 2
    waiting["acme"] = 0
    assert value(scrape(server), "dropbox_importer_files_waiting", dropbox="acme") == 0


def test_two_metrics_objects_do_not_share_counters() -> None:
    first, second = Metrics(), Metrics()
    first.file_settled("acme", "done")
    labels = {"dropbox": "acme", "outcome": "done"}
    assert first.registry.get_sample_value("dropbox_importer_files_settled_total", labels) == 1
    assert second.registry.get_sample_value("dropbox_importer_files_settled_total", labels) is None


def test_stopped_server_closes_its_port() -> None:
    server = Metrics().serve(MetricsConfig("127.0.0.1", 0))
    port = server.port
    server.stop()
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))


def test_every_metric_the_alert_rules_use_is_exposed(
    served: tuple[Metrics, MetricsServer], postgres_database: PostgresDatabase
) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    rules_block = doc.split("```yaml\n# /etc/prometheus/rules/dropbox-importer.yml\n")[1]
    rules = yaml.safe_load(rules_block.split("```")[0])
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) == 11
    used = {name for expr in exprs for name in re.findall(r"dropbox_importer_\w+", expr)}
    metrics, server = served
    metrics.file_settled("acme", "failed")
    metrics.rows("acme", 1, 1, 1)
    metrics.batch_created("main")
    metrics.batch_finished("main", "Complete")
    metrics.watch_waiting("acme", lambda: 0)

    class Idle:
        def stats(self) -> ClientStats:
            return ClientStats({"create": 1}, {}, {"607": 1}, 0, 1, 0, 0.0, 0, 0.0, 0)

    metrics.watch_clients("main", Idle())
    journal = open_postgres(Database(postgres_database.url, postgres_database.password()))
    journal.claim_leadership("alpha")
    metrics.registry.register(
        LeadershipCollector("alpha", lambda: True, journal, 15.0, lambda: datetime.now(UTC))
    )
    exposed = {name for name, _labels in scrape(server)}
    journal.close()
    assert used <= exposed, used - exposed
