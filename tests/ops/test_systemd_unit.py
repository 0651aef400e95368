"""The systemd unit, sysusers and tmpfiles files, checked by systemd's own tools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO / "systemd"
UNIT = SYSTEMD_DIR / "dropbox-importer.service"
INSTALLED_EXEC = "/opt/dropbox-importer/bin/dropbox-importer"
MAX_EXPOSURE = 2.0
TOOL_TIMEOUT = 60


def need(tool: str) -> str:
    """The path of a systemd tool, or skip the test saying which one is missing."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed here (install the systemd package to run this)")
    return path


def settings(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> every value it is given, in order (systemd allows repeated keys)."""
    found: dict[str, list[str]] = defaultdict(list)
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        found[f"{section}.{key.strip()}"].append(value.strip())
    return found


def runnable_copy(tmp_path: Path, text: str) -> Path:
    """The unit with ExecStart pointing at an executable that exists on this machine."""
    real = shutil.which("dropbox-importer") or str(REPO / ".venv" / "bin" / "dropbox-importer")
    assert Path(real).exists(), "the package's console script is not installed"
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED_EXEC, real))
    return copy


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    """Run `systemd-analyze verify` on a unit file."""
    return subprocess.run(
        [need("systemd-analyze"), "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )


def complaints_about(unit: Path, output: str) -> list[str]:
    """The lines of verify's output that concern this unit (not the host's other units)."""
    return [line for line in output.splitlines() if unit.name in line]


def test_unit_declares_the_service_contract() -> None:
    unit = settings(UNIT.read_text())
    expected = {
        "Service.Type": ["notify"],
        "Service.NotifyAccess": ["main"],
        "Service.WatchdogSec": ["30"],
        "Service.Restart": ["on-failure"],
        "Service.TimeoutStopSec": ["15"],
        "Service.ExecStart": [f"{INSTALLED_EXEC} run --config /etc/dropbox-importer/config.yaml"],
        "Service.ExecReload": ["/bin/kill -HUP $MAINPID"],
        "Service.User": ["dropbox-importer"],
        "Service.Group": ["dropbox-importer"],
        "Service.UMask": ["0027"],
        "Service.StateDirectory": ["dropbox-importer"],
        "Service.ConfigurationDirectory": ["dropbox-importer"],
        "Service.LoadCredential": ["main:/etc/dropbox-importer/credentials/main"],
        "Service.ProtectSystem": ["strict"],
        "Service.ReadWritePaths": ["/srv/dropbox /srv/archive"],
        # One capability: leases on partners' uploads (dropbox/writers.py).
        "Service.CapabilityBoundingSet": ["CAP_LEASE"],
        "Service.AmbientCapabilities": ["CAP_LEASE"],
        "Service.RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
        "Service.SystemCallFilter": ["@system-service", "~@privileged @resources"],
        "Service.MemoryDenyWriteExecute": ["yes"],
    }
    for key, values in expected.items():
        assert unit.get(key) == values, key
    # Drop boxes are shared with partner accounts through groups; a dynamic user has none.
    assert "Service.DynamicUser" not in unit
    # CAP_LEASE counts only in the initial user namespace.
    assert "Service.PrivateUsers" not in unit
    # Marketo sits behind addresses that change; an IP allow-list would break imports.
    assert "Service.IPAddressDeny" not in unit


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    copy = runnable_copy(tmp_path, UNIT.read_text())
    done = verify(copy)
    assert complaints_about(copy, done.stdout + done.stderr) == []
    assert done.returncode == 0, done.stderr


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    # The check above can fail: a misspelt setting and a bad type are reported for our file.
    broken = UNIT.read_text().replace("Type=notify", "Type=notfy\nWatchdogSecs=30")
    copy = runnable_copy(tmp_path, broken)
    done = verify(copy)
    complaints = complaints_about(copy, done.stdout + done.stderr)
    assert any("WatchdogSecs" in line for line in complaints)
    assert any("notfy" in line for line in complaints)


def exposure(unit: Path) -> float:
    """The 'Overall exposure level' systemd-analyze security gives a unit file."""
    done = subprocess.run(
        [need("systemd-analyze"), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )
    if "--offline" in done.stderr and "unrecognized" in done.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd >= 250 needed)")
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", done.stdout)
    assert match, f"no exposure figure in:\n{done.stdout}\n{done.stderr}"
    return float(match.group(1))


def test_unit_exposure_is_at_most_two() -> None:
    level = exposure(UNIT)
    print(f"systemd-analyze security exposure: {level}")
    assert level <= MAX_EXPOSURE


def test_exposure_check_sees_hardening_removed(tmp_path: Path) -> None:
    bare = tmp_path / UNIT.name
    kept = [
        line
        for line in UNIT.read_text().splitlines()
        if not line.startswith(("Protect", "Private", "Restrict", "SystemCall", "Capability"))
    ]
    bare.write_text("\n".join(kept) + "\n")
    assert exposure(bare) > MAX_EXPOSURE


def test_sysusers_creates_the_service_account_and_partner_group(tmp_path: Path) -> None:
    tool = need("systemd-sysusers")
    (tmp_path / "etc").mkdir()
    conf = SYSTEMD_DIR / "dropbox-importer.sysusers.conf"
    subprocess.run(
        [tool, f"--root={tmp_path}", str(conf)], check=True, capture_output=True, timeout=60
    )
    passwd = (tmp_path / "etc" / "passwd").read_text()
    group = (tmp_path / "etc" / "group").read_text()
    [account] = [line for line in passwd.splitlines() if line.startswith("dropbox-importer:")]
    assert account.endswith(":/var/lib/dropbox-importer:/usr/sbin/nologin")
    assert re.search(r"^sftp-partners:x:\d+:$", group, re.MULTILINE)
    assert re.search(r"^dropbox-importer:x:\d+:$", group, re.MULTILINE)


def test_tmpfiles_makes_root_owned_chroot_base_and_private_credentials(tmp_path: Path) -> None:
    tool = need("systemd-tmpfiles")
    if os.geteuid() != 0:
        pytest.skip("needs root: tmpfiles sets owners (root, dropbox-importer) on what it creates")
    etc = tmp_path / "etc"
    etc.mkdir()
    # tmpfiles resolves the group name in the alternate root, as on a real install.
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\ndropbox-importer:x:4242:\n")
    conf = SYSTEMD_DIR / "dropbox-importer.tmpfiles.conf"
    subprocess.run(
        [tool, f"--root={tmp_path}", "--create", str(conf)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    base = (tmp_path / "srv" / "dropbox").stat()
    assert (base.st_uid, base.st_mode & 0o7777) == (0, 0o755)
    config = (etc / "dropbox-importer").stat()
    assert (config.st_gid, config.st_mode & 0o7777) == (4242, 0o750)
    secrets = (etc / "dropbox-importer" / "credentials").stat()
    assert (secrets.st_uid, secrets.st_gid, secrets.st_mode & 0o7777) == (0, 0, 0o700)


DROP_IN = SYSTEMD_DIR / "dropbox-importer.service.d" / "shared-journal.conf"


def test_the_two_host_drop_in_hands_over_the_database_password_and_waits_for_the_export(
    tmp_path: Path,
) -> None:
    drop_in = settings(DROP_IN.read_text())
    assert drop_in["Service.LoadCredential"] == [
        "journal:/etc/dropbox-importer/credentials/journal"
    ]
    assert drop_in["Unit.RequiresMountsFor"] == ["/srv/dropbox"]
    # A leader that stood down exits non-zero: the unit's Restart= must bring it back.
    assert settings(UNIT.read_text())["Service.Restart"] == ["on-failure"]
    copy = runnable_copy(tmp_path, UNIT.read_text())
    folder = tmp_path / f"{UNIT.name}.d"
    folder.mkdir()
    (folder / DROP_IN.name).write_text(DROP_IN.read_text())
    done = verify(copy)
    assert complaints_about(copy, done.stdout + done.stderr) == []
    assert done.returncode == 0, done.stderr
    # The check can fail: verify reads the drop-in beside the unit and names a bad key in it.
    (folder / DROP_IN.name).write_text(DROP_IN.read_text() + "RestartSecs=2\n")
    done = verify(copy)
    assert any("RestartSecs" in line for line in complaints_about(copy, done.stdout + done.stderr))
