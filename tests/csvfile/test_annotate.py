"""The result file: Marketo's failures mapped back to the original's lines and fields."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from csvfile_tables import SETTINGS, start_lines, tables
from hypothesis import given
from hypothesis import strategies as st

from dropbox_importer.csvfile import (
    LINE_COLUMN,
    Part,
    inspect_file,
    split_file,
    suggest_fields,
    write_results,
)
from dropbox_importer.marketo.models import ImportFormat

REASON = "Import Failure Reason"


def marketo_failures(
    part: Part, pick: list[bool], fmt: ImportFormat, *, drop: bool, first: bool
) -> tuple[bytes, list[str]]:
    """A failures file as Marketo may write it for the picked rows of a part, and its reasons.

    `drop`: empty trailing fields are left out (the reason then lands in the wrong column);
    `first`: the reason column comes first instead of last.
    """
    rows = list(
        csv.reader(
            io.StringIO(part.path.read_bytes().decode("utf-8"), newline=""), delimiter=fmt.delimiter
        )
    )
    header, data = rows[0], rows[1:]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=fmt.delimiter, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow([REASON, *header] if first else [*header, REASON])
    reasons = []
    for number, (row, chosen) in enumerate(zip(data, pick, strict=False)):
        if not chosen:
            continue
        reason = f"part {part.index} row {number}: invalid email"
        reasons.append(reason)
        fields = list(row)
        while drop and fields and fields[-1] == "":
            fields.pop()
        writer.writerow(
            [reason, *fields] if first and len(fields) == len(row) else [*fields, reason]
        )
    return out.getvalue().encode("utf-8"), reasons


def read_result(path: Path, fmt: ImportFormat) -> list[list[str]]:
    """Rows of a result file (header included)."""
    text = path.read_bytes().decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter))


@SETTINGS
@given(
    table=tables(),
    picks=st.lists(st.booleans(), min_size=40, max_size=40),
    local_every=st.sampled_from([0, 3]),
    drop=st.booleans(),
    first=st.booleans(),
    max_bytes=st.sampled_from([300, 10_000]),
)
def test_every_failure_is_written_with_its_original_line_fields_and_reason(
    table: tuple[ImportFormat, str, list[list[str]], bytes],
    picks: list[bool],
    local_every: int,
    drop: bool,
    first: bool,
    max_bytes: int,
    tmp_path: Path,
) -> None:
    fmt, _, rows, data = table
    # tmp_path is shared by every example hypothesis runs: each gets its own folder.
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    original = case / "leads.csv"
    original.write_bytes(data)
    lines = start_lines(data, fmt)[1:]
    local = {line: "lookup field is empty" for line in lines[::local_every]} if local_every else {}
    parts = split_file(original, fmt, case, max_bytes=max_bytes, skip_lines=frozenset(local))
    sent = [(line, row) for line, row in zip(lines, rows[1:], strict=True) if line not in local]
    expected = [
        (line, row, reason)
        for line, reason in local.items()
        for row in [rows[1:][lines.index(line)]]
    ]
    files: list[Path | None] = []
    offset = 0
    for part in parts:
        pick = picks[offset % 40 :] + picks
        body, reasons = marketo_failures(part, pick, fmt, drop=drop, first=first)
        chosen = [sent[offset + i] for i in range(part.rows) if pick[i]]
        expected += [
            (line, row, reason) for (line, row), reason in zip(chosen, reasons, strict=True)
        ]
        offset += part.rows
        if reasons:
            files.append(case / f"failures{part.index}.csv")
            files[-1].write_bytes(body)
        else:
            files.append(None)
    out = case / "leads.failures.csv"
    written = write_results(
        parts, files, out, original=original, fmt=fmt, reason_column=REASON, local_failures=local
    )
    assert written == len(expected)
    if not expected:
        assert not out.exists()
        return
    result = read_result(out, fmt)
    assert result[0] == [LINE_COLUMN, *rows[0], REASON]
    assert result[1:] == [[str(line), *row, reason] for line, row, reason in sorted(expected)]


def test_result_keeps_the_originals_encoding_bom_and_line_ends(tmp_path: Path) -> None:
    original = tmp_path / "leads.csv"
    original.write_bytes("Email;Name\r\na@x.de;Jürgen\r\n;Groß\r\n".encode("cp1252"))
    parts = split_file(
        original, ImportFormat.SSV, tmp_path, encoding="cp1252", skip_lines=frozenset({3})
    )
    failures = tmp_path / "f.csv"
    failures.write_text("Email;Name;Import Failure Reason\na@x.de;Jürgen;Bad email\n", "utf-8")
    out = tmp_path / "leads.failures.csv"
    written = write_results(
        parts,
        [failures],
        out,
        original=original,
        fmt=ImportFormat.SSV,
        reason_column=REASON,
        encoding="cp1252",
        local_failures={3: "lookup field is empty"},
    )
    assert written == 2
    assert out.read_bytes() == (
        "Line;Email;Name;Import Failure Reason\r\n2;a@x.de;Jürgen;Bad email\r\n"
        "3;;Groß;lookup field is empty\r\n"
    ).encode("cp1252")


def test_unmatched_marketo_row_is_kept_without_a_line(tmp_path: Path) -> None:
    original = tmp_path / "leads.csv"
    original.write_bytes(b"\xef\xbb\xbfEmail,Name\na@x.com,Ann\nb@x.com,Ben\n")
    parts = split_file(original, ImportFormat.CSV, tmp_path)
    failures = tmp_path / "f.csv"
    failures.write_text(f"Email,Name,{REASON}\nz@x.com,Zed,Odd\nb@x.com,Ben,Bad\n", "utf-8")
    out = tmp_path / "r.csv"
    assert (
        write_results(
            parts, [failures], out, original=original, fmt=ImportFormat.CSV, reason_column=REASON
        )
        == 2
    )
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_result(out, ImportFormat.CSV)[1:] == [
        ["", "z@x.com", "Zed", "Odd"],
        ["3", "b@x.com", "Ben", "Bad"],
    ]


def test_suggestions_are_case_insensitive_and_none_when_nothing_is_close() -> None:
    known = ["Email", "FirstName", "LastName", "Company"]
    assert suggest_fields(["Emial", "firstname", "Compnay", "Favourite Colour"], known) == {
        "Emial": "Email",
        "firstname": "FirstName",
        "Compnay": "Company",
        "Favourite Colour": None,
    }


def test_excel_padding_is_not_sent_and_failures_keep_their_original_lines(tmp_path: Path) -> None:
    original = tmp_path / "leads.csv"
    original.write_text(
        "Email,Name,,\n"
        "a@x.com,Ann,,\n"
        ",,,\n"  # Excel's empty row: blank, never sent, never failed
        "bad-email,Bob,,\n"
        ",,,\n"
    )
    inspection = inspect_file(original, ImportFormat.CSV)
    assert inspection.blank_lines == [3, 5] and inspection.ignored_columns == [3, 4]
    [part] = split_file(
        original,
        ImportFormat.CSV,
        tmp_path,
        skip_lines=inspection.skip_lines(),
        header=inspection.header[: inspection.named_columns],
        keep=tuple(range(inspection.named_columns)),
    )
    assert part.path.read_text() == "Email,Name\na@x.com,Ann\nbad-email,Bob\n"
    assert part.rows == 2
    failures = tmp_path / "f.csv"
    failures.write_text("Email,Name,Import Failure Reason\nbad-email,Bob,Invalid email\n")
    out = tmp_path / "leads.failures.csv"
    assert write_results([part], [failures], out, original=original, fmt=ImportFormat.CSV,
                         reason_column=REASON) == 1  # fmt: skip
    assert (
        out.read_text()
        == "Line,Email,Name,,,Import Failure Reason\n4,bad-email,Bob,,,Invalid email\n"
    )
