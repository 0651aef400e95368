"""Uploads as SFTP and SMB servers write them: one handle held open through stalls.

Every scenario is a real writer process (tests/daemon/writer.py) and ends the same way:
Marketo holds every row of the final file, no batch ever carried a cut row (each uploaded file
is read back from the sandbox), and result.json describes the final file. They run in both
watch modes, in two drop boxes of one daemon:

- `seen`: the claim's lease sees the writer (a local SFTP server, Samba, a script);
- `blind`: `writer_check: off`, standing for a writer the daemon cannot see (a network share
  written from another host): only the settle time, the unterminated-line rule, the
  empty-file age and the re-import of a file changed after its claim protect it.

The writer's pauses are the stalls under test; every wait of the test is on a condition.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from dropbox_importer.sandbox import Sandbox, SandboxSettings
from tests.daemon.harness import SANDBOX_WINDOW_SECONDS, DaemonProcess, wait_for, write_config
from tests.daemon.writer import HeldWriter
from tests.unprivileged import TEST_UMASK, UMASK, ServiceAccount

pytestmark = pytest.mark.slow

HEADER = "email,firstName,lastName,company\n"
SETTLE = 0.5
# A writer the daemon cannot see stalls this long: past the settle time, within the waits for
# an unterminated last line and for an empty file to age.
BLIND_STALL = 1.5
BLIND_WAIT = 5.0
# Each import takes at least this long, so a file stays in processing/ while it is written to.
JOB_SECONDS = 1.0
DEADLINE = 60.0


def rows(prefix: str, first: int, last: int) -> str:
    """Rows `first`..`last - 1` of a scenario's file, each with a company to be cut."""
    return "".join(
        f"{prefix}{n}@example.com,First{n},Last{n},Compilers Inc\n" for n in range(first, last)
    )


@dataclass
class Run:
    """One daemon with both drop boxes, its sandbox, and what each scenario's driver did."""

    mode: str
    work: Path
    daemon: DaemonProcess
    sandbox: Sandbox
    errors: dict[str, BaseException] = field(default_factory=dict)

    def root(self, box: str) -> Path:
        """A drop box's folder."""
        return self.work / box

    def events(self, name: str, file: str | None = None) -> list[dict[str, Any]]:
        """The daemon's events named `name` (about `file`, when given)."""
        return [
            e
            for e in self.daemon.events()
            if e.get("event") == name and (file is None or Path(str(e.get("file"))).name == file)
        ]

    def result(self, box: str, name: str) -> dict[str, Any] | None:
        """result.json of a file settled in done/, or None while there is none."""
        path = self.root(box) / "done" / "csv" / f"{name}.result.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data


Scenario = Callable[[Run, Path], None]


def settled_whole(run: Run, box: str, name: str) -> bool:
    """True once the file is in done/ and its result describes the bytes beside it."""
    result = run.result(box, name)
    final = run.root(box) / "done" / "csv" / name
    if result is None or not final.exists():
        return False
    return result["original"]["sha256"] == hashlib.sha256(final.read_bytes()).hexdigest()


def drive(run: Run, box: str, name: str, steps: Callable[[HeldWriter, Path], None]) -> None:
    """Run a writer through `steps`, then wait until the final file has settled whole."""
    inbox = run.root(box) / "inbox" / "csv"
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    writer = HeldWriter(path)
    try:
        steps(writer, path)
    finally:
        writer.kill()
    wait_for(lambda: settled_whole(run, box, name), timeout=DEADLINE, what=f"{box}/{name} whole")


def refused_while_open(run: Run, name: str) -> Callable[[], bool]:
    """The claim found the file open for writing (the lease saw the writer)."""
    return lambda: bool(run.events("file_open_for_writing", name))


def claimed(run: Run, box: str, name: str) -> Callable[[], bool]:
    """The file has left inbox/."""
    return lambda: not (run.root(box) / "inbox" / "csv" / name).exists()


# -- the scenarios ---------------------------------------------------------------------------
# Each writes one file; `prefix` keeps its leads apart from the others'.


def seen_stall(run: Run, box: str) -> None:
    def steps(writer: HeldWriter, _path: Path) -> None:
        writer.write(HEADER + rows("seen-stall", 0, 2))
        wait_for(refused_while_open(run, "stall.csv"), what="claim refused while open")
        writer.write(rows("seen-stall", 2, 10))
        writer.close()

    drive(run, box, "stall.csv", steps)


def seen_mid_line(run: Run, box: str) -> None:
    text = HEADER + rows("seen-mid", 0, 12)
    cut = text.index("Last7,C") + len("Last7,C")  # `…,Last7,C`: the company cut short

    def steps(writer: HeldWriter, _path: Path) -> None:
        writer.write(text[:cut])
        wait_for(refused_while_open(run, "mid_line.csv"), what="claim refused while open")
        writer.write(text[cut:])
        writer.close()

    drive(run, box, "mid_line.csv", steps)


def seen_placeholder(run: Run, box: str) -> None:
    def steps(writer: HeldWriter, _path: Path) -> None:
        # Created empty, held open; its age passes, and the lease still says it is open.
        wait_for(refused_while_open(run, "placeholder.csv"), what="claim refused while open")
        writer.write(HEADER + rows("seen-placeholder", 0, 5))
        writer.close()

    drive(run, box, "placeholder.csv", steps)


def blind_stall(run: Run, box: str) -> None:
    def steps(writer: HeldWriter, _path: Path) -> None:
        writer.write(HEADER + rows("blind-stall", 0, 2))
        wait_for(claimed(run, box, "stall.csv"), what="claimed mid-upload (the writer unseen)")
        writer.write(rows("blind-stall", 2, 10))
        writer.close()

    drive(run, box, "stall.csv", steps)


def blind_mid_line(run: Run, box: str) -> None:
    text = HEADER + rows("blind-mid", 0, 12)
    cut = text.index("Last7,C") + len("Last7,C")

    def steps(writer: HeldWriter, _path: Path) -> None:
        writer.write(text[:cut])
        time.sleep(BLIND_STALL)  # the stall under test: longer than the settle time
        writer.write(text[cut:])
        writer.close()

    drive(run, box, "mid_line.csv", steps)


def blind_placeholder(run: Run, box: str) -> None:
    def steps(writer: HeldWriter, _path: Path) -> None:
        time.sleep(BLIND_STALL)  # the stall under test: empty, longer than the settle time
        writer.write(HEADER + rows("blind-placeholder", 0, 5))
        writer.close()

    drive(run, box, "placeholder.csv", steps)


def blind_append_in_processing(run: Run, box: str) -> None:
    def steps(writer: HeldWriter, _path: Path) -> None:
        writer.write(HEADER + rows("blind-processing", 0, 5))
        processing = run.root(box) / "processing" / "csv" / "in_processing.csv"
        wait_for(processing.exists, what="claimed into processing/")
        writer.write(rows("blind-processing", 5, 10))  # the rename did not stop the writer
        writer.close()

    drive(run, box, "in_processing.csv", steps)


def blind_append_after_settled(run: Run, box: str) -> None:
    def steps(writer: HeldWriter, _path: Path) -> None:
        writer.write(HEADER + rows("blind-settled", 0, 5))
        wait_for(lambda: run.result(box, "after_settled.csv"), what="settled in done/")
        writer.write(rows("blind-settled", 5, 10))  # into the file in done/, same handle
        writer.close()
        wait_for(
            lambda: (run.result(box, "after_settled.csv") or {}).get("rounds") == 2,
            timeout=DEADLINE,
            what="the second round settled",
        )

    drive(run, box, "after_settled.csv", steps)


SCENARIOS: dict[str, tuple[str, Callable[[Run, str], None]]] = {
    "seen/stall.csv": ("seen", seen_stall),
    "seen/mid_line.csv": ("seen", seen_mid_line),
    "seen/placeholder.csv": ("seen", seen_placeholder),
    "blind/stall.csv": ("blind", blind_stall),
    "blind/mid_line.csv": ("blind", blind_mid_line),
    "blind/placeholder.csv": ("blind", blind_placeholder),
    "blind/in_processing.csv": ("blind", blind_append_in_processing),
    "blind/after_settled.csv": ("blind", blind_append_after_settled),
}


# -- one daemon per watch mode, every scenario at once ---------------------------------------


def _work_folder(
    account: ServiceAccount | None, factory: pytest.TempPathFactory, mode: str
) -> Path:
    """A folder the daemon (as the service account, when there is one) may work in."""
    if account is None:
        return factory.mktemp(f"writers-{mode}")
    return account.folder(f"writers-{mode}")


@pytest.fixture(scope="module", params=["events", "polling"])
def run(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    service_account: ServiceAccount | None,
) -> Iterator[Run]:
    """Both drop boxes in one daemon; every scenario driven at once, to its end."""
    mode: str = request.param
    work = _work_folder(service_account, tmp_path_factory, mode)
    old_umask = os.umask(TEST_UMASK)  # the partner's side, as tests/unprivileged.py sets it
    settings = SandboxSettings(
        rows_per_second=2000.0,
        job_overhead_seconds=JOB_SECONDS,
        window_seconds=SANDBOX_WINDOW_SECONDS,
        keep_uploads=True,  # every batch's file is read back: was a row ever sent cut?
    )
    common = {
        "watch": mode,
        "polling_interval_seconds": 0.2,
        "settle_seconds": SETTLE,
        "close_quiet_seconds": 0.2,
        "settled_watch_seconds": 60,
        # Every batch is read back and held against its one file: no files sharing a job here
        # (tests/daemon/test_coalesce.py covers shared jobs).
        "coalesce": False,
    }
    try:
        with Sandbox(settings) as sandbox:
            config = write_config(
                work,
                base_url=sandbox.base_url,
                client_id=sandbox.settings.client_id,
                client_secret=sandbox.settings.client_secret,
                dropboxes={
                    "seen": {**common, "root": str(work / "seen"), "empty_file_seconds": SETTLE},
                    "blind": {
                        **common,
                        "root": str(work / "blind"),
                        "writer_check": "off",
                        "empty_file_seconds": BLIND_WAIT,
                        "unterminated_settle_seconds": BLIND_WAIT,
                    },
                },
            )
            daemon = DaemonProcess(config, work / "daemon.log")
            if service_account is not None:
                daemon.run_as, daemon.umask = service_account.command(), UMASK
            daemon.start()
            state = Run(mode, work, daemon, sandbox)
            try:
                with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
                    futures = {
                        key: pool.submit(scenario, state, box)
                        for key, (box, scenario) in SCENARIOS.items()
                    }
                for key, future in futures.items():
                    error = future.exception()
                    if error is not None:
                        state.errors[key] = error
                yield state
            finally:
                assert daemon.stop() == 0
    finally:
        os.umask(old_umask)


# -- what every scenario must show -----------------------------------------------------------


def _table(data: bytes) -> list[tuple[str, ...]]:
    return [tuple(row) for row in csv.reader(io.StringIO(data.decode("utf-8"), newline=""))]


def check_final_file(run: Run, key: str) -> dict[str, Any]:
    """Every row of the final file in Marketo, no batch with a cut row; return result.json."""
    assert key not in run.errors, f"{key}: {run.errors[key]!r}"
    box, name = key.split("/")
    final = run.root(box) / "done" / "csv" / name
    data = final.read_bytes()
    result = run.result(box, name)
    assert result is not None and result["outcome"] == "done", result
    assert result["original"] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert result["imported"]["size"] == len(data)
    header, *complete = _table(data)
    assert len(complete) >= 5
    reply = requests.get(f"{run.sandbox.base_url}/sandbox/leads.json", timeout=10).json()
    leads = {lead["fields"]["email"]: lead["fields"] for lead in reply["leads"]}
    for row in complete:
        lead = leads[row[0]]
        assert [lead["firstName"], lead["lastName"], lead["company"]] == list(row[1:]), row
    whole = set(complete)
    for part in result["parts"]:
        sent = requests.get(
            f"{run.sandbox.base_url}/sandbox/batches/{part['batch_id']}/file", timeout=10
        )
        sent_header, *sent_rows = _table(sent.content)
        assert sent_header == header
        # A batch this file shared with others: only its own rows are the file's.
        start = (part["shared"] or {}).get("first_row", 1) - 1
        own = sent_rows[start : start + part["rows"]]
        cut = [row for row in own if row not in whole]
        assert not cut, f"batch {part['batch_id']} carried rows never in the file: {cut}"
    counts = result["counts"]
    assert counts["leads_processed"] == len(complete)
    last = [p for p in result["parts"] if p["round"] == result["rounds"]]
    assert sum(p["rows"] for p in last) == len(complete)
    return result


def test_a_stall_longer_than_the_settle_time_is_imported_once_complete(run: Run) -> None:
    result = check_final_file(run, "seen/stall.csv")
    assert result["rounds"] == 1  # never claimed while the writer held it
    blind = check_final_file(run, "blind/stall.csv")
    # Blind to writers, the daemon may claim at 2 rows and import again whole when the file
    # grows (rounds >= 2), or, on a slow machine, only after the stall: either way the final file
    # is complete (check_final_file); the re-import itself is pinned by the write-while-in-
    # processing and write-after-settling tests.
    assert blind["rounds"] >= 1
    assert run.events("file_changed_after_claim", "stall.csv")


def test_a_stall_in_the_middle_of_a_line_never_sends_the_cut_row(run: Run) -> None:
    assert check_final_file(run, "seen/mid_line.csv")["rounds"] == 1
    # Unseen, the writer left a last line without its line end: the claim waited for it.
    assert check_final_file(run, "blind/mid_line.csv")["rounds"] == 1


def test_a_zero_byte_placeholder_filled_later_is_imported_with_its_rows(run: Run) -> None:
    assert check_final_file(run, "seen/placeholder.csv")["rounds"] == 1
    assert check_final_file(run, "blind/placeholder.csv")["rounds"] == 1


def test_a_write_while_in_processing_imports_the_final_file_again(run: Run) -> None:
    result = check_final_file(run, "blind/in_processing.csv")
    assert result["rounds"] >= 2
    assert run.events("file_changed_after_claim", "in_processing.csv")


def test_a_write_after_it_settled_moves_it_back_and_imports_it_again(run: Run) -> None:
    result = check_final_file(run, "blind/after_settled.csv")
    assert result["rounds"] == 2
    assert [p["round"] for p in result["parts"]] == [1, 2]  # every batch, both rounds
    [reopened] = run.events("file_reopened", "after_settled.csv")
    assert "/done/" in reopened["was"]


def test_the_daemon_logged_no_crash_and_left_nothing_behind(run: Run) -> None:
    crashes = {
        "submit_crashed",
        "settle_failed",
        "claim_failed",
        "round_check_failed",
        "settled_watch_failed",
    }
    assert not [e for e in run.daemon.events() if e.get("event") in crashes]
    for box in ("seen", "blind"):
        assert not list((run.root(box) / "processing").rglob("*.csv"))
        assert not list((run.root(box) / "failed").rglob("*.csv"))
