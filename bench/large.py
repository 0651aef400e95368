"""Large-file benchmark: plain read, splitting and validation throughput, and peak memory.

    .venv/bin/python -m bench.large [--size-mb 1024] [--keep]

Generates a CRLF lead file in a temp dir (quoted multi-line addresses, doubled quotes and
non-ASCII names included), then runs each stage in its own child process and reads that
child's peak RSS from `os.wait4`. Throughputs are printed with their ratio to the plain read
measured in the same run, so figures from different machines compare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dropbox_importer.csvfile import inspect_file, split_file
from dropbox_importer.marketo.models import ImportFormat

READ_SIZE = 4 << 20
STAGES = ("read", "copy", "split", "validate")


def _block(rows: int, start: int) -> bytes:
    """`rows` CRLF lead rows; every 97th has a quoted two-line address with doubled quotes."""
    out = []
    for n in range(start, start + rows):
        if n % 97 == 0:
            address = f'"{n} Rue du ""Port""\r\nBâtiment {n % 7}, étage 2"'
        else:
            address = f"{n} Main Street"
        out.append(f"lead{n}@example.com,Zoë{n % 13},Müller-{n},{address},{n % 1000}\r\n")
    return "".join(out).encode("utf-8")


def generate(path: Path, size: int) -> None:
    """Write a lead file of about `size` bytes: varied rows, a 4 MB block repeated."""
    block = _block(50_000, 0)
    with path.open("wb") as out:
        out.write(b"Email,FirstName,LastName,Address,Score\r\n")
        written = 0
        while written < size:
            out.write(block)
            written += len(block)


def run_stage(stage: str, path: Path, work: Path) -> float:
    """Run one stage in this process; return its wall time in seconds."""
    began = time.perf_counter()
    if stage == "read":
        buffer = bytearray(READ_SIZE)
        with path.open("rb", buffering=0) as stream:
            while stream.readinto(buffer):
                pass
    elif stage == "copy":
        shutil.copyfile(path, work / "copy.csv")
    elif stage == "split":
        out = work / "parts"
        out.mkdir()
        split_file(path, ImportFormat.CSV, out)
    elif stage == "validate":
        inspect_file(path, ImportFormat.CSV)
    return time.perf_counter() - began


def measure(stage: str, path: Path, work: Path) -> dict[str, float]:
    """Run a stage in a child process; its seconds and peak RSS in MB."""
    command = [sys.executable, "-m", "bench.large", "--stage", stage, str(path), str(work)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"stage {stage} failed with exit code {child.returncode}")
    seconds = float(json.loads(output)["seconds"])
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024}


def report(size: int, results: dict[str, dict[str, float]]) -> None:
    """Print MB/s, ratio to the plain read and peak RSS of every stage."""
    mb = size / 1e6
    base = mb / results["read"]["seconds"]
    print(f"file: {mb:.0f} MB")
    print(f"{'stage':10} {'seconds':>8} {'MB/s':>9} {'x read':>8} {'peak RSS MB':>12}")
    for stage, got in results.items():
        rate = mb / got["seconds"]
        print(
            f"{stage:10} {got['seconds']:8.2f} {rate:9.0f} {rate / base:8.3f} "
            f"{got['peak_rss_mb']:12.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    """Generate the file, measure every stage in a child process, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.large", description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        seconds = run_stage(args.stage, Path(args.paths[0]), Path(args.paths[1]))
        print(json.dumps({"seconds": seconds}))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
        path = Path(tmp) / "leads.csv"
        generate(path, args.size_mb * 1_000_000)
        results = {}
        for stage in args.stages.split(","):
            work = Path(tmp) / stage
            work.mkdir()
            results[stage] = measure(stage, path, work)
            shutil.rmtree(work)
        report(path.stat().st_size, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
