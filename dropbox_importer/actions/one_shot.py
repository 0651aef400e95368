"""Import one file in the foreground, for an operator: `import FILE --route ROUTE`.

The same checks as the daemon (route, file shape, header and targets when the drop box asks for
preflight), the same splitting under Marketo's size cap, then the batches are created and polled
with their status shown: updated in place on a terminal, one line per change otherwise. Failed
and warned rows are written beside FILE (`FILE.failures.csv`, `FILE.warnings.csv`; a timestamp
is added rather than overwrite an earlier run's). The file itself is never moved or changed, and
the journal is not touched: the daemon does not know about this import.

Exit codes: 0 every batch Complete without failed rows, 1 anything else (file refused, batch
Failed, rows failed), 2 usage or config error.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TextIO

from dropbox_importer import logs
from dropbox_importer.actions.check import open_client
from dropbox_importer.actions.options import add_config_option, load
from dropbox_importer.config import Config, ConfigError, DropboxConfig
from dropbox_importer.csvfile import Duplicates, Inspection, Part, write_results
from dropbox_importer.csvfile.header import ColumnRules
from dropbox_importer.dropbox.layout import DropboxLayout, result_paths, unique_path
from dropbox_importer.dropbox.policy import Policy, RouteRefused
from dropbox_importer.dropbox.routes import RouteError
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.errors import ImportInProgress, MarketoError
from dropbox_importer.marketo.models import BatchState, BatchStatus, ImportParams
from dropbox_importer.pipeline.preflight import Catalog
from dropbox_importer.pipeline.settle import FAILURE_REASON, WARNING_REASON
from dropbox_importer.pipeline.submit import EMPTY_KEY_REASONS, Cut, Rejected, check_and_cut, routed

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The command line names something that does not exist or does not parse."""


class Refused(Exception):  # noqa: N818 - what happens to the file
    """The file cannot be imported as routed; the message says why and what to do."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `import`'s options."""
    add_config_option(parser)
    parser.add_argument("file", type=Path, help="the lead file to import")
    parser.add_argument(
        "--route",
        required=True,
        help='the route folder path that sets the parameters, e.g. "csv,list=1234" ("" for none)',
    )
    parser.add_argument(
        "--dropbox",
        help="whose defaults, named routes and instance to use (default: the one drop box, or "
        "the only one where the route is named or its folder exists)",
    )


def described(params: ImportParams) -> str:
    """What an import sends, in Marketo's terms: `format=csv listId=1001`, `programId=1001 …`."""
    query = params.query()
    where = {"programId": params.program_id, "apiName": params.object_name}
    shown = {"format": query.pop("format")}
    shown |= {key: str(value) for key, value in where.items() if value is not None}
    return " ".join(f"{key}={value}" for key, value in (shown | query).items())


def choose_dropbox(config: Config, name: str | None, route: str = "") -> DropboxConfig:
    """The named drop box; else the only one, or the only one where `route` exists.

    A route exists in a drop box when its first folder is a route named in that box's config,
    or when the folder inbox/ROUTE is there. UsageError when that is ambiguous or unknown.
    """
    names = ", ".join(sorted(config.dropboxes))
    if name is not None:
        if name not in config.dropboxes:
            raise UsageError(f"no drop box named '{name}' in the config (known: {names})")
        return config.dropboxes[name]
    if len(config.dropboxes) == 1:
        return next(iter(config.dropboxes.values()))
    path = PurePosixPath(route.strip("/") or ".")
    first = path.parts[0] if path.parts else ""
    having = [
        box
        for box in config.dropboxes.values()
        if (first and first in box.routes)
        or (path.parts and (DropboxLayout(box.root).inbox / path).is_dir())
    ]
    if len(having) == 1:
        return having[0]
    if having:
        found = ", ".join(sorted(box.name for box in having))
        raise UsageError(
            f"route '{route}' exists in several drop boxes ({found}): choose --dropbox"
        )
    raise UsageError(
        f"the config has several drop boxes ({names}) and none names a route '{route}' nor has "
        "it under inbox/: choose --dropbox"
    )


def resolve_params(box: DropboxConfig, route: str, file: Path) -> tuple[ImportParams, Policy]:
    """The import parameters and rules `route` gives `file` in this drop box, as for a file
    dropped in that folder; UsageError if the folder won't parse or the policy refuses it."""
    try:
        return routed(PurePosixPath(route.strip("/") or "."), file.name, box)
    except (RouteError, RouteRefused) as exc:
        raise UsageError(f"route '{route}': {exc.reason}") from exc


def prepare_parts(
    file: Path,
    params: ImportParams,
    box: DropboxConfig,
    catalog: Catalog | None,
    out: Path,
    rules: ColumnRules,
) -> Cut:
    """Check the file (and, with a catalog, its header and targets); cut it into parts."""
    try:
        return check_and_cut(file, params, box, out, catalog, rules)
    except Rejected as exc:
        raise Refused(exc.reason) from exc


def describe_reading(inspection: Inspection) -> list[str]:
    """What was changed on the way to Marketo, one line each: encoding, blank rows, columns."""
    lines = []
    if inspection.converted or inspection.encoding_by != "utf-8":
        how = {"bom": "its byte-order mark", "declared": "the drop box's encoding"}
        by = how.get(inspection.encoding_by, "detection among the drop box's candidates")
        lines.append(
            f"read as {inspection.encoding} (by {by})"
            + (", sent as UTF-8" if inspection.converted else "")
        )
    if inspection.blank_lines:
        lines.append(f"{len(inspection.blank_lines)} blank row(s) skipped")
    if inspection.ignored_columns:
        columns = ", ".join(str(c) for c in inspection.ignored_columns)
        lines.append(f"unnamed empty column(s) {columns} left out")
    return lines


def duplicates_line(found: Duplicates, lookup_field: str, shown: int = 5) -> str:
    """One line saying which rows repeat an earlier row's lookup value."""
    pairs = ", ".join(f"{line} (same as {first})" for line, first in found.lines[:shown])
    more = ", …" if found.rows > shown else ""
    return (
        f"{found.rows} row(s) repeat an earlier row's {lookup_field}, so Marketo keeps the "
        f"last: line {pairs}{more}"
    )


class Progress:
    """Prints the batches' summary when it changes: in place on a terminal, else line by line."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last = ""

    def show(self, statuses: list[BatchStatus | None]) -> None:
        """Print the summary of these statuses if it differs from the last one printed."""
        states = Counter("Submitted" if s is None else s.status.value for s in statuses)
        shown = [f"{states[n]} {n.lower()}" for n in ("Complete", "Failed", "Importing", "Queued")]
        if states["Submitted"]:
            shown.append(f"{states['Submitted']} submitted")
        known = [s for s in statuses if s is not None]
        line = (
            f"{len(statuses)} batch(es): " + ", ".join(x for x in shown if not x.startswith("0 "))
            + f" | processed {sum(s.leads_processed for s in known)}"
            f", failed {sum(s.rows_failed for s in known)}"
            f", warnings {sum(s.rows_with_warning for s in known)}"
        )  # fmt: skip
        if line == self._last:
            return
        if self._tty:
            self._stream.write("\r" + line.ljust(len(self._last)))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._last = line

    def end(self) -> None:
        """Finish the in-place line."""
        if self._tty and self._last:
            self._stream.write("\n")
            self._stream.flush()


def run_batches(
    client: MarketoClient, parts: list[Part], params: ImportParams, interval: float, out: TextIO
) -> list[BatchStatus]:
    """Create one batch per part and poll them all until each is Complete or Failed.

    A part whose static list is being imported to (by the previous part's batch, or by another
    integration: 1019) is created once the list frees, between two rounds of polling.
    """
    waiting = list(parts)
    batch_ids: list[int] = []
    statuses: list[BatchStatus | None] = []
    progress = Progress(out)
    while True:
        while waiting:
            try:
                batch_ids.append(client.create_import(waiting[0].path, params))
            except ImportInProgress:
                break  # the list frees when a batch ends: poll, then try again
            statuses.append(None)
            part = waiting.pop(0)
            out.write(f"part {part.index + 1}/{len(parts)}: batch {batch_ids[-1]} created\n")
        for i, batch_id in enumerate(batch_ids):
            current = statuses[i]
            if current is None or not current.status.terminal:
                statuses[i] = client.batch_status(batch_id)
        progress.show(statuses)
        done = [s for s in statuses if s is not None and s.status.terminal]
        if not waiting and len(done) == len(parts):
            progress.end()
            return done
        time.sleep(interval)  # Marketo's recommended polling pace, not synchronisation


def write_row_files(
    client: MarketoClient,
    file: Path,
    params: ImportParams,
    encoding: str,
    parts: list[Part],
    statuses: list[BatchStatus],
    local: dict[int, str],
    scratch: Path,
    sent: Sequence[int] | None = None,
) -> list[Path]:
    """Fetch Marketo's failed and warned rows; write them, merged, beside `file`."""
    finals = result_paths(file, params.format)
    written = []
    for kind, final, column, extra in (
        ("failures", finals.failures, FAILURE_REASON, local),
        ("warnings", finals.warnings, WARNING_REASON, {}),
    ):
        fetched: list[Path | None] = []
        for status in statuses:
            count = status.rows_failed if kind == "failures" else status.rows_with_warning
            into = scratch / f"{kind}-{status.batch_id}"
            download = client.download_failures if kind == "failures" else client.download_warnings
            if count:
                download(status.batch_id, into, target=params.target)
            fetched.append(into if count else None)
        if not any(fetched) and not extra:
            continue
        destination = unique_path(final, os.path.lexists)
        rows = write_results(
            parts, fetched, destination, original=file, fmt=params.format,
            reason_column=column, encoding=encoding, local_failures=extra, sent=sent,
            lookup=params.lookup_field or "email",
        )  # fmt: skip
        if rows:
            written.append(destination)
    return written


def import_file(
    config: Config,
    box: DropboxConfig,
    file: Path,
    route: tuple[ImportParams, Policy],
    out: TextIO,
) -> int:
    """Check, send and follow one file; write its row files; return the exit code."""
    instance = config.instances[box.instance]
    with open_client(instance) as client, tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        catalog = Catalog(client) if box.preflight else None
        params, policy = route
        cut = prepare_parts(file, params, box, catalog, scratch / "parts", policy.columns)
        params, parts, local = cut.params, cut.parts, cut.local_failures
        sent = cut.header.sent if cut.header is not None and cut.header.drops_columns else None
        rows = sum(p.rows for p in parts)
        out.write(f"{file.name}: {rows} row(s) in {len(parts)} part(s), {described(params)}\n")
        encoding = box.encoding
        if cut.inspection is not None:
            encoding = cut.inspection.encoding  # as the checks decided
            for line in describe_reading(cut.inspection):
                out.write(line + "\n")
        empty = [reason for reason in local.values() if reason in EMPTY_KEY_REASONS]
        for reason in sorted(set(empty)):
            out.write(f"{empty.count(reason)} row(s) left out: their {reason}\n")
        if len(local) > len(empty):
            out.write(f"{len(local) - len(empty)} row(s) left out: Marketo refuses their email\n")
        if cut.duplicates.rows:
            out.write(duplicates_line(cut.duplicates, cut.lookup_field) + "\n")
        statuses = run_batches(client, parts, params, instance.poll_min_seconds, out)
        written = write_row_files(
            client, file, params, encoding, parts, statuses, local, scratch, sent
        )
    for status in statuses:
        if status.status is BatchState.FAILED or status.message:
            out.write(f"batch {status.batch_id} {status.status.value}: {status.message}\n")
    for path in written:
        out.write(f"written: {path}\n")
    failed_rows = sum(s.rows_failed for s in statuses) + len(local)
    clean = all(s.status is BatchState.COMPLETE for s in statuses) and failed_rows == 0
    out.write(("imported" if clean else "NOT fully imported") + f": {failed_rows} row(s) failed\n")
    return EXIT_OK if clean else EXIT_PROBLEMS


def main(args: argparse.Namespace) -> int:
    """Import FILE through ROUTE's parameters; 0 only if every row went in."""
    try:
        config = load(args)
        box = choose_dropbox(config, args.dropbox, args.route)
        if not args.file.is_file():
            raise UsageError(f"{args.file} is not a file")
        route = resolve_params(box, args.route, args.file)
    except (ConfigError, UsageError) as exc:
        print(f"dropbox-importer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Warnings only, on stderr: progress and results own stdout.
    logs.configure(json=config.log_format == "json", level="warning", stream=sys.stderr)
    try:
        return import_file(config, box, args.file, route, sys.stdout)
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stdout)
    except MarketoError as exc:
        print(f"Marketo refused the import: {exc}", file=sys.stdout)
    except KeyboardInterrupt:
        # Batches already created go on in Marketo; their ids were printed when created.
        print("\ninterrupted: created batches continue in Marketo", file=sys.stderr)
    return EXIT_PROBLEMS
