"""Reading a lead file as text: what its first bytes say, decoding with precise errors, lines.

Every reader of a dropped file (the checks, the converting splitter, the result annotator) goes
through here, so a line number means the same thing everywhere: physical lines, the header on
line 1, a record numbered by the line it starts on.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dropbox_importer.csvfile.encoding import (
    AUTO,
    DEFAULT_CANDIDATES,
    UTF8_BOM,
    EncodingUnsure,
    codec_name,
    decide,
    is_wide,
)

BLOCK_SIZE = 1 << 20
# Enough of the file to find the header's line end and to recognise a binary format.
SNIFF_SIZE = 64 * 1024

# Signatures of the non-CSV files partners most often drop by mistake.
BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive or an Excel workbook (.xlsx): open it and save it as CSV"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls): open it and save it as CSV"),
    (b"\x89PNG", "a PNG image, not a text file"),
    (b"%PDF", "a PDF document, not a text file"),
)


class FileRejected(Exception):  # noqa: N818 - the name the daemon already imports
    """The file cannot be imported; the message says what is wrong, where, and how to fix it."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass(frozen=True)
class Source:
    """What the first bytes of a file say: its codec, BOM and line-end style."""

    path: Path
    encoding: str  # a Python codec name, e.g. "utf-8", "cp1252"
    bom: bool
    newline: str  # "lf", "crlf" or "cr": the header's line end
    skip: int  # bytes of BOM to skip
    # What decided the encoding: "bom", "declared", "utf-8" (valid UTF-8) or "auto".
    decided_by: str = "utf-8"

    @property
    def separator(self) -> str:
        """The character physical lines are split on ("\\r" only for old Mac files)."""
        return "\r" if self.newline == "cr" else "\n"

    @property
    def is_utf8(self) -> bool:
        """True when the bytes after the BOM can go to Marketo unconverted."""
        return self.encoding == "utf-8"


def newline_style(head: bytes) -> str:
    """The line-end style of the first line of `head`: "crlf", "lf" or "cr" (default "lf")."""
    lf, cr = head.find(b"\n"), head.find(b"\r")
    if cr != -1 and (lf == -1 or cr < lf):
        return "crlf" if head[cr + 1 : cr + 2] == b"\n" else "cr"
    return "lf"


def _reject_markup(head: bytes) -> None:
    start = head.removeprefix(UTF8_BOM).lstrip()[:1]
    if start in (b"{", b"["):
        raise FileRejected("the file is JSON, not a table: export the leads as CSV", 1)
    if start == b"<":
        raise FileRejected(
            "the file is HTML or XML (an error page saved by mistake?), not a table: "
            "export the leads as CSV",
            1,
        )


def open_source(
    path: Path, encoding: str = "utf-8", candidates: Sequence[str] = DEFAULT_CANDIDATES
) -> Source:
    """Sniff the file's BOM, binary signature, encoding and line ends; FileRejected if not text.

    `encoding` is the drop box's: "utf-8", a codec name, or "auto" (choose among `candidates`);
    the rules are in `csvfile.encoding`.
    """
    if encoding.lower() != AUTO:
        try:
            codec_name(encoding)
        except LookupError:
            raise FileRejected(
                f"the drop box declares an unknown encoding '{encoding}': "
                "ask the operator to fix the drop box's encoding setting"
            ) from None
    with path.open("rb") as stream:
        head = stream.read(SNIFF_SIZE)
    if not head:
        raise FileRejected("the file is empty: export it again with a header row and data rows")
    for magic, what in BINARY_SIGNATURES:
        if head.startswith(magic):
            raise FileRejected(f"the file is {what}")
    _reject_markup(head)
    try:
        chosen = decide(path, head, encoding, candidates)
    except EncodingUnsure as exc:
        raise FileRejected(str(exc)) from None
    if is_wide(chosen.codec):
        text = head.decode(chosen.codec, errors="replace")
        style = newline_style(text.encode("utf-8"))
    else:
        style = newline_style(head[chosen.skip :])
    return Source(path, chosen.codec, chosen.bom, style, chosen.skip, chosen.by)


def _decode_error(
    exc: UnicodeDecodeError, data: bytes, src: Source, base: int, lines_before: int
) -> FileRejected:
    prefix = data[: exc.start].decode(src.encoding, errors="replace")
    line = lines_before + prefix.count(src.separator) + 1
    offset = base + exc.start
    if src.is_utf8:
        fix = "save the file as UTF-8, or ask the operator to declare its encoding (e.g. cp1252)"
        what = "not UTF-8"
    else:
        fix = "save the file as UTF-8, or ask the operator to declare the right encoding"
        what = f"not valid {src.encoding}"
    return FileRejected(f"line {line}, byte {offset}: {what} — {fix}", line)


def _nul_error(block: bytes, at: int, src: Source, base: int, lines_before: int) -> FileRejected:
    line = lines_before + block[:at].count(src.separator.encode()) + 1
    return FileRejected(
        f"line {line}, byte {base + at}: a NUL byte — this is not a text file "
        "(a spreadsheet, an image or a UTF-16 export?): save it as 'CSV UTF-8'",
        line,
    )


def iter_text(src: Source, block_size: int = BLOCK_SIZE) -> Iterator[str]:
    """Decode the file block by block; raise FileRejected at the first NUL or invalid byte."""
    decoder = codecs.getincrementaldecoder(src.encoding)(errors="strict")
    check_nul = not is_wide(src.encoding)
    lines_before = 0
    with src.path.open("rb") as stream:
        stream.seek(src.skip)
        consumed = src.skip
        while True:
            block = stream.read(block_size)
            pending = decoder.getstate()[0]
            if check_nul:
                at = block.find(b"\0")
                if at != -1:
                    raise _nul_error(block, at, src, consumed, lines_before)
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                raise _decode_error(
                    exc, pending + block, src, consumed - len(pending), lines_before
                ) from None
            consumed += len(block)
            if text:
                lines_before += text.count(src.separator)
                yield text
            if not block:
                return


def iter_lines(src: Source, block_size: int = BLOCK_SIZE) -> Iterator[str]:
    """Physical lines of the decoded file, each with its line end (the last may have none)."""
    sep = src.separator
    rest = ""
    for text in iter_text(src, block_size):
        pieces = (rest + text).split(sep)
        rest = pieces.pop()
        for piece in pieces:
            yield piece + sep
    if rest:
        yield rest


def is_blank(raw: str) -> bool:
    """True for a line holding nothing but spaces, tabs and its line end."""
    return not raw.strip(" \t\r\n")


def iter_raw_records(lines: Iterator[str]) -> Iterator[tuple[int, str]]:
    """(start line, raw text) of each record, a quoted line break keeping lines together."""
    start = 1
    parts: list[str] = []
    quotes = 0
    for line, raw in enumerate(lines, start=1):
        if not parts:
            start = line
        parts.append(raw)
        quotes += raw.count('"')
        if quotes % 2 == 0:
            yield start, "".join(parts)
            parts.clear()
            quotes = 0
    if parts:
        yield start, "".join(parts)
