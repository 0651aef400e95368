"""The drop box on disk: claims, destinations and crash-safe settles on real files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dropbox_importer.dropbox.layout import (
    DropboxLayout,
    FileVanished,
    NotARegularFile,
    SettleError,
    choose_destination,
    claim,
    result_paths,
    settle,
    unique_path,
    write_atomic,
)
from dropbox_importer.marketo.models import ImportFormat

MOMENT = datetime(2026, 11, 29, 3, 15, tzinfo=UTC)
ORIGINAL = b"Email,FirstName\r\na@example.com,\xc3\x89lise\r\nb@example.com,Bo\r\n"


@pytest.fixture
def box(tmp_path: Path) -> DropboxLayout:
    layout = DropboxLayout(tmp_path / "box")
    layout.ensure()
    return layout


def drop(box: DropboxLayout, rel: str, data: bytes = ORIGINAL) -> Path:
    path = box.inbox / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under root, by relative path, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_ensure_creates_the_four_folders(tmp_path: Path) -> None:
    layout = DropboxLayout(tmp_path / "new")
    layout.ensure()
    layout.ensure()
    assert sorted(p.name for p in layout.root.iterdir()) == [
        "done",
        "failed",
        "inbox",
        "processing",
    ]


def test_claim_moves_the_file_under_the_same_route(box: DropboxLayout) -> None:
    dropped = drop(box, "list-42/partition-eu/leads.csv")
    inode = dropped.stat().st_ino
    claimed = claim(box, dropped)
    assert claimed == box.processing / "list-42/partition-eu/leads.csv"
    assert not dropped.exists()
    assert claimed.read_bytes() == ORIGINAL and claimed.stat().st_ino == inode


def test_claim_never_overwrites_a_file_in_processing(box: DropboxLayout) -> None:
    claim(box, drop(box, "r/leads.csv", b"first"))
    second = claim(box, drop(box, "r/leads.csv", b"second"))
    assert second.parent == box.processing / "r" and second.name != "leads.csv"
    assert second.suffix == ".csv"
    assert (box.processing / "r/leads.csv").read_bytes() == b"first"
    assert second.read_bytes() == b"second"


def test_claim_refuses_a_symlink_without_following_it(box: DropboxLayout, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_bytes(b"not yours")
    link = box.inbox / "r/link.csv"
    link.parent.mkdir()
    link.symlink_to(secret)
    with pytest.raises(NotARegularFile, match="symbolic link"):
        claim(box, link)
    assert link.is_symlink() and secret.read_bytes() == b"not yours"
    assert tree(box.processing) == {}


def test_claim_refuses_a_hard_link(box: DropboxLayout, tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_bytes(ORIGINAL)
    linked = box.inbox / "linked.csv"
    os.link(outside, linked)
    with pytest.raises(NotARegularFile, match="hard links"):
        claim(box, linked)
    assert linked.exists()


def test_claim_refuses_a_fifo_a_socket_and_a_directory(box: DropboxLayout) -> None:
    fifo = box.inbox / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile, match="named pipe"):
        claim(box, fifo)  # would block forever if it were opened
    (box.inbox / "dir.csv").mkdir()
    with pytest.raises(NotARegularFile, match="directory"):
        claim(box, box.inbox / "dir.csv")
    sock_path = box.inbox / "s.csv"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(NotARegularFile, match="socket"):
            claim(box, sock_path)


def test_claim_of_a_vanished_file_says_so(box: DropboxLayout) -> None:
    with pytest.raises(FileVanished):
        claim(box, box.inbox / "gone.csv")


def test_unique_path_puts_the_timestamp_before_the_extension(tmp_path: Path) -> None:
    taken = {tmp_path / "leads.csv", tmp_path / "leads.20261129T031500Z.csv"}
    assert unique_path(tmp_path / "free.csv", taken.__contains__, MOMENT) == tmp_path / "free.csv"
    assert unique_path(tmp_path / "leads.csv", taken.__contains__, MOMENT) == (
        tmp_path / "leads.20261129T031500Z-2.csv"
    )
    taken.add(tmp_path / "README")
    assert unique_path(tmp_path / "README", taken.__contains__, MOMENT).name == (
        "README.20261129T031500Z"
    )


def test_result_paths_sort_next_to_the_original(tmp_path: Path) -> None:
    dest = tmp_path / "leads.csv"
    paths = result_paths(dest, ImportFormat.CSV)
    assert [p.name for p in (paths.failures, paths.warnings, paths.result_json)] == [
        "leads.csv.failures.csv",
        "leads.csv.warnings.csv",
        "leads.csv.result.json",
    ]
    assert result_paths(tmp_path / "a.tsv", ImportFormat.TSV).failures.name == "a.tsv.failures.tsv"
    assert result_paths(tmp_path / "a.ssv", ImportFormat.SSV).warnings.name == "a.ssv.warnings.csv"


def test_destination_is_unique_even_when_only_a_result_name_is_taken(
    box: DropboxLayout,
) -> None:
    claimed = claim(box, drop(box, "r/leads.csv"))
    assert choose_destination(box, claimed, "done", MOMENT) == box.done / "r/leads.csv"
    (box.failed / "r").mkdir()
    (box.failed / "r/leads.csv.result.json").write_text("{}")
    assert choose_destination(box, claimed, "failed", MOMENT) == (
        box.failed / "r/leads.20261129T031500Z.csv"
    )


def test_write_atomic_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deep/out.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def staged_results(box: DropboxLayout, dest: Path, staging: Path) -> dict[Path, Path]:
    paths = result_paths(dest, ImportFormat.CSV)
    staging.mkdir(parents=True, exist_ok=True)
    out = {}
    for final, content in (
        (paths.failures, b"f"),
        (paths.warnings, b"w"),
        (paths.result_json, b"{}"),
    ):
        staged = staging / final.name
        staged.write_bytes(content)
        out[staged] = final
    return out


def test_settle_moves_results_and_the_original_byte_for_byte(box: DropboxLayout) -> None:
    claimed = claim(box, drop(box, "list-42/leads.csv"))
    inode = claimed.stat().st_ino
    dest = choose_destination(box, claimed, "done")
    settle(claimed, dest, staged_results(box, dest, box.root / "staging"))
    assert tree(box.done) == {
        "list-42/leads.csv": ORIGINAL,
        "list-42/leads.csv.failures.csv": b"f",
        "list-42/leads.csv.warnings.csv": b"w",
        "list-42/leads.csv.result.json": b"{}",
    }
    assert dest.stat().st_ino == inode  # renamed, never copied
    assert tree(box.processing) == {} and tree(box.root / "staging") == {}
    settle(claimed, dest, staged_results(box, dest, box.root / "again"))  # a replay is harmless


def test_settle_never_overwrites_a_file_that_appeared_at_the_destination(
    box: DropboxLayout,
) -> None:
    claimed = claim(box, drop(box, "leads.csv"))
    dest = choose_destination(box, claimed, "done")
    dest.write_bytes(b"someone else's")
    with pytest.raises(SettleError, match="nothing is overwritten"):
        settle(claimed, dest, {})
    assert claimed.read_bytes() == ORIGINAL and dest.read_bytes() == b"someone else's"


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make a folder unwritable, even for root (who ignores permission bits)."""
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(folder)]).returncode != 0:
            folder.chmod(0o755)
            pytest.skip("running as root without chattr: cannot make a folder read-only")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_a_read_only_done_folder_is_named_and_the_file_stays(box: DropboxLayout) -> None:
    claimed = claim(box, drop(box, "leads.csv"))
    dest = choose_destination(box, claimed, "done")
    results = staged_results(box, dest, box.root / "staging")
    with read_only(box.done), pytest.raises(SettleError) as info:
        settle(claimed, dest, results)
    assert str(box.done) in str(info.value) and "writable" in str(info.value)
    assert claimed.read_bytes() == ORIGINAL
    settle(claimed, dest, results)  # once fixed, the same settle completes
    assert dest.read_bytes() == ORIGINAL


def test_a_missing_staged_result_is_an_error_not_a_silent_loss(box: DropboxLayout) -> None:
    claimed = claim(box, drop(box, "leads.csv"))
    dest = choose_destination(box, claimed, "failed")
    with pytest.raises(SettleError, match="missing"):
        settle(claimed, dest, {box.root / "nowhere.json": dest.with_name("x.result.json")})
    assert claimed.exists()


# A child that settles but is killed by SIGKILL just before its Nth rename: the audit hook fires
# before os.rename/os.replace act, so every prefix of the settle is left on disk exactly as a
# crash would leave it. No test-only hook is needed in the code under test.
CRASHING_SETTLE = """
import os, signal, sys
from pathlib import Path
from dropbox_importer.dropbox.layout import settle
kill_at = int(sys.argv[1])
renames = 0
def hook(event, args):
    global renames
    if event in ("os.rename", "os.replace"):
        renames += 1
        if renames == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
processing, dest, *pairs = sys.argv[2:]
results = {Path(pairs[i]): Path(pairs[i + 1]) for i in range(0, len(pairs), 2)}
settle(Path(processing), Path(dest), results)
"""


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4, 5])
def test_settle_killed_before_any_rename_completes_on_replay(
    box: DropboxLayout, kill_at: int
) -> None:
    claimed = claim(box, drop(box, "r/leads.csv"))
    dest = choose_destination(box, claimed, "done")
    results = staged_results(box, dest, box.root / "staging")
    args = [str(claimed), str(dest), *(str(p) for pair in results.items() for p in pair)]
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_SETTLE, str(kill_at), *args],
        capture_output=True,
        timeout=30,
    )
    # Four renames in all (three results, then the original): kill_at 5 never fires.
    assert child.returncode == (-9 if kill_at <= 4 else 0), child.stderr
    if kill_at <= 4:
        assert claimed.exists(), "the original must move last"
    settle(claimed, dest, results)  # the replay the journal drives after a restart
    assert tree(box.root) == {
        "done/r/leads.csv": ORIGINAL,
        "done/r/leads.csv.failures.csv": b"f",
        "done/r/leads.csv.warnings.csv": b"w",
        "done/r/leads.csv.result.json": b"{}",
    }
