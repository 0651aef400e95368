"""Rounds: a settled file written to after its settle's last look is taken back, at once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from dropbox_importer.config import DropboxConfig, load_config
from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.dropbox.writers import WriterCheck
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.rounds import WATCH_CHECK_SECONDS, Rounds
from dropbox_importer.pipeline.states import FileState

S = FileState
TEXT = "email\na@example.com\n"


@dataclass
class Box:
    config: DropboxConfig
    layout: DropboxLayout
    writers: WriterCheck


@pytest.fixture
def box(tmp_path: Path) -> Box:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "instances": {"main": {"base_url": "embedded"}},
                "dropboxes": {"box": {"root": str(tmp_path / "box"), "instance": "main"}},
            }
        )
    )
    config = load_config(path).dropboxes["box"]
    layout = DropboxLayout(config.root)
    layout.ensure()
    return Box(config, layout, WriterCheck("box", "writer_check: off"))


def settled_file(journal: Journal, box: Box) -> tuple[int, Path]:
    """A file imported and settled in done/csv/, its record describing TEXT."""
    done = box.layout.done / "csv" / "leads.csv"
    done.parent.mkdir(parents=True)
    done.write_text(TEXT)
    mtime = datetime.fromtimestamp(done.stat().st_mtime, UTC)
    data = TEXT.encode()
    file_id = journal.record_claim(
        "box", "csv", "leads.csv", box.layout.inbox / "csv" / "leads.csv",
        box.layout.processing / "csv" / "leads.csv", len(data),
        hashlib.sha256(data).hexdigest(), dropped_at=mtime,
    )  # fmt: skip
    journal.transition(file_id, S.SETTLING)
    journal.record_destination(file_id, done)
    journal.transition(file_id, S.DONE, str(done))
    return file_id, done


@pytest.mark.parametrize("written_before_the_watch", [True, False])
def test_a_settled_file_written_to_is_taken_back_even_between_the_settle_and_the_watch(
    tmp_path: Path, box: Box, written_before_the_watch: bool
) -> None:
    journal = Journal.open(tmp_path / "state")
    clock = [100.0]
    rounds = Rounds(
        journal,
        boxes=lambda name: box,
        requeue=lambda dropbox, file_id: None,
        settle=lambda file_id, reason: None,
        clock=lambda: clock[0],
    )
    file_id, done = settled_file(journal, box)
    if written_before_the_watch:
        with done.open("a") as late:  # while the settle was still moving its files
            late.write("b@example.com\n")
    rounds.settled(journal.get(file_id))
    if not written_before_the_watch:
        rounds.tick(clock[0])
        assert journal.get(file_id).state is S.DONE  # as described: watched, left alone
        with done.open("a") as late:
            late.write("b@example.com\n")
    clock[0] += WATCH_CHECK_SECONDS
    rounds.tick(clock[0])
    record = journal.get(file_id)
    assert record.state is S.CHANGED
    back = box.layout.processing / "csv" / "leads.csv"
    assert record.processing_path == back
    assert back.read_text() == TEXT + "b@example.com\n" and not done.exists()
    assert rounds.waiting == 1
    journal.close()
