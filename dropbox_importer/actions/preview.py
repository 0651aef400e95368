"""What would happen to a file, without sending it: `preview FILE --route ROUTE`.

The same steps the daemon takes before a Marketo import slot is spent: the route folder and
the drop box's policy, the header mapped to lead fields (what is sent, ignored, denied or
unknown), the file's checks, the rows that fail here (with their lines), the rows that repeat a
lookup value, and the parts it would be cut into. Marketo is only read (describe, lists,
partitions; an embedded instance runs its sandbox in-process); nothing is imported, the file is
never moved or changed and the journal is not touched.

Exit codes: 0 the file would be sent, 1 it would be refused, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import TextIO

from dropbox_importer import logs
from dropbox_importer.actions.check import LOOKUP_ERRORS, open_client
from dropbox_importer.actions.one_shot import (
    UsageError,
    choose_dropbox,
    described,
    duplicates_line,
)
from dropbox_importer.actions.options import add_config_option, load
from dropbox_importer.config import ConfigError, DropboxConfig
from dropbox_importer.csvfile import FileRejected
from dropbox_importer.csvfile.header import Fate, HeaderMap, map_header, read_header
from dropbox_importer.dropbox.policy import Policy, RouteRefused
from dropbox_importer.dropbox.routes import RouteError
from dropbox_importer.marketo.errors import RequestRejected
from dropbox_importer.marketo.models import ImportParams
from dropbox_importer.pipeline.preflight import Catalog, PreflightError, key_columns, mapping_fields
from dropbox_importer.pipeline.submit import Cut, Rejected, check_and_cut, routed

EXIT_SENT, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
# Rows listed one per line; the rest are counted.
SHOWN = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `preview`'s options."""
    add_config_option(parser)
    parser.add_argument("file", type=Path, help="the lead file to look at")
    parser.add_argument(
        "--route",
        required=True,
        help='the route folder path the file would be dropped in, e.g. "acme-emea" ("" for none)',
    )
    parser.add_argument("--dropbox", help="whose policy, named routes and instance to use")


def header_table(header: HeaderMap) -> list[str]:
    """The header as mapped: one row per column, with what is sent and why."""
    rows = [["COLUMN", "SENT AS", "FATE", "WHY"]]
    for column in header.columns:
        sent_as = column.field if column.fate is Fate.SENT and column.field else "-"
        why = column.how
        if column.candidates:
            why += ": " + " or ".join(column.candidates)
        rows.append([column.original.strip() or "(no name)", sent_as, column.fate.value, why])
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)), row[3]])
        for row in rows
    ]


def show_cut(cut: Cut, max_part_bytes: int, out: TextIO) -> None:
    """The rows failing here, the repeated lookups and the parts."""
    if cut.local_failures:
        out.write(f"rows that fail here and are never sent: {len(cut.local_failures)}\n")
        for line, reason in list(cut.local_failures.items())[:SHOWN]:
            out.write(f"  line {line}: {reason}\n")
        if len(cut.local_failures) > SHOWN:
            out.write(f"  … and {len(cut.local_failures) - SHOWN} more\n")
    if cut.duplicates.rows:
        out.write(duplicates_line(cut.duplicates, cut.lookup_field, SHOWN) + "\n")
    out.write(f"parts: {len(cut.parts)} (each at most max_part_bytes, {max_part_bytes} bytes)\n")
    for part in cut.parts:
        out.write(
            f"  part {part.index + 1}: {part.rows} row(s) from line {part.first_line}, "
            f"{part.bytes} bytes\n"
        )


def preview(
    box: DropboxConfig,
    file: Path,
    route: tuple[ImportParams, Policy],
    catalog: Catalog | None,
    out: TextIO,
) -> int:
    """Show what would happen to `file` in this route; return the exit code."""
    params, policy = route
    if catalog is None:
        out.write("preflight is off for this drop box: display names are not mapped\n")
    names = read_header(file, params.format, box.encoding)
    if names is not None:
        try:
            # Each kind's own fields: lead; lead and program member; the custom object's.
            fields = None if catalog is None else mapping_fields(params, catalog)
            keys = key_columns(params, catalog)
        except PreflightError as exc:
            out.write(f"would be refused: {exc}\n")
            return EXIT_REFUSED
        lookup = keys.names[0] if keys.names else ""
        header = map_header(names, fields, policy.columns, lookup=lookup)
        out.write("\n".join(header_table(header)) + "\n\n")
        out.write("header sent to Marketo: " + params.format.delimiter.join(header.sent_names))
        out.write("\n")
    with tempfile.TemporaryDirectory(prefix="dropbox-importer-preview-") as tmp:
        try:
            cut = check_and_cut(file, params, box, Path(tmp) / "parts", catalog, policy.columns)
        except Rejected as exc:
            out.write(f"would be refused: {exc.reason}\n")
            return EXIT_REFUSED
        show_cut(cut, box.max_part_bytes, out)
    rows = sum(part.rows for part in cut.parts)
    out.write(f"would be sent: {rows} row(s) in {len(cut.parts)} part(s); nothing was sent\n")
    return EXIT_SENT


def main(args: argparse.Namespace) -> int:
    """Preview FILE in ROUTE; 0 if it would be sent, 1 if refused."""
    try:
        config = load(args)
        box = choose_dropbox(config, args.dropbox, args.route)
        if not args.file.is_file():
            raise UsageError(f"{args.file} is not a file")
    except (ConfigError, UsageError) as exc:
        print(f"dropbox-importer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(json=config.log_format == "json", level="warning", stream=sys.stderr)
    out = sys.stdout
    folder = args.route.strip("/")
    out.write(f"{args.file.name} in inbox/{folder + '/' if folder else ''} of drop box {box.name}")
    try:
        route = routed(PurePosixPath(folder or "."), args.file.name, box)
    except (RouteError, RouteRefused) as exc:
        out.write(f"\nwould be refused: {exc.reason}\n")
        return EXIT_REFUSED
    out.write(f": {described(route[0])}\n\n")
    try:
        with open_client(config.instances[box.instance]) as client:
            catalog = Catalog(client) if box.preflight else None
            return preview(box, args.file, route, catalog, out)
    except FileRejected as exc:
        out.write(f"would be refused: {exc.reason}\n")
    except RequestRejected as exc:
        out.write(f"Marketo refused a lookup: {exc}\n")
    except LOOKUP_ERRORS as exc:
        out.write(f"Marketo could not be asked: {exc}\n")
    return EXIT_REFUSED
