"""Status calls are aimed at a batch's expected end, inside Adobe's 5 to 30 s band."""

from dropbox_importer.marketo.models import BatchState, BatchStatus
from dropbox_importer.pipeline.poll import PollBand, SpeedEstimate, fifo_end, next_poll_delay

BAND = PollBand(5, 30)


def status(state: BatchState, processed: int = 0) -> BatchStatus:
    return BatchStatus(batch_id=1, status=state, leads_processed=processed)


def test_small_batch_is_asked_about_at_the_band_minimum() -> None:
    assert next_poll_delay(status(BatchState.QUEUED), 100, 1000.0, BAND) == 5


def test_queued_batch_ends_after_the_batches_ahead_free_a_slot() -> None:
    # At t=100, ahead of it: one predicted to end at 101, one at 103, one never asked about
    # (4,000 rows: it takes the slot freed at 101 and ends at 105).
    ahead = [(101.0, 1000), (103.0, 3000), (None, 4000)]
    assert fifo_end(ahead, 2000, now=100.0, rows_per_second=1000.0) == (105.0, 1)  # 103 + 2
    # A prediction already past is taken as "ending now", never as a slot free in the past.
    assert fifo_end([(50.0, 10), (60.0, 10)], 1000, 100.0, 1000.0) == (101.0, 1)
    # Nothing ahead: it starts at once.
    assert fifo_end([], 3000, now=100.0, rows_per_second=1000.0) == (103.0, 1)


def test_each_job_start_in_the_chain_adds_the_learnt_overhead() -> None:
    # Four unknown batches ahead, two per slot, then ours: three starts in its slot.
    ahead = [(None, 1000)] * 4
    end, starts = fifo_end(ahead, 1000, now=0.0, rows_per_second=1000.0, overhead=0.5)
    assert (end, starts) == (4.5, 3)


def test_batch_queued_behind_our_own_waits_for_them_past_the_band() -> None:
    delay = next_poll_delay(status(BatchState.QUEUED), 1000, 1000.0, BAND, expected_end_in=40)
    assert delay == 40 + 0.25 + 0.8  # a little past the expected end
    # Never more than four times the band's maximum, whatever the queue.
    assert next_poll_delay(status(BatchState.QUEUED), 1, 1.0, BAND, expected_end_in=10**6) == 120


def test_a_long_queued_batch_is_asked_about_mid_import_so_its_last_call_is_aimed_well() -> None:
    # 10 s of rows, ending in 40 s: asked about at 35 s, in the middle of its import.
    delay = next_poll_delay(status(BatchState.QUEUED), 10_000, 1000.0, BAND, expected_end_in=40)
    assert delay == 35
    # A very long one: at most 24 s (0.8 of the band's maximum) before its end, so one wait
    # of the band, margin included, reaches the end.
    delay = next_poll_delay(status(BatchState.QUEUED), 80_000, 1000.0, BAND, expected_end_in=100)
    assert delay == 76
    # Too close to its end for a call in between: aimed past the end.
    delay = next_poll_delay(status(BatchState.QUEUED), 10_000, 1000.0, BAND, expected_end_in=9)
    assert delay == 9 + 0.25 + 0.18


def test_big_batch_is_left_alone_until_nearly_done() -> None:
    delay = next_poll_delay(status(BatchState.IMPORTING, 10_000), 30_000, 1000.0, BAND)
    assert delay == 20 + 0.25 + 0.4


def test_delay_never_exceeds_the_band_maximum() -> None:
    assert next_poll_delay(status(BatchState.IMPORTING), 10**7, 10.0, BAND) == 30


def test_the_last_wait_is_never_cut_short_by_the_band_minimum() -> None:
    # 32 s left: waiting the band's 30 s would leave 2 s, a call held back to 5 s, 3 s late.
    delay = next_poll_delay(status(BatchState.IMPORTING, 8_000), 40_000, 1000.0, BAND)
    assert delay == 27


def test_an_import_still_starting_up_counts_its_overhead() -> None:
    delay = next_poll_delay(status(BatchState.IMPORTING), 5, 1000.0, BAND, overhead=9.0)
    assert delay == BAND.clamp(9.005 + 0.25 + 0.02 * 9.005)


def test_speed_estimate_moves_towards_what_is_observed() -> None:
    speed = SpeedEstimate(initial_rows_per_second=100.0, weight=0.5, initial_job_overhead_seconds=0)
    speed.observe(rows=1000, seconds=1.0)
    assert speed.rows_per_second == 550.0
    speed.observe(rows=0, seconds=1.0)  # no progress seen is no evidence
    assert speed.rows_per_second == 550.0
    speed.observe_overhead(2.0)
    speed.observe_overhead(-5.0)  # a late prediction is no negative cost
    assert speed.job_overhead_seconds == 0.5
