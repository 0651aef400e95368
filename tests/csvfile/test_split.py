"""The splitter: parts under the cap, rows unchanged and in order, whatever the values hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from csvfile_tables import SETTINGS, parse, start_lines, tables
from hypothesis import given
from hypothesis import strategies as st

from dropbox_importer.csvfile import FileRejected, count_records, split_file
from dropbox_importer.marketo.models import ImportFormat


def check_parts(
    parts: list, rows: list[list[str]], fmt: ImportFormat, max_bytes: int, lines: list[int]
) -> None:
    """Every part is under the cap, starts with the header and holds the next rows in order."""
    sent: list[list[str]] = []
    for index, part in enumerate(parts):
        data = part.path.read_bytes()
        assert part.index == index
        assert len(data) == part.bytes <= max_bytes
        assert not data.startswith(b"\xef\xbb\xbf")
        got = parse(data, fmt)
        assert got[0] == rows[0]
        assert part.rows == len(got) - 1 == count_records(data) - 1 + (not data.endswith(b"\n"))
        assert part.first_line == lines[len(sent) + 1]
        sent.extend(got[1:])
    assert sent == rows[1:]


@SETTINGS
@given(table=tables(), slack=st.integers(0, 300))
def test_parts_are_under_the_cap_and_hold_the_rows_unchanged(
    table: tuple[ImportFormat, str, list[list[str]], bytes], slack: int, tmp_path: Path
) -> None:
    fmt, _, rows, data = table
    (tmp_path / "in.csv").write_bytes(data)
    body = data.removeprefix(b"\xef\xbb\xbf")
    header_len = len(body) - len(body.split(b"\n", 1)[1]) if rows[0] else 0
    longest = max(len(line) for line in _records(body, fmt))
    max_bytes = header_len + longest + slack
    out = tmp_path / f"out{slack}"
    out.mkdir(exist_ok=True)
    parts = split_file(tmp_path / "in.csv", fmt, out, max_bytes=max_bytes)
    check_parts(parts, rows, fmt, max_bytes, start_lines(data, fmt))


@SETTINGS
@given(table=tables(), skip_every=st.integers(2, 5))
def test_converting_path_keeps_rows_and_leaves_out_skipped_lines(
    table: tuple[ImportFormat, str, list[list[str]], bytes], skip_every: int, tmp_path: Path
) -> None:
    fmt, _, rows, data = table
    source = tmp_path / "in.csv"
    source.write_bytes(data)
    lines = start_lines(data, fmt)
    skipped = frozenset(lines[1::skip_every])
    out = tmp_path / f"out{skip_every}"
    out.mkdir(exist_ok=True)
    parts = split_file(source, fmt, out, max_bytes=400, skip_lines=skipped)
    kept = [row for row, line in zip(rows[1:], lines[1:], strict=True) if line not in skipped]
    sent = [row for part in parts for row in parse(part.path.read_bytes(), fmt)[1:]]
    assert sent == kept
    assert all(part.bytes <= 400 for part in parts)
    kept_lines = [line for line in lines[1:] if line not in skipped]
    firsts = [kept_lines[sum(p.rows for p in parts[:i])] for i in range(len(parts))]
    assert [part.first_line for part in parts] == firsts


def _records(body: bytes, fmt: ImportFormat) -> list[bytes]:
    """The raw bytes of each record, cut where the csv module ends them."""
    out, current, quotes = [], b"", 0
    for line in body.splitlines(keepends=True):
        current += line
        quotes += line.count(b'"')
        if quotes % 2 == 0 and current.endswith(b"\n"):
            out.append(current)
            current, quotes = b"", 0
    return [*out, current] if current else out


def test_declared_cp1252_becomes_utf8(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes("Email,LastName\r\na@x.com,Müller “Jr”\r\n".encode("cp1252"))
    (part,) = split_file(source, ImportFormat.CSV, tmp_path, encoding="cp1252")
    assert part.path.read_bytes() == "Email,LastName\r\na@x.com,Müller “Jr”\r\n".encode()


def test_old_mac_line_ends_are_sent_as_line_feeds(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b'Email,Note\ra@x.com,"two\rlines"\rb@x.com,x\r')
    (part,) = split_file(source, ImportFormat.CSV, tmp_path)
    assert part.path.read_bytes() == b'Email,Note\na@x.com,"two\nlines"\nb@x.com,x\n'
    assert (part.first_line, part.rows) == (2, 2)


def test_trailing_blank_lines_are_not_sent(tmp_path: Path) -> None:
    source = tmp_path / "in.tsv"
    source.write_bytes(b"Email\tNote\na@x.com\t\t\n\n  \n\t\n")
    (part,) = split_file(source, ImportFormat.TSV, tmp_path)
    assert part.path.read_bytes() == b"Email\tNote\na@x.com\t\t\n"
    assert part.rows == 1


def test_a_row_larger_than_a_part_is_rejected_with_its_line(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"Email,Note\na@x.com,short\nb@x.com," + b"x" * 500 + b"\n")
    with pytest.raises(FileRejected) as caught:
        split_file(source, ImportFormat.CSV, tmp_path, max_bytes=200)
    assert caught.value.line == 3
    assert "line 3" in caught.value.reason


def test_large_file_is_cut_into_several_parts_at_row_ends(tmp_path: Path) -> None:
    rows = [f'lead{n}@x.com,"{n} Main St\r\nFloor {n % 9}",{n}' for n in range(20_000)]
    data = ("Email,Address,Score\r\n" + "\r\n".join(rows) + "\r\n").encode()
    source = tmp_path / "in.csv"
    source.write_bytes(data)
    out = tmp_path / "parts"
    out.mkdir()
    parts = split_file(source, ImportFormat.CSV, out, max_bytes=100_000)
    assert len(parts) == len(data) // 100_000 + 1
    check_parts(
        parts,
        parse(data, ImportFormat.CSV),
        ImportFormat.CSV,
        100_000,
        start_lines(data, ImportFormat.CSV),
    )
