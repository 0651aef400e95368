"""`check`: credentials, route folders, lists, partitions and lookup fields, against a sandbox."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from dropbox_importer.pipeline.journal import SCHEMA_VERSION
from dropbox_importer.pipeline.postgres import Database, open_postgres
from dropbox_importer.sandbox import Sandbox
from tests.actions.cli_harness import Run, WriteConfig, run_subprocess
from tests.postgres import PostgresDatabase


def _instance(sandbox: Sandbox, **overrides: Any) -> dict[str, Any]:
    return {
        "base_url": sandbox.base_url,
        "client_id": sandbox.settings.client_id,
        "client_secret": sandbox.settings.client_secret,
        **overrides,
    }


def _folders(root: Path, *routes: str) -> None:
    for route in routes:
        (root / "inbox" / route).mkdir(parents=True)


def _row(out: str, route: str) -> str:
    (line,) = [line for line in out.splitlines() if f" {route} " in f" {line} "]
    return line


def test_every_route_is_ok_when_lists_partitions_and_lookups_exist(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    routes = {"acme-emea": {"format": "csv", "listId": 1001, "partitionName": "Europe"}}
    config = write_config(instance=_instance(sandbox), dropboxes={"acme": {"routes": routes}})
    _folders(tmp_path / "acme", "csv,list=1002", "tsv/partition=Americas,lookup=id", "acme-emea")

    code, out, err = run_cli("check", "--config", config)

    assert code == 0, out + err
    assert "instance main: credentials OK" in out
    assert _row(out, "acme-emea (named)").split() == [
        "acme", "acme-emea", "(named)", "leads", "csv", "list", "1001,", "partition", "Europe",
        "email", "OK",
    ]  # fmt: skip
    assert _row(out, "inbox/csv,list=1002/").endswith("OK")
    assert _row(out, "inbox/tsv/").endswith("OK")
    assert _row(out, "inbox/tsv/partition=Americas,lookup=id/").split()[-3:] == [
        "Americas", "id", "OK",
    ]  # fmt: skip


def test_each_broken_route_is_a_problem_on_its_own_row(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = write_config(instance=_instance(sandbox))
    _folders(
        tmp_path / "acme",
        "csv,list=4040",
        "csv,partition=Mars",
        "csv,lookup=shoeSize",
        "csv,colour=red",
        "csv,list=1001",
    )

    code, out, _ = run_cli("check", "--config", config)

    assert code == 1
    assert "PROBLEM: static list 4040 does not exist" in _row(out, "inbox/csv,list=4040/")
    assert "partition 'Mars' does not exist (Americas, Default, Europe)" in _row(
        out, "inbox/csv,partition=Mars/"
    )
    assert "lookup field 'shoeSize' is no lead field" in _row(out, "inbox/csv,lookup=shoeSize/")
    assert "unknown key 'colour'" in _row(out, "inbox/csv,colour=red/")
    assert _row(out, "inbox/csv,list=1001/").endswith("OK")


def test_refused_credentials_are_a_problem_and_the_secret_is_never_printed(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    secret = "wrong-secret-4f9a2c"
    config = write_config(instance=_instance(sandbox, client_secret=secret))
    _folders(tmp_path / "acme", "csv,list=1001")

    code, out, err = run_cli("check", "--config", config)

    assert code == 1
    assert "instance main: PROBLEM: the identity service refused client id" in out
    # Without a token nothing was looked up: the route is only parsed, and says so.
    assert "NOT CHECKED: instance main: the identity service refused" in _row(
        out, "inbox/csv,list=1001/"
    )
    assert secret not in out + err


def test_an_unreachable_instance_is_given_up_at_the_timeout(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = {"base_url": f"http://127.0.0.1:{port}", "client_id": "x", "client_secret": "y"}
    config = write_config(instance=instance)

    (tmp_path / "acme" / "inbox" / "csv").mkdir(parents=True)

    code, out, _ = run_cli("check", "--config", config, "--timeout", "0.5")

    assert code == 1
    assert f"instance main: PROBLEM: cannot reach http://127.0.0.1:{port}: " in out
    assert "identity service: connection refused" in out
    assert "NOT CHECKED: instance main: cannot reach" in _row(out, "inbox/csv/")


def test_a_host_that_does_not_resolve_is_named_a_dns_failure(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    # .invalid never resolves (RFC 2606), with or without a network.
    instance = {"base_url": "http://marketo.invalid", "client_id": "x", "client_secret": "y"}
    config = write_config(instance=instance)

    code, out, _ = run_cli("check", "--config", config, "--timeout", "1")

    assert code == 1
    assert "identity service: DNS lookup of marketo.invalid failed" in out


def test_a_missing_root_and_a_folder_the_user_cannot_write_fail_their_drop_box(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    config = write_config(
        instance=_instance(sandbox),
        dropboxes={"acme": {}, "globex": {}, "initech": {"root": str(tmp_path / "nowhere")}},
    )
    _folders(tmp_path / "acme", "csv")
    _folders(tmp_path / "globex", "tsv")
    for folder in ("processing", "done", "failed"):
        (tmp_path / "globex" / folder).mkdir()
    done = tmp_path / "globex" / "done"
    undo = read_only(done)
    try:
        code, out, _ = run_cli("check", "--config", config)
    finally:
        undo()

    assert code == 1
    assert "drop box acme: folders OK" in out  # missing folders: it may create them
    assert "drop box globex: PROBLEM: done/ is not writable by user" in out
    assert f"drop box initech: PROBLEM: root {tmp_path / 'nowhere'} does not exist" in out
    assert _row(out, "inbox/csv/").endswith("OK")


def read_only(folder: Path) -> Callable[[], None]:
    """Make `folder` unwritable, to root too (immutable); return how to undo it."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"root cannot make a folder read-only here (chattr: {done.stderr!r})")
    return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_an_embedded_instance_is_checked_against_its_own_sandbox(
    tmp_path: Path, write_config: WriteConfig
) -> None:
    config = write_config(instance={"base_url": "embedded"})
    _folders(tmp_path / "acme", "csv,list=1001,partition=Default", "csv,list=77")

    result = run_subprocess("check", "--config", str(config))

    assert result.returncode == 1, result.stderr
    assert "instance main: credentials OK" in result.stdout
    assert _row(result.stdout, "inbox/csv,list=1001,partition=Default/").endswith("OK")
    assert "static list 77 does not exist" in result.stdout


def test_files_at_the_top_of_the_inbox_make_the_top_a_route(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config(dropboxes={"acme": {"defaults": {"listId": 1003}}})
    (tmp_path / "acme" / "inbox").mkdir(parents=True)
    assert "inbox/ " not in run_cli("check", "--config", config)[1]
    (tmp_path / "acme" / "inbox" / "leads.csv").write_text("Email\na@example.com\n")

    code, out, _ = run_cli("check", "--config", config)

    assert code == 0
    assert _row(out, "inbox/").split()[1:] == [
        "inbox/",
        "leads",
        "by",
        "extension",
        "list",
        "1003",
        "email",
        "OK",
    ]


def test_a_config_error_is_printed_as_the_loader_words_it(tmp_path: Path, run_cli: Run) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("instances:\n  main: {base_url: embedded}\ndropboxes:\n  a: {root: x}\n")

    code, out, err = run_cli("check", "--config", config)

    assert code == 2 and out == ""
    assert f"{config}:4: dropboxes.a.instance: missing" in err


def _section(out: str, box: str) -> list[str]:
    """The lines of a drop box's policy section."""
    lines = out.splitlines()
    start = lines.index(f"drop box {box}: who can import where, which columns")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), None)
    return lines[start + 1 : end]


def test_check_prints_each_drop_boxs_policy_and_warns_about_an_open_one(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    strict = {
        "routes": {
            "emea": {"format": "csv", "listId": 1001, "partitionName": "Europe"},
            "consent": {"list": 1002, "columns": {"allow": ["email", "unsubscribed"]}},
        },
        "allow": {"folders": "named", "lists": [1001, 1002], "partitions": ["Europe"]},
        "columns": {"aliases": {"Firma": "company"}, "ignore": ["Notes"], "deny": ["leadScore"]},
    }
    config = write_config(instance=_instance(sandbox), dropboxes={"open": {}, "strict": strict})
    _folders(tmp_path / "strict", "list=9999")

    code, out, err = run_cli("check", "--config", config)

    assert code == 1, out + err  # the partner-made folder
    assert _row(out, "inbox/list=9999/").endswith(
        "PROBLEM: the file is in folder 'list=9999', but this drop box takes files only in its "
        "route folders (allow.folders: named): move it to inbox/consent/ or inbox/emea/, or ask "
        "the operator to add a route"
    )
    opened = _section(out, "open")
    assert [line.split()[:2] for line in opened[:4]] == [
        ["folders", "any:"], ["lists", "any"], ["partitions", "any"], ["lookup", "fields"],
    ]  # fmt: skip
    assert opened[-1] == (
        "  WARNING: partners can import into any list and any partition and any program and any "
        "custom object by naming a folder (inbox/list=…/): set allow.folders: named, or "
        "allow.lists and allow.partitions and allow.programs and allow.objects"
    )
    shown = "\n".join(_section(out, "strict"))
    assert "WARNING" not in shown
    assert "folders              named routes only" in shown
    assert "lists                1001, 1002" in shown
    assert "aliases              Firma -> company" in shown
    assert "columns denied       leadScore" in shown
    assert (
        "  route consent, its own rules:\n"
        "    columns sent         only email, unsubscribed (and the route's lookup field)\n"
        "    protected, not sent  unsubscribedReason," in shown
    )


def test_check_reports_column_rules_naming_no_lead_field(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    box = {
        "allow": {"lookup_fields": ["email", "emial"]},
        "columns": {"aliases": {"Firma": "compnay"}, "deny": ["leadscore", "shoeSize"]},
    }
    config = write_config(instance=_instance(sandbox), dropboxes={"acme": box})

    code, out, _ = run_cli("check", "--config", config)

    assert code == 1
    problems = [line.strip() for line in _section(out, "acme") if "PROBLEM" in line]
    assert problems == [
        "PROBLEM: columns.aliases maps 'Firma' to 'compnay', which is no lead field",
        "PROBLEM: columns.deny names 'shoeSize', which is no lead field",
        "PROBLEM: allow.lookup_fields names 'emial', which is no lead field",
    ]


def test_program_member_and_custom_object_routes_are_looked_up(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, sandbox: Sandbox
) -> None:
    routes = {
        "webinar-attended": {"program": 1001, "status": "Attended"},
        "webinar-typo": {"program": 1001, "status": "Atended"},
        "cars": {"object": "car_c"},
    }
    config = write_config(instance=_instance(sandbox), dropboxes={"acme": {"routes": routes}})
    _folders(
        tmp_path / "acme",
        "program=1001,status=no show",
        "program=4040,status=Attended",
        "program=1002,status=Attended",
        "object=boat_c",
        "object=car_c,csv",
        "program=1001,status=Invited,list=5",
    )

    code, out, _ = run_cli("check", "--config", config)

    assert code == 1
    assert _row(out, "webinar-attended (named)").split()[3:] == [
        "program", "members", "by", "extension", "program", "1001", "(Partner", "webinar),",
        "status", "Attended", "email", "OK",
    ]  # fmt: skip
    assert "status No Show" in _row(out, "inbox/program=1001,status=no show/")
    assert _row(out, "inbox/program=1001,status=no show/").endswith("OK")
    assert (
        "PROBLEM: status 'Atended' is not one of program 1001's statuses (Invited, Registered, "
        "Attended, No Show; channel Webinar)"
    ) in _row(out, "webinar-typo (named)")
    assert "PROBLEM: program 4040 does not exist" in _row(
        out, "inbox/program=4040,status=Attended/"
    )
    assert "(Engaged; channel Content)" in _row(out, "inbox/program=1002,status=Attended/")
    assert _row(out, "cars (named)").split()[3:] == [
        "custom", "objects", "by", "extension", "car_c", "vin", "OK",
    ]  # fmt: skip
    assert _row(out, "inbox/object=car_c,csv/").split()[-2:] == ["vin", "OK"]
    assert "PROBLEM: custom object 'boat_c' does not exist" in _row(out, "inbox/object=boat_c/")
    assert "mixes a program member import" in _row(out, "inbox/program=1001,status=Invited,list=5/")


def _with_state(config: Path, state: dict[str, Any]) -> Path:
    document = yaml.safe_load(config.read_text())
    document["state"] = state
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    return config


def test_a_shared_journal_is_reached_and_its_schema_version_told(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, postgres_database: PostgresDatabase
) -> None:
    (tmp_path / "acme").mkdir()
    config = _with_state(write_config(), postgres_database.state())
    display = postgres_database.url

    code, out, _ = run_cli("check", "--config", config)
    assert code == 0, out
    assert f"journal {display} (PostgreSQL " in out
    assert f"OK, empty: the daemon migrates it to {SCHEMA_VERSION} at start" in out

    password = postgres_database.password_file.read_text().strip()
    open_postgres(Database(postgres_database.url, password)).close()
    code, out, _ = run_cli("check", "--config", config)
    assert code == 0 and f"OK, schema version {SCHEMA_VERSION}\n" in out


def test_a_shared_journal_that_refuses_the_password_is_a_problem_that_shows_no_password(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, postgres_database: PostgresDatabase
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-it-4412\n")
    config = _with_state(
        write_config(), {"journal": postgres_database.url, "password_file": str(wrong)}
    )
    code, out, err = run_cli("check", "--config", config)
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith("journal")]
    assert "PROBLEM" in line and "password authentication failed" in line
    assert "not-it-4412" not in out + err


def test_a_shared_journal_newer_than_this_version_is_a_problem(
    write_config: WriteConfig, run_cli: Run, postgres_database: PostgresDatabase
) -> None:
    password = postgres_database.password_file.read_text().strip()
    open_postgres(Database(postgres_database.url, password)).close()
    with psycopg.connect(postgres_database.url, password=password, autocommit=True) as conn:
        conn.execute("UPDATE journal_schema SET version = version + 1")
    config = _with_state(write_config(), postgres_database.state())
    code, out, _ = run_cli("check", "--config", config)
    assert code == 1
    assert f"schema version {SCHEMA_VERSION + 1} is newer than this version's" in out
