"""The corpus's byte-exact, binary and big files, written at test time instead of committed.

Use `materialize(dest)` to get the whole corpus (committed files copied, generated ones
written) in one folder, and `load_manifest()` for `expected.yaml`:

    python -m tests.corpus.make /tmp/corpus     # writes every corpus file there
"""

from __future__ import annotations

import shutil
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "expected.yaml"

# Rows in the big file: about 12 MB, over Marketo's 10 MB limit, so the daemon must split it.
BIG_ROWS = 120_000
UTF8_BOM = b"\xef\xbb\xbf"


def _lines(*rows: str, end: str = "\n") -> str:
    return "".join(row + end for row in rows)


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0\0"))
        + chunk(b"IEND", b"")
    )


def _zip_like_xlsx() -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return out.getvalue()


def big_file() -> bytes:
    """About 12 MB of CRLF rows, some with quoted line breaks, quotes and non-ASCII names."""
    rows = ["Email,FirstName,LastName,Address,Score"]
    for n in range(BIG_ROWS):
        if n % 97 == 0:
            address = f'"{n} Rue du ""Port""\r\nBâtiment {n % 7}, étage 2"'
        else:
            address = f"{n} Main Street"
        rows.append(f"lead{n}@example.com,Zoë{n % 13},Müller-{n},{address},{n % 1000}")
    return _lines(*rows, end="\r\n").encode("utf-8")


def long_value(chars: int) -> bytes:
    """One row whose Notes value is `chars` characters long."""
    return _lines("Email,Notes", f"a@example.com,{'x' * chars}", "b@example.com,short").encode()


GENERATED: dict[str, Callable[[], bytes]] = {
    "bom.csv": lambda: b"\xef\xbb\xbf" + _lines("Email,FirstName", "a@example.com,Zoë").encode(),
    "bom_crlf_excel.csv": lambda: (
        b"\xef\xbb\xbf"
        + _lines(
            "Email,FirstName,Address", 'a@example.com,Ann,"1 Way\r\nLeeds"', end="\r\n"
        ).encode()
    ),
    "crlf.csv": lambda: _lines(
        "Email,FirstName", "a@example.com,Ann", "b@x.com,B", end="\r\n"
    ).encode(),
    "mixed_line_ends.csv": lambda: b"Email,FirstName\r\na@example.com,Ann\nb@example.com,Ben\r\n",
    "old_mac_cr_only.csv": lambda: _lines(
        "Email,FirstName", "a@example.com,Ann", "b@example.com,Ben", end="\r"
    ).encode(),
    "stray_cr_in_value.csv": lambda: b"Email,FirstName\na@example.com,An\rn\n",
    "cp1252_declared.csv": lambda: _lines(
        "Email,FirstName,LastName",
        "jose@cp1252.example.com,José,Müller",
        "b@example.com,Zoë,“Smart”",
    ).encode("cp1252"),
    "utf8_in_cp1252_box.csv": lambda: _lines(
        "Email,FirstName,LastName",
        "renee@utf8-in-cp1252.example.com,Renée,Müller",
        "plain@utf8-in-cp1252.example.com,Ann,Archer",
    ).encode(),
    "utf8_bom_in_cp1252_box.csv": lambda: (
        UTF8_BOM + _lines("Email,FirstName", "zoe@bom-in-cp1252.example.com,Zoë").encode()
    ),
    "utf16le_bom_in_cp1252_box.csv": lambda: _lines(
        "Email,FirstName", "jose@utf16-in-cp1252.example.com,José", end="\r\n"
    ).encode("utf-16"),
    "auto_utf8.csv": lambda: _lines("Email,FirstName", "ann@auto-utf8.example.com,Ånn").encode(),
    "auto_cp1252.csv": lambda: _lines(
        "Email,FirstName,LastName,Company",
        "juergen@auto-cp1252.example.com,Jürgen,Groß,Straßenbau GmbH",
        "rene@auto-cp1252.example.com,René,Dupont,Société Générale",
    ).encode("cp1252"),
    "auto_mac_roman.csv": lambda: _lines(
        "Email,FirstName,LastName",
        "juergen@auto-mac.example.com,Jürgen,Groß",
        "kaethe@auto-mac.example.com,Käthe,Müller",
    ).encode("mac-roman"),
    "auto_unsure.csv": lambda: (
        b"Email,FirstName,LastName\njan@auto-unsure.example.com,Jan,M\x9aller\n"
    ),
    "desktop.ini": lambda: b"[.ShellClassInfo]\r\nIconResource=C:\\Windows\\imageres.dll,-3\r\n",
    "~$leads.csv": lambda: b"\x0bJane Doe" + b"\0" * 40,
    "cp1252_undeclared.csv": lambda: _lines(
        "Email,FirstName,LastName", "a@example.com,Ann,Archer", "b@example.com,José,Müller"
    ).encode("cp1252"),
    "latin1_mislabelled_utf8_late.csv": lambda: (
        _lines(*["Email,FirstName"] + [f"l{n}@example.com,Ann" for n in range(5)]).encode()
        + "z@example.com,Renée\n".encode("latin-1")
    ),
    "cp1252_invalid_byte.csv": lambda: b"Email,FirstName\na@example.com,An\x81n\n",
    "german_excel_ssv_cp1252.csv": lambda: _lines(
        "Email;Vorname;Nachname;Straße", "a@example.de;Jürgen;Groß;Hauptstraße 1"
    ).encode("cp1252"),
    "utf16_excel_unicode_text.csv": lambda: "Email\tFirstName\r\na@example.com\tAnn\r\n".encode(
        "utf-16"
    ),
    "utf16_declared.csv": lambda: _lines("Email,FirstName", "a@example.com,Zoë").encode("utf-16"),
    "utf16_no_bom.csv": lambda: _lines("Email,FirstName", "a@example.com,Ann").encode("utf-16-le"),
    "nul_bytes.csv": lambda: b"Email,FirstName\na@example.com,Ann\nb@example.com,B\0en\n",
    "png_renamed.csv": _png,
    "xlsx_renamed.csv": _zip_like_xlsx,
    "long_value_100k.csv": lambda: long_value(100_000),
    "long_value_200k.csv": lambda: long_value(200_000),
    "big_12mb.csv": big_file,
}


def load_manifest() -> dict[str, dict[str, Any]]:
    """The `files` mapping of expected.yaml: file name -> expectations."""
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    files: dict[str, dict[str, Any]] = data["files"]
    return files


def materialize(dest: Path) -> Path:
    """Put every corpus file of the manifest into `dest` (created if needed); return `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, spec in load_manifest().items():
        if spec.get("generated"):
            (dest / name).write_bytes(GENERATED[name]())
        else:
            shutil.copyfile(HERE / name, dest / name)
    return dest


if __name__ == "__main__":
    print(materialize(Path(sys.argv[1])))
