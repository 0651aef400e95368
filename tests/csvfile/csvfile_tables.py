"""Random tables as partners' exporters write them, and oracles built on the csv module."""

from __future__ import annotations

import csv
import io

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from dropbox_importer.marketo.models import ImportFormat

# Values that make CSV hard: delimiters, quotes, line breaks of every kind, non-ASCII.
VALUE = st.text(alphabet=st.sampled_from(list('ab ,;\t"\r\n\r\néß日💡')), max_size=12)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[ImportFormat, str, list[list[str]], bytes]:
    """A format, a line end, rows (header first) and the file bytes csv.writer makes of them."""
    fmt = draw(st.sampled_from(list(ImportFormat)))
    width = draw(st.integers(1, 4))
    count = draw(st.integers(1, 30))
    # A non-blank first value: blank lines are not rows (the splitter drops them).
    rows = [[f"h{c}" for c in range(width)]] + [
        [f"r{n}", *draw(st.lists(VALUE, min_size=width - 1, max_size=width - 1))]
        for n in range(count)
    ]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    # csv.writer leaves a lone "\r" unquoted when lines end in "\n": no reader takes that back.
    quoting = csv.QUOTE_ALL if newline == "\n" else draw(st.sampled_from([0, csv.QUOTE_ALL]))
    out = io.StringIO()
    csv.writer(out, delimiter=fmt.delimiter, lineterminator=newline, quoting=quoting).writerows(
        rows
    )
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return fmt, newline, rows, bom + out.getvalue().encode("utf-8")


def parse(data: bytes, fmt: ImportFormat, encoding: str = "utf-8") -> list[list[str]]:
    """Rows of a file's bytes as the csv module reads them."""
    text = data.decode(encoding)
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter))


def start_lines(data: bytes, fmt: ImportFormat) -> list[int]:
    """The line each row starts on (header included), lines ending in "\n" as editors count."""
    lines = io.StringIO(data.decode("utf-8-sig"), newline="\n")
    reader = csv.reader(lines, delimiter=fmt.delimiter)
    starts, previous = [], 0
    for _ in reader:
        starts.append(previous + 1)
        previous = reader.line_num
    return starts
