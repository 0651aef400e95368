"""Cutting a checked file into parts Marketo accepts: UTF-8 without BOM, each under the size cap.

Two paths. A UTF-8 file with LF or CRLF line ends and no rows to leave out is cut as bytes: a
block is read, the cut goes at its last line end with an even count of double quotes before it
(a line end inside a quoted value always has an odd count), and rows are counted with bytes
methods only, so no Python code runs per row. Anything else (a declared encoding, old Mac
line ends, rows failed locally) is rewritten record by record.

Every part, even a lone one, is a new file in `out_dir`: the original is never sent as is, so
the BOM never reaches Marketo and the original stays untouched for the partner.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dropbox_importer.csvfile.source import (
    FileRejected,
    Source,
    is_blank,
    iter_lines,
    iter_raw_records,
    open_source,
)
from dropbox_importer.marketo.models import ImportFormat

# Marketo refuses bodies of 10 MB; the margin covers the multipart envelope and rounding.
DEFAULT_MAX_PART_BYTES = 9_500_000
READ_SIZE = 1 << 20
# translate() deletes everything but quotes and line feeds; what remains tells rows apart.
_NOT_QUOTE_OR_LF = bytes(b for b in range(256) if b not in b'"\n')


@dataclass(frozen=True)
class Part:
    """One file sent as one import: its rows are the original's from `first_line` on."""

    path: Path
    index: int  # 0-based, in the original's row order
    first_line: int  # the original's line number of the part's first row
    rows: int
    bytes: int


def _reduce(data: bytes | bytearray) -> bytes:
    """Only the quotes and line feeds of `data`, pairs of quotes on one line cancelled.

    What is left is about one byte per line: a quote survives only on a line that opens or
    closes a multi-line value, so record ends can be found in it cheaply.
    """
    return bytes(data.translate(None, _NOT_QUOTE_OR_LF).replace(b'""', b""))


def _records_in(reduced: bytes) -> int:
    """Line feeds outside quotes in a reduced block that starts at a record start."""
    inside = b"".join(reduced.split(b'"')[1::2]).count(b"\n")
    return reduced.count(b"\n") - inside


def count_records(data: bytes | bytearray) -> int:
    """Records ending in `data` (which starts at a record start): line feeds outside quotes."""
    return _records_in(_reduce(data))


def _last_boundary(reduced: bytes) -> int:
    """Index in `reduced` of the last line feed with an even count of quotes before it, or -1."""
    pos = reduced.rfind(b"\n")
    if pos == -1:
        return -1
    quotes = reduced.count(b'"', 0, pos + 1)
    while quotes % 2:
        prev = reduced.rfind(b"\n", 0, pos)
        if prev == -1:
            return -1
        quotes -= reduced.count(b'"', prev + 1, pos + 1)
        pos = prev
    return pos


def _next_cut(buf: bytearray, budget: int, eof: bool) -> tuple[int, int, int]:
    """(bytes, rows, line feeds) of the next part's body: all of `buf` at the end, else the
    longest run of whole records within `budget` (0 bytes if the first record is longer)."""
    if eof and len(buf) <= budget:
        reduced = _reduce(buf)
        last_open = 0 if buf.endswith(b"\n") else 1
        return len(buf), _records_in(reduced) + last_open, reduced.count(b"\n")
    # The window is budget + 1 bytes (what the read loop keeps, so no copy): the last byte
    # cannot be in this part, its quote or line feed is dropped from the reduced copy.
    window = buf if len(buf) == budget + 1 else buf[: budget + 1]
    kept = window.translate(None, _NOT_QUOTE_OR_LF)
    if window[budget] in b'"\n':
        kept = kept[:-1]
    reduced = bytes(kept.replace(b'""', b""))
    end = _last_boundary(reduced)
    if end == -1:
        return 0, 0, 0
    pos = buf.rfind(b"\n", 0, budget)
    for _ in range(reduced.count(b"\n", end + 1)):
        pos = buf.rfind(b"\n", 0, pos)
    head = reduced[: end + 1]
    return pos + 1, _records_in(head), head.count(b"\n")


def _trim_blank_tail(buf: bytearray) -> None:
    """Drop trailing lines that hold only spaces and tabs; keep the last row's own line end."""
    content = len(buf.rstrip(b" \t\r\n"))
    end = buf.find(b"\n", content)
    if end != -1:
        del buf[end + 1 :]


# Bytes of the original's stem and suffix a part's name keeps: a 255-byte original name plus
# `.part0001` would exceed the filesystem's 255-byte name limit.
_PART_STEM_BYTES = 120
_PART_SUFFIX_BYTES = 16


def _clipped(text: str, limit: int) -> str:
    """At most `limit` bytes of `text` in UTF-8, never cutting a character in two."""
    return text.encode("utf-8", "surrogateescape")[:limit].decode("utf-8", "ignore")


def _part_path(src: Source, fmt: ImportFormat, out_dir: Path, index: int) -> Path:
    suffix = _clipped(src.path.suffix, _PART_SUFFIX_BYTES) or f".{fmt.value}"
    stem = _clipped(src.path.stem, _PART_STEM_BYTES)
    return out_dir / f"{stem}.part{index + 1:04d}{suffix}"


def _too_big(line: int, max_bytes: int) -> FileRejected:
    return FileRejected(
        f"line {line}: this row alone is larger than an import may be ({max_bytes} bytes) — "
        "check for a quote that is never closed",
        line,
    )


def _read_header(stream: BinaryIO, buf: bytearray) -> bytes:
    """Read until the header record's line end; return it (buf keeps what follows)."""
    searched = 0
    while True:
        pos = buf.find(b"\n", searched)
        if pos != -1 and buf.count(b'"', 0, pos + 1) % 2 == 0:
            header = bytes(buf[: pos + 1])
            del buf[: pos + 1]
            return header
        searched = len(buf) if pos == -1 else pos + 1
        chunk = stream.read(READ_SIZE)
        if not chunk:
            raise FileRejected("the file has a header but no rows: export it again with its data")
        buf += chunk


def _header_row(names: Sequence[str], fmt: ImportFormat, src: Source) -> bytes:
    """A header row of these names, in the format's delimiter and the original's line end."""
    out = io.StringIO()
    end = "\r\n" if src.newline == "crlf" else "\n"
    csv.writer(out, delimiter=fmt.delimiter, lineterminator=end).writerow(names)
    return out.getvalue().encode("utf-8")


def _split_bytes(
    src: Source, fmt: ImportFormat, out_dir: Path, max_bytes: int, new_header: bytes | None
) -> list[Part]:
    parts: list[Part] = []
    buf = bytearray()
    with src.path.open("rb") as stream:
        stream.seek(src.skip)
        header = _read_header(stream, buf)
        line = 1 + header.count(b"\n")
        header = header if new_header is None else new_header
        budget = max_bytes - len(header)
        eof = False
        while True:
            while not eof and len(buf) <= budget:
                chunk = stream.read(budget + 1 - len(buf))
                eof = not chunk
                buf += chunk
            if eof:
                _trim_blank_tail(buf)
                if not buf:
                    break
            cut, rows, lines = _next_cut(buf, budget, eof)
            if cut == 0:
                raise _too_big(line, max_bytes)
            path = _part_path(src, fmt, out_dir, len(parts))
            with path.open("wb") as out, memoryview(buf) as view:
                out.write(header)
                out.write(view[:cut])
            parts.append(Part(path, len(parts), line, rows, len(header) + cut))
            line += lines
            del buf[:cut]
    return parts


def _projected(text: str, fmt: ImportFormat, keep: Sequence[int]) -> str:
    """One record with only the columns in `keep`, its line end kept."""
    body = text.rstrip("\r\n")
    end = text[len(body) :]
    row = next(csv.reader(io.StringIO(body, newline=""), delimiter=fmt.delimiter), [])
    out = io.StringIO()
    csv.writer(out, delimiter=fmt.delimiter, lineterminator=end).writerow(
        [row[i] if i < len(row) else "" for i in keep]
    )
    return out.getvalue()


def _split_records(
    src: Source,
    fmt: ImportFormat,
    out_dir: Path,
    max_bytes: int,
    skip_lines: frozenset[int],
    new_header: bytes | None,
    keep: Sequence[int] | None,
) -> list[Part]:
    records = iter_raw_records(iter_lines(src))
    # Old Mac files get Unix line ends: Marketo documents only LF and CRLF.
    convert = src.newline == "cr"
    _, header_text = next(records, (1, ""))
    header = (header_text.replace("\r", "\n") if convert else header_text).encode("utf-8")
    header = header if new_header is None else new_header
    budget = max_bytes - len(header)
    parts: list[Part] = []
    pending: list[bytes] = []
    size = 0
    first = 0

    def flush() -> None:
        path = _part_path(src, fmt, out_dir, len(parts))
        with path.open("wb") as out:
            out.write(header)
            out.writelines(pending)
        parts.append(Part(path, len(parts), first, len(pending), len(header) + size))

    for start, text in records:
        if start in skip_lines or is_blank(text):
            continue
        if keep is not None:
            text = _projected(text, fmt, keep)
        data = (text.replace("\r", "\n") if convert else text).encode("utf-8")
        if len(data) > budget:
            raise _too_big(start, max_bytes)
        if pending and size + len(data) > budget:
            flush()
            pending, size = [], 0
        if not pending:
            first = start
        pending.append(data)
        size += len(data)
    if pending:
        flush()
    return parts


def split_file(
    path: Path,
    fmt: ImportFormat,
    out_dir: Path,
    *,
    max_bytes: int = DEFAULT_MAX_PART_BYTES,
    encoding: str = "utf-8",
    skip_lines: frozenset[int] = frozenset(),
    header: Sequence[str] | None = None,
    keep: Sequence[int] | None = None,
) -> list[Part]:
    """Write the file's rows as UTF-8 parts of at most `max_bytes`, each with the header.

    `header` replaces the original's header row in every part (the mapped names Marketo
    receives); `keep`, 0-based column indices, leaves every other column out of every row.
    """
    src = open_source(path, encoding)
    new_header = None if header is None else _header_row(header, fmt, src)
    if src.is_utf8 and src.newline != "cr" and not skip_lines and keep is None:
        return _split_bytes(src, fmt, out_dir, max_bytes, new_header)
    return _split_records(src, fmt, out_dir, max_bytes, skip_lines, new_header, keep)
