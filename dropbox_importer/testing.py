"""Real parts for end-to-end tests and benchmarks: a config on disk, the daemon as a subprocess.

Like `structlog.testing`, shipped with the package so that `tests/` and `bench/` share one copy
without `bench/` importing `tests/`. Nothing in the daemon imports it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = [
    "SANDBOX_WINDOW_SECONDS",
    "DaemonProcess",
    "files_under",
    "free_port",
    "originals_under",
    "wait_for",
    "write_config",
]


T = TypeVar("T")


def wait_for(check: Callable[[], T], *, timeout: float = 30.0, what: str = "condition") -> T:
    """Return the first truthy value of `check()`; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)  # polling interval of a deadline-bounded wait, not synchronisation
        delay = min(delay * 1.5, 0.25)


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# Tests run the sandbox's rolling call window at 2 s instead of Marketo's 20 s.
SANDBOX_WINDOW_SECONDS = 2.0


def write_config(
    directory: Path,
    *,
    base_url: str,
    client_id: str,
    client_secret: str,
    dropboxes: dict[str, dict[str, Any]],
    instance: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    name: str = "config.yaml",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a daemon config for one sandbox instance and the given drop boxes.

    `state` is the config's `state` section (a shared journal); `name` the file's name, for
    several daemons' configs in one folder; `extra` more top-level sections (metrics, ...).
    """
    config: dict[str, Any] = {
        "state_dir": str(directory / "state"),
        "log_level": "debug",
        "log_format": "json",
        "instances": {
            "main": {
                "base_url": base_url,
                "client_id": client_id,
                "client_secret": client_secret,
                "poll_min_seconds": 0.1,
                "poll_max_seconds": 1.0,
                # Time scaled down like the sandbox's: the same 80-of-100 share, per 2 s.
                "window_seconds": SANDBOX_WINDOW_SECONDS,
                **(instance or {}),
            }
        },
        "dropboxes": {
            name: {"instance": "main", "settle_seconds": 0.3, "rescan_seconds": 2, **box}
            for name, box in dropboxes.items()
        },
    }
    if state is not None:
        config["state"] = state
    config.update(extra or {})
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class DaemonProcess:
    """`dropbox-importer run` in a subprocess, its JSON log captured to a file."""

    config: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    runs: int = field(default=0)
    env: dict[str, str] = field(default_factory=dict)
    # A command the daemon runs under, e.g. `setpriv --reuid=...` to drop root as the unit does.
    run_as: list[str] = field(default_factory=list)
    # The daemon's umask (the unit's UMask=0027); None keeps the caller's.
    umask: int | None = None
    # Where in the log the current run's lines begin.
    started_at: int = 0

    def start(self, ready: tuple[str, ...] = ("daemon_ready",)) -> DaemonProcess:
        """Start the daemon; return once this run has logged one of the `ready` events.

        A daemon on a shared journal may stand by instead of leading: pass
        `("daemon_ready", "leadership_standby")` to accept either.
        """
        self.runs += 1
        self.started_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("NOTIFY_SOCKET", None)
        env.update(self.env)
        self.proc = subprocess.Popen(
            [
                *self.run_as,
                sys.executable,
                "-m",
                "dropbox_importer",
                "run",
                "--config",
                str(self.config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            umask=-1 if self.umask is None else self.umask,
        )
        log.close()
        wait_for(
            lambda: self.logged_since_start(*ready) or self.proc_exited(),
            timeout=30,
            what=" or ".join(ready),
        )
        if self.proc_exited():
            raise AssertionError(f"daemon exited at start:\n{self.log_path.read_text()}")
        return self

    def proc_exited(self) -> bool:
        """True once the process has ended."""
        return self.proc is not None and self.proc.poll() is not None

    def signal(self, signum: int) -> None:
        """Send a signal to the daemon."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.proc is None or self.proc_exited():
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc is not None and not self.proc_exited():
            self.proc.kill()
            self.proc.wait(timeout=10)

    def events(self) -> Iterator[dict[str, Any]]:
        """Every JSON log event written so far (non-JSON lines are skipped)."""
        if not self.log_path.exists():
            return
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event

    def count(self, name: str) -> int:
        """How many events named `name` were logged."""
        return sum(1 for event in self.events() if event.get("event") == name)

    def logged_since_start(self, *names: str) -> list[dict[str, Any]]:
        """The events named any of `names` that the current run (the last start) logged."""
        if not self.log_path.exists():
            return []
        with self.log_path.open("rb") as log:
            log.seek(self.started_at)
            text = log.read().decode(errors="replace")
        found = []
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") in names:
                found.append(event)
        return found


def files_under(folder: Path) -> list[Path]:
    """Every regular file below `folder`, sorted."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file())


def originals_under(folder: Path) -> list[Path]:
    """The dropped files below `folder`, without the result files written beside them."""
    suffixes = (".result.json", ".failures.csv", ".warnings.csv", ".failures.tsv", ".warnings.tsv")
    return [
        p for p in files_under(folder) if not p.name.endswith(suffixes) and not is_being_written(p)
    ]


def is_being_written(path: Path) -> bool:
    """A result file half written by `layout.write_atomic` (`.NAME.tmp`, renamed when whole)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")
