"""The retry policy table, the back-off value and the quota reset time."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from dropbox_importer.marketo.errors import AccessDenied, ClientBug, RequestRejected, UnknownCode
from dropbox_importer.marketo.policy import (
    DROPPED,
    HTTP_5XX,
    MARKETO_TIME,
    TIMEOUT,
    Action,
    Backoff,
    action_for,
    error_type_for,
    quota_resets_at,
)


@pytest.mark.parametrize(
    "condition", ["502", "604", "608", "611", "614", "713", HTTP_5XX, DROPPED, TIMEOUT]
)
def test_transient_faults_back_off(condition: str) -> None:
    assert action_for(condition) is Action.BACKOFF


@pytest.mark.parametrize(
    ("condition", "action"),
    [
        ("601", Action.REFRESH_TOKEN),
        ("602", Action.REFRESH_TOKEN),
        ("606", Action.WAIT_WINDOW),
        ("615", Action.WAIT_IN_FLIGHT),
        ("607", Action.PAUSE_QUOTA),
        ("1016", Action.WAIT_QUEUE),
        ("1019", Action.WAIT_LIST),
    ],
)
def test_limits_and_tokens_have_their_own_actions(condition: str, action: Action) -> None:
    assert action_for(condition) is action


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("603", AccessDenied),
        ("609", ClientBug),
        ("610", ClientBug),
        ("612", ClientBug),
        ("613", ClientBug),
        ("1003", RequestRejected),
        ("1006", RequestRejected),
        ("1008", RequestRejected),
        ("9999", UnknownCode),
        ("1013", UnknownCode),
        (None, ClientBug),
    ],
)
def test_permanent_codes_fail_with_their_type(code: str | None, error: type) -> None:
    assert action_for(code or "http_413") is Action.FAIL
    assert error_type_for(code) is error


def test_backoff_doubles_up_to_its_ceiling_and_is_immutable() -> None:
    first = Backoff(base=0.5, ceiling=4.0)
    caps = []
    state = first
    for _ in range(6):
        caps.append(state.cap())
        state = state.next()
    assert caps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert first.attempt == 0


def test_backoff_jitter_stays_between_half_the_cap_and_the_cap() -> None:
    rng = random.Random(7)
    state = Backoff(base=1.0, ceiling=8.0).next().next()
    delays = [state.delay(rng) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 100  # jittered, so threads do not retry in lockstep


def test_backoff_survives_a_very_long_outage() -> None:
    state = Backoff(base=0.5, ceiling=60.0, attempt=10_000)
    assert state.cap() == 60.0


def test_quota_resets_at_the_next_central_midnight() -> None:
    # 2025-03-05 23:30 UTC is 17:30 in Chicago (CST, UTC-6).
    resume = quota_resets_at(datetime(2025, 3, 5, 23, 30, tzinfo=UTC))
    assert resume == datetime(2025, 3, 6, 0, 0, tzinfo=MARKETO_TIME)
    assert resume.astimezone(UTC) == datetime(2025, 3, 6, 6, 0, tzinfo=UTC)


def test_quota_reset_respects_daylight_saving_change() -> None:
    # The night before DST starts (2025-03-09), midnight is still CST; the next one is CDT.
    before = quota_resets_at(datetime(2025, 3, 9, 12, 0, tzinfo=UTC))
    assert before.astimezone(UTC) == datetime(2025, 3, 10, 5, 0, tzinfo=UTC)


def test_quota_reset_just_after_midnight_waits_a_whole_day() -> None:
    now = datetime(2025, 7, 1, 0, 0, 1, tzinfo=MARKETO_TIME)
    assert quota_resets_at(now) == datetime(2025, 7, 2, 0, 0, tzinfo=MARKETO_TIME)
