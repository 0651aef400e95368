"""The checks: where exactly a file goes wrong, and what a clean file looks like."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pytest
from csvfile_tables import SETTINGS, start_lines, tables
from hypothesis import given
from hypothesis import strategies as st

from dropbox_importer.csvfile import FileRejected, inspect_file, split_file
from dropbox_importer.csvfile.source import iter_text, open_source
from dropbox_importer.marketo.models import ImportFormat

TEXT = st.text(alphabet=st.sampled_from(list("ab,\n€日💡é")), max_size=60)


@SETTINGS
@given(
    before=TEXT,
    after=TEXT,
    bad=st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\x80"]),
    block=st.integers(1, 9),
)
def test_invalid_utf8_is_reported_at_its_exact_line_and_byte(
    before: str, after: str, bad: bytes, block: int, tmp_path: Path
) -> None:
    head = before.encode()
    path = tmp_path / "bad.csv"
    # "x" after the bad bytes: an unfinished sequence must not be completed by what follows.
    path.write_bytes(head + bad + b"x" + after.encode())
    with pytest.raises(FileRejected) as caught:
        "".join(iter_text(open_source(path), block_size=block))
    line = before.count("\n") + 1
    assert caught.value.line == line
    assert caught.value.reason.startswith(f"line {line}, byte {len(head)}: not UTF-8")


@SETTINGS
@given(text=TEXT, block=st.integers(1, 9))
def test_multibyte_characters_split_across_blocks_decode_unchanged(
    text: str, block: int, tmp_path: Path
) -> None:
    path = tmp_path / "ok.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode() if text else b"E")
    expected = text or "E"
    assert "".join(iter_text(open_source(path), block_size=block)) == expected


@SETTINGS
@given(table=tables())
def test_whatever_inspect_accepts_the_splitter_sends_row_for_row(
    table: tuple[ImportFormat, str, list[list[str]], bytes], tmp_path: Path
) -> None:
    fmt, newline, rows, data = table
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    source = case / "in.csv"
    source.write_bytes(data)
    result = inspect_file(source, fmt, lookup_field="h0")
    assert result.header == rows[0]
    assert result.rows == len(rows) - 1
    assert result.bom == data.startswith(b"\xef\xbb\xbf")
    assert result.newline == {"\n": "lf", "\r\n": "crlf"}[newline]
    parts = split_file(source, fmt, case, max_bytes=500)
    assert sum(part.rows for part in parts) == result.rows
    assert [p.first_line for p in parts][:1] == start_lines(data, fmt)[1:2]


def test_clean_file_reports_header_rows_encoding_and_local_failures(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(b"\xef\xbb\xbfEMAIL,Name\r\na@x.com,Ann\r\n  ,Ben\r\n")
    result = inspect_file(path, ImportFormat.CSV)
    assert (result.header, result.rows, result.bom) == (["EMAIL", "Name"], 2, True)
    assert (result.encoding, result.newline) == ("utf-8", "crlf")
    assert (result.empty_lookup_lines, result.lookup_field) == ([3], "EMAIL")


def test_emails_marketo_refuses_are_local_failures_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "id, Email ,Name\n1,ok@example.com,Ok\n2,zoë@example.com,Zoë\n3,ann@bücher.de,Ann\n"
        '4,"a\nb@é.de",Multi\n5,,NoEmail\n',
        encoding="utf-8",
    )
    result = inspect_file(path, ImportFormat.CSV, lookup_field="id")
    assert result.rows == 5 and result.empty_lookup_lines == []
    assert result.bad_email_lines == {
        3: "email 'zoë@example.com' has characters Marketo refuses (ë): use an address "
        "written in ASCII letters, digits and punctuation only",
        4: "email 'ann@bücher.de' has characters Marketo refuses (ü): write the domain in its "
        "ASCII form, ann@xn--bcher-kva.de",
        5: "email 'a\nb@é.de' has characters Marketo refuses (é): write the domain in its "
        "ASCII form, a\nb@xn--9ca.de",
    }
    # A row whose lookup value is empty is reported for that alone.
    path.write_text("email,Name\nzoë@example.com,Zoë\n,Empty\n", encoding="utf-8")
    both = inspect_file(path, ImportFormat.CSV)
    assert (both.empty_lookup_lines, list(both.bad_email_lines)) == ([3], [2])


def test_quote_opened_in_a_multiline_value_names_the_line_it_opened_on(tmp_path: Path) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [["Email", "Address"], ["a@x.com", "1 Way\nLeeds"], ["b@x.com", "2 Road\nYork"]]
    )
    path = tmp_path / "leads.csv"
    path.write_text(out.getvalue() + 'c@x.com,"3 Lane\nHull\nd@x.com,x\n', encoding="utf-8")
    with pytest.raises(FileRejected) as caught:
        inspect_file(path, ImportFormat.CSV)
    assert caught.value.line == 6
    assert caught.value.reason.startswith("line 6: a quoted value opens here and is never closed")


def test_unknown_declared_encoding_is_an_operator_problem(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(b"Email\na@x.com\n")
    with pytest.raises(FileRejected, match="unknown encoding 'latin-9x'"):
        inspect_file(path, ImportFormat.CSV, encoding="latin-9x")


def test_blank_rows_anywhere_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("Email,Name\n,\na@x.com,Ann\n\n  ,  \nb@x.com,Ben\n,\n   \n")
    result = inspect_file(path, ImportFormat.CSV)
    assert result.rows == 2
    assert result.blank_lines == [2, 4, 5, 7, 8]
    # The trailing line of spaces is trimmed by the byte splitter; the rest must be skipped.
    assert result.skip_lines() == frozenset({2, 4, 5, 7})
    parts = split_file(path, ImportFormat.CSV, tmp_path, skip_lines=result.skip_lines())
    assert parts[0].path.read_text() == "Email,Name\na@x.com,Ann\nb@x.com,Ben\n"


def test_trailing_unnamed_columns_are_padding_only_while_empty(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("Email,Name,,\na@x.com,Ann,,\nb@x.com,Ben\nc@x.com,Cid,, \n")
    result = inspect_file(path, ImportFormat.CSV)
    assert result.ignored_columns == [3, 4] and result.named_columns == 2
    assert result.rows == 3  # a row without the padding is as good as one with it


def test_an_unnamed_column_holding_data_is_named_by_number_letter_and_line(tmp_path: Path) -> None:
    header = ",".join(["Email"] + [f"F{n}" for n in range(2, 27)]) + ",,"
    path = tmp_path / "leads.csv"
    path.write_text(
        header + "\n" + "a@x.com" + "," * 25 + ",,\n" + "b@x.com" + "," * 27 + "Ooops\n"
    )
    with pytest.raises(FileRejected) as caught:
        inspect_file(path, ImportFormat.CSV)
    assert caught.value.line == 3
    assert caught.value.reason.startswith("line 1: column 28 (AB) of the header has no name")
    assert "line 3 has a value in it ('Ooops')" in caught.value.reason


def test_a_header_of_delimiters_alone_is_no_header(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(",,\na@x.com,Ann,\n")
    with pytest.raises(FileRejected) as caught:
        inspect_file(path, ImportFormat.CSV)
    assert "no column names" in caught.value.reason


def test_rows_repeating_an_earlier_lookup_value_are_reported_with_the_first_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dupes.csv"
    path.write_text(
        "id,email\n1,a@example.com\n2,b@example.com\n3, A@Example.com \n4,\n5,b@example.com\n"
        "6,a@example.com\n"
    )
    found = inspect_file(path, ImportFormat.CSV).duplicates
    assert (found.rows, found.lines, found.complete) == (3, ((4, 2), (6, 3), (7, 2)), True)
    assert inspect_file(path, ImportFormat.CSV, lookup_field="id").duplicates.rows == 0


def test_duplicates_listed_are_capped_but_all_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dropbox_importer.csvfile import inspect as module

    monkeypatch.setattr(module, "MAX_DUPLICATES_LISTED", 2)
    monkeypatch.setattr(module, "MAX_VALUES_TRACKED", 3)
    path = tmp_path / "many.csv"
    values = ["a", "b", "a", "c", "d", "a", "d", "b"]
    path.write_text("email\n" + "".join(f"{v}@example.com\n" for v in values))
    found = inspect_file(path, ImportFormat.CSV).duplicates
    # d is first seen past the 3 values tracked: its repeat goes unnoticed, and says so.
    assert (found.rows, found.lines, found.complete) == (3, ((4, 2), (7, 2)), False)
