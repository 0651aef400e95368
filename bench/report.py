"""The one table `python -m bench` prints: each figure beside its target, and results.json."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the table: a key of results.json, how it reads, and its target."""

    key: str
    label: str
    unit: str
    target: str
    met: Callable[[float, dict[str, Any]], bool]


ROWS = (
    Row("efficiency", "efficiency, ideal / wall", "", ">= 0.95", lambda v, _r: v >= 0.95),
    Row("efficiency_vs_floor", "efficiency, sandbox floor / wall", "", "", lambda _v, _r: True),
    Row("calls_per_batch", "calls per batch besides downloads", "", "<= 3", lambda v, _r: v <= 3),
    Row("refused_1016", "creates refused 1016 (queue full)", "", "", lambda _v, _r: True),
    Row("refused_606", "calls refused 606 (rate)", "", "0", lambda v, _r: v == 0),
    Row("refused_615", "calls refused 615 (in flight)", "", "0", lambda v, _r: v == 0),
    Row(
        "drop_to_create_p95_s",
        "last write to create, p95",
        "s",
        "<= settle + 1",
        lambda v, r: v <= r["drop_to_create_target_s"],
    ),
    Row(
        "close_to_create_p50_s",
        "local writer's close to create, p50",
        "s",
        "",
        lambda _v, _r: True,
    ),
    Row(
        "close_to_create_p95_s",
        "local writer's close to create, p95",
        "s",
        "<= quiet + 1",
        lambda v, r: v <= r["close_to_create_target_s"],
    ),
    Row(
        "close_to_create_polling_p95_s",
        "same, polling (settle time), p95",
        "s",
        "",
        lambda _v, _r: True,
    ),
    Row(
        "complete_to_done_p95_s",
        "batch complete to file in done/, p95",
        "s",
        "<= 20% of batch",
        lambda _v, r: r["complete_to_done_p95_share"] <= 0.20,
    ),
    Row("vs_naive", "wall time / naive cron script's", "", "", lambda _v, _r: True),
    Row(
        "small_files_jobs_per_file",
        "jobs/file, 1,000 small files, 10 s/job",
        "",
        "<= 0.05",
        lambda v, _r: v <= 0.05,
    ),
    Row(
        "small_files_jobs_per_file_0_5s",
        "jobs/file, 1,000 small files, 0.5 s/job",
        "",
        "<= 0.05",
        lambda v, _r: v <= 0.05,
    ),
    Row(
        "small_files_vs_one_each",
        "coalesced/one each, 200 files, 10 s/job",
        "",
        "<= 0.1",
        lambda v, _r: v <= 0.1,
    ),
    Row(
        "small_files_vs_one_each_0_5s",
        "coalesced/one each, 1,000 files, 0.5 s",
        "",
        "<= 0.1",
        lambda v, _r: v <= 0.1,
    ),
    Row(
        "list_route_efficiency",
        "one list route, 12 x 4,000 rows",
        "",
        ">= 0.9",
        lambda v, _r: v >= 0.9,
    ),
    Row(
        "neighbour_files_failed",
        "files failed, another integration on",
        "",
        "0",
        lambda v, _r: v == 0,
    ),
    Row(
        "neighbour_refused_606_615",
        "606/615 answered, another integration on",
        "",
        "0",
        lambda v, _r: v == 0,
    ),
    Row("idle_cpu_percent", "idle CPU, 500 folders, inotify", "%", "< 1", lambda v, _r: v < 1),
    Row("idle_rss_mb", "idle peak RSS, 500 folders, inotify", "MB", "< 60", lambda v, _r: v < 60),
    Row("idle_polling_cpu_percent", "idle CPU, 500 folders, polling", "%", "", lambda _v, _r: True),
    Row(
        "idle_polling_rss_mb", "idle peak RSS, 500 folders, polling", "MB", "", lambda _v, _r: True
    ),
)


def verdict(row: Row, value: float, results: dict[str, Any]) -> str:
    """'ok', 'MISSED' or '' (no target) for one row."""
    if not row.target:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return "ok" if row.met(value, results) else "MISSED"


def table(results: dict[str, Any]) -> str:
    """Every figure present in `results` beside its target, one per line."""
    lines = [f"{'figure':40} {'value':>10}  {'target':16} verdict"]
    for row in ROWS:
        if row.key not in results:
            continue
        value = results[row.key]
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        lines.append(
            f"{row.label:40} {shown + row.unit:>10}  {row.target:16} {verdict(row, value, results)}"
        )
    return "\n".join(lines)


def write(results: dict[str, Any], path: Path) -> None:
    """Write results.json (NaN becomes null, so any JSON reader takes it)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    path.write_text(json.dumps(clean(results), indent=2, sort_keys=True) + "\n")
