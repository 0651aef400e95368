"""The state-dir lock across real processes: one holder, a clear refusal, freed on death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dropbox_importer.pipeline.lock import LOCK_NAME, AlreadyRunning, StateDirLock

HOLDER = """
import sys
from pathlib import Path
from dropbox_importer.pipeline.lock import StateDirLock
lock = StateDirLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
sys.stdin.read()  # hold until the parent closes our stdin (or kills us)
lock.release()
"""


@contextmanager
def holder(state_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process holding the lock until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # Log lines may come first; "locked" is printed only once the lock is held.
        for line in proc.stdout:
            if line.strip() == "locked":
                break
        else:
            pytest.fail("the child never took the lock")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def acquire_within(lock: StateDirLock, seconds: float) -> None:
    """Retry until the kernel has released a dead holder's lock, with a deadline."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            lock.acquire()
            return
        except AlreadyRunning:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # polling a condition under a deadline, not a timing guess


def test_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    with holder(tmp_path) as proc:
        with pytest.raises(AlreadyRunning) as info:
            StateDirLock(tmp_path).acquire()
        assert info.value.pid == proc.pid
        assert str(proc.pid) in str(info.value)
        assert str(tmp_path / LOCK_NAME) in str(info.value)
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(proc.pid)


def test_lock_is_freed_when_the_holder_is_killed(tmp_path: Path) -> None:
    with holder(tmp_path) as proc:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        lock = StateDirLock(tmp_path)
        acquire_within(lock, 10)
        assert lock.held
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
        lock.release()


def test_lock_is_freed_when_the_holder_exits_cleanly(tmp_path: Path) -> None:
    with holder(tmp_path) as proc:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
        with StateDirLock(tmp_path) as lock:
            assert lock.held


def test_two_locks_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    first = StateDirLock(tmp_path / "state")
    first.acquire()
    first.acquire()  # taking it again is a no-op, not a deadlock
    with pytest.raises(AlreadyRunning):
        StateDirLock(tmp_path / "state").acquire()
    first.release()
    first.release()
    with StateDirLock(tmp_path / "state") as again:
        assert again.held
    assert not again.held


def test_a_stale_pid_file_without_a_lock_does_not_block(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("999999\n")
    with StateDirLock(tmp_path) as lock:
        assert lock.held
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
