"""The per-instance limiter: rolling-window budget, in-flight cap and import-queue slots."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from marketo_support import FakeClock, wait_for

from dropbox_importer.marketo.errors import Stopped
from dropbox_importer.marketo.limiter import AnyOf, CallLimiter, ImportSlots


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run `target` in a thread; the list receives its result or exception."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(target())
        except Exception as exc:  # handed to the test to assert on
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def call(limiter: CallLimiter, stop: threading.Event | None = None) -> str:
    with limiter.admit(stop):
        return "done"


def test_window_budget_holds_the_next_call_until_the_oldest_ages_out() -> None:
    clock = FakeClock()
    limiter = CallLimiter(3, 20.0, 10, clock=clock)
    for _ in range(3):
        call(limiter)
        clock.advance(1.0)
    thread, out = in_thread(lambda: call(limiter))
    wait_for(lambda: limiter.waits == 1, what="the fourth call to wait")
    clock.advance(16.5)  # the first call is now 19.5 s old: still in the window
    assert thread.is_alive()
    clock.advance(0.5)
    thread.join(5)
    assert out == ["done"]


def test_refunded_calls_do_not_use_the_budget() -> None:
    limiter = CallLimiter(2, 20.0, 10, clock=FakeClock())
    for _ in range(5):
        with limiter.admit() as ticket:
            ticket.refund()
    call(limiter)
    call(limiter)
    assert limiter.waits == 0


def test_in_flight_cap_holds_a_third_call_until_one_finishes() -> None:
    limiter = CallLimiter(100, 20.0, 2)
    release = threading.Event()

    def hold() -> str:
        with limiter.admit():
            release.wait(10)
        return "held"

    holders = [in_thread(hold) for _ in range(2)]
    wait_for(lambda: limiter._in_flight == 2, what="two calls in flight")
    thread, out = in_thread(lambda: call(limiter))
    wait_for(lambda: limiter.waits == 1, what="the third call to wait")
    assert out == []
    release.set()
    thread.join(5)
    assert out == ["done"]
    for holder, _ in holders:
        holder.join(5)


def test_window_full_after_606_waits_for_our_oldest_call() -> None:
    clock = FakeClock()
    limiter = CallLimiter(80, 20.0, 10, clock=clock)
    call(limiter)
    clock.advance(5.0)
    limiter.window_full()
    thread, out = in_thread(lambda: call(limiter))
    wait_for(lambda: limiter.waits == 1, what="the call to wait")
    clock.advance(14.9)
    assert thread.is_alive()
    clock.advance(0.2)
    thread.join(5)
    assert out == ["done"]


def test_quota_pause_blocks_until_resumed_or_stopped() -> None:
    limiter = CallLimiter(80, 20.0, 10, clock=FakeClock())
    limiter.pause_until(10_000_000.0)
    stop = threading.Event()
    thread, out = in_thread(lambda: call(limiter, stop))
    wait_for(lambda: limiter.waits == 1, what="the call to wait")
    stop.set()
    thread.join(5)
    assert isinstance(out[0], Stopped)
    limiter.resume()
    assert call(limiter) == "done"


def test_import_slots_cap_reservations_and_batches() -> None:
    slots = ImportSlots(2)
    slots.reserve()
    slots.commit(1)
    slots.adopt(2)
    assert slots.used == 2
    thread, _ = in_thread(slots.reserve)
    wait_for(lambda: slots.waits == 1, what="a create to wait for a slot")
    slots.finish(999)  # not ours: frees nothing
    assert thread.is_alive()
    slots.finish(1)
    thread.join(5)
    assert slots.used == 2
    slots.cancel()
    assert slots.used == 1


def test_queue_full_lowers_the_ceiling_until_a_slot_frees() -> None:
    slots = ImportSlots(8)
    slots.reserve()
    slots.commit(1)
    slots.reserve()  # this create got 1016
    slots.queue_full()
    thread, _ = in_thread(slots.reserve)
    wait_for(lambda: slots.waits == 1, what="another create to wait")
    released, got = in_thread(lambda: slots.wait_for_release(10.0))
    slots.finish(1)
    thread.join(5)
    released.join(5)
    assert got == [True]
    assert slots.used == 2


def test_wait_for_release_times_out_without_a_release() -> None:
    assert ImportSlots(2).wait_for_release(0.05) is False


def test_reserve_is_interrupted_by_stop() -> None:
    slots = ImportSlots(1)
    slots.adopt(5)
    stop = threading.Event()
    thread, out = in_thread(lambda: slots.reserve(stop))
    wait_for(lambda: slots.waits == 1, what="the reservation to wait")
    stop.set()
    thread.join(5)
    assert isinstance(out[0], Stopped)


@pytest.mark.parametrize("threads", [8])
def test_budget_is_never_exceeded_by_concurrent_threads(threads: int) -> None:
    clock = FakeClock()
    limiter = CallLimiter(5, 20.0, 10, clock=clock)
    workers = [in_thread(lambda: call(limiter)) for _ in range(threads)]
    wait_for(lambda: sum(not t.is_alive() for t, _ in workers) == 5, what="five calls")
    wait_for(lambda: limiter.waits == 3, what="three waiting calls")
    assert sum(out == ["done"] for _, out in workers) == 5
    clock.advance(20.0)
    for thread, _ in workers:
        thread.join(5)
    assert all(out == ["done"] for _, out in workers)


def test_after_615_calls_wait_for_our_running_calls_then_the_cap_recovers() -> None:
    limiter = CallLimiter(100, 20.0, 4)
    release = threading.Event()

    def hold() -> str:
        with limiter.admit():
            release.wait(10)
        return "held"

    holder, _ = in_thread(hold)
    wait_for(lambda: limiter._in_flight == 1, what="one call in flight")
    assert limiter.in_flight_full() == 1  # Marketo is full: only our running call may proceed
    thread, out = in_thread(lambda: call(limiter))
    wait_for(lambda: limiter.waits == 1, what="the retry to wait for the running call")
    release.set()
    thread.join(5)
    holder.join(5)
    assert out == ["done"]
    assert limiter._in_flight_cap == 3  # two successes since the 615: 1 -> 3, toward 4


def test_any_of_is_set_by_either_event() -> None:
    first, second = threading.Event(), threading.Event()
    either = AnyOf(first, second)
    assert not either.wait(0.01)
    second.set()
    assert either.is_set() and either.wait(5)
