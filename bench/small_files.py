"""Many small files and busy lists: jobs per file, coalescing against one job per file, a list.

Run with `.venv/bin/python -m bench.small_files`. Every run is the real daemon on a drop box
watched with inotify, Adobe's poll band (5-30 s) and Marketo's 20 s call window, against its own
sandbox importing 1,000 rows/s. Files are dropped at once, routes interleaved, each of 5 rows.

- jobs per file: 1,000 files across 10 routes (each route its own partition, so no two routes
  may share a job), coalescing on; jobs the daemon created / files. At 10 s and at 0.5 s of
  overhead per job.
- coalescing against one job per file: wall time (first drop to last file in done/) with
  coalescing over the same with `coalesce: false`, the same files on a sandbox with the same
  settings. At 0.5 s per job with the 1,000 files; at 10 s per job with 200 (20 per route),
  because one job per file would take Marketo 1,000 x 10 s / 2 lanes, well over an hour.
- the other integration: the 1,000 files at 0.5 s per job under the strict profile, half the
  routes into static lists, while another integration keeps 6 jobs of 200 rows in the queue,
  one of them into a list the daemon uses too: files failed, and what the daemon was answered
  (606 and 615 must be 0; 1016 and 1019 are the neighbour's doing and merely counted).
- one list route: 12 files of 4,000 rows into `csv,list=1001` under strict (one job per list at
  a time), 200 rows/s and 0.5 s per job as in bench.pipeline; ideal / wall, the ideal being
  the rows at the sandbox's speed, one job at a time, with one overhead.

The runs go three at a time (one job per file at 10 s takes Marketo about 17 minutes, and the
others fit beside it): about 18 minutes in all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.client import write_leads
from bench.pipeline import moment, sandbox_json
from dropbox_importer.logs import configure
from dropbox_importer.sandbox import OtherIntegrationSettings, Sandbox, SandboxSettings
from dropbox_importer.testing import DaemonProcess, write_config

HEADER = "email,firstName,lastName,company\n"
ROUTES = 10
ROWS = 5
# Before close-write readiness, the bench waits a settle time like the pipeline bench's.
SETTLE_SECONDS = 1.0
LISTS = {1001: "Bench list", **{2001 + i: f"Route list {i}" for i in range(ROUTES)}}
PARTITIONS = ("Default", *(f"P{i}" for i in range(ROUTES)))


@dataclass(frozen=True)
class Arm:
    """One daemon run: what is dropped and how the sandbox and the daemon behave."""

    name: str
    files: int
    overhead: float
    coalesce: bool = True
    rows: int = ROWS
    rows_per_second: float = 1000.0
    profile: str = "kind"
    routes: tuple[dict[str, Any], ...] = tuple(
        {"format": "csv", "partition": f"P{i}"} for i in range(ROUTES)
    )
    other: OtherIntegrationSettings = field(default_factory=OtherIntegrationSettings)


def listed_routes() -> tuple[dict[str, Any], ...]:
    """Half the routes into a static list of their own, half into a partition of their own."""
    return tuple(
        {"format": "csv", "list": 2001 + i}
        if i < ROUTES // 2
        else {"format": "csv", "partition": f"P{i}"}
        for i in range(ROUTES)
    )


def drop_all(inbox: Path, names: list[str], rows: int) -> float:
    """Write every file aside, then rename them all in; return when the first went in."""
    staged = []
    for n, name in enumerate(names):
        target = inbox / name
        target.parent.mkdir(parents=True, exist_ok=True)
        aside = target.with_name(f".{target.name}.uploading")
        write_leads(aside, rows, n * rows)
        staged.append((aside, target))
    started = time.time()
    for aside, target in staged:
        aside.rename(target)
    return started


def landed(root: Path) -> int:
    """Originals in done/ and failed/ (a walk without stat: cheap while files land)."""
    suffixes = (".result.json", ".failures.csv", ".warnings.csv")
    return sum(
        1
        for outcome in ("done", "failed")
        for _folder, _dirs, names in os.walk(root / outcome)
        for name in names
        if not name.endswith(suffixes)
    )


def wait_landed(root: Path, count: int, timeout: float) -> None:
    """Wait until `count` files have landed; fail past `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while landed(root) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {landed(root)} of {count} files landed")
        time.sleep(0.5)  # the polling interval of a deadline-bounded wait


def run_arm(arm: Arm, work: Path) -> dict[str, Any]:
    """Run the daemon on one arm; its wall time, jobs and what the daemon was answered."""
    settings = SandboxSettings(
        rows_per_second=arm.rows_per_second,
        job_overhead_seconds=arm.overhead,
        profile="strict" if arm.profile == "strict" else "kind",
        lists=LISTS,
        partitions=PARTITIONS,
        other_integration=arm.other,
    )
    root = work / "box"
    with Sandbox(settings) as sandbox:
        config = write_config(
            work,
            base_url=sandbox.base_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            dropboxes={
                "small": {
                    "root": str(root),
                    "watch": "events",
                    "settle_seconds": SETTLE_SECONDS,
                    "rescan_seconds": 60,
                    "coalesce": arm.coalesce,
                    "routes": {f"r{i}": spec for i, spec in enumerate(arm.routes)},
                }
            },
            instance={"poll_min_seconds": 5.0, "poll_max_seconds": 30.0, "window_seconds": 20.0},
        )
        # Info: debug events for 1,000 files would make the log the bottleneck.
        config.write_text(config.read_text().replace("log_level: debug", "log_level: info"))
        daemon = DaemonProcess(config, work / "daemon.log").start()
        try:
            names = [f"r{n % len(arm.routes)}/s{n:04d}.csv" for n in range(arm.files)]
            started = drop_all(root / "inbox", names, arm.rows)
            jobs_seconds = arm.files * (arm.overhead + arm.rows / arm.rows_per_second)
            try:
                wait_landed(root, arm.files, timeout=jobs_seconds + 600)
            except AssertionError as exc:
                kept = Path(tempfile.gettempdir()) / f"bench-small-files-{arm.name}.log"
                shutil.copyfile(work / "daemon.log", kept)
                raise AssertionError(f"{arm.name}: {exc} (the daemon's log: {kept})") from None
            stats = sandbox_json(sandbox.base_url, "stats")
            batches = sandbox_json(sandbox.base_url, "batches")["batches"]
        finally:
            daemon.stop(timeout=60)
    ends = [
        moment(str(e["timestamp"]))
        for e in daemon.events()
        if e.get("event") in ("file_done", "file_failed")
    ]
    failed = sum(1 for e in daemon.events() if e.get("event") == "file_failed")
    ours = [b for b in batches if b.get("owner", "api") == "api"]
    errors = stats["errors"]
    return {
        "arm": asdict(arm) | {"other": asdict(arm.other)},
        "wall_s": max(ends) - started,
        "files": arm.files,
        "files_failed": failed,
        "jobs": len(ours),
        "jobs_per_file": len(ours) / arm.files,
        "answered": {code: errors.get(code, 0) for code in ("606", "615", "1016", "1019")},
        "other_integration": stats.get("otherIntegration"),
    }


def run_list_route(work: Path, files: int = 12, rows: int = 4000) -> dict[str, Any]:
    """12 files of 4,000 rows into one list route under strict: ideal / wall."""
    arm = Arm(
        "list_route",
        files=files,
        overhead=0.5,
        rows=rows,
        rows_per_second=200.0,
        profile="strict",
        routes=({"format": "csv", "list": 1001},),
    )
    out = run_arm(arm, work)
    ideal = files * rows / arm.rows_per_second + arm.overhead
    return out | {"ideal_s": ideal, "efficiency": ideal / out["wall_s"]}


ARMS = {
    "jobs_10s": Arm("jobs_10s", files=1000, overhead=10.0),
    "together_10s": Arm("together_10s", files=200, overhead=10.0),
    "one_each_10s": Arm("one_each_10s", files=200, overhead=10.0, coalesce=False),
    "together_0_5s": Arm("together_0_5s", files=1000, overhead=0.5),
    "one_each_0_5s": Arm("one_each_0_5s", files=1000, overhead=0.5, coalesce=False),
    "neighbour": Arm(
        "neighbour",
        files=1000,
        overhead=0.5,
        profile="strict",
        routes=listed_routes(),
        other=OtherIntegrationSettings(jobs=6, rows=200, list_id=2001, poll_seconds=2.0),
    ),
}
# Run side by side: the long one-job-per-file arm beside chains of shorter ones.
CHAINS = (
    ("one_each_10s",),
    ("together_10s", "jobs_10s", "together_0_5s", "neighbour", "list_route"),
    ("one_each_0_5s",),
)


def run_named(name: str, work: Path) -> dict[str, Any]:
    """One of ARMS, or the list route, in folder `work`."""
    return run_list_route(work) if name == "list_route" else run_arm(ARMS[name], work)


def run(selected: list[str] | None = None) -> dict[str, Any]:
    """Run the arms (all, or `selected`), three chains side by side; the figures."""
    wanted = set(selected or [*ARMS, "list_route"])
    results: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def chain(names: tuple[str, ...]) -> None:
        for name in names:
            if name not in wanted:
                continue
            try:
                with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
                    results[name] = run_named(name, Path(tmp))
            except BaseException as exc:  # reported once every chain has ended
                errors.append(exc)

    threads = [threading.Thread(target=chain, args=(c,), name=c[0]) for c in CHAINS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} small-files run(s) failed: {errors[0]}") from errors[0]
    return figures(results)


def figures(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The flat keys results.json keeps, the runs' details under `small_files`."""
    out: dict[str, Any] = {"small_files": results}
    if "jobs_10s" in results:
        out["small_files_jobs_per_file"] = results["jobs_10s"]["jobs_per_file"]
    if "together_0_5s" in results:
        out["small_files_jobs_per_file_0_5s"] = results["together_0_5s"]["jobs_per_file"]
    for speed in ("10s", "0_5s"):
        together, alone = results.get(f"together_{speed}"), results.get(f"one_each_{speed}")
        if together and alone:
            key = "small_files_vs_one_each" + ("" if speed == "10s" else "_0_5s")
            out[key] = together["wall_s"] / alone["wall_s"]
    if "neighbour" in results:
        neighbour = results["neighbour"]
        out["neighbour_files_failed"] = neighbour["files_failed"]
        out["neighbour_refused_606_615"] = (
            neighbour["answered"]["606"] + neighbour["answered"]["615"]
        )
    if "list_route" in results:
        out["list_route_efficiency"] = results["list_route"]["efficiency"]
    return out


def report(out: dict[str, Any]) -> None:
    """Print each run's figures and the ratios."""
    for name, r in out["small_files"].items():
        arm = r["arm"]
        print(
            f"{name:14} {arm['files']:5} files, {arm['overhead']:g} s/job, "
            f"coalesce {arm['coalesce']}: wall {r['wall_s']:7.1f} s, {r['jobs']} jobs "
            f"({r['jobs_per_file']:.3f}/file), failed {r['files_failed']}, answered {r['answered']}"
        )
        if (r.get("other_integration") or {}).get("counts"):
            print(f"{'':14} other integration: {r['other_integration']['counts']}")
    for key in (
        "small_files_jobs_per_file",
        "small_files_jobs_per_file_0_5s",
        "small_files_vs_one_each",
        "small_files_vs_one_each_0_5s",
        "list_route_efficiency",
        "neighbour_files_failed",
        "neighbour_refused_606_615",
    ):
        if key in out:
            print(f"  {key:34} {out[key]:.3f}")


def main(argv: list[str] | None = None) -> int:
    """Run the small-files bench and print its figures; `--json` prints them as JSON too."""
    parser = argparse.ArgumentParser(prog="python -m bench.small_files", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--only", nargs="*", choices=[*ARMS, "list_route"], help="runs to do")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    configure(level="warning")
    out = run(args.only)
    report(out)
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
