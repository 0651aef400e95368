"""The daemon under test runs as the unit runs it: its own user, CAP_LEASE alone, no root."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import DaemonProcess, write_config
from tests.unprivileged import UMASK, UNIT, ServiceAccount

pytestmark = pytest.mark.slow


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


CAP_LEASE = 1 << 28  # linux/capability.h


def test_the_daemon_under_test_has_no_root_and_only_cap_lease(
    tmp_path: Path, make_sandbox: Callable[..., Any], service_account: ServiceAccount | None
) -> None:
    if service_account is None:
        pytest.skip("not root: the daemon runs as the current user, unprivileged already")
    sandbox = make_sandbox()
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"box": {"root": str(tmp_path / "box")}},
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        assert daemon.proc is not None
        status = proc_status(daemon.proc.pid)
        uid = str(service_account.uid)
        gid = str(service_account.gid)
        assert status["Uid"].split() == [uid] * 4
        assert status["Gid"].split() == [gid] * 4
        assert set(status["Groups"].split()) <= {gid}  # its own group, none other
        for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(status[caps], 16) == CAP_LEASE, caps
        assert status["NoNewPrivs"] == "1"
        assert int(status["Umask"], 8) == UMASK
        assert (tmp_path / "state").stat().st_uid == service_account.uid
    finally:
        assert daemon.stop() == 0


def test_the_harness_grants_what_the_unit_grants_and_no_more() -> None:
    unit = dict(
        line.split("=", 1)
        for line in UNIT.read_text().splitlines()
        if "=" in line and line[0] != "#"
    )
    assert unit["CapabilityBoundingSet"] == unit["AmbientCapabilities"] == "CAP_LEASE"
    assert unit["NoNewPrivileges"] == "yes"
    assert unit["UMask"] == f"{UMASK:04o}"
    assert unit["User"] != "root"
    argv = ServiceAccount("u", 1, 1, Path(os.sep)).command()
    for flag in (
        "--init-groups",
        "--inh-caps=-all,+lease",
        "--ambient-caps=-all,+lease",
        "--bounding-set=-all,+lease",
        "--no-new-privs",
    ):
        assert flag in argv
