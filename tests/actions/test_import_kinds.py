"""`import` of program members and custom objects: the daemon's checks, one file, a sandbox."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import requests

from dropbox_importer.sandbox import Sandbox
from tests.actions.cli_harness import Run, WriteConfig
from tests.actions.test_import import _config, _file


def _introspect(sandbox: Sandbox, name: str) -> Any:
    return requests.get(f"{sandbox.base_url}/sandbox/{name}.json", timeout=5).json()


def _members(sandbox: Sandbox) -> dict[str, str]:
    (webinar,) = [p for p in _introspect(sandbox, "programs")["programs"] if p["id"] == 1001]
    return {m["email"]: m["status"] for m in webinar["members"]}


def _creates(sandbox: Sandbox) -> int:
    calls = _introspect(sandbox, "stats")["calls"]
    return sum(n for name, n in calls.items() if name.endswith("create"))


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as stream:
        return list(csv.reader(stream))


def test_attendees_get_the_status_in_marketos_spelling(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = _config(write_config, sandbox)
    attendees = _file(
        tmp_path,
        "Email,FirstName,attendedMinutes\nada@example.com,Ada,45\n,Nobody,3\nbo@example.com,Bo,\n",
    )

    code, out, _ = run_cli(
        "import", "--config", config, attendees, "--route", "program=1001,status=no show"
    )

    assert code == 1, out  # one row had no email
    assert "2 row(s) in 1 part(s), format=csv programId=1001 programMemberStatus=No Show" in out
    assert "1 row(s) left out: their email is empty" in out
    assert _members(sandbox) == {"ada@example.com": "No Show", "bo@example.com": "No Show"}
    failures = _rows(attendees.with_name("leads.csv.failures.csv"))
    assert failures[1] == ["3", "", "Nobody", "3", "email is empty"]


@pytest.mark.parametrize(
    ("route", "header", "says"),
    [
        (
            "program=1001,status=Atended",
            "email",
            "refused: programMemberStatus 'Atended' is not a status of program 1001 ('Partner "
            "webinar', channel Webinar): use one of Invited, Registered, Attended, No Show",
        ),
        (
            "program=4040,status=Attended",
            "email",
            "refused: program 4040 does not exist in Marketo",
        ),
        (
            "program=1001,status=Attended",
            "email,attendedMinuts",
            "refused: the header has columns that are neither Marketo lead fields nor program "
            "member fields: 'attendedMinuts' (did you mean attendedMinutes?)",
        ),
        (
            "program=1001,status=Attended",
            "emial,firstName",
            "refused: line 1: 'email', the key of each row's lead, is not a column of the header "
            "(is 'emial' meant to be 'email'?) — add or rename the column: program members are "
            "found, or created, by email",
        ),
        (
            "object=boat_c",
            "vin",
            "refused: custom object 'boat_c' does not exist in Marketo",
        ),
        (
            "object=car_c",
            "model,year",
            "refused: line 1: custom object car_c's dedupe field 'vin' is not a column of the "
            "header — add or rename the column: records are matched on it",
        ),
        (
            "object=car_c",
            "vin,modell",
            "refused: the header has columns that are no field of custom object car_c: 'modell' "
            "(did you mean model?); rename them to the object's fields (vin, model, year)",
        ),
    ],
)
def test_a_file_routed_wrong_is_refused_before_anything_is_sent(
    tmp_path: Path,
    write_config: WriteConfig,
    run_cli: Run,
    sandbox: Sandbox,
    route: str,
    header: str,
    says: str,
) -> None:
    config = _config(write_config, sandbox)
    data = _file(tmp_path, f"{header}\n" + ",".join(["x@example.com"] * len(header.split(","))))

    code, out, _ = run_cli("import", "--config", config, data, "--route", route)

    assert code == 1
    assert out.startswith(says), out
    assert _creates(sandbox) == 0


def test_custom_object_records_land_and_bad_rows_keep_their_lines(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = _config(write_config, sandbox)
    cars = _file(
        tmp_path,
        "VIN,Model,Year\nV1,Model T,1908\n,Beetle,1938\nV3,Mini,sixty\nV4,2CV,1948\n",
        name="cars.csv",
    )

    code, out, _ = run_cli("import", "--config", config, cars, "--route", "object=car_c")

    assert code == 1
    assert "format=csv apiName=car_c" in out
    assert "1 row(s) left out: their dedupe field is empty" in out
    records = _introspect(sandbox, "customobjects")["customObjects"]["car_c"]
    assert sorted(r["fields"]["vin"] for r in records) == ["V1", "V4"]
    assert _rows(cars.with_name("cars.csv.failures.csv"))[1:] == [
        ["3", "", "Beetle", "1938", "dedupe field is empty"],
        ["4", "V3", "Mini", "sixty", "Invalid value 'sixty' for field 'year' of type integer"],
    ]
    # No row had a warning, so there is no warnings file beside it.
    assert not cars.with_name("cars.csv.warnings.csv").exists()


def test_headers_are_mapped_with_the_kinds_own_describe(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    # Display names of a lead field and of a program member field, as partners' tools write them.
    config = _config(write_config, sandbox, columns={"aliases": {"Minutes": "attendedMinutes"}})
    attendees = _file(
        tmp_path, "Email Address,Last Name,Registration Source,Minutes\nada@example.com,L,web,9\n"
    )

    code, out, _ = run_cli(
        "import", "--config", config, attendees, "--route", "program=1001,status=Attended"
    )

    assert code == 0, out
    (ada,) = [
        m
        for p in _introspect(sandbox, "programs")["programs"]
        for m in p["members"]
        if m["email"] == "ada@example.com"
    ]
    assert ada["fields"] == {"registrationSource": "web", "attendedMinutes": 9}
    (lead,) = _introspect(sandbox, "leads")["leads"]
    assert lead["fields"]["lastName"] == "L"
