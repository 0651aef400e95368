"""What a stress run dropped, and where every file ended: done, failed, lost or twice.

Every dropped file carries a signature the sandbox can see: (rows, bytes) of its upload, unique
per file because the row count and the padding of one column are both derived from its number.
Grouping the sandbox's batches by that signature tells which files were submitted twice.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.daemon.harness import originals_under

# Rows per file cycle through 1..ROW_CYCLE; the padding grows once per cycle, up to 2 x 250.
ROW_CYCLE = 20
MAX_CELL = 250
RESULT_SUFFIXES = (
    ".result.json",
    ".failures.csv",
    ".warnings.csv",
)  # under the sandbox's 255-character field length: no truncation warnings


def lead_file(number: int) -> str:
    """The text of file `number`: unique emails, a row count and a padding unique to it."""
    rows = 1 + number % ROW_CYCLE
    pad = number // ROW_CYCLE
    company, city = "c" * min(pad, MAX_CELL), "t" * max(0, pad - MAX_CELL)
    if pad > 2 * MAX_CELL:
        raise ValueError(f"file number {number} is beyond what the signature can tell apart")
    lines = ["email,firstName,company,city"]
    for row in range(rows):
        padding = f"{company},{city}" if row == 0 else ","
        lines.append(f"s{number:06d}r{row:02d}@example.com,First,{padding}")
    return "\n".join(lines) + "\n"


def drop(root: Path, relative: str, text: str) -> None:
    """Drop a file as a careful partner does: written aside, renamed into the inbox."""
    target = root / "inbox" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name("." + target.name + ".uploading")
    staging.write_text(text)
    staging.rename(target)


@dataclass
class Tally:
    """Files dropped into one drop box, and the outcome counts once the run is over."""

    root: Path
    dropped: set[str] = field(default_factory=set)

    def add(self, relative: str, number: int) -> None:
        """Drop file `number` at `relative` below the inbox and remember it."""
        drop(self.root, relative, lead_file(number))
        self.dropped.add(relative)

    def landed(self) -> int:
        """How many originals are in done/ or failed/ (result files not counted).

        Polled often while 10,000 files settle: a walk on d_type, no stat and no sort, so the
        watching costs the daemon little CPU on a 2-core machine.
        """
        return sum(
            1
            for outcome in ("done", "failed")
            for _folder, _dirs, names in os.walk(self.root / outcome)
            for name in names
            if not name.endswith(RESULT_SUFFIXES)
        )

    def count(self, base_url: str) -> dict[str, int]:
        """dropped, done, failed, lost, landed twice and submitted twice."""
        places: Counter[str] = Counter()
        found: dict[str, set[str]] = {}
        for outcome in ("done", "failed"):
            folder = self.root / outcome
            names = {str(p.relative_to(folder)) for p in originals_under(folder)}
            found[outcome] = names
            places.update(names)
        # A name that is no dropped file is a second copy the destination had to rename.
        extra = sum(n for name, n in places.items() if name not in self.dropped)
        twice = extra + sum(1 for name in self.dropped if places[name] > 1)
        return {
            "dropped": len(self.dropped),
            "done": len(found["done"] & self.dropped),
            "failed": len(found["failed"] & self.dropped),
            "lost": sum(1 for name in self.dropped if places[name] == 0),
            "landed_twice": twice,
            "submitted_twice": submitted_twice(base_url),
        }


def jobs(base_url: str) -> int:
    """Import jobs the daemon created (files may share one)."""
    batches: list[dict[str, Any]] = requests.get(
        f"{base_url}/sandbox/batches.json", timeout=30
    ).json()["batches"]
    return sum(1 for b in batches if b.get("owner", "api") == "api")


def submitted_twice(base_url: str) -> int:
    """Files whose (rows, bytes) signature appears in more than one sandbox batch."""
    batches: list[dict[str, Any]] = requests.get(
        f"{base_url}/sandbox/batches.json", timeout=30
    ).json()["batches"]
    signatures = Counter((b["rows"], b["bytes"]) for b in batches)
    return sum(1 for n in signatures.values() if n > 1)


def report(title: str, counts: dict[str, int], **extra: Any) -> None:
    """Print one stress run's counts on a line (pytest -s shows it)."""
    figures = " ".join(f"{k}={v}" for k, v in {**counts, **extra}.items())
    print(f"\n{title}: {figures}")
