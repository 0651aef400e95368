"""Settling: staged result files are on disk before the journal says SETTLING; memory is bounded."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from dropbox_importer.config import DropboxConfig, load_config
from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.problems import Problems
from dropbox_importer.pipeline.settle import Settler
from dropbox_importer.pipeline.settling import SettleQueue
from dropbox_importer.pipeline.states import FileState
from dropbox_importer.threads import Workers
from tests.waiting import wait_for


def box_config(tmp_path: Path) -> DropboxConfig:
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
    return load_config(path).dropboxes["box"]


def claimed(journal: Journal, layout: DropboxLayout, name: str, text: str) -> int:
    """A file in processing/csv with a row failed locally, recorded as claimed."""
    path = layout.processing / "csv" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    data = text.encode()
    file_id = journal.record_claim(
        "box", "csv", name, layout.inbox / "csv" / name, path, len(data),
        hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    journal.record_local_failures(file_id, {3: "lookup field is empty"})
    return file_id


@pytest.fixture
def parts(tmp_path: Path) -> dict[str, Any]:
    config = box_config(tmp_path)
    layout = DropboxLayout(config.root)
    layout.ensure()
    journal = Journal.open(tmp_path / "state")
    settler = Settler(
        journal,
        parts_root=tmp_path / "state" / "parts",
        boxes=lambda _name: config,
        layouts=lambda _name: layout,
        clients=lambda _name: None,  # type: ignore[arg-type,return-value]  # nothing to fetch
    )
    return {"journal": journal, "layout": layout, "settler": settler, "root": tmp_path}


def test_staged_result_files_are_fsynced_before_the_settle_is_recorded(
    parts: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    journal: Journal = parts["journal"]
    file_id = claimed(
        # The last row has no e-mail: a failure found locally (a row of bare delimiters would be
        # Excel's padding, a blank row), so a failures file is staged.
        journal,
        parts["layout"],
        "f.csv",
        "email,firstName\na@example.com,A\n,Ann\n",
    )
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    synced_when_settling: list[str] = []
    real_transition = journal.transition

    def transition(file: int, state: FileState, *args: Any, **kwargs: Any) -> None:
        if state is FileState.SETTLING:
            synced_when_settling.extend(synced)
        real_transition(file, state, *args, **kwargs)

    monkeypatch.setattr(journal, "transition", transition)
    parts["settler"].settle(file_id, "the partner's reason")
    staging = parts["root"] / "state" / "parts" / str(file_id) / "results"
    assert str(staging / "failures") in synced_when_settling
    assert str(staging / "result.json") in synced_when_settling
    final = parts["layout"].failed / "csv" / "f.csv.failures.csv"
    assert "lookup field is empty" in final.read_text()


def test_the_settle_queue_holds_nothing_once_files_have_settled(parts: dict[str, Any]) -> None:
    journal: Journal = parts["journal"]
    settled: list[int] = []
    queue = SettleQueue(
        parts["settler"],
        journal,
        Workers("settle", 2),
        problems=Problems(None),
        settled=lambda record: settled.append(record.id),
    )
    ids = [claimed(journal, parts["layout"], f"f{n}.csv", "email\na@x.com\n,\n") for n in range(20)]
    for file_id in ids:
        queue.hand(file_id, "refused")
        queue.hand(file_id, "refused")  # handed twice: settled once
    wait_for(lambda: len(settled) == len(ids), what="every file settled")
    assert sorted(settled) == ids
    assert queue.held == 0
