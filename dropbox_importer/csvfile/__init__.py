"""Lead files as partners really send them: checks, parts for Marketo, annotated results.

    inspect_file(path, fmt, *, encoding, lookup_field, keys) -> Inspection   (or FileRejected)
    split_file(path, fmt, out_dir, *, max_bytes, encoding, skip_lines) -> list[Part]
    write_results(parts, marketo_files, out, *, original, fmt, reason_column, encoding,
                  local_failures) -> int
    suggest_fields(unknown, known) -> {unknown name: closest known name or None}

Line numbers are physical lines of the original, the header on line 1; a row is numbered by the
line it starts on (a quoted line break makes a row span several lines).
"""

from dropbox_importer.csvfile.annotate import LINE_COLUMN, write_results
from dropbox_importer.csvfile.fields import suggest_fields
from dropbox_importer.csvfile.inspect import Duplicates, Inspection, KeyColumns, inspect_file
from dropbox_importer.csvfile.source import FileRejected
from dropbox_importer.csvfile.split import DEFAULT_MAX_PART_BYTES, Part, count_records, split_file

__all__ = [
    "DEFAULT_MAX_PART_BYTES",
    "LINE_COLUMN",
    "Duplicates",
    "FileRejected",
    "Inspection",
    "KeyColumns",
    "Part",
    "count_records",
    "inspect_file",
    "split_file",
    "suggest_fields",
    "write_results",
]
