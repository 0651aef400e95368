"""A settle begun on one host and finished by the host that took over its leadership."""

from __future__ import annotations

import json
from pathlib import Path

from dropbox_importer.config import DropboxConfig
from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.dropbox.results import file_digest
from dropbox_importer.marketo.models import BatchState, BatchStatus
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.settle import Settler
from dropbox_importer.pipeline.states import FileState


class NoDownloads:
    """No row failed or warned, so nothing may be downloaded from Marketo."""

    def download_failures(self, batch_id: int, target: Path) -> None:
        raise AssertionError("nothing to download: no row failed")

    download_warnings = download_failures


def test_a_file_settling_on_another_host_is_staged_again_and_lands_where_recorded(
    tmp_path: Path,
) -> None:
    box = DropboxConfig(name="acme", root=tmp_path / "acme", instance="main")
    layout = DropboxLayout(box.root)
    layout.ensure()
    original = layout.processing / "csv" / "leads.csv"
    original.parent.mkdir(parents=True)
    original.write_text("email\na@example.com\n")
    journal = Journal.open(tmp_path / "shared")
    size, sha256 = file_digest(original)
    file_id = journal.record_claim(
        "acme", "csv", "leads.csv", layout.inbox / "csv" / "leads.csv", original, size, sha256
    )
    journal.transition(file_id, FileState.SUBMITTING)
    journal.record_part(file_id, 0, first_line=2, rows=1, size=size)
    journal.record_batch(file_id, 0, 3401)
    journal.transition(file_id, FileState.POLLING)
    journal.record_batch_status(file_id, BatchStatus(3401, BatchState.COMPLETE, 1, 0, 0, "ok"))
    # Host A decided, recorded the destination and froze: its staged results are in its own
    # state dir, which host B never sees.
    destination = layout.done / "csv" / "leads.csv"
    journal.record_destination(file_id, destination)
    journal.transition(file_id, FileState.SETTLING, "done")

    settler = Settler(
        journal,
        parts_root=tmp_path / "host-b" / "parts",
        boxes=lambda name: box,
        layouts=lambda name: layout,
        clients=lambda name: NoDownloads(),  # type: ignore[arg-type,return-value]
    )
    settler.settle(file_id, None)

    assert destination.read_text() == "email\na@example.com\n" and not original.exists()
    result = json.loads(destination.with_name("leads.csv.result.json").read_text())
    assert result["outcome"] == "done" and result["parts"][0]["batch_id"] == 3401
    assert journal.get(file_id).state is FileState.DONE
    journal.close()
