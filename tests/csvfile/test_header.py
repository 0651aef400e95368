"""Header mapping: partners' column names to the REST names Marketo matches; what is not sent."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from dropbox_importer.csvfile import FileRejected, Part, split_file, write_results
from dropbox_importer.csvfile.header import (
    PROTECTED_FIELDS,
    ColumnRules,
    Fate,
    map_header,
    read_header,
    refuse_unmappable,
    to_partner_columns,
)
from dropbox_importer.marketo.models import ImportFormat, LeadField
from dropbox_importer.sandbox.fields import STANDARD_FIELDS

# describe as the sandbox answers it: REST names with Marketo's display names.
FIELDS = [
    LeadField(f.name, f.data_type, f.length, f.display_name, f.read_only) for f in STANDARD_FIELDS
]


NO_RULES = ColumnRules()


def fates(header: list[str], rules: ColumnRules = NO_RULES) -> list[tuple[Any, ...]]:
    mapped = map_header(header, FIELDS, rules)
    return [(c.original, c.field, c.fate.value, c.how) for c in mapped.columns]


def test_display_names_map_to_rest_names() -> None:
    mapped = map_header(["Email Address", "First Name", "Last Name", "Company Name"], FIELDS)
    assert mapped.sent_names == ["email", "firstName", "lastName", "company"]
    assert {c.how for c in mapped.columns} == {"display name"}
    assert not mapped.drops_columns


def test_rest_names_in_any_case_and_with_spaces_become_the_exact_rest_name() -> None:
    mapped = map_header([" EMAIL", "firstname ", "LastName", "\tcompany"], FIELDS)
    assert mapped.sent_names == ["email", "firstName", "lastName", "company"]
    assert {c.how for c in mapped.columns} == {"REST name"}


def test_aliases_match_in_any_case_and_come_before_display_names() -> None:
    rules = ColumnRules(aliases={"E-Mail-Adresse": "email", "Firma": "company", "Title": "x"})
    assert fates(["e-mail-adresse", "FIRMA"], rules) == [
        ("e-mail-adresse", "email", "sent", "columns.aliases"),
        ("FIRMA", "company", "sent", "columns.aliases"),
    ]
    # A REST name wins over an alias of the same name.
    assert fates(["title"], rules)[0][1:3] == ("title", "sent")


def test_alias_to_no_field_is_unknown_and_names_the_alias() -> None:
    [column] = fates(["Firma"], ColumnRules(aliases={"Firma": "compnay"}))
    assert column[2] == "unknown"
    assert "'compnay'" in column[3]


def test_ignored_columns_are_not_sent_even_when_they_are_fields() -> None:
    rules = ColumnRules(ignore=("Internal notes", "company"))
    mapped = map_header(["email", " internal NOTES ", "Company"], FIELDS, rules)
    assert [c.fate for c in mapped.columns] == [Fate.SENT, Fate.IGNORED, Fate.IGNORED]
    assert mapped.sent == (0,) and mapped.sent_names == ["email"] and mapped.drops_columns
    assert mapped.lookup_names == ["email", "", ""]


def test_a_name_two_fields_share_as_display_name_is_ambiguous_naming_both() -> None:
    fields = [*FIELDS, LeadField("mainPhone", "phone", 255, "Phone Number")]
    mapped = map_header(["email", "Phone Number"], fields)
    assert mapped.columns[1].fate is Fate.AMBIGUOUS
    with pytest.raises(FileRejected) as caught:
        refuse_unmappable(mapped, ColumnRules())
    assert "'Phone Number'" in caught.value.reason
    assert "'phone' and 'mainPhone'" in caught.value.reason


def test_two_columns_meaning_one_field_are_refused() -> None:
    mapped = map_header(["email", "Email Address"], FIELDS)
    with pytest.raises(FileRejected) as caught:
        refuse_unmappable(mapped, ColumnRules())
    assert "'email' (1) and 'Email Address' (2) both mean the Marketo field 'email'" in str(
        caught.value
    )


def test_without_describe_names_are_trimmed_and_aliased_only() -> None:
    rules = ColumnRules(aliases={"Firma": "company"})
    mapped = map_header([" email ", "Firma", "Company Name"], None, rules)
    assert mapped.sent_names == ["email", "company", "Company Name"]


def test_unknown_columns_are_marked_unknown() -> None:
    assert fates(["email", "Shoe size"])[1][2] == "unknown"


@pytest.mark.parametrize("name", PROTECTED_FIELDS)
def test_protected_fields_are_denied_unless_allowed(name: str) -> None:
    assert fates(["email", name.upper()])[1][2] == "denied"
    allowed = ColumnRules(allow=("email", name))
    assert fates(["email", name.upper()], allowed)[1][2] == "sent"


def test_allow_and_deny_lists_decide_the_rest_and_the_lookup_field_is_always_allowed() -> None:
    rules = ColumnRules(allow=("firstName", "company"), deny=("company",))
    got = {name: (fate, how) for name, _, fate, how in fates(["Email", "First Name",
           "Company", "Job Title"], rules)}  # fmt: skip
    assert got == {
        "Email": ("sent", "REST name"),
        "First Name": ("sent", "display name"),
        "Company": ("denied", "columns.deny names it"),
        "Job Title": ("denied", "not in columns.allow"),
    }


def test_denied_columns_fail_the_file_unless_the_rules_drop_them() -> None:
    header = ["email", "Unsubscribed"]
    with pytest.raises(FileRejected) as caught:
        refuse_unmappable(map_header(header, FIELDS), ColumnRules())
    assert "'Unsubscribed'" in caught.value.reason and "columns.allow" in caught.value.reason
    dropping = ColumnRules(on_denied="drop")
    mapped = map_header(header, FIELDS, dropping)
    refuse_unmappable(mapped, dropping)
    assert mapped.sent_names == ["email"]


def test_read_header_gives_the_first_record_and_none_for_no_header(tmp_path: Path) -> None:
    path = tmp_path / "a.ssv"
    path.write_bytes(b'\xef\xbb\xbf"Email Address";"First\nName"\r\nx@example.com;X\r\n')
    assert read_header(path, ImportFormat.SSV) == ["Email Address", "First\nName"]
    path.write_bytes(b"\n\nemail\n")
    assert read_header(path, ImportFormat.CSV) is None


def rows_of(path: Path, fmt: ImportFormat = ImportFormat.CSV) -> list[list[str]]:
    text = path.read_bytes().decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_parts_carry_the_mapped_header_and_the_original_stays_as_it_was(
    tmp_path: Path, newline: str
) -> None:
    original = tmp_path / "leads.csv"
    data = newline.join(["Email Address,First Name", "a@example.com,Ann", "b@example.com,Bo", ""])
    original.write_bytes(data.encode())
    mapped = map_header(rows_of(original)[0], FIELDS)
    out = tmp_path / "parts"
    out.mkdir()
    [part] = split_file(original, ImportFormat.CSV, out, header=mapped.sent_names)
    assert (
        part.path.read_bytes()
        == newline.join(["email,firstName", "a@example.com,Ann", "b@example.com,Bo", ""]).encode()
    )
    assert original.read_bytes() == data.encode()


def test_columns_not_sent_are_cut_from_every_row_quoted_values_included(tmp_path: Path) -> None:
    original = tmp_path / "leads.tsv"
    original.write_bytes(
        b'E-Mail\tInternal notes\tFirma\r\na@example.com\t"two\r\nlines"\tAcme\r\n'
        b'b@example.com\tx\t"Big ""B"" Inc"\r\n'
    )
    rules = ColumnRules(aliases={"E-Mail": "email", "Firma": "company"}, ignore=("internal notes",))
    mapped = map_header(rows_of(original, ImportFormat.TSV)[0], FIELDS, rules)
    out = tmp_path / "parts"
    out.mkdir()
    [part] = split_file(
        original, ImportFormat.TSV, out, header=mapped.sent_names, keep=mapped.sent, max_bytes=2000
    )
    assert rows_of(part.path, ImportFormat.TSV) == [
        ["email", "company"],
        ["a@example.com", "Acme"],
        ["b@example.com", 'Big "B" Inc'],
    ]
    assert (part.first_line, part.rows) == (2, 2)


def test_failures_file_keeps_the_partners_names_and_every_original_column(tmp_path: Path) -> None:
    original = tmp_path / "leads.csv"
    original.write_text(
        "Email Address,Notes,Company Name\n"
        "good@example.com,keep me,Acme\n"
        "bad-address,second note,\n"
        "other@example.com,,Other\n"
    )
    rules = ColumnRules(ignore=("Notes",))
    mapped = map_header(rows_of(original)[0], FIELDS, rules)
    out = tmp_path / "parts"
    out.mkdir()
    parts = split_file(original, ImportFormat.CSV, out, header=mapped.sent_names, keep=mapped.sent)
    # Marketo's failures file: its own (mapped) header, the sent columns, empty trailing
    # fields dropped, and one row it reports that matches nothing in the original.
    marketo = tmp_path / "failures-0.csv"
    marketo.write_text(
        "email,company,Import Failure Reason\n"
        "bad-address,Invalid email address\n"
        "ghost@example.com,Ghost,Some other reason\n"
    )
    written = write_results(
        parts,
        [marketo],
        tmp_path / "out.csv",
        original=original,
        fmt=ImportFormat.CSV,
        reason_column="Import Failure Reason",
        sent=mapped.sent,
    )
    assert written == 2
    assert rows_of(tmp_path / "out.csv") == [
        ["Line", "Email Address", "Notes", "Company Name", "Import Failure Reason"],
        ["3", "bad-address", "second note", "", "Invalid email address"],
        ["", "ghost@example.com", "", "Ghost", "Some other reason"],
    ]


def test_to_partner_columns_spreads_values_back_to_their_columns() -> None:
    assert to_partner_columns(["a", "b"], (0, 2), 4) == ["a", "", "b", ""]
    assert to_partner_columns(["a"], (1, 3), 4) == ["", "a", "", ""]


def test_part_type_is_unchanged_by_mapping(tmp_path: Path) -> None:
    # A header-only rewrite keeps the fast byte path: one part, same row count, lines kept.
    original = tmp_path / "a.csv"
    original.write_text("EMAIL\n" + "".join(f"r{i}@example.com\n" for i in range(50)))
    out = tmp_path / "parts"
    out.mkdir()
    parts = split_file(original, ImportFormat.CSV, out, header=["email"], max_bytes=300)
    assert parts[0].first_line == 2
    assert sum(p.rows for p in parts) == 50
    assert all(isinstance(p, Part) and p.path.read_text().startswith("email\n") for p in parts)
