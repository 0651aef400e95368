"""Status calls are aimed at a batch's expected end, inside Adobe's 5 to 30 s band."""

from dropbox_importer.marketo.models import BatchState, BatchStatus
from dropbox_importer.pipeline.poll import PollBand, SpeedEstimate, next_poll_delay

BAND = PollBand(5, 30)


def status(state: BatchState, processed: int = 0) -> BatchStatus:
    return BatchStatus(batch_id=1, status=state, leads_processed=processed)


def test_small_batch_is_asked_about_at_the_band_minimum() -> None:
    assert next_poll_delay(status(BatchState.QUEUED), 100, 1000.0, BAND) == 5


def test_batch_queued_behind_our_own_waits_for_them_past_the_band() -> None:
    # 60,000 rows ahead share two import slots: about 30 s, then 10 s of its own.
    delay = next_poll_delay(status(BatchState.QUEUED), 10_000, 1000.0, BAND, rows_ahead=60_000)
    assert 40 <= delay <= 43
    # Never more than four times the band's maximum, whatever the queue.
    assert next_poll_delay(status(BatchState.QUEUED), 1, 1.0, BAND, rows_ahead=10**9) == 120


def test_big_batch_is_left_alone_until_nearly_done() -> None:
    delay = next_poll_delay(status(BatchState.IMPORTING, 10_000), 30_000, 1000.0, BAND)
    assert 20 <= delay <= 22


def test_delay_never_exceeds_the_band_maximum() -> None:
    assert next_poll_delay(status(BatchState.IMPORTING), 10**7, 10.0, BAND) == 30


def test_speed_estimate_moves_towards_what_is_observed() -> None:
    speed = SpeedEstimate(initial_rows_per_second=100.0, weight=0.5)
    speed.observe(rows=1000, seconds=1.0)
    assert speed.rows_per_second == 550.0
    speed.observe(rows=0, seconds=1.0)  # no progress seen is no evidence
    assert speed.rows_per_second == 550.0
