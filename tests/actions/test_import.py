"""`import`: one file through a route, in the foreground, against a real sandbox."""

from __future__ import annotations

import csv
import itertools
import os
from pathlib import Path
from typing import Any

from dropbox_importer.actions.one_shot import Progress
from dropbox_importer.marketo.models import BatchState, BatchStatus
from dropbox_importer.sandbox import FaultSettings, Sandbox
from tests.actions.cli_harness import Run, WriteConfig, run_subprocess
from tests.conftest import MakeSandbox


def _config(write_config: WriteConfig, sandbox: Sandbox, **box: Any) -> Path:
    instance = {
        "base_url": sandbox.base_url,
        "client_id": sandbox.settings.client_id,
        "client_secret": sandbox.settings.client_secret,
        "poll_min_seconds": 0.05,
        "poll_max_seconds": 0.5,
    }
    return write_config(instance=instance, dropboxes={"acme": box})


def _file(tmp_path: Path, text: str, name: str = "leads.csv") -> Path:
    path = tmp_path / "work" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _emails(sandbox: Sandbox) -> set[str]:
    return {lead["fields"].get("email") for lead in sandbox.app.db.snapshot()} - {None}


def test_a_clean_file_is_imported_and_exits_0(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = _config(write_config, sandbox)
    rows = "".join(f"p{n}@example.com,P{n}\n" for n in range(20))
    leads = _file(tmp_path, "Email,FirstName\n" + rows)

    code, out, err = run_cli("import", "--config", config, leads, "--route", "csv,list=1002")

    assert code == 0, out + err
    assert "leads.csv: 20 row(s) in 1 part(s), format=csv listId=1002" in out
    assert "imported: 0 row(s) failed" in out
    assert _emails(sandbox) == {f"p{n}@example.com" for n in range(20)}
    assert sorted(p.name for p in leads.parent.iterdir()) == ["leads.csv"]  # no row files


def test_progress_is_one_line_per_change_when_not_a_terminal(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = _config(write_config, sandbox)
    leads = _file(tmp_path, "Email\na@example.com\n")

    code, out, _ = run_cli("import", "--config", config, leads, "--route", "")

    assert code == 0
    progress = [line for line in out.splitlines() if line.startswith("1 batch(es): ")]
    assert progress[-1] == "1 batch(es): 1 complete | processed 1, failed 0, warnings 0"
    assert len(progress) == len(set(progress)), "a line is printed only when something changed"
    assert "\r" not in out


def test_failed_and_warned_rows_are_written_beside_the_file_and_exit_1(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = _config(write_config, sandbox)
    long_name = "x" * 300  # over the field's 255 characters: Marketo truncates and warns
    leads = _file(
        tmp_path,
        f"Email,FirstName\nok@example.com,Ok\nlong@example.com,{long_name}\n,NoEmail\n",
    )

    code, out, _ = run_cli("import", "--config", config, leads, "--route", "csv")

    assert code == 1
    assert "NOT fully imported: 1 row(s) failed" in out
    failures = list(csv.reader(leads.with_name("leads.csv.failures.csv").open()))
    assert failures == [
        ["Line", "Email", "FirstName", "Import Failure Reason"],
        ["4", "", "NoEmail", "lookup field is empty"],
    ]
    warnings = list(csv.reader(leads.with_name("leads.csv.warnings.csv").open()))
    assert [row[0] for row in warnings[1:]] == ["3"]
    assert "truncated" in warnings[1][-1]
    assert _emails(sandbox) == {"ok@example.com", "long@example.com"}


def test_rows_marketo_fails_are_mapped_back_and_an_earlier_run_is_not_overwritten(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = _config(write_config, sandbox)
    leads = _file(tmp_path, "Id,FirstName\n999001,Ghost\n999002,Other\n")

    first = run_cli("import", "--config", config, leads, "--route", "csv,lookup=id")
    second = run_cli("import", "--config", config, leads, "--route", "csv,lookup=id")

    assert first[0] == second[0] == 1
    results = sorted(p.name for p in leads.parent.glob("leads.csv.failures*.csv"))
    assert len(results) == 2 and results[0] != results[1]
    rows = list(csv.reader(leads.with_name("leads.csv.failures.csv").open()))
    assert [row[0] for row in rows[1:]] == ["2", "3"]
    assert "Lead not found for id 999001" in rows[1][-1]


def test_a_failed_batch_exits_1_with_marketos_message(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, make_sandbox: MakeSandbox
) -> None:
    sandbox = make_sandbox(faults=FaultSettings(failed_batch_rate=1.0))
    config = _config(write_config, sandbox)
    leads = _file(tmp_path, "Email\na@example.com\n")

    code, out, _ = run_cli("import", "--config", config, leads, "--route", "csv")

    assert code == 1
    assert "1 batch(es): 1 failed" in out
    assert "Failed: " in out and "NOT fully imported" in out


def test_a_large_file_is_split_and_every_part_imported(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = _config(write_config, sandbox, max_part_bytes=2000)
    rows = "".join(f"lead{n:04d}@example.com,Name{n}\n" for n in range(300))
    leads = _file(tmp_path, "Email,FirstName\n" + rows)

    code, out, _ = run_cli("import", "--config", config, leads, "--route", "csv")

    assert code == 0, out
    parts = out.count(" created\n")
    assert parts > 1
    assert f"leads.csv: 300 row(s) in {parts} part(s)" in out
    assert f"{parts} batch(es): {parts} complete | processed 300, failed 0" in out
    assert len(_emails(sandbox)) == 300


def test_a_split_file_for_a_list_sends_one_part_at_a_time_under_strict(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, make_sandbox: MakeSandbox
) -> None:
    sandbox = make_sandbox(profile="strict")
    config = _config(write_config, sandbox, max_part_bytes=2000)
    rows = "".join(f"lead{n:04d}@example.com,Name{n}\n" for n in range(150))
    leads = _file(tmp_path, "Email,FirstName\n" + rows)

    code, out, _ = run_cli("import", "--config", config, leads, "--route", "csv,list=1003")

    assert code == 0, out
    assert out.count(" created\n") == 3
    batches = sandbox.app.queue.snapshot()
    assert [b["listId"] for b in batches] == [1003] * 3
    for earlier, later in itertools.pairwise(batches):
        assert later["created"] >= earlier["finished"], "two jobs of one list at once"
    assert "1019" not in sandbox.app.stats.to_json()["errors"]
    assert len(_emails(sandbox)) == 150


def test_preflight_refuses_an_unknown_column_before_any_batch(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = _config(write_config, sandbox)
    leads = _file(tmp_path, "Email,Compnay\na@example.com,Acme\n")

    code, out, _ = run_cli("import", "--config", config, leads, "--route", "csv")

    assert code == 1
    assert out.startswith("refused: the header has columns that are no Marketo lead field")
    assert "did you mean company?" in out
    assert "created" not in out
    assert _emails(sandbox) == set()


def test_usage_errors_exit_2(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = _config(write_config, sandbox)
    leads = _file(tmp_path, "Email\na@example.com\n")
    odd = _file(tmp_path, "Email\na@example.com\n", name="leads.txt")

    bad_route = run_cli("import", "--config", config, leads, "--route", "csv,list=abc")
    no_box = run_cli("import", "--config", config, leads, "--route", "csv", "--dropbox", "x")
    no_file = run_cli("import", "--config", config, tmp_path / "nope.csv", "--route", "csv")
    no_format = run_cli("import", "--config", config, odd, "--route", "list=1001")

    assert bad_route[0] == no_box[0] == no_file[0] == no_format[0] == 2
    assert "route 'csv,list=abc': listId must be a whole number" in bad_route[2]
    assert "no drop box named 'x' in the config (known: acme)" in no_box[2]
    assert "nope.csv is not a file" in no_file[2]
    assert "no format for 'leads.txt'" in no_format[2]
    assert _emails(sandbox) == set()


def test_the_drop_box_is_inferred_from_the_route_when_only_one_has_it(
    tmp_path: Path, write_config: WriteConfig
) -> None:
    routes = {"acme-emea": {"format": "csv", "listId": 1003, "partitionName": "Europe"}}
    config = write_config(
        instance={"base_url": "embedded", "poll_min_seconds": 0.05},
        dropboxes={"acme": {"routes": routes}, "other": {}},
    )
    (tmp_path / "acme" / "inbox" / "csv").mkdir(parents=True)
    (tmp_path / "other" / "inbox" / "csv").mkdir(parents=True)
    leads = _file(tmp_path, "Email\na@example.com\n")

    ambiguous = run_subprocess("import", "--config", str(config), str(leads), "--route", "csv")
    unknown = run_subprocess("import", "--config", str(config), str(leads), "--route", "tsv")
    inferred = run_subprocess(
        "import", "--config", str(config), str(leads), "--route", "acme-emea/lookup=email"
    )

    assert ambiguous.returncode == unknown.returncode == 2
    assert "route 'csv' exists in several drop boxes (acme, other): choose --dropbox" in (
        ambiguous.stderr
    )
    assert "none names a route 'tsv' nor has it under inbox/: choose --dropbox" in unknown.stderr
    assert inferred.returncode == 0, inferred.stdout + inferred.stderr
    assert "format=csv listId=1003 partitionName=Europe" in inferred.stdout


def read_everything(fd: int) -> str:
    """All that is waiting on a pty master: one read may return only part of it."""
    import select

    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_progress_on_a_terminal_rewrites_one_line_in_place() -> None:
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as terminal:
            progress = Progress(terminal)
            queued = BatchStatus(1, BatchState.QUEUED)
            progress.show([queued, None])
            progress.show([queued, None])  # unchanged: nothing written
            progress.show(
                [BatchStatus(1, BatchState.COMPLETE, 5), BatchStatus(2, BatchState.COMPLETE, 7)]
            )
            progress.end()
        written = read_everything(master)
    finally:
        os.close(master)
        os.close(slave)

    lines = written.replace("\r\n", "\n").split("\r")
    assert lines[0] == ""
    assert (
        lines[1].rstrip()
        == "2 batch(es): 1 queued, 1 submitted | processed 0, failed 0, warnings 0"
    )
    # Padded to the longer line before it, so nothing of that line is left on screen.
    assert lines[2].rstrip() == "2 batch(es): 2 complete | processed 12, failed 0, warnings 0"
    assert len(lines[2]) == len(lines[1]) + 1 and lines[2].endswith("\n")
    assert len(lines) == 3


def test_import_maps_a_partners_header_applies_the_policy_and_names_repeated_rows(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = _config(write_config, sandbox, allow={"lists": [1001]}, columns={"ignore": ["Notes"]})
    leads = _file(
        tmp_path,
        "Email Address,Notes,Company Name\na@example.com,hi,Acme\nA@example.com,,Acme Ltd\n",
    )

    refused = run_cli("import", "--config", config, leads, "--route", "csv,list=1002")
    assert refused[0] == 2 and "listId 1002 is not open to this drop box" in refused[2]
    code, out, err = run_cli("import", "--config", config, leads, "--route", "csv,list=1001")

    assert code == 0, out + err
    assert (
        "1 row(s) repeat an earlier row's email, so Marketo keeps the last: line 3 (same as 2)"
        in out
    )
    [lead] = sandbox.app.db.snapshot()
    assert lead["fields"] == {"email": "a@example.com", "company": "Acme Ltd"}
