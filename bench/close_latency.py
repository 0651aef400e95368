"""From a locally written file's close to its create call: the quiet time, not the settle time.

Run with `.venv/bin/python -m bench.close_latency [--files 10]`. A local writer (as OpenSSH's
internal-sftp or Samba on this host) writes each file in place through one handle, in a few
pieces, and closes it; the figure is the time from that close to the daemon's `batch_created`
for the file. With inotify the daemon sees the close (close-write), waits `close_quiet_seconds`
and proves with a lease that nobody still writes the file; the polling observer sees no close
and waits `settle_seconds`, as on a network share. Production defaults for both (settle 5 s,
quiet 1 s); the sandbox is fast and idle, so a file never waits for an import slot.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.pipeline import event_times, logged_batch, percentile
from dropbox_importer.logs import configure
from dropbox_importer.sandbox import Sandbox, SandboxSettings
from dropbox_importer.testing import DaemonProcess, wait_for, write_config

SETTLE_SECONDS = 5.0  # the production defaults
QUIET_SECONDS = 1.0
ROWS = 200
PIECES = 4


def write_in_place(path: Path, offset: int) -> float:
    """Write a lead file in place through one handle, in pieces; return when it was closed."""
    lines = ["email,firstName,lastName,company\n"] + [
        f"close{i}@example.com,First{i},Last{i},Company {i % 97}\n"
        for i in range(offset, offset + ROWS)
    ]
    step = len(lines) // PIECES + 1
    with path.open("w") as out:
        for start in range(0, len(lines), step):
            out.write("".join(lines[start : start + step]))
            out.flush()
    return time.time()


def measure(mode: str, files: int, sandbox: Sandbox) -> list[float]:
    """Seconds from close to create for `files` files written one after another in `mode`."""
    with tempfile.TemporaryDirectory(prefix="bench-close-") as tmp:
        work = Path(tmp)
        config = write_config(
            work,
            base_url=sandbox.base_url,
            client_id=sandbox.settings.client_id,
            client_secret=sandbox.settings.client_secret,
            dropboxes={
                "local": {
                    "root": str(work / "box"),
                    "watch": mode,
                    "settle_seconds": SETTLE_SECONDS,
                    "close_quiet_seconds": QUIET_SECONDS,
                    "polling_interval_seconds": 1.0,
                    "rescan_seconds": 60,
                }
            },
        )
        config.write_text(config.read_text().replace("log_level: debug", "log_level: info"))
        # The route folder exists before the daemon watches, as a partner's does: a file
        # written the instant its folder appears can beat the new folder's inotify watch, and
        # is then found by a scan and waits the settle time.
        inbox = work / "box" / "inbox" / "csv"
        inbox.mkdir(parents=True)
        daemon = DaemonProcess(config, work / "daemon.log").start()
        closed: dict[str, float] = {}
        try:
            for i in range(files):
                name = f"local-{i:03d}.csv"
                closed[name] = write_in_place(inbox / name, i * ROWS)
                wait_for(
                    functools.partial(logged_batch, daemon, name),
                    timeout=60,
                    what=f"{name} created",
                )
            created = event_times(daemon, "batch_created")
        finally:
            daemon.stop()
    return [created[name] - at for name, at in closed.items()]


def run(files: int) -> dict[str, Any]:
    """Both watch modes on one sandbox; the figures results.json keeps."""
    settings = SandboxSettings(rows_per_second=20_000.0, job_overhead_seconds=0.05)
    with Sandbox(settings) as sandbox:
        events = measure("events", files, sandbox)
        polling = measure("polling", files, sandbox)
    return {
        "close_to_create_p50_s": percentile(events, 0.5),
        "close_to_create_p95_s": percentile(events, 0.95),
        "close_to_create_target_s": QUIET_SECONDS + 1.0,
        "close_to_create_polling_p50_s": percentile(polling, 0.5),
        "close_to_create_polling_p95_s": percentile(polling, 0.95),
        "close_quiet_seconds": QUIET_SECONDS,
        "close_settle_seconds": SETTLE_SECONDS,
        "close_files": files,
    }


def report(out: dict[str, Any]) -> None:
    """Print both modes' figures beside the quiet and settle times."""
    print(
        f"close to create, {out['close_files']} locally written files (quiet "
        f"{out['close_quiet_seconds']:g} s, settle {out['close_settle_seconds']:g} s):\n"
        f"  inotify  p50 {out['close_to_create_p50_s']:.2f} s, p95 "
        f"{out['close_to_create_p95_s']:.2f} s (target <= {out['close_to_create_target_s']:g})\n"
        f"  polling  p50 {out['close_to_create_polling_p50_s']:.2f} s, p95 "
        f"{out['close_to_create_polling_p95_s']:.2f} s (the settle time: no close is seen)"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse options, measure, print."""
    parser = argparse.ArgumentParser(prog="python -m bench.close_latency", description=__doc__)
    parser.add_argument("--files", type=int, default=10, help="files written per watch mode")
    args = parser.parse_args(argv)
    configure(level="warning")
    report(run(args.files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
