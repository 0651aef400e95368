"""`preview`: the mapped header, local failures, repeats and parts of a file, nothing sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dropbox_importer.sandbox import Sandbox
from tests.actions.cli_harness import Run, WriteConfig, run_subprocess
from tests.sandbox.sandbox_client import Client

PARTNER_FILE = (
    "Email Address,First Name,Internal notes,unsubscribed\n"
    "ada@example.com,Ada,vip,false\n"
    ",No,Email,\n"
    "grace@example.com,Grace,,\n"
    "ADA@example.com,Ada,,\n"
)
BOX = {
    "routes": {"newsletter": {"format": "csv", "listId": 1001}},
    "columns": {"ignore": ["Internal notes"], "on_denied": "drop"},
}


def _instance(sandbox: Sandbox) -> dict[str, Any]:
    return {
        "base_url": sandbox.base_url,
        "client_id": sandbox.settings.client_id,
        "client_secret": sandbox.settings.client_secret,
    }


def _nothing_sent(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    assert client.introspect("batches")["batches"] == []
    assert client.introspect("leads")["leads"] == []


def _columns(out: str) -> dict[str, list[str]]:
    """The header table's rows by column name: [sent as, fate, why...]."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("COLUMN"))
    width = lines[start].index("SENT AS")
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows[line[:width].strip()] = line[width:].split()
    return rows


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "partner.csv"
    path.write_text(text)
    return path


def test_preview_shows_the_mapped_header_the_rows_and_the_parts_and_sends_nothing(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = write_config(instance=_instance(sandbox), dropboxes={"acme": BOX})
    file = _file(tmp_path, PARTNER_FILE)

    code, out, err = run_cli("preview", "--config", config, "--route", "newsletter", file)

    assert code == 0, out + err
    assert out.startswith("partner.csv in inbox/newsletter/ of drop box acme: format=csv")
    columns = _columns(out)
    assert columns["Email Address"] == ["email", "sent", "display", "name"]
    assert columns["First Name"][:2] == ["firstName", "sent"]
    assert columns["Internal notes"] == ["-", "ignored", "columns.ignore"]
    assert columns["unsubscribed"][:2] == ["-", "denied"]
    assert "header sent to Marketo: email,firstName\n" in out
    assert "rows that fail here and are never sent: 1\n  line 3: lookup field is empty\n" in out
    assert (
        "1 row(s) repeat an earlier row's email, so Marketo keeps the last: line 5 (same as 2)"
        in out
    )
    assert "parts: 1 " in out and "  part 1: 3 row(s) from line 2, " in out
    assert out.endswith("would be sent: 3 row(s) in 1 part(s); nothing was sent\n")
    assert file.read_text() == PARTNER_FILE
    _nothing_sent(sandbox)


def test_preview_of_a_file_that_would_be_refused_shows_why_and_its_header(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = write_config(instance=_instance(sandbox), dropboxes={"acme": {}})
    file = _file(tmp_path, "Email Address,unsubscribed,Shoe size\nada@example.com,false,38\n")

    code, out, _ = run_cli("preview", "--config", config, "--route", "csv", file)

    assert code == 1
    assert _columns(out)["Shoe size"] == [
        "-",
        "unknown",
        "no",
        "lead",
        "field",
        "of",
        "the",
        "instance",
    ]
    assert (
        "would be refused: line 1: this drop box does not take the column(s) 'unsubscribed'" in out
    )
    _nothing_sent(sandbox)


def test_preview_of_a_route_the_policy_refuses_stops_before_marketo(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    box = {"allow": {"lists": [1001]}}
    config = write_config(instance=_instance(sandbox), dropboxes={"acme": box})
    file = _file(tmp_path, "email\nada@example.com\n")

    code, out, _ = run_cli("preview", "--config", config, "--route", "csv,list=1002", file)

    assert code == 1
    assert out == (
        "partner.csv in inbox/csv,list=1002/ of drop box acme\n"
        "would be refused: listId 1002 is not open to this drop box (allow.lists: 1001): drop "
        "the file in a route folder with one of those lists, or ask the operator to allow this "
        "one\n"
    )
    assert Client(sandbox).introspect("stats")["calls"].get("describe", 0) == 0  # not asked
    _nothing_sent(sandbox)


def test_preview_usage_errors_exit_2(tmp_path: Path, write_config: WriteConfig) -> None:
    config = write_config()
    done = run_subprocess("preview", "--config", str(config), "--route", "csv", "nowhere.csv")
    assert done.returncode == 2
    assert "nowhere.csv is not a file" in done.stderr


def test_preview_maps_a_program_member_or_custom_object_file_with_its_own_fields(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = write_config(instance=_instance(sandbox), dropboxes={"acme": {}})
    attendees = _file(tmp_path, "Email Address,Attended Minutes\nada@example.com,30\n")

    code, out, err = run_cli(
        "preview", "--config", config, "--route", "program=1001,status=attended", attendees
    )

    assert code == 0, out + err
    assert ": format=csv programId=1001 programMemberStatus=attended\n" in out
    assert _columns(out)["Attended Minutes"] == ["attendedMinutes", "sent", "display", "name"]
    cars = _file(tmp_path, "VIN,Colour\nV1,red\n")
    code, out, _ = run_cli("preview", "--config", config, "--route", "object=car_c", cars)
    assert code == 1
    assert _columns(out)["VIN"][:2] == ["vin", "sent"]
    assert (
        "would be refused: the header has columns that are no field of custom object car_c" in out
    )
    _nothing_sent(sandbox)


def test_a_partition_that_does_not_exist_names_no_other_partition_but_the_log_does(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = write_config(instance=_instance(sandbox), dropboxes={"acme": {}})
    file = _file(tmp_path, "email\nada@example.com\n")

    code, out, err = run_cli("preview", "--config", config, "--route", "csv,partition=Mars", file)

    assert code == 1
    assert out.endswith(
        "would be refused: lead partition 'Mars' does not exist in Marketo; ask the operator to "
        "fix the route\n"
    )
    assert not any(name in out for name in ("Default", "Europe", "Americas"))
    # The operator's log (stderr here, the journal under systemd) names them.
    [event] = [
        json.loads(line) for line in err.splitlines() if "preflight_partition_unknown" in line
    ]
    assert event["partitionName"] == "Mars"
    assert event["known"] == ["Americas", "Default", "Europe"]
    _nothing_sent(sandbox)
