"""Following batches to their end with as few status calls as the answers allow.

Adobe recommends polling every 5 to 30 seconds. Inside that band we aim each call at the moment a
batch is expected to finish, from its row count and the import speed this instance has shown so
far, so a young batch is asked about soon and a big one is left alone until it is nearly done.
A batch whose rows take long is asked about once in the middle of its import, from the moment
it is created: that answer shows its progress, so the last call lands just past an end known
to within a second, rather than past one predicted through every job queued ahead of it. The
time from a batch's end to its file in done/ is mostly that last call's lateness.
`next_poll_delay` is the whole policy, a pure function; `Poller` is the thread that applies it.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from dropbox_importer.marketo.errors import BatchNotFound, Stopped
from dropbox_importer.marketo.models import BatchState, BatchStatus

log = structlog.get_logger(__name__)


# Marketo imports two jobs of an instance at once, in FIFO order.
IMPORTING_AT_ONCE = 2
# A batch queued behind our own may wait this many times the band's maximum: until the
# batches ahead of it are done, asking about it tells nothing new.
QUEUED_STRETCH = 4
# How far past a predicted end a call aims: a fixed bit for clocks and rounding, and a share of
# how far ahead the prediction looks. One call that finds the batch ended beats two that
# straddle its end (the second would come a band's minimum later).
END_MARGIN_SECONDS = 0.25
END_MARGIN_SHARE = 0.02
# A call mid-import comes at most this share of the band's maximum before the predicted end,
# so that the wait to the last call, its margin included, fits in the band.
MID_IMPORT_REACH = 0.8


def past(seconds: float) -> float:
    """A moment a little after `seconds` from now, aimed at by a call meant to find an end."""
    return seconds + END_MARGIN_SECONDS + END_MARGIN_SHARE * seconds


@dataclass(frozen=True)
class PollBand:
    """The shortest and longest wait between two status calls of one batch."""

    min_seconds: float = 5.0
    max_seconds: float = 30.0

    def clamp(self, seconds: float, *, stretch: float = 1.0) -> float:
        """Bring `seconds` inside the band (its maximum stretched by `stretch`)."""
        return max(self.min_seconds, min(self.max_seconds * stretch, seconds))


class SpeedEstimate:
    """Rows per second this instance imports, learnt from successive status answers."""

    def __init__(
        self,
        initial_rows_per_second: float = 200.0,
        weight: float = 0.3,
        initial_job_overhead_seconds: float = 1.0,
    ) -> None:
        self.rows_per_second = initial_rows_per_second
        # What each job costs besides its rows (Marketo's start-up and finishing work). Guessed
        # at a second until predictions of queued batches show what it is: a guess too high
        # costs a little lateness, one too low an extra call per batch.
        self.job_overhead_seconds = initial_job_overhead_seconds
        self._weight = weight
        self._lock = threading.Lock()

    def observe_overhead(self, seconds: float) -> None:
        """Fold in one job's overhead as measured from a prediction's error."""
        with self._lock:
            self.job_overhead_seconds += self._weight * (
                max(seconds, 0.0) - self.job_overhead_seconds
            )

    def observe(self, rows: int, seconds: float) -> None:
        """Fold in `rows` processed during `seconds` of importing."""
        if rows <= 0 or seconds <= 0:
            return
        sample = rows / seconds
        with self._lock:
            self.rows_per_second += self._weight * (sample - self.rows_per_second)


def fifo_end(
    ahead: Sequence[tuple[float | None, int]],
    rows: int,
    now: float,
    rows_per_second: float,
    overhead: float = 0.0,
) -> tuple[float, int]:
    """When a queued batch should end, replaying Marketo's FIFO queue with two import slots.

    `ahead` lists our unfinished batches created before it, oldest first, each as (the end
    predicted when we last asked about it, or None; its rows left). A prediction stays valid
    between calls, so a batch not asked about for a while is not taken for stuck. Other
    integrations' jobs are invisible, so the answer can only be early, never late.

    Returns the end and how many job starts since the last known prediction lead to it in its
    slot (the batch's own included): an error in the end, divided by them, is one overhead.
    """
    slots = [now] * IMPORTING_AT_ONCE
    starts = [0] * IMPORTING_AT_ONCE
    for predicted, rows_left in ahead:
        slot = slots.index(min(slots))
        if predicted is None:
            slots[slot] += overhead + rows_left / rows_per_second
            starts[slot] += 1
        else:
            slots[slot] = max(predicted, now)
            starts[slot] = 0
    slot = slots.index(min(slots))
    return slots[slot] + overhead + rows / rows_per_second, starts[slot] + 1


def next_poll_delay(
    status: BatchStatus,
    rows: int,
    rows_per_second: float,
    band: PollBand,
    *,
    expected_end_in: float | None = None,
    overhead: float = 0.0,
) -> float:
    """Seconds to wait before asking about this batch again.

    `expected_end_in` is when a queued batch should end, from `fifo_end`; without it a queued
    batch is asked about after its own duration (`overhead` plus its rows at the speed seen).
    """
    done = status.leads_processed + status.rows_failed
    importing = max(rows - done, 0) / rows_per_second
    if status.status is BatchState.QUEUED:
        end = overhead + importing if expected_end_in is None else expected_end_in
        # Long enough to be asked about mid-import: half its rows before its end, and no
        # further from it than one wait of the band, so that one call is left to find it ended.
        lead = min(rows / rows_per_second / 2, MID_IMPORT_REACH * band.max_seconds)
        if lead >= band.min_seconds and end - lead >= band.min_seconds:
            return band.clamp(end - lead, stretch=QUEUED_STRETCH)
        return band.clamp(past(end), stretch=QUEUED_STRETCH)
    # Importing; nothing processed yet means it may still be starting up.
    left = importing + (overhead if done == 0 else 0.0)
    if left > band.max_seconds:
        # Leave the last wait at least a band's minimum, so it is not held back past the end.
        return band.clamp(min(band.max_seconds, left - band.min_seconds))
    return band.clamp(past(left))


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    batch_id: int = field(compare=False)
    rows: int = field(compare=False)
    last: BatchStatus | None = field(compare=False, default=None)
    last_at: float = field(compare=False, default=0.0)


class Poller:
    """One thread per instance: asks about each batch when it is due; reports terminal ones."""

    def __init__(
        self,
        name: str,
        fetch: Callable[[int], BatchStatus],
        on_final: Callable[[BatchStatus], None],
        *,
        band: PollBand,
        speed: SpeedEstimate | None = None,
        # Called with a batch Marketo confirmed it no longer knows (a BatchNotFound).
        on_error: Callable[[int, Exception], None] | None = None,
        on_progress: Callable[[BatchStatus], None] | None = None,
    ) -> None:
        self.name = name
        self.band = band
        self.speed = speed or SpeedEstimate()
        self._fetch = fetch
        self._on_final = on_final
        self._on_error = on_error
        self._on_progress = on_progress
        self._heap: list[_Due] = []
        # batch id -> (rows still to import when last asked, the end then predicted, and for a
        # queued batch the job starts that prediction counted on)
        self._remaining: dict[int, tuple[int, float | None, int]] = {}
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"poll-{name}", daemon=True)

    def start(self) -> None:
        """Start the polling thread."""
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the call in hand; batches left are still recorded in the journal."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=timeout)

    def follow(self, batch_id: int, rows: int, *, first_delay: float | None = None) -> None:
        """Start following a batch just created: its first call is aimed as if Marketo had
        answered Queued now (behind our batches still in its queue), or comes after
        `first_delay` (a batch of an earlier run, whose place is unknown)."""
        now = time.monotonic()
        rate = self.speed.rows_per_second
        overhead = self.speed.job_overhead_seconds
        with self._cond:
            if first_delay is None:
                ahead = [
                    (end_then, rows_left)
                    for b, (rows_left, end_then, _) in sorted(self._remaining.items())
                    if b < batch_id
                ]
                end, starts = fifo_end(ahead, rows, now, rate, overhead)
                self._remaining[batch_id] = (rows, end, starts)
                queued = BatchStatus(batch_id, BatchState.QUEUED)
                delay = next_poll_delay(
                    queued, rows, rate, self.band, expected_end_in=end - now, overhead=overhead
                )
            else:
                self._remaining[batch_id] = (rows, None, 0)
                delay = first_delay
            heapq.heappush(self._heap, _Due(now + delay, next(self._seq), batch_id, rows))
            self._cond.notify_all()

    @property
    def following(self) -> int:
        """How many batches are being followed."""
        with self._cond:
            return len(self._heap)

    def _next_due(self) -> _Due | None:
        with self._cond:
            while not self._stopping:
                if self._heap:
                    wait = self._heap[0].at - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._heap)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        while (due := self._next_due()) is not None:
            try:
                status = self._fetch(due.batch_id)
            except Stopped:
                return
            except BatchNotFound as exc:  # Marketo no longer knows the batch (expired, unknown)
                if not exc.confirmed:
                    # One such answer may be a glitch of Marketo's: ask once more, soon.
                    self._push(due, self.band.min_seconds)
                    continue
                with self._cond:
                    self._remaining.pop(due.batch_id, None)
                if self._on_error is not None:
                    self._guarded(self._on_error, due, due.batch_id, exc)
                continue
            except Exception as exc:  # access denied, a client bug: ask again later, loudly
                log.error("batch_poll_failed", batch_id=due.batch_id, error=str(exc))
                self._push(due, self.band.max_seconds)
                continue
            now = time.monotonic()
            self._learn(due, status, now)
            if status.status.terminal:
                with self._cond:
                    self._remaining.pop(due.batch_id, None)
                self._guarded(self._on_final, due, status)
                continue
            rate = self.speed.rows_per_second
            overhead = self.speed.job_overhead_seconds
            with self._cond:
                left = max(due.rows - status.leads_processed - status.rows_failed, 0)
                _, predicted, counted = self._remaining.get(due.batch_id, (0, None, 0))
                if status.status is BatchState.IMPORTING:
                    end, starts = now + left / rate, 0
                    if predicted is not None and counted:
                        # Predicted while queued: the error, spread over the job starts that
                        # prediction counted on, is what each start costs beyond its rows.
                        self.speed.observe_overhead(overhead + (end - predicted) / counted)
                else:
                    # Batch ids grow in creation order, and Marketo's queue is FIFO.
                    ahead = [
                        (end_then, rows_left)
                        for b, (rows_left, end_then, _) in sorted(self._remaining.items())
                        if b < due.batch_id
                    ]
                    end, starts = fifo_end(ahead, left, now, rate, overhead)
                self._remaining[due.batch_id] = (left, end, starts)
            delay = next_poll_delay(
                status, due.rows, rate, self.band, expected_end_in=end - now, overhead=overhead
            )
            log.debug("batch_polled", batch_id=due.batch_id, status=status.status.value)
            if self._on_progress is not None:
                try:
                    self._on_progress(status)
                except Exception:  # progress is for people watching; the poll goes on
                    log.exception("batch_progress_not_recorded", batch_id=due.batch_id)
            self._push(due, delay, status, now)

    def _push(
        self, due: _Due, delay: float, status: BatchStatus | None = None, now: float | None = None
    ) -> None:
        at = time.monotonic() if now is None else now
        last = status if status is not None else due.last
        with self._cond:
            heapq.heappush(
                self._heap,
                _Due(at + delay, next(self._seq), due.batch_id, due.rows, last, at),
            )

    def _guarded(self, callback: Callable[..., None], due: _Due, *args: object) -> None:
        """Run a callback; if it fails (a full disk, a locked journal), ask again later."""
        try:
            callback(*args)
        except Exception:
            log.exception("batch_callback_failed", batch_id=due.batch_id)
            self._push(due, self.band.max_seconds)

    def _learn(self, due: _Due, status: BatchStatus, now: float) -> None:
        previous = due.last
        # Only two answers seen mid-import measure the speed: a batch found Complete ended at
        # some unknown moment before the call, and counting to the call would read it slow.
        if previous is None or previous.status is not BatchState.IMPORTING:
            return
        if status.status is not BatchState.IMPORTING:
            return
        done_before = previous.leads_processed + previous.rows_failed
        done_now = status.leads_processed + status.rows_failed
        self.speed.observe(done_now - done_before, now - due.last_at)
