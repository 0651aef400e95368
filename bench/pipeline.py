"""The whole pipeline under load: the real daemon, files dropped in its inbox, the sandbox behind.

Run with `.venv/bin/python -m bench.pipeline`. Three phases against one sandbox:

1. probes: small files dropped one at a time into an idle queue, so the time from a file's last
   write to its create call is the daemon's own noticing and settling, never a wait for a slot;
2. throughput: N files dropped at once; wall time from the first drop to the last file in
   done/, calls per batch, refusals, and the time from each batch's completion in the sandbox to
   its file landing in done/;
3. at the same time as 2, on a second sandbox with the same speed, a naive baseline: one file at
   a time, create, then a status call every 5 s until it ends, as a cron script would.

Ratios printed: `efficiency` is ideal / wall, the ideal being total rows / (2 x speed) plus one
job's overhead (what Marketo's two import lanes allow); `efficiency_vs_floor` is the sandbox's
own floor / wall, the floor charging the overhead on every job as the sandbox does. The daemon
runs with Adobe's poll band (5-30 s) and Marketo's 20 s call window, so batches last tens of
seconds for the band to be meaningful.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import requests

from bench.client import write_leads
from dropbox_importer.logs import configure
from dropbox_importer.sandbox import Sandbox, SandboxSettings
from dropbox_importer.testing import DaemonProcess, originals_under, wait_for, write_config

TERMINAL = ("Complete", "Failed")
DOWNLOADS = ("failures", "warnings")


@dataclass(frozen=True)
class Options:
    """What one pipeline bench run drops, and how fast the sandbox and the daemon are set."""

    files: int = 12
    rows: int = 4000
    rows_per_second: float = 200.0
    overhead: float = 0.5
    settle_seconds: float = 2.0
    # A file renamed into place counts as closed by its writer (inotify): it is claimed after
    # this quiet time, not the settle time. The production default.
    close_quiet_seconds: float = 1.0
    poll_min_seconds: float = 5.0
    poll_max_seconds: float = 30.0
    probes: int = 8
    naive_poll_seconds: float = 5.0

    @property
    def job_seconds(self) -> float:
        """How long the sandbox takes for one throughput file."""
        return self.overhead + self.rows / self.rows_per_second

    @property
    def ideal(self) -> float:
        """Total rows over two import lanes, plus one job's overhead."""
        return self.files * self.rows / (2 * self.rows_per_second) + self.overhead

    @property
    def floor(self) -> float:
        """The sandbox's own floor: two lanes, every job paying the overhead."""
        return math.ceil(self.files / 2) * self.job_seconds


def percentile(values: Iterable[float], share: float) -> float:
    """Nearest-rank percentile (`share` in 0..1); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def moment(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 timestamp (log events and sandbox times)."""
    return datetime.fromisoformat(text).timestamp()


def drop(inbox: Path, name: str, rows: int, offset: int) -> float:
    """Write a lead file aside and rename it into `inbox`; return its last write (mtime)."""
    inbox.mkdir(parents=True, exist_ok=True)
    staging = inbox / f".{name}.uploading"
    write_leads(staging, rows, offset)
    target = inbox / name
    staging.rename(target)
    return target.stat().st_mtime


def sandbox_json(base_url: str, what: str) -> dict[str, Any]:
    """One of the sandbox's introspection documents."""
    body: dict[str, Any] = requests.get(f"{base_url}/sandbox/{what}.json", timeout=10).json()
    return body


def call_diff(
    before: dict[str, Any], after: dict[str, Any]
) -> tuple[dict[str, int], dict[str, int]]:
    """Calls by endpoint and refusals by code between two `/sandbox/stats.json` snapshots."""
    calls = {k: v - before["calls"].get(k, 0) for k, v in after["calls"].items()}
    errors = {k: v - before["errors"].get(k, 0) for k, v in after["errors"].items()}
    return {k: v for k, v in calls.items() if v}, {k: v for k, v in errors.items() if v}


def base_name(event: dict[str, Any]) -> str:
    """The file an event names, without its route folder (events name it relative)."""
    return PurePosixPath(str(event["file"])).name


def batches_by_file(daemon: DaemonProcess) -> dict[str, list[int]]:
    """The batch ids the daemon logged as created, by file name.

    Events name a file by its path inside the drop box (`csv/leads.csv`): keyed by its name.
    """
    out: dict[str, list[int]] = {}
    for event in daemon.events():
        if event.get("event") == "batch_created":
            out.setdefault(base_name(event), []).append(int(event["batch_id"]))
    return out


def logged_batch(daemon: DaemonProcess, name: str) -> bool:
    """True once the daemon has logged a batch created for file `name`."""
    return name in batches_by_file(daemon)


def polls_by_answer(daemon: DaemonProcess, batch_ids: set[int]) -> dict[str, int]:
    """Status calls of these batches by what they found: Queued, Importing, or the end."""
    out: dict[str, int] = {}
    for event in daemon.events():
        if event.get("batch_id") not in batch_ids:
            continue
        if event.get("event") == "batch_polled":
            key = str(event["status"])
        elif event.get("event") == "batch_finished":
            key = "ended"
        else:
            continue
        out[key] = out.get(key, 0) + 1
    return out


def event_times(daemon: DaemonProcess, name: str) -> dict[str, float]:
    """When each file last logged event `name` (seconds since the epoch), by file name."""
    return {
        base_name(e): moment(str(e["timestamp"]))
        for e in daemon.events()
        if e.get("event") == name and "file" in e
    }


class NaiveBaseline(threading.Thread):
    """One file at a time: create, then a status call every few seconds until it ends."""

    def __init__(self, sandbox: Sandbox, files: list[Path], poll_seconds: float) -> None:
        super().__init__(name="naive-baseline", daemon=True)
        self.sandbox = sandbox
        self.files = files
        self.poll_seconds = poll_seconds
        self.wall = math.nan
        self.calls = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        """Import every file in turn; record the wall time and the calls spent."""
        try:
            self._run()
        except BaseException as exc:  # reported by the caller, which owns the output
            self.error = exc

    def _run(self) -> None:
        base = self.sandbox.base_url
        session = requests.Session()
        token = session.get(
            f"{base}/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": self.sandbox.settings.client_id,
                "client_secret": self.sandbox.settings.client_secret,
            },
            timeout=30,
        ).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"
        pause = threading.Event()
        started = time.perf_counter()
        for path in self.files:
            with path.open("rb") as body:
                answer = session.post(
                    f"{base}/bulk/v1/leads.json",
                    params={"format": "csv"},
                    files={"file": (path.name, body, "text/csv")},
                    timeout=60,
                ).json()
            self.calls += 1
            batch_id = answer["result"][0]["batchId"]
            while True:
                pause.wait(self.poll_seconds)  # the cron script's fixed poll period
                status = session.get(f"{base}/bulk/v1/leads/batch/{batch_id}.json", timeout=30)
                self.calls += 1
                if status.json()["result"][0]["status"] in TERMINAL:
                    break
        self.wall = time.perf_counter() - started
        session.close()


def start_daemon(work: Path, sandbox: Sandbox, options: Options) -> DaemonProcess:
    """The real daemon on one drop box watched with inotify, production poll band and window."""
    config = write_config(
        work,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={
            "bench": {
                "root": str(work / "box"),
                "watch": "events",
                "settle_seconds": options.settle_seconds,
                "close_quiet_seconds": options.close_quiet_seconds,
                "rescan_seconds": 60,
            }
        },
        instance={
            "poll_min_seconds": options.poll_min_seconds,
            "poll_max_seconds": options.poll_max_seconds,
            "window_seconds": 20.0,
        },
    )
    return DaemonProcess(config, work / "daemon.log").start()


def run_probes(daemon: DaemonProcess, inbox: Path, done: Path, count: int) -> list[float]:
    """Drop small files one at a time into an idle queue; seconds from last write to create."""
    delays: list[float] = []
    written: dict[str, float] = {}
    for i in range(count):
        name = f"probe-{i:03d}.csv"
        written[name] = drop(inbox, name, 10, 10_000_000 + i * 10)
        wait_for(functools.partial(logged_batch, daemon, name), timeout=60, what=f"{name} created")
    wait_for(lambda: len(originals_under(done)) >= count, timeout=120, what="probes in done/")
    created = event_times(daemon, "batch_created")
    for name, at in written.items():
        delays.append(created[name] - at)
    return delays


def run_throughput(
    daemon: DaemonProcess, sandbox: Sandbox, work: Path, options: Options
) -> dict[str, Any]:
    """Drop every throughput file at once; figures of the phase, the naive baseline's included."""
    inbox, done = work / "box" / "inbox" / "csv", work / "box" / "done" / "csv"
    aside = work / "naive"
    aside.mkdir()
    naive_files = []
    for i in range(options.files):
        naive_files.append(aside / f"leads-{i:03d}.csv")
        write_leads(naive_files[-1], options.rows, i * options.rows)
    naive_sandbox = Sandbox(sandbox.settings).start()
    naive = NaiveBaseline(naive_sandbox, naive_files, options.naive_poll_seconds)
    before = sandbox_json(sandbox.base_url, "stats")
    names = [f"leads-{i:03d}.csv" for i in range(options.files)]
    started = time.time()
    naive.start()
    for i, name in enumerate(names):
        drop(inbox, name, options.rows, i * options.rows)
    baseline_done = len(originals_under(done))
    timeout = 3 * options.floor + 120
    wait_for(
        lambda: len(originals_under(done)) >= baseline_done + options.files,
        timeout=timeout,
        what="every throughput file in done/",
    )
    after = sandbox_json(sandbox.base_url, "stats")
    naive.join(timeout=timeout)
    naive_sandbox.stop()
    if naive.error is not None:
        raise RuntimeError(f"naive baseline failed: {naive.error}") from naive.error
    finished_at = event_times(daemon, "file_done")
    wall = max(finished_at[n] for n in names) - started
    calls, refused = call_diff(before, after)
    by_file = batches_by_file(daemon)
    batches = {b["batchId"]: b for b in sandbox_json(sandbox.base_url, "batches")["batches"]}
    complete_to_done, durations = [], []
    for name in names:
        for batch_id in by_file[name]:
            batch = batches[batch_id]
            complete_to_done.append(finished_at[name] - moment(batch["finished"]))
            durations.append(moment(batch["finished"]) - moment(batch["started"]))
    # Files may share a batch (coalesce.py): calls are per batch Marketo ran, not per file.
    batch_count = len({b for n in names for b in by_file[n]})
    spent = sum(v for k, v in calls.items() if k not in DOWNLOADS and k != "identity")
    return {
        "wall_s": wall,
        "batches": batch_count,
        "calls": calls,
        "refused": refused,
        "calls_per_batch": spent / batch_count,
        "status_calls_found": polls_by_answer(daemon, {b for n in names for b in by_file[n]}),
        "downloads_per_batch": sum(calls.get(k, 0) for k in DOWNLOADS) / batch_count,
        "complete_to_done": complete_to_done,
        "batch_durations": durations,
        "naive_wall_s": naive.wall,
        "naive_calls_per_batch": naive.calls / options.files,
    }


def run(options: Options) -> dict[str, Any]:
    """Run the probes and the throughput phase (with its baseline); return the figures."""
    settings = SandboxSettings(
        rows_per_second=options.rows_per_second, job_overhead_seconds=options.overhead
    )
    with Sandbox(settings) as sandbox, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        daemon = start_daemon(work, sandbox, options)
        try:
            inbox, done = work / "box" / "inbox" / "csv", work / "box" / "done" / "csv"
            probes = run_probes(daemon, inbox, done, options.probes)
            phase = run_throughput(daemon, sandbox, work, options)
            claimed = sum(1 for e in daemon.events() if e.get("event") == "file_claimed")
            whole_run = sandbox_json(sandbox.base_url, "stats")["errors"]
        finally:
            daemon.stop()
    ratios = [
        c / d for c, d in zip(phase["complete_to_done"], phase["batch_durations"], strict=True)
    ]
    wall = phase["wall_s"]
    return {
        "options": asdict(options),
        "wall_s": wall,
        "ideal_s": options.ideal,
        "floor_s": options.floor,
        "efficiency": options.ideal / wall,
        "efficiency_vs_floor": options.floor / wall,
        "batches": phase["batches"],
        "calls_by_endpoint": phase["calls"],
        "calls_per_batch": phase["calls_per_batch"],
        "status_calls_found": phase["status_calls_found"],
        "downloads_per_batch": phase["downloads_per_batch"],
        "min_calls_per_batch": 2.0,  # one create, one status call that finds it ended
        "refused_1016": whole_run.get("1016", 0),
        "refused_606": whole_run.get("606", 0),
        "refused_615": whole_run.get("615", 0),
        "refused_all": whole_run,
        "files_claimed": claimed,
        "drop_to_create_p50_s": percentile(probes, 0.5),
        "drop_to_create_p95_s": percentile(probes, 0.95),
        "drop_to_create_target_s": options.settle_seconds + 1.0,
        "complete_to_done_p50_s": percentile(phase["complete_to_done"], 0.5),
        "complete_to_done_p95_s": percentile(phase["complete_to_done"], 0.95),
        "complete_to_done_p95_share": percentile(ratios, 0.95),
        "batch_seconds_p50": percentile(phase["batch_durations"], 0.5),
        "naive_wall_s": phase["naive_wall_s"],
        "naive_calls_per_batch": phase["naive_calls_per_batch"],
        "vs_naive": wall / phase["naive_wall_s"],
    }


def report(out: dict[str, Any]) -> None:
    """Print the figures with their targets and say which ratio is which."""
    o = out["options"]
    print(
        f"pipeline: {o['files']} files x {o['rows']} rows, sandbox {o['rows_per_second']:g} rows/s"
        f" + {o['overhead']:g} s/job; daemon settle {o['settle_seconds']:g} s (quiet "
        f"{o['close_quiet_seconds']:g} s once renamed into place), poll band "
        f"{o['poll_min_seconds']:g}-{o['poll_max_seconds']:g} s, inotify, 20 s call window"
    )
    print(f"  wall time                 {out['wall_s']:.1f} s (first drop to last file in done/)")
    print(f"  ideal                     {out['ideal_s']:.1f} s (rows / (2 x speed) + 1 overhead)")
    print(f"  sandbox floor             {out['floor_s']:.1f} s (overhead charged on every job)")
    print(f"  efficiency ideal/wall     {out['efficiency']:.3f} (target >= 0.95)")
    print(f"  efficiency floor/wall     {out['efficiency_vs_floor']:.3f}")
    print(
        f"  calls per batch           {out['calls_per_batch']:.2f} besides downloads "
        f"(min {out['min_calls_per_batch']:.0f}, target <= 3); downloads "
        f"{out['downloads_per_batch']:.2f}; {out['calls_by_endpoint']}"
    )
    print(f"  status calls that found   {out['status_calls_found']}")
    print(
        f"  refused 1016/606/615      {out['refused_1016']}/{out['refused_606']}/"
        f"{out['refused_615']} (target 0 for 606 and 615); all refusals {out['refused_all']}"
    )
    print(
        f"  drop to create            p50 {out['drop_to_create_p50_s']:.2f} s, p95 "
        f"{out['drop_to_create_p95_s']:.2f} s (target <= {out['drop_to_create_target_s']:.1f};"
        f" {o['probes']} probes into an idle queue)"
    )
    print(
        f"  complete to done          p50 {out['complete_to_done_p50_s']:.2f} s, p95 "
        f"{out['complete_to_done_p95_s']:.2f} s = {out['complete_to_done_p95_share']:.0%} of "
        f"the batch (p50 batch {out['batch_seconds_p50']:.1f} s; target <= 20%)"
    )
    print(
        f"  naive baseline            {out['naive_wall_s']:.1f} s, "
        f"{out['naive_calls_per_batch']:.2f} calls/batch; ours / naive = {out['vs_naive']:.2f}"
    )


def parser() -> argparse.ArgumentParser:
    """Command-line options, one per `Options` field."""
    parse = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parse.formatter_class = argparse.RawDescriptionHelpFormatter
    for name, default in asdict(Options()).items():
        parse.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parse


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline bench and print its figures; `--json` prints them as JSON too."""
    parse = parser()
    parse.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = vars(parse.parse_args(argv))
    as_json = args.pop("json")
    configure(level="warning")
    out = run(Options(**args))
    report(out)
    if as_json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
