"""A route folder swapped for a symbolic link at any moment of a claim is never followed.

A partner who can make links (network shares allow it) renames `inbox/r` away and puts a link
to another drop box's `inbox/r` in its place. Whenever that happens, before, between or after
the claim's system calls, the claim must move this drop box's own file or nothing: never the
other drop box's file. Each system call of a claim is a moment the swap is forced at.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dropbox_importer.dropbox.layout import DropboxLayout, FileVanished, NotARegularFile, claim

# The calls a claim makes to the filesystem, whoever makes them (our code or pathlib's).
CALLS = ("open", "stat", "lstat", "rename", "replace", "mkdir", "fsync", "scandir", "link")
OURS = "email\nours@example.com\n"
THEIRS = "email\ntheirs@example.com\n"


class Swapper:
    """Counts filesystem calls; performs `swap()` just before call number `at`."""

    def __init__(self, swap: Callable[[], None], at: int | None) -> None:
        self.swap = swap
        self.at = at
        self.calls = 0
        self.swapped = False
        self.originals = {name: getattr(os, name) for name in CALLS}

    def wrap(self, name: str) -> Callable[..., Any]:
        original = self.originals[name]

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.at is not None and self.calls == self.at and not self.swapped:
                self.swapped = True
                self.swap()
            self.calls += 1
            return original(*args, **kwargs)

        return call

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in CALLS:
            monkeypatch.setattr(os, name, self.wrap(name))

    def run_swap_with_originals(self, action: Callable[[], None]) -> None:
        saved = {name: getattr(os, name) for name in CALLS}
        for name, original in self.originals.items():
            setattr(os, name, original)
        try:
            action()
        finally:
            for name, wrapped in saved.items():
                setattr(os, name, wrapped)


def two_boxes(tmp_path: Path) -> tuple[DropboxLayout, DropboxLayout]:
    ours, theirs = DropboxLayout(tmp_path / "ours"), DropboxLayout(tmp_path / "theirs")
    for layout, text in ((ours, OURS), (theirs, THEIRS)):
        layout.ensure()
        (layout.inbox / "r").mkdir()
        (layout.inbox / "r" / "leads.csv").write_text(text)
    return ours, theirs


def swaps(ours: DropboxLayout, theirs: DropboxLayout) -> dict[str, Callable[[], None]]:
    """What a partner of `ours` can swap for a link into `theirs`."""

    def route_folder() -> None:
        (ours.inbox / "r").rename(ours.inbox / "r.away")
        (ours.inbox / "r").symlink_to(theirs.inbox / "r", target_is_directory=True)

    def inbox_folder() -> None:
        ours.inbox.rename(ours.root / "inbox.away")
        ours.inbox.symlink_to(theirs.inbox, target_is_directory=True)

    return {"route folder": route_folder, "inbox": inbox_folder}


def texts_under(folder: Path) -> Iterator[str]:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path.read_text()


def claim_with_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str, at: int | None
) -> tuple[Swapper, DropboxLayout, DropboxLayout]:
    ours, theirs = two_boxes(tmp_path)
    swapper = Swapper(lambda: None, at)
    swapper.swap = lambda: swapper.run_swap_with_originals(swaps(ours, theirs)[which])
    with monkeypatch.context() as patch:
        swapper.install(patch)
        with contextlib.suppress(NotARegularFile, FileVanished):
            claim(ours, ours.inbox / "r" / "leads.csv")
    return swapper, ours, theirs


@pytest.mark.parametrize("which", ["route folder", "inbox"])
def test_a_link_swapped_in_at_any_step_of_a_claim_never_moves_another_drop_box_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    dry, _, _ = claim_with_swap(tmp_path / "dry", monkeypatch, which, at=None)
    steps = dry.calls
    assert steps >= 4
    for at in range(steps + 1):
        swapper, ours, theirs = claim_with_swap(tmp_path / f"at{at}", monkeypatch, which, at)
        assert swapper.swapped or at == steps
        # Their file has not moved, and nothing of theirs is anywhere in our drop box.
        assert (theirs.inbox / "r" / "leads.csv").read_text() == THEIRS, f"step {at}"
        assert list(texts_under(theirs.processing)) == [], f"step {at}"
        assert THEIRS not in texts_under(ours.processing), f"step {at}: theirs moved into ours"
        # Our own file is in our processing/ or still in our inbox, never lost.
        assert OURS in [*texts_under(ours.processing), *texts_under(ours.root)], f"step {at}"
