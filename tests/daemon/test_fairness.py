"""Files are submitted FIFO within a drop box and in turns across drop boxes."""

import threading

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
