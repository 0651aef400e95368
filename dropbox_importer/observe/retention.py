"""Retention: settled files in done/ and failed/ expire, with their result files, together.

A settled file is the original plus its result files (`<file>.result.json`,
`<file>.failures.*`, `<file>.warnings.*`); they expire, are deleted or are archived as one.
Its age runs from `timings.finished` in its result.json, else from the original's mtime (a
rename keeps it: the moment the partner's upload last wrote the file).

Choosing what expires is a pure function over values (`expired`); `sweep` does the I/O. Only
done/ and failed/ are ever read: inbox/ and processing/ belong to partners and to the pipeline.
Symbolic links are never followed nor touched (a link in done/ is not ours), and an archive
never overwrites: a name already taken gets a timestamp, as settle does.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath

import structlog

from dropbox_importer.config.model import RetentionConfig
from dropbox_importer.dropbox.layout import RESULT_SUFFIXES, DropboxLayout, Outcome, unique_path

log = structlog.get_logger(__name__)

DEFAULT_JOURNAL_DAYS = 90.0


@dataclass(frozen=True)
class SettledFile:
    """One original in done/ or failed/ and the result files that travel with it."""

    outcome: Outcome
    route: PurePath  # the route sub-path under done/ or failed/, "." at the top
    name: str  # the original's name (it may be gone, leaving only result files)
    files: tuple[Path, ...]  # the original last, so a move never strands results without it
    moment: datetime  # when it was settled (or dropped), the start of its age


def expired(
    settled: Iterable[SettledFile], policy: RetentionConfig, now: datetime
) -> list[SettledFile]:
    """The settled files older than their outcome's limit; an outcome without one never expires."""
    limits = {"done": policy.done_days, "failed": policy.failed_days}
    out = []
    for item in settled:
        days = limits[item.outcome]
        if days is not None and now - item.moment > timedelta(days=days):
            out.append(item)
    return out


def group(names: Iterable[str]) -> dict[str, list[str]]:
    """Names of one folder by the original they belong to (the original itself included)."""
    present = set(names)
    groups: dict[str, list[str]] = {}
    for name in sorted(present):
        owner = name
        # A result file's owner is the name without the suffix, if that name is here too; a
        # result file whose original is gone forms a group of its own and expires alone.
        while (stripped := _strip_result_suffix(owner)) is not None and stripped in present:
            owner = stripped
        groups.setdefault(owner, []).append(name)
    return groups


def _strip_result_suffix(name: str) -> str | None:
    for suffix in RESULT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name.removesuffix(suffix)
    return None


def settled_files(layout: DropboxLayout) -> list[SettledFile]:
    """Every settled file in done/ and failed/, found without following any symlink."""
    found: list[SettledFile] = []
    for outcome in ("done", "failed"):
        top = layout.outcome_dir(outcome)
        if not top.is_dir() or top.is_symlink():
            continue
        for folder, dirs, names in os.walk(top, followlinks=False):
            dirs.sort()
            regular = [n for n in names if _is_regular(Path(folder) / n)]
            route = PurePath(folder).relative_to(top)
            for owner, members in group(regular).items():
                paths = [Path(folder) / n for n in members if n != owner]
                if owner in members:
                    paths.append(Path(folder) / owner)
                found.append(
                    SettledFile(outcome, route, owner, tuple(paths), _moment(Path(folder), owner))
                )
    return found


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _moment(folder: Path, owner: str) -> datetime:
    """timings.finished of the result.json, else the original's (or result file's) mtime."""
    result_json = folder / f"{owner}.result.json"
    try:
        fd = os.open(result_json, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as source:
            finished = json.loads(source.read())["timings"]["finished"]
        return datetime.strptime(finished, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no result.json, or one we can't read: the file's own time will do
    for candidate in (folder / owner, result_json):
        try:
            return datetime.fromtimestamp(os.lstat(candidate).st_mtime, UTC)
        except FileNotFoundError:
            continue
    return datetime.now(UTC)  # vanished meanwhile: nothing left to expire


@dataclass
class SweepReport:
    """What one sweep of one drop box did."""

    expired: int = 0  # settled files (original and results counted once)
    deleted_files: int = 0
    archived_files: int = 0
    freed_bytes: int = 0
    errors: list[str] = field(default_factory=list)


def sweep(
    layout: DropboxLayout, policy: RetentionConfig, now: datetime, *, dropbox: str = ""
) -> SweepReport:
    """Delete or archive every expired settled file of the drop box; errors are reported."""
    report = SweepReport()
    for item in expired(settled_files(layout), policy, now):
        report.expired += 1
        try:
            if policy.action == "archive":
                assert policy.archive_dir is not None, "the config requires archive_dir"
                _archive(item, policy.archive_dir, report)
            else:
                _delete(item, report)
        except OSError as exc:
            message = f"{item.outcome}/{item.route / item.name}: {exc.strerror or exc}"
            report.errors.append(message)
            log.error("retention_failed", dropbox=dropbox, file=message)
    log.info(
        "retention_swept",
        dropbox=dropbox,
        action=policy.action,
        expired=report.expired,
        deleted_files=report.deleted_files,
        archived_files=report.archived_files,
        freed_bytes=report.freed_bytes,
        errors=len(report.errors),
    )
    return report


def _delete(item: SettledFile, report: SweepReport) -> None:
    for path in item.files:
        try:
            size = os.lstat(path).st_size
            path.unlink()
        except FileNotFoundError:
            continue
        report.deleted_files += 1
        report.freed_bytes += size


def _archive(item: SettledFile, archive_dir: Path, report: SweepReport) -> None:
    folder = archive_dir / item.outcome / item.route
    folder.mkdir(parents=True, exist_ok=True)
    names = [p.name for p in item.files]

    def taken(candidate: Path) -> bool:
        # The original and every result name must be free, so they stay together under one stem.
        return any(os.path.lexists(folder / _renamed(n, item.name, candidate.name)) for n in names)

    target_name = unique_path(folder / item.name, taken).name
    for path in item.files:
        try:
            size = os.lstat(path).st_size
        except FileNotFoundError:
            continue
        _move(path, folder / _renamed(path.name, item.name, target_name))
        report.archived_files += 1
        report.freed_bytes += size


def _renamed(name: str, owner: str, new_owner: str) -> str:
    """A member's name once its original is called `new_owner`."""
    return new_owner + name.removeprefix(owner)


def _move(source: Path, target: Path) -> None:
    """Rename, or copy then delete when the archive is on another filesystem."""
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, f"{target} exists; nothing is overwritten")
    try:
        source.rename(target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    partial = target.with_name(f".{target.name}.partial")
    shutil.copy2(source, partial, follow_symlinks=False)
    with partial.open("rb+") as copied:
        os.fsync(copied.fileno())
    partial.rename(target)
    source.unlink()


class RetentionSchedule:
    """When the next sweep (and journal compaction) is due, on the daemon's monotonic clock."""

    def __init__(self, interval_seconds: float = 3600.0, first_delay_seconds: float = 60.0) -> None:
        self.interval_seconds = interval_seconds
        self.first_delay_seconds = first_delay_seconds
        self._next: float | None = None

    def due(self, now: float) -> bool:
        """True when a sweep should run now (the first one a little after start-up)."""
        if self._next is None:
            self._next = now + self.first_delay_seconds
        return now >= self._next

    def ran(self, now: float) -> None:
        """Record a sweep that started at `now`; the next is one interval later."""
        self._next = now + self.interval_seconds


def journal_horizon(policies: Sequence[RetentionConfig | None]) -> timedelta:
    """How long the journal keeps finished files: the longest retention, else 90 days."""
    days = [
        d for p in policies if p is not None for d in (p.done_days, p.failed_days) if d is not None
    ]
    # A drop box that keeps one outcome forever still leaves the journal at the default: the
    # files on disk, with their result.json, are the lasting record, not the journal.
    return timedelta(days=max(days, default=DEFAULT_JOURNAL_DAYS))
