"""One drop box at run time: its folders, its readiness tracker and its watcher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from dropbox_importer.config import DropboxConfig
from dropbox_importer.dropbox.layout import ClaimCheck, DropboxLayout
from dropbox_importer.dropbox.writers import WriterCheck, lease_support, no_writer
from dropbox_importer.pipeline.ready import ReadinessTracker
from dropbox_importer.pipeline.watch import (
    NETWORK_FILESYSTEMS,
    InboxWatcher,
    choose_mode,
    filesystem_type,
)

log = structlog.get_logger(__name__)


@dataclass
class Box:
    """One drop box at run time: its layout, readiness tracker and watcher."""

    config: DropboxConfig
    layout: DropboxLayout
    tracker: ReadinessTracker
    watcher: InboxWatcher
    writers: WriterCheck
    next_rescan: float = 0.0
    set_aside: set[tuple[Path, int]] = field(default_factory=set)
    # Files a claim found open for writing, each logged once.
    still_open: set[tuple[Path, int]] = field(default_factory=set)

    @property
    def claim_checks(self) -> tuple[ClaimCheck, ...]:
        """This drop box's own last checks before a claim's rename: the writer check."""
        return (no_writer,) if self.writers.on else ()


def open_box(
    box_config: DropboxConfig, on_error: Callable[[Path, OSError], None] | None = None
) -> Box:
    """Create the drop box's four folders if missing and build its tracker and watcher.

    The watcher is not started. Raises OSError when a folder cannot be created or opened.
    `on_error(folder, error)` hears of folders the tracker finds it cannot look into.
    """
    layout = DropboxLayout(box_config.root)
    layout.ensure()
    writers = writer_check(box_config, layout)
    tracker = ReadinessTracker(
        box_config.settle_seconds,
        ignore=box_config.ignore,
        marker=None if box_config.ready_marker == "none" else box_config.ready_marker,
        dropbox=box_config.name,
        close_quiet_seconds=box_config.close_quiet_seconds,
        empty_seconds=box_config.empty_file_seconds,
        unterminated_seconds=box_config.unterminated_settle_seconds,
        writers_visible=writers.visible,
        on_error=on_error,
    )
    mode = choose_mode(box_config.watch, box_config.root)
    watcher = InboxWatcher(
        layout.inbox,
        mode,
        tracker.note,
        polling_interval=box_config.polling_interval_seconds,
    )
    return Box(box_config, layout, tracker, watcher, writers)


def writer_check(box: DropboxConfig, layout: DropboxLayout) -> WriterCheck:
    """Whether claims in this drop box prove, with a lease, that no process still writes a file.

    Off when configured so, on network shares (their writers are on other hosts, unseen by a
    lease here), and where the filesystem has no leases; logged once either way.
    """
    fs = filesystem_type(box.root)
    if box.writer_check == "off":
        why: str | None = "writer_check: off"
    elif fs in NETWORK_FILESYSTEMS:
        why = f"a network share ({fs}): writers on other hosts cannot be seen"
    else:
        why = lease_support(layout.processing)
    check = WriterCheck(box.name, why)
    if why is None:
        log.info("writer_check", dropbox=box.name, check="lease")
    else:
        log.warning("writer_check", dropbox=box.name, check="settle time only", reason=why)
    return check
