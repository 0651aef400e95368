"""The drop box on disk, and the only code that moves files in it.

    <root>/inbox/<route>/<file>        partners write here
    <root>/processing/<route>/<file>   claimed, in flight
    <root>/done/<route>/<file>         imported; result files beside it
    <root>/failed/<route>/<file>       rejected or failed; result files beside it

Every move is an `os.rename` inside one filesystem: atomic, and it keeps the original byte for
byte (its bytes are never copied). The whole drop box must therefore live on one filesystem; a
cross-filesystem layout is refused with a clear error rather than silently copied. Nothing is
ever overwritten: a name already taken gets a UTC timestamp before its extension
(`leads.20261129T031500Z.csv`). Directories are fsynced after each move so a power cut cannot
undo it. The journal records every move before it happens (see `pipeline.journal`), and
`settle` can be replayed after a crash at any point: it finishes the same move.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import structlog

from dropbox_importer.dropbox import writers
from dropbox_importer.marketo.models import ImportFormat

log = structlog.get_logger(__name__)

Outcome = Literal["done", "failed"]


class NotARegularFile(Exception):  # noqa: N818 - named for what the daemon sets aside
    """The inbox entry is a symlink, fifo, device, directory or hard link: never read it."""


class UnsafeName(NotARegularFile):
    """The entry's name cannot be carried to done/ or failed/ with its result files beside it."""


class FileVanished(Exception):  # noqa: N818 - named for what happened to the file
    """The file was gone (deleted or renamed by its writer) when we came to move it."""


class SettleError(Exception):
    """A file could not be moved to done/ or failed/; it stays in processing/, nothing lost."""


@dataclass(frozen=True)
class DropboxLayout:
    """The four folders of one drop box."""

    root: Path

    @property
    def inbox(self) -> Path:
        """Where partners drop files."""
        return self.root / "inbox"

    @property
    def processing(self) -> Path:
        """Where claimed files wait while in flight."""
        return self.root / "processing"

    @property
    def done(self) -> Path:
        """Where imported files end, with their result files."""
        return self.root / "done"

    @property
    def failed(self) -> Path:
        """Where rejected or failed files end, with their result files."""
        return self.root / "failed"

    def outcome_dir(self, outcome: Outcome) -> Path:
        """done/ or failed/."""
        return {"done": self.done, "failed": self.failed}[outcome]

    def ensure(self) -> None:
        """Create the four folders if missing."""
        for folder in (self.inbox, self.processing, self.done, self.failed):
            folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class ResultPaths:
    """Where a settled file's result files go: beside it, its name as their prefix."""

    failures: Path
    warnings: Path
    result_json: Path


# Failures and warnings keep the original's format so rows can be fixed and dropped again; ssv
# gets `.csv` too because spreadsheets open that name (their content stays semicolon-separated,
# which is what spreadsheets in semicolon locales expect).
_TABLE_SUFFIX = {ImportFormat.CSV: ".csv", ImportFormat.TSV: ".tsv", ImportFormat.SSV: ".csv"}
RESULT_SUFFIXES = tuple(
    sorted(
        {f".{kind}{ext}" for kind in ("failures", "warnings") for ext in _TABLE_SUFFIX.values()}
        | {".result.json"}
    )
)


def result_paths(destination: Path, fmt: ImportFormat) -> ResultPaths:
    """The result files of a file settled at `destination` (`leads.csv.result.json`, ...)."""
    ext = _TABLE_SUFFIX[fmt]
    return ResultPaths(
        failures=destination.with_name(f"{destination.name}.failures{ext}"),
        warnings=destination.with_name(f"{destination.name}.warnings{ext}"),
        result_json=destination.with_name(f"{destination.name}.result.json"),
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` all at once: temporary file, fsync, rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fixed name (one daemon per state dir writes here): a write killed half-way leaves a
    # temporary file that the replay overwrites and renames, never a stray one.
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _check_regular(path: Path) -> os.stat_result:
    """lstat the entry (never following it) and refuse anything but a lone regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise FileVanished(f"{_printable(path)} disappeared before it could be claimed") from None
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFile(
            f"{_printable(path)} is {_kind(st.st_mode)}; only regular files are imported"
        )
    if st.st_nlink > 1:
        # A hard link may share its bytes with a file outside the drop box.
        raise NotARegularFile(
            f"{_printable(path)} has {st.st_nlink} hard links; "
            "copy the file in instead of linking it"
        )
    return st


# Longest file name claimed, in bytes: the result files add up to 13 bytes
# (`.failures.csv`), a name already taken in done/ gets a 20-byte UTC stamp, and write_atomic's
# temporary name 14 more; the filesystem's limit is 255 bytes.
MAX_NAME_BYTES = 200


def _printable(path: Path) -> str:
    """The path for a message, undecodable bytes shown as escapes instead of breaking a log."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _check_name(path: Path) -> None:
    """Refuse a name that is no UTF-8 or too long for the result files beside it."""
    raw = os.fsencode(path.name)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        # The journal, result.json and the logs are UTF-8: such a name cannot be recorded.
        raise UnsafeName(
            f"{_printable(path)}: the name is not valid UTF-8 (saved in another encoding?); "
            "rename the file using UTF-8 characters"
        ) from None
    if len(raw) > MAX_NAME_BYTES:
        raise UnsafeName(
            f"{_printable(path)}: the name is {len(raw)} bytes long; the result files written "
            f"beside it need room: rename it to {MAX_NAME_BYTES} bytes or shorter"
        )


def _check_inside(layout: DropboxLayout, path: Path) -> None:
    """Refuse a path whose route folders include a symbolic link (it would lead outside)."""
    folder = path.parent
    while folder != layout.inbox:
        if folder.is_symlink() or folder == folder.parent:
            raise NotARegularFile(
                f"{_printable(path)} is reached through the symbolic link {_printable(folder)}; "
                "only files inside the drop box are imported"
            )
        folder = folder.parent


def refusal(layout: DropboxLayout, inbox_file: Path) -> str | None:
    """Why `claim` would refuse this inbox entry (a link, a fifo, a bad name), or None.

    Read-only: what `status` shows for entries the daemon sets aside.
    """
    try:
        _check_inside(layout, inbox_file)
        _check_regular(inbox_file)
        _check_name(inbox_file)
    except NotARegularFile as exc:
        return str(exc)
    except FileVanished:
        return None
    return None


def claim(layout: DropboxLayout, inbox_file: Path, *, check_writers: bool = True) -> Path:
    """Move a ready inbox file into processing/ under the same route path; return its new path.

    With `check_writers`, a read lease held across the rename proves no process has the file
    open for writing (StillOpen otherwise: the file stays in inbox/); see dropbox.writers.
    """
    route = inbox_file.parent.relative_to(layout.inbox)
    _check_inside(layout, inbox_file)
    before = _check_regular(inbox_file)
    _check_name(inbox_file)
    folder = layout.processing / route
    folder.mkdir(parents=True, exist_ok=True)
    # Only this daemon (one per state dir, by lock) writes in processing/, so check-then-rename
    # cannot race another claimer.
    target = unique_path(folder / inbox_file.name, os.path.lexists)
    try:
        with writers.lease(inbox_file) if check_writers else contextlib.nullcontext() as held:
            inbox_file.rename(target)
            writer_came = held is not None and held.broken()
    except FileNotFoundError:
        raise FileVanished(f"{inbox_file} disappeared before it could be claimed") from None
    if writer_came:
        # A writer opened it while we held the lease: its open went through once we let go.
        target.rename(unique_path(inbox_file, os.path.lexists))
        raise writers.StillOpen(f"{inbox_file} was opened for writing while being claimed")
    after = os.lstat(target)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        # The writer swapped the entry between our check and the rename: hand it back untouched.
        target.rename(unique_path(inbox_file, os.path.lexists))
        raise NotARegularFile(f"{inbox_file} was replaced while being claimed; it is left alone")
    _fsync_dir(folder)
    _fsync_dir(inbox_file.parent)
    return target


def _stamped(path: Path, moment: datetime, n: int) -> Path:
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + (f"-{n}" if n > 1 else "")
    if path.suffix and path.stem:
        return path.with_name(f"{path.stem}.{stamp}{path.suffix}")
    return path.with_name(f"{path.name}.{stamp}")


def unique_path(path: Path, taken: Callable[[Path], bool], now: datetime | None = None) -> Path:
    """`path` if free, else the same name with a UTC timestamp before its extension."""
    if not taken(path):
        return path
    moment = now or datetime.now(UTC)
    n = 1
    while taken(candidate := _stamped(path, moment, n)):
        n += 1
    return candidate


def _taken_with_results(path: Path) -> bool:
    names = [path.name + suffix for suffix in RESULT_SUFFIXES]
    return os.path.lexists(path) or any(os.path.lexists(path.with_name(n)) for n in names)


def choose_destination(
    layout: DropboxLayout,
    processing_file: Path,
    outcome: Outcome,
    now: datetime | None = None,
) -> Path:
    """The free path in done/ or failed/ for a claimed file (its result names free too)."""
    route = processing_file.parent.relative_to(layout.processing)
    wanted = layout.outcome_dir(outcome) / route / processing_file.name
    return unique_path(wanted, _taken_with_results, now)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _explain(exc: OSError, destination: Path) -> SettleError:
    folder = destination.parent
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return SettleError(
            f"cannot write in {folder}: {exc.strerror}; make the folder writable by the "
            "daemon's user (the file waits in processing/ and moves on the next try)"
        )
    if exc.errno == errno.EXDEV:
        return SettleError(
            f"{folder} is on another filesystem than processing/; keep the whole drop box "
            "on one filesystem so files move without being copied"
        )
    return SettleError(f"cannot move into {folder}: {exc}")


def _move_result(staged: Path, final: Path) -> None:
    if not os.path.lexists(staged):
        if os.path.lexists(final):
            return  # moved by the run that crashed
        raise SettleError(f"the result file {staged} is missing; write it again and retry")
    # Written anew inside the destination folder rather than renamed in from the state dir:
    # a new file takes the setgid folder's group (the partner's), a renamed one would keep
    # the daemon's group and stay unreadable to the partner. Result files are ours to copy;
    # the original is never copied.
    write_atomic(final, staged.read_bytes())
    staged.unlink()


def _move_original(processing_file: Path, destination: Path) -> None:
    if not os.path.lexists(processing_file):
        if os.path.lexists(destination):
            return  # moved by the run that crashed
        raise FileVanished(f"{processing_file} is neither in processing/ nor at {destination}")
    if os.path.lexists(destination):
        raise SettleError(f"{destination} appeared before the move; nothing is overwritten")
    processing_file.rename(destination)


def settle(processing_file: Path, destination: Path, results: Mapping[Path, Path]) -> None:
    """Move staged result files (staged -> final) and then the original into place.

    Idempotent: replaying it after a crash at any point finishes the same move. The original
    moves last, so a file in done/ or failed/ always has its results beside it.
    """
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        for staged, final in results.items():
            _move_result(staged, final)
        _fsync_dir(destination.parent)
        _move_original(processing_file, destination)
        _fsync_dir(destination.parent)
        _fsync_dir(processing_file.parent)
    except (SettleError, FileVanished):
        raise
    except OSError as exc:
        error = _explain(exc, destination)
        # The daemon logs settle_failed with the file's context and this reason.
        log.debug("settle_move_failed", path=str(processing_file), reason=str(error))
        raise error from exc
    log.debug("file_moved", path=str(processing_file), destination=str(destination))
