"""Program members and custom objects through the real daemon, on real folders and a sandbox.

One daemon serves the whole module (each test drops into folders of its own), so the module
costs one start-up. Its drop box splits anything over 1,024 bytes, to show line numbers across
parts, and serves /metrics.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from dropbox_importer.sandbox import Sandbox, SandboxSettings
from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config
from tests.unprivileged import UMASK, ServiceAccount
from tests.waiting import free_port

pytestmark = pytest.mark.slow

ROUTES = {
    "webinar-registered": {"program": 1001, "status": "Registered"},
    "cars": {"object": "car_c"},
}


@dataclass
class Running:
    """The module's daemon, its sandbox, its drop box root and its metrics port."""

    daemon: DaemonProcess
    sandbox: Sandbox
    root: Path
    metrics_port: int

    def drop(self, relative: str, text: str) -> Path:
        """Drop a file as a careful client does: written aside, renamed into the inbox."""
        target = self.root / "inbox" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name("." + target.name + ".uploading")
        staging.write_text(text)
        staging.rename(target)
        return target

    def settled(self, relative: str, outcome: str = "done") -> Path:
        """Wait until the file dropped as `relative` is in done/ (or failed/); its path there."""
        final = self.root / outcome / relative
        wait_for(final.exists, timeout=60, what=f"{relative} in {outcome}/")
        wait_for(result_path(final).exists, timeout=10, what=f"{relative}'s result.json")
        return final

    def sandbox_json(self, what: str) -> Any:
        return requests.get(f"{self.sandbox.base_url}/sandbox/{what}.json", timeout=10).json()

    def members(self, program: int = 1001) -> dict[str, str]:
        """email -> status of every member of the program."""
        (found,) = [p for p in self.sandbox_json("programs")["programs"] if p["id"] == program]
        return {m["email"]: m["status"] for m in found["members"]}


@pytest.fixture(scope="module", params=["kind", "strict"])
def running(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    service_account: ServiceAccount | None,
) -> Iterator[Running]:
    """The module's daemon on a sandbox of each profile in turn (docs/sandbox.md)."""
    # As tests/unprivileged.py does for each test: the daemon runs as the unit runs it.
    if service_account is None:
        tmp_path = tmp_path_factory.mktemp(f"kinds-{request.param}")
    else:
        tmp_path = service_account.folder(f"kinds-{request.param}")
    sandbox = Sandbox(
        SandboxSettings(
            rows_per_second=2000.0,
            job_overhead_seconds=0.05,
            window_seconds=2.0,
            profile=request.param,
        )
    ).start()
    root = tmp_path / "partner"
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"partner": {"root": str(root), "max_part_bytes": 1024, "routes": ROUTES}},
    )
    port = free_port()
    config.write_text(config.read_text() + f"metrics:\n  listen: 127.0.0.1:{port}\n")
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    if service_account is not None:
        daemon.run_as, daemon.umask = service_account.command(), UMASK
    daemon.start()
    try:
        yield Running(daemon, sandbox, root, port)
    finally:
        code = daemon.stop()
        sandbox.stop()
    assert code == 0, "the daemon did not stop cleanly on SIGTERM"


def result_path(final: Path) -> Path:
    return final.with_name(final.name + ".result.json")


def result_of(final: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result_path(final).read_text())
    return data


def failure_lines(final: Path) -> dict[int, str]:
    """Line -> reason of the failures file beside a settled file."""
    rows = final.with_name(final.name + ".failures.csv").read_text().splitlines()
    assert rows[0].startswith("Line,")
    return {int(row.split(",")[0]): row.rsplit(",", 1)[1] for row in rows[1:]}


def test_attendees_become_members_with_their_status_and_missing_leads_are_created(
    running: Running,
) -> None:
    running.drop("csv/known.csv", "email,firstName\nada@example.com,Ada\n")
    running.settled("csv/known.csv")
    attendees = "email,lastName\nADA@example.com,Lovelace\ngrace@example.com,Hopper\n"
    running.drop("program=1001,status=Attended/attendees.csv", attendees)

    final = running.settled("program=1001,status=Attended/attendees.csv")

    assert final.read_text() == attendees
    members = {email.lower(): status for email, status in running.members().items()}
    assert members["ada@example.com"] == members["grace@example.com"] == "Attended"
    leads = [lead["fields"] for lead in running.sandbox_json("leads")["leads"]]
    emails = sorted(fields["email"].lower() for fields in leads)
    assert emails.count("ada@example.com") == 1  # found by email, not created again
    assert "grace@example.com" in emails  # created where none existed
    result = result_of(final)
    assert result["outcome"] == "done"
    assert result["import"]["kind"] == "program_members"
    assert (result["import"]["program_id"], result["import"]["program_member_status"]) == (
        1001,
        "Attended",
    )
    assert result["counts"]["leads_processed"] == 2
    created = [e for e in running.daemon.events() if e.get("event") == "batch_created"]
    kinds = {e["route"]: e["kind"] for e in created}
    assert kinds["program=1001,status=Attended"] == "program_members"
    assert kinds["csv"] == "leads"


def test_a_named_route_imports_members_with_its_status(running: Running) -> None:
    running.drop("webinar-registered/signups.csv", "email\nhedy@example.com\n")

    final = running.settled("webinar-registered/signups.csv")

    assert running.members()["hedy@example.com"] == "Registered"
    assert result_of(final)["import"]["program_member_status"] == "Registered"


def test_an_unknown_status_fails_the_file_before_anything_is_sent(running: Running) -> None:
    before = len(running.sandbox_json("batches")["batches"])
    text = "email\nalan@example.com\n"
    running.drop("program=1001,status=Atended/late.csv", text)

    final = running.settled("program=1001,status=Atended/late.csv", "failed")

    assert final.read_text() == text
    result = result_of(final)
    assert result["reason"] == (
        "programMemberStatus 'Atended' is not a status of program 1001 ('Partner webinar', "
        "channel Webinar): use one of Invited, Registered, Attended, No Show"
    )
    assert result["parts"] == [] and result["timings"]["submitted"] is None
    assert "alan@example.com" not in running.members()
    batches = running.sandbox_json("batches")["batches"]
    assert all(b.get("programMemberStatus") != "Atended" for b in batches[before:])


def test_custom_object_records_land_in_marketo(running: Running) -> None:
    text = "vin,model,year\nVIN-A1,Model T,1908\nVIN-A2,Beetle,1938\n"
    running.drop("cars/fleet.csv", text)

    final = running.settled("cars/fleet.csv")

    records = running.sandbox_json("customobjects")["customObjects"]["car_c"]
    by_vin = {r["fields"]["vin"]: r["fields"] for r in records}
    assert by_vin["VIN-A1"] == {"vin": "VIN-A1", "model": "Model T", "year": 1908}
    assert by_vin["VIN-A2"]["year"] == 1938
    assert result_of(final)["import"]["kind"] == "custom_objects"


def test_split_files_with_bad_rows_keep_their_original_line_numbers(running: Running) -> None:
    # About 40 bytes a row: 60 rows make three parts of at most 1,024 bytes each.
    members = ["email,firstName,attendedMinutes"]
    cars = ["vin,model,year"]
    for n in range(2, 62):
        members.append(f"member{n:03d}@example.com,Member number {n:03d},{n}")
        cars.append(f"VIN-S{n:03d},Model number {n:03d} of many,{1900 + n}")
    members[5 - 1] = "not-an-email,Broken,5"  # line 5
    members[44 - 1] = ",No email,44"  # line 44: failed locally, never sent
    members[58 - 1] = "member058@example.com,Minutes,lots"  # line 58
    cars[7 - 1] = "VIN-S007,Model,nineteen-oh-seven"  # line 7
    cars[50 - 1] = ",No vin,1950"  # line 50: failed locally, never sent
    cars[61 - 1] = "VIN-S061,Model,later"  # line 61
    running.drop("program=1001,status=Invited/big.csv", "\n".join(members) + "\n")
    running.drop("object=car_c/big.csv", "\n".join(cars) + "\n")

    member_file = running.settled("program=1001,status=Invited/big.csv")
    car_file = running.settled("object=car_c/big.csv")

    for final in (member_file, car_file):
        assert len(result_of(final)["parts"]) >= 2, "the file was split"
    assert failure_lines(member_file) == {
        5: "Invalid email address 'not-an-email'",
        44: "email is empty",
        58: "Invalid value 'lots' for field 'attendedMinutes' of type integer",
    }
    assert failure_lines(car_file) == {
        7: "Invalid value 'nineteen-oh-seven' for field 'year' of type integer",
        50: "dedupe field is empty",
        61: "Invalid value 'later' for field 'year' of type integer",
    }
    assert result_of(member_file)["counts"] == {
        "leads_processed": 57,
        "rows_failed": 2,
        "rows_with_warning": 0,
        "rows_failed_locally": 1,
        "blank_rows": 0,
    }


def test_metrics_and_status_count_every_kind(running: Running) -> None:
    running.drop("cars/one.csv", "vin\nVIN-M1\n")
    running.settled("cars/one.csv")

    scrape = requests.get(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=10).text
    for endpoint in ("customobjects_create", "customobjects_status", "program_members_create"):
        assert re.search(rf'api_calls_total\{{[^}}]*endpoint="{endpoint}"[^}}]*\}} [1-9]', scrape)
    assert 'dropbox_importer_files_settled_total{dropbox="partner",outcome="done"}' in scrape
    config = str(running.daemon.config)
    status = subprocess.run(
        [sys.executable, "-m", "dropbox_importer", "status", "--config", config, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (box,) = json.loads(status.stdout)["dropboxes"]
    recent = {(r["route"], r["file"]): r["outcome"] for r in box["recent"]}
    assert recent[("cars", "one.csv")] == "done"
    assert not originals_under(running.root / "processing")


def test_a_restart_follows_program_member_and_custom_object_batches_on_their_own_paths(
    tmp_path: Path, make_sandbox: Any
) -> None:
    # Jobs that cannot finish until the test lets them: both batches are queued at the stop.
    sandbox = make_sandbox(job_overhead_seconds=3600.0, window_seconds=2.0)
    root = tmp_path / "box"
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"box": {"root": str(root)}},
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        for relative, text in (
            ("program=1001,status=Attended/a.csv", "email\nr1@example.com\n"),
            ("object=car_c/c.csv", "vin\nVIN-R1\n"),
        ):
            target = root / "inbox" / relative
            target.parent.mkdir(parents=True)
            target.write_text(text)
        wait_for(lambda: daemon.count("batch_created") == 2, timeout=30, what="2 batches")
        assert daemon.stop() == 0
        requests.post(
            f"{sandbox.base_url}/sandbox/speed.json", json={"job_overhead_seconds": 0.05}, timeout=5
        ).raise_for_status()
        daemon.start()
        wait_for(
            lambda: len(originals_under(root / "done") + originals_under(root / "failed")) == 2,
            timeout=60,
            what="both settled",
        )
    finally:
        assert daemon.stop() == 0
    failed = [result_of(p)["reason"] for p in originals_under(root / "failed")]
    assert len(originals_under(root / "done")) == 2, failed
    batches = requests.get(f"{sandbox.base_url}/sandbox/batches.json", timeout=5).json()
    assert len(batches["batches"]) == 2  # followed again, never created twice
    assert daemon.count("batch_lost") == 0
