"""An instance's health: one event per change of state, retries louder as an outage lasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from dropbox_importer.marketo.health import QUEUE_FULL, HealthSnapshot, HealthState, InstanceHealth


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_failures_make_one_unhealthy_one_outage_and_one_recovered_event() -> None:
    clock = Clock()
    health = InstanceHealth("main", outage_error_seconds=60, clock=clock)
    with capture_logs() as logs:
        levels = []
        for _ in range(6):
            levels.append(health.retry_level(len(levels)))
            health.failed("HTTP 502")
            clock.now += timedelta(seconds=15)
        levels.append(health.retry_level(6))
        health.succeeded()
        health.succeeded()

    events = [(e["event"], e["log_level"]) for e in logs]
    assert events == [
        ("instance_unhealthy", "warning"),
        ("instance_outage", "error"),
        ("instance_recovered", "warning"),
    ]
    assert levels[:2] == ["info", "info"] and levels[2] == "warning" and levels[-1] == "error"
    assert logs[0]["since"] == "2026-11-29T03:00:00+00:00"  # the first failure, not the third
    assert logs[2]["down_seconds"] == 90.0
    assert health.snapshot().state is HealthState.OK


def test_operator_and_quota_states_and_queue_waits_show_in_the_snapshot() -> None:
    clock = Clock()
    health = InstanceHealth("main", clock=clock)
    with capture_logs() as logs:
        health.needs_operator("603: Access denied", code="603")
        health.needs_operator("603: Access denied", code="603")
    assert [e["event"] for e in logs] == ["instance_needs_operator"]  # once, not per call
    assert health.snapshot().operator_reason == "603: Access denied"
    health.succeeded()
    health.paused_for_quota(clock.now + timedelta(hours=5))
    health.waiting(QUEUE_FULL)
    snapshot = health.snapshot(queued_jobs=8, max_queued_jobs=8)
    assert snapshot.state is HealthState.PAUSED_QUOTA and snapshot.waiting_for == QUEUE_FULL
    assert HealthSnapshot.from_json(snapshot.to_json()) == snapshot
    health.waiting_over()
    assert health.snapshot().waiting_for is None


def test_refused_requests_do_not_count_towards_an_outage() -> None:
    health = InstanceHealth("main", clock=Clock())
    for _ in range(5):
        health.failed("Marketo error 1003: Invalid batch id", transient=False)
    assert health.snapshot().state is HealthState.OK
