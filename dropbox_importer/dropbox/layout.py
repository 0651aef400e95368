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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import structlog

from dropbox_importer.dropbox.folders import LinkInPath, lstat_at, open_below
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
    """A file could not be moved to done/ or failed/; it stays in processing/, nothing lost.

    `folder` names the folder at fault when one is (a read-only or full done/<route>/).
    """

    def __init__(self, message: str, folder: Path | None = None) -> None:
        super().__init__(message)
        self.folder = folder


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


def _check_regular(st: os.stat_result | None, path: Path) -> os.stat_result:
    """Refuse anything but a lone regular file (`st` from an lstat that never followed it)."""
    if st is None:
        raise FileVanished(f"{_printable(path)} disappeared before it could be claimed")
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


# A last check before the move: `check(folder_fd, name, stat)` raises to leave the file in the
# inbox (NotARegularFile with a reason, or FileVanished), e.g. while a writer still holds it.
ClaimCheck = Callable[[int, str, os.stat_result], None]


def refusal(layout: DropboxLayout, inbox_file: Path) -> str | None:
    """Why `claim` would refuse this inbox entry (a link, a fifo, a bad name), or None.

    Read-only: what `status` shows for entries the daemon sets aside.
    """
    try:
        _check_inside(layout, inbox_file)
        _check_regular(_lstat(inbox_file), inbox_file)
        _check_name(inbox_file)
    except NotARegularFile as exc:
        return str(exc)
    except FileVanished:
        return None
    return None


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


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


def claim(layout: DropboxLayout, inbox_file: Path, checks: Sequence[ClaimCheck] = ()) -> Path:
    """Move a ready inbox file into processing/ under the same route path; return its new path.

    Every folder below the root is opened without following links (`dropbox.folders`), and the
    checks and the rename are made relative to those open folders, so a route folder swapped
    for a symbolic link at any moment is never followed. Raises NotARegularFile (links, special
    files, hard links, unsafe names: the entry stays where it is), FileVanished, LinkInPath for
    a link on the processing/ side, and OSError for a folder that cannot be read or written.
    """
    route = inbox_file.parent.relative_to(layout.inbox).parts
    name = inbox_file.name
    vanished = f"{_printable(inbox_file)} disappeared before it could be claimed"
    try:
        with open_below(layout.root, ("inbox", *route)) as source:
            before = _check_regular(lstat_at(source, name), inbox_file)
            _check_name(inbox_file)
            for check in checks:
                check(source, name, before)
            with _processing_folder(layout, route) as folder:
                target = _move_in(source, folder, name, inbox_file, before)
                # Only this daemon (one per state dir, by lock) writes in processing/.
                os.fsync(folder)
                os.fsync(source)
    except LinkInPath as exc:
        raise NotARegularFile(
            f"{_printable(inbox_file)} is reached through the symbolic link "
            f"{_printable(exc.component)}; only files inside the drop box are imported"
        ) from None
    except FileNotFoundError:
        raise FileVanished(vanished) from None
    return layout.processing.joinpath(*route, target)


class ProcessingUnusable(Exception):  # noqa: N818 - named for what it found
    """processing/<route> could not be made or opened (`error` says why); the file stays put."""

    def __init__(self, folder: Path, error: OSError) -> None:
        super().__init__(f"{folder}: {error.strerror or error}")
        self.folder = folder
        self.error = error


@contextlib.contextmanager
def _processing_folder(layout: DropboxLayout, route: Sequence[str]) -> Iterator[int]:
    """processing/<route>, made if missing, opened without following links."""
    folder = layout.processing.joinpath(*route)
    opened = contextlib.ExitStack()
    try:
        fd = opened.enter_context(open_below(layout.root, ("processing", *route), create=True))
    except OSError as exc:
        raise ProcessingUnusable(folder, exc) from exc
    with opened:
        yield fd


def _move_in(source: int, folder: int, name: str, inbox_file: Path, before: os.stat_result) -> str:
    """Rename `name` from the open inbox folder into the open processing one; the name used."""
    target = unique_path(Path(name), lambda p: lstat_at(folder, p.name) is not None).name
    try:
        os.rename(name, target, src_dir_fd=source, dst_dir_fd=folder)
    except FileNotFoundError:
        raise FileVanished(
            f"{_printable(inbox_file)} disappeared before it could be claimed"
        ) from None
    after = lstat_at(folder, target)
    if after is None or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        # The writer swapped the entry between our check and the rename: hand it back untouched.
        if after is not None:
            back = unique_path(Path(name), lambda p: lstat_at(source, p.name) is not None).name
            os.rename(target, back, src_dir_fd=folder, dst_dir_fd=source)
        raise NotARegularFile(
            f"{_printable(inbox_file)} was replaced while being claimed; it is left alone"
        )
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
            "daemon's user (the file waits in processing/ and moves on the next try)",
            folder,
        )
    if exc.errno == errno.EXDEV:
        return SettleError(
            f"{folder} is on another filesystem than processing/; keep the whole drop box "
            "on one filesystem so files move without being copied",
            folder,
        )
    return SettleError(f"cannot move into {folder}: {exc.strerror or exc}", folder)


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


def settle(
    processing_file: Path,
    destination: Path,
    results: Mapping[Path, Path],
    *,
    before_move: Callable[[], None] = lambda: None,
) -> None:
    """Move staged result files (staged -> final) and then the original into place.

    Idempotent: replaying it after a crash at any point finishes the same move. The original
    moves last, so a file in done/ or failed/ always has its results beside it.
    `before_move()` runs before each move and may raise to stop it (a daemon that lost its
    leadership moves nothing more).
    """
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        for staged, final in results.items():
            before_move()
            _move_result(staged, final)
        _fsync_dir(destination.parent)
        before_move()
        _move_original(processing_file, destination)
        _fsync_dir(destination.parent)
        _fsync_dir(processing_file.parent)
    except (SettleError, FileVanished):
        raise
    except OSError as exc:
        # The daemon logs it with the file's context (settle_move_failed), once per cause.
        raise _explain(exc, destination) from exc
    log.debug("file_moved", path=str(processing_file), destination=str(destination))
