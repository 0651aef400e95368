"""An idle daemon: CPU and peak RSS while it watches 500 empty route folders.

Run with `.venv/bin/python -m bench.idle [--seconds 60] [--folders 500] [--modes events,polling]`.
The daemon runs as a subprocess on a sandbox in this process (not an embedded one, whose threads
would count as the daemon's). Its CPU is utime + stime from /proc/PID/stat over the measured
window, which starts once the daemon has logged `daemon_ready` (its start-up scan excluded);
its peak RSS is VmHWM from /proc/PID/status, start-up included. Production defaults otherwise:
5 s polling interval, 60 s rescan, 5 s settle.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from dropbox_importer.logs import configure
from dropbox_importer.sandbox import Sandbox, SandboxSettings
from dropbox_importer.testing import DaemonProcess, write_config

TARGET_CPU_PERCENT = 1.0
TARGET_RSS_MB = 60.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set) and VmRSS of the process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024  # the kernel reports kB
    return out


def measure(mode: str, folders: int, seconds: float, sandbox: Sandbox) -> dict[str, Any]:
    """Start a daemon watching `folders` empty routes in `mode`; its CPU and memory over time."""
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        work = Path(tmp)
        root = work / "box"
        for i in range(folders):
            (root / "inbox" / f"p{i:03d}").mkdir(parents=True)
        config = write_config(
            work,
            base_url=sandbox.base_url,
            client_id=sandbox.settings.client_id,
            client_secret=sandbox.settings.client_secret,
            dropboxes={
                "idle": {
                    "root": str(root),
                    "watch": mode,
                    "polling_interval_seconds": 5.0,
                    "rescan_seconds": 60.0,
                    "settle_seconds": 5.0,
                    # One named route per partner folder, as an operator would configure them.
                    "routes": {
                        f"p{i:03d}": {"format": "csv", "listId": 1001 + i % 3}
                        for i in range(folders)
                    },
                }
            },
            instance={"poll_min_seconds": 5.0, "poll_max_seconds": 30.0, "window_seconds": 20.0},
        )
        # Production log level: debug events would measure the logger, not the daemon.
        config.write_text(config.read_text().replace("log_level: debug", "log_level: info"))
        daemon = DaemonProcess(config, work / "daemon.log").start()
        try:
            assert daemon.proc is not None
            pid = daemon.proc.pid
            cpu_before, began = cpu_seconds(pid), time.monotonic()
            time.sleep(seconds)  # the measured window itself, not a wait for anything
            cpu = cpu_seconds(pid) - cpu_before
            elapsed = time.monotonic() - began
            memory = memory_mb(pid)
        finally:
            daemon.stop()
    return {
        "mode": mode,
        "folders": folders,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "cpu_percent": 100 * cpu / elapsed,
        "peak_rss_mb": memory["VmHWM"],
        "rss_mb": memory["VmRSS"],
    }


def run(modes: list[str], folders: int, seconds: float) -> list[dict[str, Any]]:
    """Measure each watch mode in turn, one sandbox for all."""
    with Sandbox(SandboxSettings()) as sandbox:
        return [measure(mode, folders, seconds, sandbox) for mode in modes]


def report(results: list[dict[str, Any]]) -> None:
    """Print one line per mode with the targets."""
    for r in results:
        print(
            f"idle {r['mode']:8} {r['folders']} folders, {r['seconds']:.0f} s: CPU "
            f"{r['cpu_percent']:.2f}% ({r['cpu_seconds']:.2f} s; target < {TARGET_CPU_PERCENT:g}%),"
            f" peak RSS {r['peak_rss_mb']:.1f} MB (now {r['rss_mb']:.1f}; target < "
            f"{TARGET_RSS_MB:g} MB)"
        )


def main(argv: list[str] | None = None) -> int:
    """Parse options, measure, print."""
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per mode")
    parser.add_argument("--folders", type=int, default=500, help="empty route folders")
    parser.add_argument("--modes", default="events,polling", help="comma-separated watch modes")
    args = parser.parse_args(argv)
    configure(level="warning")
    report(run(args.modes.split(","), args.folders, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
