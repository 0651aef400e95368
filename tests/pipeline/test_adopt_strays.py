"""A file in processing/ that the journal never recorded is adopted while the leader runs;
one of this daemon's own claims whose record a worker has yet to write is left alone."""

from __future__ import annotations

import threading
from pathlib import Path

from dropbox_importer.config import DropboxConfig
from dropbox_importer.pipeline.boxes import open_box
from dropbox_importer.pipeline.claim import Claimer
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.problems import Problems
from dropbox_importer.pipeline.recover import adopt_strays
from dropbox_importer.pipeline.states import FileState
from dropbox_importer.testing import wait_for
from dropbox_importer.threads import Workers


def test_a_stray_is_recorded_and_queued_and_a_claim_being_recorded_is_left_alone(
    tmp_path: Path,
) -> None:
    box = open_box(DropboxConfig(name="acme", root=tmp_path / "acme", instance="main"))
    journal = Journal.open(tmp_path / "state")
    queued: list[tuple[str, int]] = []
    workers = Workers("register", 1)
    claimer = Claimer(
        journal,
        lambda dropbox, file_id: queued.append((dropbox, file_id)),
        reject=lambda file_id, reason: None,
        problems=Problems(None),
        workers=workers,
    )
    folder = box.layout.processing / "csv"
    folder.mkdir(parents=True)
    # This daemon's own claim, its record held up behind a busy worker.
    busy = threading.Event()
    workers.submit("hold", busy.wait)
    own = folder / "own.csv"
    own.write_text("email\no@example.com\n")
    claimer.register_later(box, own)
    # Renamed in by a leader that froze right after its last check, its record refused.
    stray = folder / "stray.csv"
    stray.write_text("email\ns@example.com\n")

    assert adopt_strays(journal, box, claimer.register, skip=claimer.registering()) == 1
    assert [r.name for r in journal.unfinished("acme")] == ["stray.csv"]
    busy.set()
    wait_for(lambda: not claimer.registering(), what="the own claim recorded")
    assert adopt_strays(journal, box, claimer.register, skip=claimer.registering()) == 0

    records = {r.name: r for r in journal.unfinished("acme")}
    assert set(records) == {"own.csv", "stray.csv"}  # each recorded once
    assert records["stray.csv"].state is FileState.CLAIMED
    assert records["stray.csv"].processing_path == stray
    assert sorted(file_id for _, file_id in queued) == sorted(r.id for r in records.values())
    workers.stop(0.0)
    journal.close()
