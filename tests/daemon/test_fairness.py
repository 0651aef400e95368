"""Files are submitted FIFO within a drop box and in turns across drop boxes."""

import math
import threading
import time

from dropbox_importer.pipeline.fairness import FairQueue


def test_fifo_within_a_box_and_turns_across_boxes() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(3):
        queue.put("busy", f"busy-{i}")
    queue.put("quiet", "quiet-0")
    order = [queue.get(timeout=0) for _ in range(4)]
    assert order == ["busy-0", "quiet-0", "busy-1", "busy-2"]
    assert queue.get(timeout=0) is None


def test_close_wakes_a_waiting_consumer() -> None:
    queue: FairQueue[str] = FairQueue()
    got: list[str | None] = []
    consumer = threading.Thread(target=lambda: got.append(queue.get()))
    consumer.start()
    queue.close()
    consumer.join(timeout=5)
    assert not consumer.is_alive() and got == [None]


def test_a_held_item_is_passed_over_and_its_key_keeps_its_order() -> None:
    queue: FairQueue[str] = FairQueue()
    for name in ("L1-a", "none-b", "L1-c", "L2-d"):
        queue.put("box", name)
    queue.put("other", "L1-e")
    busy = {"L1"}

    def hold(item: str) -> float:
        return math.inf if item.split("-")[0] in busy else 0.0

    # No head-of-line blocking: L1's files wait, the rest go in their turns.
    assert [queue.get(timeout=0, hold=hold) for _ in range(3)] == ["none-b", "L2-d", None]
    busy.clear()
    # FIFO within a box for one list; turns across boxes kept.
    assert [queue.get(timeout=0, hold=hold) for _ in range(4)] == ["L1-e", "L1-a", "L1-c", None]


def test_put_front_goes_before_the_rest_of_its_box() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.put("box", "second")
    queue.put("other", "theirs")
    taken = queue.get(timeout=0)
    queue.put_front("box", "first")  # taken earlier, put back: its list was held
    assert taken == "second"
    assert [queue.get(timeout=0) for _ in range(3)] == ["theirs", "first", None]


def test_a_wait_ends_when_a_hold_runs_out_or_on_wake() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.put("box", "timed")
    until = time.monotonic() + 0.2
    # Had the hold not been looked at again when it ran out, this would be None at 10 s.
    assert queue.get(timeout=10, hold=lambda _: max(0.0, until - time.monotonic())) == "timed"
    queue.put("box", "freed")
    free = threading.Event()
    result: list[str | None] = []
    consumer = threading.Thread(
        target=lambda: result.append(
            queue.get(timeout=30, hold=lambda _: 0.0 if free.is_set() else math.inf)
        )
    )
    consumer.start()
    free.set()
    queue.wake()
    consumer.join(timeout=10)
    assert result == ["freed"]


def test_items_of_one_key_share_one_hold_per_look() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(500):
        queue.put("box", f"L1-{i}")
    queue.put("box", "L2-0")
    asked: list[str] = []

    def hold(item: str) -> float:
        asked.append(item)
        return math.inf if item.startswith("L1") else 0.0

    assert queue.get(timeout=0, hold=hold, key=lambda item: item.split("-")[0]) == "L2-0"
    assert asked == ["L1-0", "L2-0"]
