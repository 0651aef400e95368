"""Give failed files another go: move them from failed/<route>/ back to inbox/<route>/.

Name the files, or let `--dropbox`, `--route` and `--since` pick every failed file that
matches ("everything that failed since 02:00"); `--to ROUTE` puts them into another route
folder, for a route that was wrong; `--dry-run` shows what would move. Their result files
(`.result.json`, `.failures.*`, `.warnings.*`) are not deleted: they move into a folder beside
them, `failed/<route>/<file>.retried-<UTC>/`, so the reason of the first failure stays at hand
and the next failure's results land under the original names. Nothing in inbox/ is ever
overwritten, and a path outside a configured drop box's failed/ is refused. No secret is read.

Exit codes: 0 every file moved (or none matched), 1 some refused (the inbox already holds that
name, or a move failed; the others moved), 2 for a config error, a bad option or a path that is
not a failed file (then nothing moves).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import structlog

from dropbox_importer import logs
from dropbox_importer.actions.options import add_config_option, load
from dropbox_importer.config import ConfigError, DropboxConfig
from dropbox_importer.dropbox.failed import failed_files
from dropbox_importer.dropbox.layout import RESULT_SUFFIXES, DropboxLayout
from dropbox_importer.dropbox.routes import RouteError, resolve_route
from dropbox_importer.pipeline.ready import MARKER_SUFFIXES
from dropbox_importer.report.times import SINCE_FORMS, parse_since

log = structlog.get_logger(__name__)

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class RetryRefused(Exception):  # noqa: N818 - what the operator is told, not a bug of ours
    """The file cannot be retried as asked; `usage` marks a wrong path rather than a conflict."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class RetryDone:
    """Where a retried file went, and where its old result files were put aside."""

    inbox_file: Path
    aside: Path | None
    results: tuple[Path, ...]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `retry`'s options."""
    add_config_option(parser)
    parser.add_argument(
        "paths", type=Path, nargs="*", metavar="PATH", help="files in failed/<route>/ to retry"
    )
    parser.add_argument("--dropbox", metavar="NAME", help="without PATH: failed files of this box")
    parser.add_argument("--route", metavar="ROUTE", help="without PATH: of this route folder")
    parser.add_argument(
        "--since", metavar="WHEN", help=f"without PATH: failed since then ({SINCE_FORMS})"
    )
    parser.add_argument(
        "--to", metavar="ROUTE", help="put them into inbox/ROUTE/ instead of their own route"
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would move, move nothing")


def locate(path: Path, boxes: list[DropboxConfig]) -> tuple[DropboxConfig, Path]:
    """The drop box whose failed/ holds `path`, and the path's route folder inside failed/."""
    # The folders resolved (a drop box may live behind a symlinked mount), the file itself not:
    # a symlink in failed/ is refused below rather than followed out of the drop box.
    absolute = path.absolute().parent.resolve() / path.name
    for box in boxes:
        layout = DropboxLayout(box.root)
        failed = layout.failed.resolve()
        if absolute.is_relative_to(failed) and absolute != failed:
            return box, absolute.parent.relative_to(failed)
    roots = ", ".join(str(DropboxLayout(b.root).failed) for b in boxes) or "none configured"
    raise RetryRefused(
        f"{path} is not inside a drop box's failed/ folder ({roots}); "
        "give the path of a file under one of them",
        usage=True,
    )


def _check_original(path: Path) -> None:
    if path.name.endswith(RESULT_SUFFIXES):
        original = next(path.name.removesuffix(s) for s in RESULT_SUFFIXES if path.name.endswith(s))
        raise RetryRefused(
            f"{path.name} is a result file; retry the original instead: {path.with_name(original)}",
            usage=True,
        )
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise RetryRefused(f"{path} is not a regular file", usage=True)
    if not path.exists():
        raise RetryRefused(f"{path} does not exist", usage=True)


def _move_no_replace(source: Path, target: Path) -> None:
    """Move `source` to `target`, failing (FileExistsError) if `target` exists, even in a race."""
    try:
        # link() refuses an existing name atomically, unlike rename(); the second name lives
        # only until the unlink below, well inside the daemon's settle time.
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # A filesystem without hard links: check, then rename (the window is microseconds).
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "File exists", str(target)) from None
        source.rename(target)
        return
    source.unlink()


def _put_results_aside(failed_file: Path, now: datetime) -> tuple[Path | None, tuple[Path, ...]]:
    """Move the file's result files into `<file>.retried-<UTC>/`; return the folder and files."""
    results = [failed_file.with_name(failed_file.name + s) for s in RESULT_SUFFIXES]
    results = [r for r in results if os.path.lexists(r)]
    if not results:
        return None, ()
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = failed_file.with_name(f"{failed_file.name}.retried-{stamp}")
    n = 1
    while os.path.lexists(aside):  # retried twice within a second: never mix two failures
        n += 1
        aside = failed_file.with_name(f"{failed_file.name}.retried-{stamp}-{n}")
    aside.mkdir()
    for result in results:
        result.rename(aside / result.name)
    return aside, tuple(aside / r.name for r in results)


def target_route(box: DropboxConfig, to: str) -> Path:
    """`--to ROUTE` as a folder under inbox/; RetryRefused (usage) unless it parses in `box`."""
    route = PurePosixPath(to.strip().strip("/") or ".")
    if route.is_absolute() or any(
        part in ("..", "") or part.startswith(".") for part in route.parts
    ):
        raise RetryRefused(f"--to '{to}' must be a route folder path inside inbox/", usage=True)
    try:
        resolve_route(route, box.routes, box.defaults)
    except RouteError as exc:
        raise RetryRefused(
            f"--to '{to}' is no route of drop box '{box.name}': {exc.reason}", usage=True
        ) from None
    return Path(route)


def plan(
    path: Path, boxes: list[DropboxConfig], to: str | None = None
) -> tuple[DropboxConfig, Path, Path]:
    """The drop box, the failed file and its inbox target; RetryRefused (usage) if not a failed
    file or not a route `--to` may name."""
    box, route = locate(path, boxes)
    layout = DropboxLayout(box.root)
    failed_file = layout.failed / route / path.name
    _check_original(failed_file)
    into = route if to is None else target_route(box, to)
    return box, failed_file, layout.inbox / into / path.name


def retry(
    path: Path, boxes: list[DropboxConfig], now: datetime | None = None, *, to: str | None = None
) -> RetryDone:
    """Move a failed file back to its inbox route (or `to`), its result files put aside."""
    box, failed_file, inbox_file = plan(path, boxes, to)
    if os.path.lexists(inbox_file):
        raise RetryRefused(
            f"{inbox_file} already exists; nothing was moved. Wait until the daemon has taken "
            "it, or rename one of the two files"
        )
    inbox_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        _move_no_replace(failed_file, inbox_file)
    except FileExistsError:
        raise RetryRefused(f"{inbox_file} appeared meanwhile; nothing was moved") from None
    except OSError as exc:
        raise RetryRefused(f"cannot move {failed_file} to {inbox_file}: {exc}") from exc
    try:
        aside, kept = _put_results_aside(failed_file, now or datetime.now(UTC))
    except OSError as exc:
        raise RetryRefused(
            f"{failed_file.name} is back in {inbox_file.parent}, but its old result files could "
            f"not be put aside ({exc}); move them out of {failed_file.parent} by hand"
        ) from exc
    if box.ready_marker != "none":
        # The daemon waits for the marker in that mode; the file is complete, so say so.
        inbox_file.with_name(inbox_file.name + MARKER_SUFFIXES[box.ready_marker]).touch()
    layout = DropboxLayout(box.root)
    route = inbox_file.parent.relative_to(layout.inbox).as_posix()
    log.info(
        "file_retried",
        dropbox=box.name,
        route="" if route == "." else route,
        file=inbox_file.relative_to(layout.inbox).as_posix(),
        was=failed_file.relative_to(layout.root).as_posix(),
        results_aside=None if aside is None else str(aside),
    )
    return RetryDone(inbox_file, aside, kept)


def select(args: argparse.Namespace, boxes: list[DropboxConfig]) -> list[Path]:
    """The files to retry: the paths given, or every failed file the selectors match."""
    selectors = [args.dropbox, args.route, args.since]
    if args.paths:
        if any(value is not None for value in selectors):
            raise RetryRefused("give PATHs or --dropbox/--route/--since, not both", usage=True)
        return list(args.paths)
    if all(value is None for value in selectors):
        raise RetryRefused(
            "name the failed files (PATH ...) or pick them with --dropbox, --route or --since",
            usage=True,
        )
    names = [b.name for b in boxes]
    if args.dropbox is not None and args.dropbox not in names:
        known = ", ".join(names)
        raise RetryRefused(f"no drop box named '{args.dropbox}' (known: {known})", usage=True)
    try:
        since = None if args.since is None else parse_since(args.since, datetime.now(UTC))
    except ValueError as exc:
        raise RetryRefused(str(exc), usage=True) from None
    found: list[Path] = []
    for box in boxes:
        if args.dropbox in (None, box.name):
            layout = DropboxLayout(box.root)
            found += [f.path for f in failed_files(layout, route=args.route, since=since)]
    return found


def main(args: argparse.Namespace) -> int:
    """Move failed files back to their inbox; print where everything went."""
    try:
        config = load(args, secrets=False)
    except ConfigError as exc:
        print(f"dropbox-importer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    json = {"json": True, "console": False}.get(config.log_format)
    logs.configure(json=json, level=config.log_level, stream=sys.stderr)
    boxes = list(config.dropboxes.values())
    try:
        paths = select(args, boxes)
        # Every path checked before anything moves: a typo in the fifth leaves the first four.
        plans = [plan(path, boxes, args.to) for path in paths]
    except (RetryRefused, OSError) as exc:
        print(f"dropbox-importer: retry refused: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not plans:
        print("no failed file matches: nothing moved", file=sys.stderr)
        return EXIT_OK
    refused = 0
    for path, (_, failed_file, inbox_file) in zip(paths, plans, strict=True):
        if args.dry_run:
            print(f"would move {failed_file} -> {inbox_file}")
            continue
        try:
            done = retry(path, boxes, to=args.to)
        except RetryRefused as exc:
            refused += 1
            print(f"dropbox-importer: retry refused: {exc}", file=sys.stderr)
            continue
        print(f"moved back to the inbox: {done.inbox_file}")
        if done.aside is not None:
            print(f"  earlier result files kept in: {done.aside}")
    if len(plans) > 1 and not args.dry_run:
        print(f"{len(plans) - refused} of {len(plans)} file(s) moved back")
    return EXIT_REFUSED if refused else EXIT_OK
