"""result.json: stable keys, a faithful round trip, and a streaming digest of the original."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dropbox_importer import __version__
from dropbox_importer.dropbox.results import (
    ColumnResult,
    DuplicateResult,
    Encoding,
    FileResult,
    Imported,
    PartResult,
    Timings,
    file_digest,
)
from dropbox_importer.marketo.models import BatchState, BatchStatus, ImportFormat, ImportParams
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.states import FileState

T0 = datetime(2026, 11, 29, 3, 15, tzinfo=UTC)
PARAMS = ImportParams(ImportFormat.CSV, list_id=42, partition_name="EU", lookup_field="email")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "state", clock=lambda: T0)
    yield j
    j.close()


def sample() -> FileResult:
    return FileResult(
        dropbox="acme",
        route="list-42/partition-EU",
        file="leads.csv",
        outcome="done",
        reason=None,
        params=PARAMS,
        parts=(
            PartResult(0, 2, 100, 3404, "Complete", 99, 1, 2, "Import completed with errors"),
            PartResult(1, 102, 10, 3405, "Complete", 10, 0, 0, "Import succeeded"),
        ),
        timings=Timings(T0, T0 + timedelta(seconds=3), T0 + timedelta(seconds=4), None),
        size=1234,
        sha256="ab" * 32,
        rows_failed_locally=3,
        columns=(
            ColumnResult("Email Address", "email", "sent", "display name"),
            ColumnResult("Internal notes", None, "ignored", "columns.ignore"),
        ),
        duplicates=DuplicateResult("email", 2, ((5, 2), (9, 2))),
    )


def test_document_has_the_documented_keys() -> None:
    doc = json.loads(sample().to_json())
    assert list(doc) == [
        "schema",
        "dropbox",
        "route",
        "file",
        "outcome",
        "reason",
        "import",
        "counts",
        "parts",
        "timings",
        "original",
        "rounds",
        "imported",
        "encoding",
        "ignored_columns",
        "version",
        "columns",
        "duplicates",
    ]
    assert doc["import"] == {
        "kind": "leads",
        "format": "csv",
        "list_id": 42,
        "partition_name": "EU",
        "lookup_field": "email",
        "program_id": None,
        "program_member_status": None,
        "object_name": None,
    }
    assert doc["counts"] == {
        "leads_processed": 109,
        "rows_failed": 1,
        "rows_with_warning": 2,
        "rows_failed_locally": 3,
        "blank_rows": 0,
    }
    assert doc["parts"][0] == {
        "index": 0,
        "first_line": 2,
        "rows": 100,
        "batch_id": 3404,
        "status": "Complete",
        "leads_processed": 99,
        "rows_failed": 1,
        "rows_with_warning": 2,
        "message": "Import completed with errors",
        "lost_batch_ids": [],
        "round": 1,
        "shared": None,
    }
    assert doc["timings"] == {
        "dropped": "2026-11-29T03:15:00.000000Z",
        "claimed": "2026-11-29T03:15:03.000000Z",
        "submitted": "2026-11-29T03:15:04.000000Z",
        "finished": None,
        "modified": None,
    }
    assert doc["original"] == {"size": 1234, "sha256": "ab" * 32}
    assert doc["version"] == __version__


def test_round_trip_through_a_file_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv.result.json"
    sample().write(path)
    assert FileResult.from_json(path.read_bytes()) == sample()
    full = replace(
        sample(),
        rounds=2,
        imported=Imported(1234, "ab" * 32, 112),
        encoding=Encoding("cp1252", "declared", "utf-8"),
        ignored_columns=(5, 6),
        blank_rows=2,
        timings=replace(sample().timings, modified=T0 - timedelta(days=400)),
    )
    full.write(path)
    assert FileResult.from_json(path.read_bytes()) == full
    assert path.read_bytes().endswith(b"\n")


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        (ImportParams(ImportFormat.TSV, program_id=1001, program_member_status="No Show"),
         "program_members"),
        (ImportParams(ImportFormat.CSV, object_name="car_c"), "custom_objects"),
    ],
)  # fmt: skip
def test_the_import_kind_and_its_parameters_are_recorded(
    tmp_path: Path, params: ImportParams, kind: str
) -> None:
    result = FileResult(
        "acme", "r", "f.csv", "done", None, params, (), Timings(None, T0, None, T0), 1, "00" * 32
    )
    doc = json.loads(result.to_json())["import"]
    assert doc["kind"] == kind
    assert (doc["program_id"], doc["program_member_status"], doc["object_name"]) == (
        params.program_id,
        params.program_member_status,
        params.object_name,
    )
    assert FileResult.from_json(result.to_json()) == result


def test_a_result_written_before_the_import_kinds_still_reads() -> None:
    doc = json.loads(sample().to_json())
    for key in ("kind", "program_id", "program_member_status", "object_name"):
        del doc["import"][key]
    assert FileResult.from_json(json.dumps(doc).encode()).params == PARAMS


def test_non_ascii_reasons_stay_readable() -> None:
    failed = FileResult(
        "acme", "", "Événements.csv", "failed", "the header names no lead field: « Émail »",
        PARAMS, (), Timings(None, T0, None, T0), 10, "00" * 32,
    )  # fmt: skip
    text = failed.to_json().decode()
    assert "« Émail »" in text and "Événements.csv" in text
    assert json.loads(text)["timings"]["submitted"] is None


def test_build_from_journal_records(journal: Journal) -> None:
    file_id = journal.record_claim(
        "acme", "list-42", "leads.csv", Path("/i"), Path("/p"), 55, "cd" * 32
    )
    journal.transition(file_id, FileState.SUBMITTING)
    journal.record_part(file_id, 0, first_line=2, rows=5, size=50)
    journal.record_batch(file_id, 0, 77)
    journal.record_batch_status(file_id, BatchStatus(77, BatchState.COMPLETE, 4, 1, 0, "ok"))
    result = FileResult.build(
        journal.get(file_id),
        journal.parts(file_id),
        PARAMS,
        "done",
        dropped=T0 - timedelta(minutes=1),
        finished=T0,
        rows_failed_locally=2,
    )
    assert (result.dropbox, result.route, result.file, result.size) == (
        "acme",
        "list-42",
        "leads.csv",
        55,
    )
    assert result.parts == (PartResult(0, 2, 5, 77, "Complete", 4, 1, 0, "ok"),)
    assert result.timings == Timings(T0 - timedelta(minutes=1), T0, T0, T0)
    assert result.counts()["rows_failed"] == 1 and result.counts()["rows_failed_locally"] == 2


def test_a_file_never_submitted_has_no_submitted_time(journal: Journal) -> None:
    file_id = journal.record_claim("acme", "", "x.csv", Path("/i"), Path("/p"), 1, "00")
    result = FileResult.build(
        journal.get(file_id), [], PARAMS, "failed", reason="no header", finished=T0
    )
    assert result.timings.submitted is None and result.reason == "no header"


def test_digest_streams_large_files_and_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    data = bytes(range(256)) * 20_000  # ~5 MB, several read chunks
    path.write_bytes(data)
    assert file_digest(path) == (len(data), hashlib.sha256(data).hexdigest())
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert file_digest(empty) == (0, hashlib.sha256(b"").hexdigest())


def test_digest_refuses_to_follow_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "t.csv"
    target.write_bytes(b"x")
    link = tmp_path / "l.csv"
    link.symlink_to(target)
    with pytest.raises(OSError):
        file_digest(link)


def test_a_file_imported_again_reports_every_batch_and_counts_only_the_last_round(
    journal: Journal,
) -> None:
    file_id = journal.record_claim(
        "acme", "", "x.csv", Path("/i"), Path("/p"), 30, "aa", dropped_at=T0, seen_at=T0
    )
    journal.transition(file_id, FileState.SUBMITTING)
    journal.record_part(file_id, 0, first_line=2, rows=2, size=30)
    journal.record_batch(file_id, 0, 901)
    journal.record_batch_status(file_id, BatchStatus(901, BatchState.COMPLETE, 2, 0, 0, "ok"))
    journal.transition(file_id, FileState.POLLING)
    journal.transition(file_id, FileState.CHANGED, "grew")
    journal.start_round(file_id, 300, "bb", T0)
    journal.transition(file_id, FileState.SUBMITTING)
    journal.record_details(
        file_id,
        {"encoding": "cp1252", "encoding_by": "declared", "blank_rows": 1, "last_line": 12},
    )
    journal.record_part(file_id, 1, first_line=2, rows=10, size=300, round_number=2)
    journal.record_batch(file_id, 1, 902)
    journal.record_batch_status(file_id, BatchStatus(902, BatchState.COMPLETE, 9, 1, 0, "ok"))
    record = journal.get(file_id)
    result = FileResult.build(record, journal.parts(file_id), PARAMS, "done", dropped=T0)
    doc = json.loads(result.to_json())
    assert [(p["batch_id"], p["round"]) for p in doc["parts"]] == [(901, 1), (902, 2)]
    assert doc["rounds"] == 2
    assert doc["counts"]["leads_processed"] == 9 and doc["counts"]["rows_failed"] == 1
    assert doc["counts"]["blank_rows"] == 1
    assert doc["original"] == {"size": 300, "sha256": "bb"}
    assert doc["imported"] == {"size": 300, "sha256": "bb", "last_line": 12}
    assert doc["encoding"] == {"name": "cp1252", "decided_by": "declared", "converted_to": "utf-8"}


def test_a_result_written_before_these_keys_existed_still_reads() -> None:
    doc = json.loads(sample().to_json())
    for key in ("rounds", "imported", "encoding", "ignored_columns"):
        del doc[key]
    del doc["timings"]["modified"]
    del doc["counts"]["blank_rows"]
    for part in doc["parts"]:
        del part["round"]
    assert FileResult.from_json(json.dumps(doc).encode()) == sample()


def test_a_part_sent_in_a_shared_batch_names_it_and_reads_back() -> None:
    shared = {"files": 12, "rows": 60, "first_row": 21}
    part = dataclasses.replace(sample().parts[0], shared=shared)
    result = dataclasses.replace(sample(), parts=(part,))
    doc = json.loads(result.to_json())
    assert doc["parts"][0]["shared"] == shared
    assert FileResult.from_json(result.to_json()) == result
