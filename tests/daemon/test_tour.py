"""The README's tour, run for real: `make run`'s demo, the files it drops, what status prints."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dropbox_importer.cli import main as cli_main
from tests.daemon.harness import originals_under, wait_for
from tests.test_readme import shown_output

pytestmark = pytest.mark.slow


def normalised(text: str, root: Path) -> str:
    """Status text without what differs from run to run: times, ages, pids, the demo's place."""
    text = text.replace(str(root), "…/demo/dropbox")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", text)
    text = re.sub(r"\d{8}T\d{6}Z", "<stamp>", text)
    text = re.sub(r"\(pid \d+, up \w+\)", "(pid <pid>, up <age>)", text)
    text = re.sub(r"last call \w+ ago", "last call <age> ago", text)
    # Column widths follow the longest cell, which a timestamped name changes.
    return "\n".join(re.sub(r" {2,}", "  ", line.rstrip()) for line in text.strip().splitlines())


def test_the_tour_prints_the_status_the_readme_shows(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dropbox_importer", "demo", "--dir", str(demo)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    root = demo / "dropbox"
    try:
        wait_for(
            lambda: b"daemon_ready" in (tmp_path / "demo.log").read_bytes(),
            timeout=90,  # a first start on a busy machine (the suite runs on four workers)
            what="ready",
        )
        newsletter = root / "inbox" / "newsletter"
        shutil.copy(demo / "sample-leads.csv", newsletter)  # 2. drop a file
        wait_for((root / "done" / "newsletter" / "sample-leads.csv").exists, what="3. watch")
        shutil.copy(demo / "sample-leads.csv", newsletter)  # 4. the same file again
        wait_for(lambda: len(originals_under(root / "done")) == 2, what="4. beside the first")
        shutil.copy(demo / "sample-attendees.csv", root / "inbox" / "webinar-attended")  # 5.
        attended = root / "done" / "webinar-attended" / "sample-attendees.csv"
        wait_for(attended.exists, what="5. attendees")
        late = root / "inbox" / "program=1001,status=Atended"
        late.mkdir()
        (late / "late.csv").write_text("email\nlate@example.com\n")
        wait_for(
            (root / "failed" / "program=1001,status=Atended" / "late.csv").exists,
            what="5. a status the program's channel has not",
        )
        (newsletter / "typo.csv").write_text("emial,firstName\nx@example.com,X\n")  # 6.
        wait_for((root / "failed" / "newsletter" / "typo.csv").exists, what="6. a broken file")
        (root / "inbox" / "csv,list=abc").mkdir()
        shutil.copy(demo / "sample-leads.csv", root / "inbox" / "csv,list=abc" / "leads.csv")
        wait_for((root / "failed" / "csv,list=abc" / "leads.csv").exists, what="a broken folder")
        shutil.copy(demo / "partner-leads.csv", newsletter)  # 7. a partner's column names
        wait_for(
            lambda: len(originals_under(root / "done") + originals_under(root / "failed")) == 7,
            timeout=60,
            what="the tour's seven files settled",
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            cli_main(["status", "--config", str(demo / "config.yaml")])
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C, as the tour stops it
        assert proc.wait(timeout=20) == 0
        log.close()

    shown = shown_output("status --config demo/config.yaml")
    printed = out.getvalue()
    assert normalised(printed, root) == normalised(shown, root), printed
