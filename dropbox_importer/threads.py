"""Threads that never fail silently: a small pool whose task errors are logged, and a last word
for any other thread that dies.

`concurrent.futures` keeps a task's exception in its future, and a future nobody reads loses
it: a retention sweep, a journal compaction or a settle observer would fail without a line in
the log. `Workers` logs every failure with the task's name and context instead, and its threads
are daemon threads, so a task stuck in a slow disk never holds the process past its stop
deadline (what a task leaves undone is in the journal for the next start).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class Workers:
    """`size` daemon threads running submitted tasks in order; failures are logged, not kept."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self._tasks: queue.SimpleQueue[tuple[str, Callable[[], object], dict[str, Any]] | None]
        self._tasks = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        """Tasks submitted and not yet finished."""
        with self._lock:
            return self._pending

    def submit(self, task: str, run: Callable[[], object], **context: Any) -> bool:
        """Queue `run()`; `task` and `context` name it in the log if it fails. False if stopping."""
        with self._lock:
            if self._stopping:
                return False
            self._pending += 1
        self._tasks.put((task, run, context))
        return True

    def _work(self) -> None:
        while (item := self._tasks.get()) is not None:
            task, run, context = item
            try:
                with self._lock:
                    skip = self._stopping
                if not skip:
                    run()
            except Exception:
                log.exception("task_failed", task=task, pool=self.name, **context)
            finally:
                with self._lock:
                    self._pending -= 1

    def stop(self, deadline: float) -> bool:
        """Take no more tasks, drop queued ones, wait for those running until `deadline`.

        `deadline` is a `time.monotonic()` instant. Returns True if every thread ended.
        """
        with self._lock:
            self._stopping = True
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in self._threads)


def log_thread_crashes(on_crash: Callable[[str], None]) -> None:
    """Log any thread that dies of an exception as `thread_crashed`, then call `on_crash(name)`.

    The threads the daemon starts catch what they expect; this is the last word for the rest
    (a bug, or a library's thread), so that no thread ever stops without a line in the log.
    """

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        log.error(
            "thread_crashed",
            thread=name,
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        )
        on_crash(name)

    threading.excepthook = hook
