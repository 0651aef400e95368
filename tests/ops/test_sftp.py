"""The partner's view of a drop box through a real sshd: what it may and may not do.

Every test here needs root (a Unix account, a chroot in /srv, sshd); they skip with the reason
elsewhere and run in CI, which runs as root.
"""

from __future__ import annotations

import os
import shutil
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
    shutil.chown(route, sftp_server.daemon_user, sftp_server.user)
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
        sftp_server.daemon_user,
        stranger,
        sftp_server.root,
        sftp_server.log,
        sftp_server.process,
    )
    with pytest.raises(SftpError):
        impostor.put(lead_file(tmp_path, rows=1), "leads.csv")
    assert list(sftp_server.inbox.iterdir()) == []


# The daemon's side of docs/sftp.md, done by hand as the daemon's stand-in account: claim
# uploads (also from a folder the partner made), write results, settle. `private_users` repeats
# it inside a user namespace that maps only the daemon's own ids, as PrivateUsers=yes in a
# drop-in would (docs/install.md), to prove the partner's group still grants access there.
DAEMON_STEPS = """
set -e
umask 0027
cat inbox/leads.csv > /dev/null
mv inbox/leads.csv processing/leads.csv
mkdir -p processing/list=7
mv inbox/list=7/more.csv processing/list=7/more.csv
mkdir -p done/list=7
printf '{"status": "Complete"}\\n' > done/list=7/more.csv.result.json
mv processing/list=7/more.csv done/list=7/more.csv
mv processing/leads.csv failed/leads.csv
"""


def as_daemon(server: SftpServer, script: str, *, private_users: bool) -> None:
    """Run a shell script in the drop box as the daemon's stand-in with its groups."""
    argv = ["setpriv", f"--reuid={server.daemon_user}", f"--regid={server.daemon_user}"]
    argv += ["--init-groups", "--"]
    if private_users:
        argv += ["unshare", "--user", "--map-current-user", "--"]
    done = subprocess.run(
        [*argv, "sh", "-c", script], cwd=server.root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("private_users", [False, True], ids=["plain", "private_users"])
def test_daemon_in_partner_group_claims_uploads_and_partner_reads_results(
    sftp_server: SftpServer, tmp_path: Path, private_users: bool
) -> None:
    if private_users:
        probe = subprocess.run(["unshare", "--user", "--map-current-user", "true"], check=False)
        if probe.returncode != 0:
            pytest.skip("user namespaces are not available here")
    local = lead_file(tmp_path, rows=50)
    sftp_server.put(local, "leads.csv")
    sftp_server.batch(["mkdir list=7"])
    sftp_server.put(local, "list=7/more.csv")

    as_daemon(sftp_server, DAEMON_STEPS, private_users=private_users)

    result = sftp_server.root / "done" / "list=7" / "more.csv.result.json"
    assert stat.S_IMODE(result.stat().st_mode) == 0o640
    sftp_server.get("/done/list=7/more.csv.result.json", tmp_path / "result.json")
    sftp_server.get("/done/list=7/more.csv", tmp_path / "more.csv")
    sftp_server.get("/failed/leads.csv", tmp_path / "back.csv")
    assert (tmp_path / "result.json").read_text() == '{"status": "Complete"}\n'
    assert (tmp_path / "more.csv").read_bytes() == local.read_bytes()
    assert (tmp_path / "back.csv").read_bytes() == local.read_bytes()


def test_result_renamed_in_from_elsewhere_is_unreadable_to_the_partner(
    sftp_server: SftpServer, tmp_path: Path
) -> None:
    # Why results must be written inside done/: a file moved in keeps its old group.
    staged = sftp_server.root / "processing" / "leads.csv.result.json"
    as_daemon(
        sftp_server,
        f"umask 0027; echo '{{}}' > {staged.relative_to(sftp_server.root)}; "
        f"mv {staged.relative_to(sftp_server.root)} done/leads.csv.result.json",
        private_users=False,
    )
    with pytest.raises(SftpError):
        sftp_server.get("/done/leads.csv.result.json", tmp_path / "result.json")
