"""A partner uploads over real SFTP; the real daemon imports each file once, complete."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.daemon.harness import (
    SANDBOX_WINDOW_SECONDS,
    DaemonProcess,
    originals_under,
    wait_for,
    write_config,
)
from tests.ops.sftp_server import SftpServer, sftp_server
from tests.unprivileged import UMASK, existing_account, remove_folders

__all__ = ["sftp_server"]  # the fixture, imported so pytest finds it

pytestmark = pytest.mark.slow


def leads_file(path: Path, prefix: str, rows: int) -> str:
    text = "email,firstName\n" + "".join(f"{prefix}{i}@example.com,N{i}\n" for i in range(rows))
    path.write_text(text)
    return text


def test_sftp_uploads_plain_and_renamed_are_each_imported_once(
    sftp_server: SftpServer, tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    sandbox = make_sandbox(
        rows_per_second=2000.0, job_overhead_seconds=0.05, window_seconds=SANDBOX_WINDOW_SECONDS
    )
    # The daemon runs as the drop box's daemon user, in the partner's group, as the unit runs
    # it (docs/sftp.md); its config and state live where that user may go.
    account = existing_account(sftp_server.daemon_user)
    work = account.base / "work"
    work.mkdir()
    shutil.chown(work, sftp_server.daemon_user, sftp_server.daemon_user)
    config = write_config(
        work,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"partner": {"root": str(sftp_server.root), "settle_seconds": 1.0}},
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log", run_as=account.command(), umask=UMASK)
    try:
        daemon.start()
        plain = leads_file(tmp_path / "plain.csv", "plain", 2000)
        renamed = leads_file(tmp_path / "renamed.csv", "renamed", 2000)
        # Throttled to about 2 s on the wire: the daemon must wait for the end of the upload.
        sftp_server.put(tmp_path / "plain.csv", "plain.csv", limit_kbit=400)
        sftp_server.put(tmp_path / "renamed.csv", "renamed.csv", temp_name="renamed.csv.filepart")
        done = sftp_server.root / "done"
        wait_for(
            lambda: (done / "plain.csv").exists() and (done / "renamed.csv").exists(),
            timeout=60,
            what="both uploads in done/",
        )
        assert (done / "plain.csv").read_text() == plain
        assert (done / "renamed.csv").read_text() == renamed
        batches = requests.get(f"{sandbox.base_url}/sandbox/batches.json", timeout=10).json()
        assert sorted(b["rows"] for b in batches["batches"]) == [2000, 2000]
        assert not originals_under(sftp_server.root / "failed")
        # The partner reads the outcome in their own folder, over SFTP.
        sftp_server.get("/done/plain.csv.result.json", tmp_path / "result.json")
        assert '"outcome": "done"' in (tmp_path / "result.json").read_text()
    finally:
        assert daemon.stop() == 0
        remove_folders(account)
