"""The result file: Marketo's failures mapped back to the original's lines and fields."""

from __future__ import annotations

import csv
import io
import random
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
    part: Part,
    pick: list[bool],
    fmt: ImportFormat,
    *,
    drop: bool,
    first: bool,
    sparse: bool = False,
    order: random.Random | None = None,
) -> tuple[bytes, list[str]]:
    """A failures file as Marketo may write it for the picked rows of a part, and its reasons
    (in the part's row order, whatever order the file lists them in).

    `drop`: empty trailing fields are left out (the reason then lands in the wrong column);
    `first`: the reason column comes first instead of last; `sparse`: columns empty in every
    listed row are left out of the header and the rows; `order`: rows listed shuffled.
    """
    rows = list(
        csv.reader(
            io.StringIO(part.path.read_bytes().decode("utf-8"), newline=""), delimiter=fmt.delimiter
        )
    )
    header, data = rows[0], rows[1:]
    chosen = [
        (number, row) for number, (row, keep) in enumerate(zip(data, pick, strict=False)) if keep
    ]
    keep = list(range(len(header)))
    if sparse:
        keep = [i for i in keep if any(row[i] for _, row in chosen)]
    listed = list(chosen)
    if order is not None:
        order.shuffle(listed)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=fmt.delimiter, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    kept_header = [header[i] for i in keep]
    writer.writerow([REASON, *kept_header] if first else [*kept_header, REASON])
    for number, row in listed:
        reason = f"part {part.index} row {number}: invalid email"
        fields = [row[i] for i in keep]
        full = len(fields)
        while drop and fields and fields[-1] == "":
            fields.pop()
        writer.writerow([reason, *fields] if first and len(fields) == full else [*fields, reason])
    return out.getvalue().encode("utf-8"), [
        f"part {part.index} row {number}: invalid email" for number, _ in chosen
    ]


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
    sparse=st.booleans(),
    shuffle=st.one_of(st.none(), st.integers(0, 1000)),
    max_bytes=st.sampled_from([300, 10_000]),
)
def test_every_failure_is_written_with_its_original_line_fields_and_reason(
    table: tuple[ImportFormat, str, list[list[str]], bytes],
    picks: list[bool],
    local_every: int,
    drop: bool,
    first: bool,
    sparse: bool,
    shuffle: int | None,
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
        order = None if shuffle is None else random.Random(shuffle)
        body, reasons = marketo_failures(
            part, pick, fmt, drop=drop, first=first, sparse=sparse, order=order
        )
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
    # Rows in the original's order; one Marketo lists but nobody sent comes after its part's.
    assert read_result(out, ImportFormat.CSV)[1:] == [
        ["3", "b@x.com", "Ben", "Bad"],
        ["", "z@x.com", "Zed", "Odd"],
    ]


def test_duplicates_dropped_columns_any_order_and_an_empty_file_map_to_their_lines(
    tmp_path: Path,
) -> None:
    original = tmp_path / "leads.csv"
    original.write_text(
        "Email,FirstName,Company,Notes\n"
        "dup@x.com,Dee,,\n"  # 2
        "ok@x.com,Oka,Acme,\n"  # 3
        "dup@x.com,Dee,,\n"  # 4: the same as line 2
        "dup@x.com,Dee,Other,\n"  # 5: the same email, another company
        "bad,Bea,,\n"  # 6
    )
    parts = split_file(original, ImportFormat.CSV, tmp_path)
    failures = tmp_path / "f.csv"
    # Strict Marketo: Notes (empty in every listed row) left out, rows shuffled.
    failures.write_text(
        f"Email,FirstName,Company,{REASON}\n"
        "bad,Bea,Invalid email address 'bad'\n"  # Company's empty field dropped too
        "dup@x.com,Dee,Other,Second\n"
        "dup@x.com,Dee,First\n"
        "dup@x.com,Dee,,Again\n"
    )
    out = tmp_path / "r.csv"
    written = write_results(
        parts, [failures], out, original=original, fmt=ImportFormat.CSV, reason_column=REASON
    )
    assert written == 4
    assert read_result(out, ImportFormat.CSV)[1:] == [
        ["2", "dup@x.com", "Dee", "", "", "First"],
        ["4", "dup@x.com", "Dee", "", "", "Again"],
        ["5", "dup@x.com", "Dee", "Other", "", "Second"],
        ["6", "bad", "Bea", "", "", "Invalid email address 'bad'"],
    ]
    empty = tmp_path / "404.csv"
    empty.write_bytes(b"")  # no rows: Marketo answered HTTP 404
    written = write_results(
        parts, [empty], tmp_path / "w.csv", original=original, fmt=ImportFormat.CSV,
        reason_column=REASON,
    )  # fmt: skip
    assert written == 0
    assert not (tmp_path / "w.csv").exists()


def test_rows_are_matched_under_the_header_that_was_sent(tmp_path: Path) -> None:
    original = tmp_path / "leads.csv"
    original.write_text("E-Mail Address,Vorname\na@x.com,Ann\nb@x.com,Ben\n")
    parts = split_file(original, ImportFormat.CSV, tmp_path)
    # What was sent carried Marketo's names (a header mapping renamed the columns).
    [part] = parts
    part.path.write_text("email,firstName\na@x.com,Ann\nb@x.com,Ben\n")
    failures = tmp_path / "f.csv"
    failures.write_text(f"firstName,EMAIL,{REASON}\nBen,b@x.com,Bad\n")
    out = tmp_path / "r.csv"
    write_results(
        parts, [failures], out, original=original, fmt=ImportFormat.CSV, reason_column=REASON
    )
    assert read_result(out, ImportFormat.CSV) == [
        [LINE_COLUMN, "E-Mail Address", "Vorname", REASON],
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


def test_warnings_after_a_row_failed_locally_keep_their_own_line(tmp_path: Path) -> None:
    # Line 3 failed locally (never sent); Marketo warns about the row on line 5.
    original = tmp_path / "leads.csv"
    original.write_text("email,company\na@x.com,A\n,B\nc@x.com,C\nd@x.com,D\n")
    (part,) = split_file(original, ImportFormat.CSV, tmp_path, skip_lines=frozenset({3}))
    warnings = tmp_path / "warnings"
    warnings.write_text("email,company,Import Warning Reason\nd@x.com,D,truncated\n")
    out = tmp_path / "out"
    written = write_results(
        [part],
        [warnings],
        out,
        original=original,
        fmt=ImportFormat.CSV,
        reason_column="Import Warning Reason",
        unsent={3},
    )
    assert written == 1
    assert read_result(out, ImportFormat.CSV)[1] == ["5", "d@x.com", "D", "truncated"]
