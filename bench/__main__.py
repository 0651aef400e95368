"""Every benchmark in one run: `python -m bench` (what `make bench` calls).

Runs bench.pipeline (probes, throughput and the naive baseline), bench.close_latency (close to
create of locally written files, inotify then polling), bench.idle (events, then polling) and
bench.small_files (many small files, coalescing against one job per file, another integration
on the instance, one busy list route), prints each one's own report, then one table of every
figure beside its target, and writes bench/results.json. About 28 minutes with the defaults:
9 for the first three, 18 for the small files (one job per file at 10 s a job takes Marketo's
two lanes 17 minutes for 200 files). `--idle-seconds` shortens the idle part, `--files` the
throughput part, `--close-files` the close-to-create part, `--no-small-files` leaves the small
files out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench import close_latency, idle, pipeline, small_files
from bench.report import table, write
from dropbox_importer.logs import configure

RESULTS = Path(__file__).with_name("results.json")


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Run both benchmarks; the flat figures results.json keeps, details under their names."""
    options = pipeline.Options(files=args.files)
    began = time.monotonic()
    flow = pipeline.run(options)
    pipeline.report(flow)
    closing = close_latency.run(args.close_files)
    close_latency.report(closing)
    watched = idle.run(["events", "polling"], args.folders, args.idle_seconds)
    idle.report(watched)
    many = small_files.run() if args.small_files else {}
    if many:
        small_files.report(many)
    by_mode = {r["mode"]: r for r in watched}
    results = {k: v for k, v in flow.items() if not isinstance(v, dict)}
    results.update(closing)
    results.update(many)
    results.update(
        {
            "pipeline": flow,
            "idle": by_mode,
            "idle_cpu_percent": by_mode["events"]["cpu_percent"],
            "idle_rss_mb": by_mode["events"]["peak_rss_mb"],
            "idle_polling_cpu_percent": by_mode["polling"]["cpu_percent"],
            "idle_polling_rss_mb": by_mode["polling"]["peak_rss_mb"],
            "bench_seconds": time.monotonic() - began,
        }
    )
    return results


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark, print the table, write results.json."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--files", type=int, default=pipeline.Options().files)
    parser.add_argument("--close-files", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--folders", type=int, default=500)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--no-small-files",
        dest="small_files",
        action="store_false",
        help="leave out bench.small_files (18 of the 27 minutes)",
    )
    args = parser.parse_args(argv)
    configure(level="warning")
    results = collect(args)
    print()
    print(table(results))
    write(results, args.results)
    print(f"\nwritten {args.results} ({results['bench_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
