"""Partners' own column names, through the real daemon to the sandbox and back to done/."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dropbox_importer.sandbox.settings import LeadField
from tests.daemon.harness import DaemonProcess, originals_under, wait_for
from tests.daemon.test_end_to_end import FAST, daemon_on, drop, result_of, sandbox_json

pytestmark = pytest.mark.slow

# A custom field labelled like the standard `phone`: "Phone Number" means either.
MAIN_PHONE = LeadField("mainPhone", "phone", 255, "Phone Number")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for process in started:
        assert process.stop() == 0


def rows_of(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(), newline="")))


def test_partners_column_names_are_mapped_and_the_original_kept(
    tmp_path: Path, make_sandbox: Callable[..., Any], daemon: list[DaemonProcess]
) -> None:
    sandbox = make_sandbox(**FAST, custom_fields=(MAIN_PHONE,))
    root = tmp_path / "acme"
    box = {
        "root": str(root),
        "columns": {
            "aliases": {"E-Mail-Adresse": "email", "Firma": "company"},
            "ignore": ["Internal notes"],
        },
    }
    daemon.append(daemon_on(tmp_path, sandbox, {"acme": box}))
    files = {
        "csv/display.csv": "Email Address,First Name,Last Name,Company Name\n"
        "ada@example.com,Ada,Byron,\n"
        "grace@example.com,Grace,Hopper,Compilers Inc\n"
        "ADA@example.com,Ada,Lovelace,Analytical Engines\n",
        "csv/alias.csv": "E-Mail-Adresse,Firma,Internal notes\n"
        "karl@example.com,Weber AG,call back on Monday\n"
        "not-an-email,Broken GmbH,do not import\n",
        "csv/ambiguous.csv": "Email Address,Phone Number\nphone@example.com,+44 20 7946 0000\n",
    }
    for relative, text in files.items():
        drop(root, relative, text)
    wait_for(lambda: len(originals_under(root / "done")) == 2, timeout=60, what="2 in done/")
    wait_for(lambda: len(originals_under(root / "failed")) == 1, timeout=60, what="1 in failed/")

    # Display names: the leads have their fields set, the original is untouched.
    leads = {
        lead["fields"]["email"]: lead["fields"] for lead in sandbox_json(sandbox, "leads")["leads"]
    }
    assert leads["ada@example.com"] == {
        "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace",
        "company": "Analytical Engines",
    }  # fmt: skip
    assert leads["grace@example.com"]["company"] == "Compilers Inc"
    display = root / "done" / "csv" / "display.csv"
    assert display.read_text() == files["csv/display.csv"]
    # Line 4 repeats line 2's email: said in result.json, and Marketo kept the last.
    duplicates = result_of(display)["duplicates"]
    assert duplicates["lookup_field"] == "email" and duplicates["rows"] == 1
    assert duplicates["lines"] == [{"line": 4, "same_as_line": 2}]
    assert "keeps the last" in duplicates["note"]
    columns = result_of(display)["columns"]
    assert [(c["column"], c["field"], c["how"]) for c in columns] == [
        ("Email Address", "email", "display name"),
        ("First Name", "firstName", "display name"),
        ("Last Name", "lastName", "display name"),
        ("Company Name", "company", "display name"),
    ]

    # Aliases and ignore: the ignored column never reached Marketo (it would have warned of an
    # unknown field on every row) and the failures file speaks the partner's own names.
    assert leads["karl@example.com"] == {"email": "karl@example.com", "company": "Weber AG"}
    alias = root / "done" / "csv" / "alias.csv"
    assert alias.read_text() == files["csv/alias.csv"]
    result = result_of(alias)
    assert result["counts"]["rows_with_warning"] == 0
    assert [c["fate"] for c in result["columns"]] == ["sent", "sent", "ignored"]
    assert rows_of(alias.with_name("alias.csv.failures.csv")) == [
        ["Line", "E-Mail-Adresse", "Firma", "Internal notes", "Import Failure Reason"],
        [
            "3",
            "not-an-email",
            "Broken GmbH",
            "do not import",
            "Invalid email address 'not-an-email'",
        ],
    ]

    # An ambiguous display name fails before anything is sent, naming both fields.
    ambiguous = root / "failed" / "csv" / "ambiguous.csv"
    reason = result_of(ambiguous)["reason"]
    assert "'Phone Number'" in reason and "'phone' and 'mainPhone'" in reason
    assert "phone@example.com" not in leads
    assert len(sandbox_json(sandbox, "batches")["batches"]) == 2
