"""A partner uploads over real SFTP; the real daemon imports each file once, complete."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
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


def test_an_sftp_upload_that_stalls_mid_file_is_imported_once_complete(
    sftp_server: SftpServer, tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    sandbox = make_sandbox(
        rows_per_second=5000.0,
        job_overhead_seconds=0.05,
        window_seconds=SANDBOX_WINDOW_SECONDS,
        keep_uploads=True,
    )
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
    local = tmp_path / "stalled.csv"
    text = "email,firstName,company\n" + "".join(
        f"stall{i}@example.com,N{i},Compilers Inc\n" for i in range(8000)
    )
    local.write_text(text)
    uploaded = sftp_server.inbox / "stalled.csv"
    upload: subprocess.Popen[str] | None = None
    try:
        daemon.start()
        upload = sftp_server.start_put(local, "stalled.csv", limit_kbit=400)  # about 7 s
        wait_for(
            lambda: uploaded.exists() and uploaded.stat().st_size >= 40_000,
            what="the upload part-way",
        )
        # The network stalls: client and ssh stop; internal-sftp holds the file open, part
        # written (almost surely mid-line), while the settle time passes many times over.
        os.killpg(upload.pid, signal.SIGSTOP)
        try:
            written = uploaded.stat().st_size
            wait_for(
                lambda: any(e.get("event") == "file_open_for_writing" for e in daemon.events()),
                what="the claim refused: internal-sftp still has it open",
            )
            assert uploaded.stat().st_size == written < len(text)  # it really stalled
        finally:
            os.killpg(upload.pid, signal.SIGCONT)
        assert upload.wait(timeout=60) == 0, upload.stderr.read() if upload.stderr else ""
        final = sftp_server.root / "done" / "stalled.csv"
        wait_for(final.exists, timeout=60, what="stalled.csv in done/")
        assert final.read_text() == text
        [batch] = requests.get(f"{sandbox.base_url}/sandbox/batches.json", timeout=10).json()[
            "batches"
        ]
        assert batch["rows"] == 8000  # one import, of every row
        sent = requests.get(
            f"{sandbox.base_url}/sandbox/batches/{batch['batchId']}/file", timeout=10
        )
        assert sent.content.decode() == text  # never a cut row
        result = json.loads((final.parent / "stalled.csv.result.json").read_text())
        assert result["rounds"] == 1 and result["original"]["size"] == len(text)
    finally:
        if upload is not None and upload.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(upload.pid, signal.SIGKILL)
        assert daemon.stop() == 0
        remove_folders(account)
