"""A shared job finished by a host whose state dir never held its parts: each file still gets
exactly its own failed rows, with its own line numbers, and its own counts.

The state dir is each host's own (docs/install.md); the parts a shared job was built from are on
the host that cut them. The host that finishes the job cuts each member's original again with
the cut the journal recorded (pipeline/recut.py) to tell whose rows Marketo failed.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from dropbox_importer import testing
from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config
from tests.daemon.test_failover import EITHER, LEASE, Pair, drop, sandbox_json
from tests.postgres import PostgresDatabase

pytestmark = pytest.mark.slow

HEADER = "email,firstName,lastName,company"
ROUTE = "csv,list=1001"  # one job of a list at a time: files gather while the first imports
HOLD = 3600.0  # job overhead that keeps a job importing until the test lets it end
TWIN = "same-bad,Twin,Row,Co"  # the very same failing row in two files: each gets its own
FIRST = f"{ROUTE}/a-first.csv"


def partner_file(name: str, bad: tuple[int, ...] = (), twin: int | None = None) -> str:
    """Four good rows, a row Marketo fails (no @) at each line in `bad`, TWIN at `twin`."""
    rows = [f"{name}-{n}@example.com,F{n},L,Co" for n in range(4)]
    for line in sorted([*bad, *([twin] if twin else [])]):
        rows.insert(line - 2, TWIN if line == twin else f"bad-{name}-{line},B,Row,Co")
    return HEADER + "\n" + "\n".join(rows) + "\n"


# The files that share one job, and the lines of each Marketo fails.
SHARED = {
    f"{ROUTE}/b1.csv": (partner_file("b1", bad=(3,)), {3}),
    f"{ROUTE}/b2.csv": (partner_file("b2"), set()),
    f"{ROUTE}/b3.csv": (partner_file("b3", bad=(2,), twin=7), {2, 7}),
    f"{ROUTE}/b4.csv": (partner_file("b4", twin=4), {4}),
}


def post(sandbox: Any, what: str, body: dict[str, Any]) -> None:
    requests.post(
        f"{sandbox.base_url}/sandbox/{what}.json", json=body, timeout=10
    ).raise_for_status()


def shared_batch(daemon: testing.DaemonProcess) -> set[int]:
    return {
        int(e["batch_id"])
        for e in daemon.events()
        if e.get("event") == "batch_created" and e.get("shared_by", 1) > 1
    }


def hold_a_shared_job_importing(daemon: testing.DaemonProcess, root: Path, sandbox: Any) -> None:
    """The first file's job holds the list while the others arrive; once it ends they go as
    one job, which then imports until the test lets it end."""
    drop(root, FIRST, partner_file("first"))
    wait_for(lambda: daemon.count("batch_created") == 1, what="the first file's batch")
    for relative, (text, _) in SHARED.items():
        drop(root, relative, text)
    wait_for(lambda: daemon.count("file_claimed") == 1 + len(SHARED), what="the others claimed")
    post(sandbox, "speed", {"job_overhead_seconds": 2.0})  # the first job ends at once
    wait_for(lambda: shared_batch(daemon), timeout=60, what="the shared batch")
    post(sandbox, "speed", {"job_overhead_seconds": HOLD})  # re-timed: importing until let go


def lines_of(path: Path) -> list[tuple[str, str]]:
    """(line number, row) of each row of a failures file, in its order."""
    if not path.exists():
        return []
    rows = list(csv.reader(io.StringIO(path.read_text())))[1:]
    return [(r[0], ",".join(r[1:-1])) for r in rows]


def assert_each_file_has_its_own_rows(root: Path, sandbox: Any) -> None:
    """Every file where `partial_failure: failed` puts it, with exactly its own failed rows
    and counts; every good row imported."""
    batches = set()
    for relative, (text, failed) in SHARED.items():
        final = root / ("failed" if failed else "done") / relative
        assert final.read_text() == text, f"{relative} is not in {final.parent.name}/ as it was"
        rows = dict(enumerate(text.splitlines()[1:], start=2))
        failures = final.with_name(final.name + ".failures.csv")
        assert lines_of(failures) == [(str(n), rows[n]) for n in sorted(failed)], relative
        result = json.loads(final.with_name(final.name + ".result.json").read_text())
        (part,) = result["parts"]
        assert part["shared"]["files"] == len(SHARED), relative
        batches.add(part["batch_id"])
        assert result["counts"] == {
            "leads_processed": len(rows) - len(failed),
            "rows_failed": len(failed),
            "rows_with_warning": 0,
            "rows_failed_locally": 0,
            "blank_rows": 0,
        }, relative
    assert len(batches) == 1, "the files did not share one job"
    assert (root / "done" / FIRST).exists()
    emails = {lead["fields"]["email"] for lead in sandbox_json(sandbox, "leads")["leads"]}
    texts = [partner_file("first"), *(text for text, _ in SHARED.values())]
    assert emails == {r.split(",")[0] for t in texts for r in t.splitlines()[1:] if "@" in r}


def test_a_standby_that_takes_over_a_shared_job_splits_its_failed_rows_file_by_file(
    tmp_path: Path, make_sandbox: Callable[..., Any], postgres_database: PostgresDatabase
) -> None:
    sandbox = make_sandbox(job_overhead_seconds=HOLD, window_seconds=2.0)
    hosts = Pair(tmp_path, sandbox, postgres_database, {}, box={"partial_failure": "failed"})
    try:
        alpha = hosts["alpha"].start()
        beta = hosts["beta"].start(ready=EITHER)
        hold_a_shared_job_importing(alpha, hosts.root, sandbox)
        alpha.kill()
        # alpha's state dir is on its own disk, gone with it (here on one machine: removed).
        shutil.rmtree(tmp_path / "alpha" / "state" / "parts")
        wait_for(
            lambda: beta.logged_since_start("leadership_acquired"),
            timeout=LEASE * 5,
            what="beta leading",
        )
        post(sandbox, "speed", {"job_overhead_seconds": 0.05})
        settled = hosts.root / "done", hosts.root / "failed"
        wait_for(
            lambda: sum(len(originals_under(f)) for f in settled) == 1 + len(SHARED),
            timeout=90,
            what="every file settled by beta",
        )
    finally:
        for daemon in hosts.daemons.values():
            daemon.kill()
    assert_each_file_has_its_own_rows(hosts.root, sandbox)
    # The job ended after alpha died: beta split it, from parts it cut again.
    assert not alpha.logged_since_start("shared_batch_split")
    assert beta.count("shared_part_recut") == len(SHARED)
    assert not beta.logged_since_start("shared_part_lost", "shared_rows_unattributed")


def config_for(tmp_path: Path, sandbox: Any, root: Path, **box: Any) -> Path:
    return write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={
            "box": {"root": str(root), "watch": "events", "partial_failure": "failed", **box}
        },
    )


@pytest.mark.parametrize("cut", ["same", "changed"])
def test_a_shared_job_whose_parts_the_state_dir_lost_is_split_from_the_originals(
    tmp_path: Path, make_sandbox: Callable[..., Any], cut: str
) -> None:
    sandbox = make_sandbox(job_overhead_seconds=HOLD, window_seconds=2.0)
    root = tmp_path / "box"
    daemon = DaemonProcess(config_for(tmp_path, sandbox, root), tmp_path / "daemon.log").start()
    try:
        hold_a_shared_job_importing(daemon, root, sandbox)
        assert daemon.stop() == 0
        shutil.rmtree(tmp_path / "state" / "parts")  # the parts and the job's folder
        if cut == "changed":
            # A column now left out: cut again, no original makes the part that was sent.
            config_for(tmp_path, sandbox, root, columns={"ignore": ["company"]})
        post(sandbox, "speed", {"job_overhead_seconds": 0.05})
        daemon.start()
        settled = root / "done", root / "failed"
        wait_for(
            lambda: sum(len(originals_under(f)) for f in settled) == 1 + len(SHARED),
            timeout=60,
            what="every file settled",
        )
    finally:
        assert daemon.stop() == 0
    if cut == "same":
        assert_each_file_has_its_own_rows(root, sandbox)
        assert daemon.count("shared_part_recut") == len(SHARED)
        return
    # Whose each failed row is cannot be told: no file is given another's rows as its own,
    # and none is reported imported in full. Each counts them all as failed (never more than
    # its rows), lists its own with their lines and the others without one, and fails.
    failed_rows = sorted(row for text, lines in SHARED.values() for row in rows_at(text, lines))
    for relative, (text, failed) in SHARED.items():
        final = root / "failed" / relative
        assert final.read_text() == text, relative
        listed = lines_of(final.with_name(final.name + ".failures.csv"))
        own = [(str(n), row) for n, row in zip(sorted(failed), rows_at(text, failed), strict=True)]
        assert [r for r in listed if r[0]] == own, relative
        others = sorted([*(row for line, row in listed if not line), *(row for _, row in own)])
        assert others == failed_rows, relative
        result = json.loads(final.with_name(final.name + ".result.json").read_text())
        assert "whose they are cannot be told" in result["reason"], relative
        assert "it no longer cuts into the part that was sent" in result["reason"], relative
        rows = text.count("\n") - 1
        assert result["counts"]["rows_failed"] == min(len(failed_rows), rows), relative
        assert result["counts"]["leads_processed"] == rows - result["counts"]["rows_failed"]
    assert daemon.count("shared_part_lost") == len(SHARED)


def rows_at(text: str, lines: set[int]) -> list[str]:
    """The file's rows at `lines`, in line order."""
    rows = dict(enumerate(text.splitlines()[1:], start=2))
    return [rows[n] for n in sorted(lines)]
