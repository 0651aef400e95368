"""A file in processing/ that the journal never recorded is adopted while the leader runs."""

from __future__ import annotations

from pathlib import Path

from dropbox_importer.config import DropboxConfig
from dropbox_importer.pipeline.boxes import open_box
from dropbox_importer.pipeline.claim import Claimer
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.recover import adopt_strays
from dropbox_importer.pipeline.states import FileState


def test_a_stray_in_processing_is_recorded_and_queued_and_known_files_are_left_alone(
    tmp_path: Path,
) -> None:
    box = open_box(DropboxConfig(name="acme", root=tmp_path / "acme", instance="main"))
    journal = Journal.open(tmp_path / "state")
    queued: list[tuple[str, int]] = []
    claimer = Claimer(journal, lambda dropbox, file_id: queued.append((dropbox, file_id)))
    known = box.layout.processing / "csv" / "known.csv"
    known.parent.mkdir(parents=True)
    known.write_text("email\nk@example.com\n")
    known_id = claimer.register(box, known)
    # Renamed in by a leader that froze right after its last check, its record refused.
    stray = box.layout.processing / "csv" / "stray.csv"
    stray.write_text("email\ns@example.com\n")

    assert adopt_strays(journal, box, claimer.register) == 1
    assert adopt_strays(journal, box, claimer.register) == 0  # known from now on

    [(_, stray_id)] = [q for q in queued if q[1] != known_id]
    record = journal.get(stray_id)
    assert (record.name, record.route, record.state) == ("stray.csv", "csv", FileState.CLAIMED)
    assert record.processing_path == stray and stray.read_text() == "email\ns@example.com\n"
    assert [r.id for r in journal.unfinished("acme")] == [known_id, stray_id]
    journal.close()
