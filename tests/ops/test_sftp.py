"""The partner's view of a drop box through a real sshd: what it may and may not do.

Every test here needs root (a Unix account, a chroot in /srv, sshd); they skip with the reason
elsewhere and run in CI, which runs as root.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.ops.sftp_server import SftpError, SftpServer, sftp_server

__all__ = ["sftp_server"]  # the fixture, imported so pytest finds it

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: Unix account, chroot, sshd")
pytestmark = [needs_root, pytest.mark.slow]


def lead_file(tmp_path: Path, name: str = "leads.csv", rows: int = 2000) -> Path:
    """A CSV with a non-trivial, non-repeating body so a truncated copy cannot pass."""
    path = tmp_path / name
    lines = ["email,firstName,lastName"]
    lines += [f"lead{i}@example.com,Ana{i},Silva{i * 7 % 101}" for i in range(rows)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def test_put_arrives_byte_identical_in_inbox(sftp_server: SftpServer, tmp_path: Path) -> None:
    local = lead_file(tmp_path)
    sftp_server.put(local, "leads.csv")
    arrived = sftp_server.inbox / "leads.csv"
    assert arrived.read_bytes() == local.read_bytes()
    st = arrived.stat()
    # The setgid inbox puts the upload in the partner's group, readable by it (the client asks
    # for its local file's mode, 0644 here; -u 0007 takes away what others could have).
    # The daemon reads it as a member of that group; moving it needs only the folder's write bit.
    assert st.st_gid == sftp_server.inbox.stat().st_gid
    assert stat.S_IMODE(st.st_mode) & 0o047 == 0o040


def test_route_folder_made_by_the_partner_stays_usable_by_the_daemon(
    sftp_server: SftpServer, tmp_path: Path
) -> None:
    # With -u 0007 (not 0027) a partner's own sub-folder keeps group write, so the daemon, in the
    # partner's group, can still rename files out of it.
    sftp_server.batch(["mkdir list=1001"])
    route = sftp_server.inbox / "list=1001"
    mode = stat.S_IMODE(route.stat().st_mode)
    assert mode & 0o2070 == 0o2070
    assert route.stat().st_gid == sftp_server.inbox.stat().st_gid


def test_put_into_a_route_folder(sftp_server: SftpServer, tmp_path: Path) -> None:
    route = sftp_server.inbox / "list=1001"
    route.mkdir()
    os.chown(route, 0, sftp_server.inbox.stat().st_gid)
    route.chmod(0o2770)
    local = lead_file(tmp_path, rows=10)
    sftp_server.put(local, "list=1001/leads.csv")
    assert (route / "leads.csv").read_bytes() == local.read_bytes()


def test_temporary_name_then_rename_leaves_only_the_final_name(
    sftp_server: SftpServer, tmp_path: Path
) -> None:
    local = lead_file(tmp_path)
    sftp_server.put(local, "leads.csv", temp_name="leads.csv.filepart", limit_kbit=4000)
    assert sorted(p.name for p in sftp_server.inbox.iterdir()) == ["leads.csv"]
    assert (sftp_server.inbox / "leads.csv").read_bytes() == local.read_bytes()


def test_partner_cannot_write_outside_inbox(sftp_server: SftpServer, tmp_path: Path) -> None:
    local = lead_file(tmp_path, rows=1)
    for target in ("/processing/x.csv", "/done/x.csv", "/failed/x.csv", "/x.csv"):
        with pytest.raises(SftpError):
            sftp_server.put(local, target)
    for folder in ("processing", "done", "failed"):
        assert list((sftp_server.root / folder).iterdir()) == []
    assert sorted(p.name for p in sftp_server.root.iterdir()) == [
        "done",
        "failed",
        "inbox",
        "processing",
    ]


def test_partner_cannot_see_into_processing(sftp_server: SftpServer) -> None:
    (sftp_server.root / "processing" / "claimed.csv").write_text("email\n")
    with pytest.raises(SftpError):
        sftp_server.batch(["ls /processing"])


def test_partner_reads_results_but_cannot_delete_them(
    sftp_server: SftpServer, tmp_path: Path
) -> None:
    # The daemon writes results with UMask=0027 into setgid done/: group-readable by the partner.
    done = sftp_server.root / "done"
    result = done / "leads.csv.result.json"
    old = os.umask(0o027)
    try:
        result.write_text('{"status": "Complete"}\n')
    finally:
        os.umask(old)
    assert result.stat().st_gid == done.stat().st_gid
    sftp_server.get("/done/leads.csv.result.json", tmp_path / "result.json")
    assert (tmp_path / "result.json").read_text() == '{"status": "Complete"}\n'
    with pytest.raises(SftpError):
        sftp_server.batch(["rm /done/leads.csv.result.json"])
    assert result.exists()


def test_partner_cannot_plant_symlinks(sftp_server: SftpServer, tmp_path: Path) -> None:
    sftp_server.put(lead_file(tmp_path, rows=1), "leads.csv")
    with pytest.raises(SftpError):
        sftp_server.batch(["symlink leads.csv link.csv"])
    assert not (sftp_server.inbox / "link.csv").is_symlink()


def test_key_of_someone_else_is_refused(sftp_server: SftpServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    impostor = SftpServer(
        sftp_server.host,
        sftp_server.port,
        sftp_server.user,
        stranger,
        sftp_server.root,
        sftp_server.log,
        sftp_server.process,
    )
    with pytest.raises(SftpError):
        impostor.put(lead_file(tmp_path, rows=1), "leads.csv")
    assert list(sftp_server.inbox.iterdir()) == []
