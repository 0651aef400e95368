"""The Marketo client under load: N concurrent imports through one client against the sandbox.

Run with `.venv/bin/python -m bench.client`. Prints calls per batch, calls the sandbox refused,
and wall time against the ideal the sandbox's speed allows: total rows / (2 x rows_per_second)
(two jobs import at once) plus one job overhead.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from dropbox_importer.logs import configure
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.models import BatchState, ImportFormat, ImportParams
from dropbox_importer.marketo.settings import InstanceSettings, LimitSettings
from dropbox_importer.sandbox import FaultSettings, Sandbox, SandboxSettings


def write_leads(path: Path, rows: int, offset: int) -> None:
    """A CSV of `rows` distinct, valid leads."""
    with path.open("w") as out:
        out.write("email,firstName,lastName,company\n")
        for i in range(offset, offset + rows):
            out.write(f"lead{i}@example.com,First{i},Last{i},Company {i % 97}\n")


class Schedule:
    """Expected end of each batch: two import at once, in creation order (Marketo's FIFO)."""

    def __init__(self, job_seconds: float) -> None:
        self._job = job_seconds
        self._lock = threading.Lock()
        self._lanes = [0.0, 0.0]  # when each of the two import lanes frees up

    def expected_end(self, created_at: float) -> float:
        """When a batch created now should finish, given the batches created before it."""
        with self._lock:
            lane = min(range(2), key=self._lanes.__getitem__)
            end = max(self._lanes[lane], created_at) + self._job
            self._lanes[lane] = end
            return end


def import_one(
    client: MarketoClient, path: Path, rows: int, speed: float, schedule: Schedule
) -> BatchState:
    """Create one import and poll it near its expected end, not on a fixed timer."""
    batch_id = client.create_import(path, ImportParams(ImportFormat.CSV))
    pause = threading.Event()
    # A little past the expected end: one poll that finds it done beats two that straddle it.
    delay = (schedule.expected_end(time.monotonic()) - time.monotonic()) * 1.05 + 0.02
    while True:
        pause.wait(max(0.0, delay))  # the bench's poll schedule: the batch's expected end
        status = client.batch_status(batch_id)
        if status.status.terminal:
            return status.status
        # Late: aim at what is left of it (rows still to import), at least a short step.
        delay = max(0.02, (rows - status.leads_processed) / speed)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the bench once and return its figures."""
    faults = FaultSettings(rate=args.fault_rate, seed=1)
    sandbox_settings = SandboxSettings(
        rows_per_second=args.rows_per_second,
        job_overhead_seconds=args.overhead,
        faults=faults,
    )
    with Sandbox(sandbox_settings) as sandbox, tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(args.imports):
            path = Path(tmp) / f"leads-{i}.csv"
            write_leads(path, args.rows, i * args.rows)
            files.append(path)
        settings = InstanceSettings(
            name="bench",
            base_url=sandbox.base_url,
            client_id=sandbox_settings.client_id,
            client_secret=sandbox_settings.client_secret,
            limits=LimitSettings(max_queued_jobs=args.queue),
            base_backoff_seconds=0.1,
        )
        client = MarketoClient(settings)
        results: list[BatchState] = []
        schedule = Schedule(args.overhead + args.rows / args.rows_per_second)
        started = time.perf_counter()
        threads = [
            threading.Thread(
                target=lambda p=path: results.append(
                    import_one(client, p, args.rows, args.rows_per_second, schedule)
                )
            )
            for path in files
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        stats = client.stats()
        client.close()
        served = requests.get(f"{sandbox.base_url}/sandbox/stats.json", timeout=10).json()
    ideal = args.imports * args.rows / (2 * args.rows_per_second) + args.overhead
    # The sandbox charges the overhead on every job, so its own floor is higher than `ideal`.
    floor = -(-args.imports // 2) * (args.overhead + args.rows / args.rows_per_second)
    return {
        "completed": sum(r is BatchState.COMPLETE for r in results),
        "calls_per_batch": stats.calls / args.imports,
        "calls": stats.calls_by_endpoint,
        "refused": served["errors"],
        "retries": stats.retries_by_reason,
        "wall": wall,
        "ideal": ideal,
        "floor": floor,
    }


def main() -> None:
    """Parse options, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--imports", type=int, default=16, help="concurrent imports")
    parser.add_argument("--rows", type=int, default=2000, help="rows per file")
    parser.add_argument("--rows-per-second", type=float, default=10000.0)
    parser.add_argument("--overhead", type=float, default=0.2, help="sandbox job overhead (s)")
    parser.add_argument("--queue", type=int, default=8, help="client's import-queue cap")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="transient fault share")
    args = parser.parse_args()
    configure(level="warning")
    out = run(args)
    print(f"imports completed      {out['completed']}/{args.imports}")
    print(f"calls per batch        {out['calls_per_batch']:.2f}  {out['calls']}")
    print(f"calls refused          {sum(out['refused'].values())}  {out['refused']}")
    print(f"client retries         {out['retries']}")
    print(f"wall time              {out['wall']:.2f} s")
    print(f"ideal (sandbox speed)  {out['ideal']:.2f} s")
    print(f"wall / ideal           {out['wall'] / out['ideal']:.2f}")
    print(f"sandbox floor          {out['floor']:.2f} s (overhead on every job)")
    print(f"wall / floor           {out['wall'] / out['floor']:.2f}")


if __name__ == "__main__":
    main()
