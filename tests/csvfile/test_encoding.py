"""Which encoding a file is read in: a BOM decides, UTF-8 wins, then declared or detected."""

from __future__ import annotations

from pathlib import Path

import pytest

from dropbox_importer.csvfile import FileRejected, inspect_file, split_file
from dropbox_importer.csvfile.encoding import (
    EncodingUnsure,
    decide,
    detect,
    oddness,
    scan_utf8,
)
from dropbox_importer.marketo.models import ImportFormat

TEXT = "Email,FirstName,LastName\nrenee@example.com,Renée,Müller\n"


def write(tmp_path: Path, data: bytes, name: str = "leads.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def decided(path: Path, declared: str) -> tuple[str, str]:
    choice = decide(path, path.read_bytes()[:4096], declared)
    return choice.codec, choice.by


@pytest.mark.parametrize("declared", ["utf-8", "cp1252", "auto", "utf-16"])
@pytest.mark.parametrize(
    ("encoded", "codec"),
    [
        (b"\xef\xbb\xbf" + TEXT.encode(), "utf-8"),
        (TEXT.encode("utf-16"), "utf-16"),  # with its byte-order mark
        (b"\xfe\xff" + TEXT.encode("utf-16-be"), "utf-16"),
        (TEXT.encode("utf-32"), "utf-32"),
    ],
    ids=["utf-8", "utf-16", "utf-16-be", "utf-32"],
)
def test_a_byte_order_mark_decides_whatever_the_drop_box_declares(
    tmp_path: Path, declared: str, encoded: bytes, codec: str
) -> None:
    path = write(tmp_path, encoded)
    assert decided(path, declared) == (codec, "bom")
    result = inspect_file(path, ImportFormat.CSV, encoding=declared)
    parts = split_file(path, ImportFormat.CSV, tmp_path, encoding=result.encoding)
    assert parts[0].path.read_text(encoding="utf-8") == TEXT


def test_valid_utf8_is_utf8_in_a_drop_box_declaring_a_legacy_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT.encode())
    assert decided(path, "cp1252") == ("utf-8", "utf-8")
    result = inspect_file(path, ImportFormat.CSV, encoding="cp1252")
    assert not result.converted
    parts = split_file(path, ImportFormat.CSV, tmp_path, encoding=result.encoding)
    assert "Renée" in parts[0].path.read_text(encoding="utf-8")  # never RenÃ©e


def test_a_declared_legacy_encoding_applies_to_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT.encode("cp1252"))
    assert decided(path, "cp1252") == ("cp1252", "declared")
    result = inspect_file(path, ImportFormat.CSV, encoding="cp1252")
    assert result.converted


def test_utf8_broken_only_in_its_last_bytes_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT.encode() + b"x@example.com,Ren\xc3")
    assert decided(path, "cp1252") == ("cp1252", "declared")


def test_a_declared_utf16_without_a_mark_is_taken_as_declared(tmp_path: Path) -> None:
    # Its NUL bytes are valid UTF-8, but no UTF-8 text has them.
    path = write(tmp_path, TEXT.encode("utf-16-le"))
    assert decided(path, "utf-16-le") == ("utf-16-le", "declared")


@pytest.mark.parametrize(
    ("codec", "text"),
    [
        ("cp1252", "a@example.com,Jürgen,Groß,Straßenbau GmbH\nb@example.com,René,Dupont,Sté\n"),
        ("cp1252", "a@example.com,Ann\nz@example.com,Renée\n"),  # one accent in the file
        ("cp1252", "a@example.com,José,“Smart”\n"),
        ("mac-roman", "a@example.de,Jürgen,Groß\nb@example.de,Käthe,Müller\n"),
        ("mac-roman", "a@example.com,Renée,Dupré\nb@example.com,François,Lefèvre\n"),
    ],
)
def test_auto_finds_the_candidate_the_names_read_right_in(
    tmp_path: Path, codec: str, text: str
) -> None:
    path = write(tmp_path, ("Email,FirstName,LastName,Company\n" + text).encode(codec))
    assert decided(path, "auto") == (codec, "auto")


def test_auto_takes_valid_utf8_as_utf8_without_detection(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT.encode())
    assert decided(path, "auto") == ("utf-8", "utf-8")


def test_auto_refuses_when_two_candidates_read_equally_well_and_names_its_guess(
    tmp_path: Path,
) -> None:
    # 0x9A is š in cp1252 and ö in mac-roman: Mšller and Möller are both plausible names.
    path = write(tmp_path, b"Email,FirstName,LastName\njan@example.com,Jan,M\x9aller\n")
    with pytest.raises(FileRejected) as caught:
        inspect_file(path, ImportFormat.CSV, encoding="auto")
    reason = caught.value.reason
    assert "uncertain" in reason and "best guess: cp1252" in reason and "mac-roman" in reason
    assert "save the file as UTF-8" in reason


def test_candidates_giving_the_same_text_are_one_answer_the_first_configured_wins() -> None:
    # ü is the same byte in cp1252 and cp1250: no uncertainty, and the order decides.
    sample = "a@example.com,Jürgen,Müller\n".encode("cp1252")
    assert detect(sample, ["cp1250", "cp1252"]) == "cp1250"
    assert detect(sample, ["cp1252", "cp1250"]) == "cp1252"


def test_auto_refuses_when_no_candidate_reads_the_file() -> None:
    # Cyrillic in cp1251, offered only Western candidates: every reading is garbage.
    sample = ("a@example.com,Иван,Петров,Сидорова Мария\n" * 3).encode("cp1251")
    with pytest.raises(EncodingUnsure):
        detect(sample, ["cp1252", "mac-roman"])


def test_the_detector_sees_only_lines_with_non_ascii_bytes(tmp_path: Path) -> None:
    lines = [b"a@example.com,Ann\n"] * 1000 + [b"z@example.com,Ren\xe9e\n"]
    path = write(tmp_path, b"Email,FirstName\n" + b"".join(lines))
    valid, sample = scan_utf8(path)
    assert not valid
    assert sample == b"z@example.com,Ren\xe9e\n"


@pytest.mark.parametrize(
    ("text", "odd"),
    [
        ("Jürgen Groß", 0.0),
        ("Émile ÉCOLE “quoted” \u2013 café…", 0.0),
        ("JŸrgen", 1.0),
        ("RenÈe", 1.0),
        ("Gro§", 1.0),
        ("ìSmartî", 0.5),
        ("plain ascii", 0.0),
    ],
)
def test_oddness_counts_characters_that_sit_wrongly_in_their_word(text: str, odd: float) -> None:
    assert oddness(text) == odd
