"""Which files may share a job, how big one may grow, and the upload they share."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from dropbox_importer.config import DropboxConfig
from dropbox_importer.csvfile import Part
from dropbox_importer.dropbox.routes import RouteSpec
from dropbox_importer.marketo.models import ImportFormat, ImportParams
from dropbox_importer.pipeline.coalesce import (
    Member,
    coalesces,
    job_cap,
    sent_header,
    write_job,
)

CSV = ImportParams(ImportFormat.CSV)
LISTED = ImportParams(ImportFormat.CSV, list_id=1001)


def box(coalesce: bool = True, **routes: bool) -> DropboxConfig:
    return DropboxConfig(
        name="acme",
        root=Path("/box"),
        instance="main",
        coalesce=coalesce,
        routes={name: RouteSpec(format=ImportFormat.CSV) for name in [*routes, "plain"]},
        route_coalesce=dict(routes),
    )


def member(tmp_path: Path, name: str, text: bytes, params: ImportParams = CSV) -> Member:
    path = tmp_path / name
    path.write_bytes(text)
    rows = text.count(b"\n") - 1 + (not text.endswith(b"\n"))
    part = Part(path, 0, 2, rows, len(text))
    return Member(hash(name) % 1000, "csv", params, sent_header(path), part)


def test_the_drop_box_decides_unless_a_named_route_says_otherwise() -> None:
    assert coalesces("csv", box())
    assert not coalesces("csv", box(coalesce=False))
    assert not coalesces("solo", box(solo=False))
    assert coalesces("plain", box(solo=False))
    assert coalesces("together", box(coalesce=False, together=True))
    # A folder naming two routes that disagree: the cautious answer.
    assert not coalesces("together,solo", box(together=True, solo=False))
    assert coalesces("solo,list=7", box(solo=True))


def test_the_header_as_sent_ends_at_the_first_line_end_outside_quotes(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b'email,"a\r\nb"\r\nx@y.z,1\r\n')
    assert sent_header(path) == b'email,"a\r\nb"\r\n'
    path.write_bytes(b"email")
    assert sent_header(path) == b""


def test_files_join_only_with_the_same_parameters_and_header(tmp_path: Path) -> None:
    first = member(tmp_path, "a.csv", b"email,firstName\na@x.y,A\n")
    same = member(tmp_path, "b.csv", b"email,firstName\nb@x.y,B\n")
    other_header = member(tmp_path, "c.csv", b"email,lastName\nc@x.y,C\n")
    other_list = member(tmp_path, "d.csv", b"email,firstName\nd@x.y,D\n", LISTED)
    crlf = member(tmp_path, "e.csv", b"email,firstName\r\ne@x.y,E\r\n")
    assert same.joins(first)
    assert not other_header.joins(first)
    assert not other_list.joins(first)
    assert not crlf.joins(first)  # line ends differ: the header row as sent differs


def test_a_job_takes_its_share_of_what_waits_but_never_less_than_a_few_overheads(
    tmp_path: Path,
) -> None:
    first = member(tmp_path, "a.csv", b"email\n" + b"a@x.yz\n" * 1000)  # 7 bytes a row
    speed = {"rows_per_second": 100.0, "overhead_seconds": 1.0}
    # Much waiting: half of it, one share per import lane.
    assert job_cap(first, max_bytes=9_000_000, waiting_bytes=1_000_000, **speed) == 500_000
    # Little waiting: four overheads' worth of rows (400 rows of 7 bytes) is worth a job.
    assert job_cap(first, max_bytes=9_000_000, waiting_bytes=20_000, **speed) == 10_000
    assert job_cap(first, max_bytes=9_000_000, waiting_bytes=0, **speed) == first.part.bytes
    assert job_cap(first, max_bytes=200_000, waiting_bytes=1_000_000, **speed) == 200_000
    # A list imports one job at a time: its job takes everything that fits.
    listed = member(tmp_path, "l.csv", b"email\n" + b"a@x.yz\n" * 1000, LISTED)
    assert job_cap(listed, max_bytes=9_000_000, waiting_bytes=20_000, **speed) == 9_000_000


def test_the_shared_upload_has_one_header_and_every_row_once(tmp_path: Path) -> None:
    parts = [
        member(tmp_path, "a.csv", b'email,note\r\na@x.y,"two\r\nlines"\r\n'),
        member(tmp_path, "b.csv", b"email,note\r\nb@x.y,no line end"),
        member(tmp_path, "c.csv", b"email,note\r\nc@x.y,last\r\n"),
    ]
    out = tmp_path / "job.csv"
    written = write_job(parts, out)
    data = out.read_bytes()
    assert written == len(data)
    assert data == (b'email,note\r\na@x.y,"two\r\nlines"\r\nb@x.y,no line end\r\nc@x.y,last\r\n')
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert rows == [
        ["email", "note"],
        ["a@x.y", "two\r\nlines"],
        ["b@x.y", "no line end"],
        ["c@x.y", "last"],
    ]
    assert not list(tmp_path.glob(".*.tmp"))
