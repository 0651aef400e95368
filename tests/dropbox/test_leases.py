"""The kernel's word on writers: read leases on real files, with real writer processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dropbox_importer.dropbox.layout import DropboxLayout, claim
from dropbox_importer.dropbox.writers import (
    StillOpen,
    Writers,
    can_lease,
    lease,
    lease_support,
    no_writer,
    writers_of,
)
from tests.waiting import wait_for

# A child that opens the file in the given mode, says so, and holds it until stdin closes.
HOLDER = """
import sys
f = open(sys.argv[1], sys.argv[2])
print("open", flush=True)
sys.stdin.read()
"""


class Holder:
    """A child process holding `path` open (mode "a": for writing, "r": for reading)."""

    def __init__(self, path: Path, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "open"

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def leads(tmp_path: Path) -> Path:
    path = tmp_path / "leads.csv"
    path.write_text("email\na@example.com\n")
    return path


def test_leases_work_on_the_test_filesystem(tmp_path: Path) -> None:
    assert lease_support(tmp_path) is None
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_a_file_held_open_for_writing_by_another_process_is_open(leads: Path) -> None:
    assert writers_of(leads) is Writers.NONE
    writer = Holder(leads, "a")
    try:
        assert writers_of(leads) is Writers.OPEN
    finally:
        writer.close()
    assert writers_of(leads) is Writers.NONE  # closed: nobody writes it any more


def test_a_reader_is_no_writer(leads: Path) -> None:
    reader = Holder(leads, "r")  # a partner downloading, a virus scanner
    try:
        assert writers_of(leads) is Writers.NONE
    finally:
        reader.close()


def test_a_writer_opening_during_the_lease_breaks_it_without_killing_us(leads: Path) -> None:
    with lease(leads) as held:
        assert held.writers is Writers.NONE and not held.broken()
        # The child's open waits for our lease to be released: we see the break meanwhile.
        child = subprocess.Popen([sys.executable, "-c", f"open({str(leads)!r}, 'a').close()"])
        wait_for(held.broken, timeout=30, what="the lease broken by the writer's open")
    # Released: the writer's open went through, and this process is alive to see it.
    assert child.wait(timeout=30) == 0


def test_the_claim_leaves_a_file_still_being_written_in_the_inbox(tmp_path: Path) -> None:
    layout = DropboxLayout(tmp_path / "box")
    layout.ensure()
    path = layout.inbox / "csv" / "leads.csv"
    path.parent.mkdir()
    path.write_text("email\n")
    writer = Holder(path, "a")
    try:
        with pytest.raises(StillOpen):
            claim(layout, path, (no_writer,))
        assert path.exists() and not list(layout.processing.rglob("*.csv"))
        claimed = claim(layout, path)  # without the check, as on a network share
        assert claimed.exists()
    finally:
        writer.close()


def test_this_process_may_lease_its_own_files(leads: Path) -> None:
    assert can_lease(leads.stat().st_uid)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
def test_without_cap_lease_a_file_of_another_owner_is_unknown_and_says_why() -> None:
    folder = Path(tempfile.mkdtemp(prefix="dbi-lease-"))  # reachable by nobody, unlike tmp_path
    folder.chmod(0o755)
    leads = folder / "leads.csv"
    leads.write_text("email\n")
    leads.chmod(0o644)
    probe = (
        "from dropbox_importer.dropbox.writers import lease, can_lease\n"
        "import os, sys\n"
        "with lease(sys.argv[1]) as held:\n"
        "    print(held.writers.value, can_lease(os.stat(sys.argv[1]).st_uid))\n"
        "    print(held.why_unknown)\n"
    )
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
         "--bounding-set=-all", "--", sys.executable, "-c", probe, str(leads)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    shutil.rmtree(folder)
    assert done.returncode == 0, done.stderr
    verdict, reason = done.stdout.splitlines()
    assert verdict == "unknown False"
    assert "CAP_LEASE" in reason
