"""The claimer keeps no memory that grows with the life of the process."""

from __future__ import annotations

from pathlib import Path

import yaml
from structlog.testing import capture_logs

from dropbox_importer.config import load_config
from dropbox_importer.pipeline.boxes import open_box
from dropbox_importer.pipeline.claim import Claimer
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.problems import Problems
from dropbox_importer.pipeline.ready import Candidate
from dropbox_importer.threads import Workers


def test_links_set_aside_are_logged_once_and_forgotten_once_gone(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "instances": {"main": {"base_url": "embedded"}},
                "dropboxes": {"box": {"root": str(tmp_path / "box"), "instance": "main"}},
            }
        )
    )
    box = open_box(load_config(config_path).dropboxes["box"])
    claimer = Claimer(
        Journal.open(tmp_path / "state"),
        enqueue=lambda _box, _id: None,
        reject=lambda _id, _reason: None,
        problems=Problems(None),
        workers=Workers("register", 1),
    )
    inbox = box.layout.inbox
    with capture_logs() as logs:
        for n in range(50):
            link = inbox / f"link-{n}.csv"
            link.symlink_to(tmp_path / "outside.csv")
            for _ in range(3):  # seen again at each rescan while it stays
                claimer.take(box, Candidate(link, regular=False))
            link.unlink()  # the partner removes it
            Claimer.prune(box)
    assert len([e for e in logs if e["event"] == "not_a_regular_file"]) == 50
    assert box.set_aside == set()
