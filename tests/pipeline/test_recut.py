"""A shared job's member part cut again by a host whose state dir never held it (recut.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dropbox_importer.config import DropboxConfig
from dropbox_importer.csvfile.header import ColumnRules
from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.dropbox.results import file_digest
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.prepared import load_prepared
from dropbox_importer.pipeline.records import FileRecord, PartRecord
from dropbox_importer.pipeline.recut import PartLost, Recutter
from dropbox_importer.pipeline.rounds import round_parts_dir
from dropbox_importer.pipeline.states import FileState
from dropbox_importer.pipeline.submit import prepare

TEXT = "email,firstName,company\na@example.com,A,Acme\nbad-row,B,Acme\nc@example.com,C,Acme\n"


class Hosts:
    """One drop box, one journal; host A cut the file, host B has an empty state dir."""

    def __init__(self, tmp_path: Path) -> None:
        self.box = DropboxConfig(name="acme", root=tmp_path / "acme", instance="main")
        self.layout = DropboxLayout(self.box.root)
        self.layout.ensure()
        self.journal = Journal.open(tmp_path / "shared")
        self.a_parts = tmp_path / "host-a" / "parts"
        self.b_parts = tmp_path / "host-b" / "parts"

    def cut_on_a(self, name: str) -> tuple[FileRecord, PartRecord]:
        """A file claimed and cut by host A, as its submitter does."""
        original = self.layout.processing / "csv" / name
        original.parent.mkdir(parents=True, exist_ok=True)
        original.write_text(TEXT)
        size, sha256 = file_digest(original)
        inbox = self.layout.inbox / "csv" / name
        file_id = self.journal.record_claim("acme", "csv", name, inbox, original, size, sha256)
        record = self.journal.get(file_id)
        prepared = prepare(record, self.box, round_parts_dir(self.a_parts, record), None)
        self.journal.record_cut(
            file_id,
            prepared.settings,
            [(p.index, p.first_line, p.rows, p.bytes, p.path) for p in prepared.parts],
        )
        self.journal.transition(file_id, FileState.SUBMITTING)
        [part] = self.journal.parts(file_id)
        return self.journal.get(file_id), part

    def recutter(self, box: DropboxConfig | None = None) -> Recutter:
        """Host B's, with the drop box's config as B has it."""
        return Recutter(
            self.journal, self.b_parts, boxes=lambda _: box or self.box, catalogs=lambda _: None
        )


@pytest.fixture
def hosts(tmp_path: Path) -> Hosts:
    return Hosts(tmp_path)


def test_a_file_in_flight_is_cut_again_where_its_own_settle_looks(
    hosts: Hosts, tmp_path: Path
) -> None:
    record, part = hosts.cut_on_a("leads.csv")
    assert part.path is not None
    path = hosts.recutter()(record, part, tmp_path / "scratch")
    assert path.parent == round_parts_dir(hosts.b_parts, record)
    assert path.read_bytes() == part.path.read_bytes()
    assert hosts.journal.parts(record.id)[0].path == path
    assert load_prepared(path.parent) is not None  # what its settle reads of its checks


def test_a_file_already_settled_is_cut_again_from_done(hosts: Hosts, tmp_path: Path) -> None:
    record, part = hosts.cut_on_a("leads.csv")
    assert part.path is not None
    done = hosts.layout.done / "csv" / "leads.csv"
    done.parent.mkdir(parents=True)
    record.processing_path.rename(done)
    hosts.journal.record_destination(record.id, done)
    hosts.journal.transition(record.id, FileState.SETTLING, "done")
    hosts.journal.transition(record.id, FileState.DONE, str(done))
    scratch = tmp_path / "jobs" / "1" / "recut"
    path = hosts.recutter()(hosts.journal.get(record.id), part, scratch)
    assert path.parent == scratch and path.read_bytes() == part.path.read_bytes()
    assert not round_parts_dir(hosts.b_parts, record).exists()


@pytest.mark.parametrize("what", ["changed", "gone", "cut_differs"])
def test_a_part_that_cannot_be_had_again_says_why(hosts: Hosts, tmp_path: Path, what: str) -> None:
    record, part = hosts.cut_on_a("leads.csv")
    box = hosts.box
    if what == "changed":
        record.processing_path.write_text(TEXT.replace("Acme", "Acne"))
    elif what == "gone":
        record.processing_path.unlink()
    else:  # a column the config now leaves out
        box = replace(box, columns=ColumnRules(ignore=("company",)))
    with pytest.raises(PartLost) as lost:
        hosts.recutter(box)(record, part, tmp_path / "scratch")
    assert {
        "changed": "it changed after it was sent",
        "gone": "it is no longer in processing/",
        "cut_differs": "it no longer cuts into the part that was sent (line 2, 3 row(s),",
    }[what] in lost.value.reason
    assert hosts.journal.parts(record.id)[0].path == part.path  # nothing recorded


def test_a_write_error_on_this_host_is_never_blamed_on_the_partner_s_file(
    hosts: Hosts, tmp_path: Path
) -> None:
    # This host's scratch folder cannot be written (here: a file stands where it should be):
    # the settle tries again later; nothing says the partner's file is unreadable or lost.
    record, part = hosts.cut_on_a("leads.csv")
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    with pytest.raises(OSError) as raised:
        hosts.recutter()(record, part, blocked / "scratch")
    assert not isinstance(raised.value, PartLost)
    assert hosts.journal.parts(record.id)[0].path == part.path  # nothing recorded
