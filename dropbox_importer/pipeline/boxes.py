"""One drop box at run time: its folders, its readiness tracker and its watcher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dropbox_importer.config import DropboxConfig
from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.pipeline.ready import ReadinessTracker
from dropbox_importer.pipeline.watch import InboxWatcher, choose_mode


@dataclass
class Box:
    """One drop box at run time: its layout, readiness tracker and watcher."""

    config: DropboxConfig
    layout: DropboxLayout
    tracker: ReadinessTracker
    watcher: InboxWatcher
    next_rescan: float = 0.0
    set_aside: set[tuple[Path, int]] = field(default_factory=set)


def open_box(
    box_config: DropboxConfig, on_error: Callable[[Path, OSError], None] | None = None
) -> Box:
    """Create the drop box's four folders if missing and build its tracker and watcher.

    The watcher is not started. Raises OSError when a folder cannot be created or opened.
    `on_error(folder, error)` hears of folders the tracker finds it cannot look into.
    """
    layout = DropboxLayout(box_config.root)
    layout.ensure()
    tracker = ReadinessTracker(
        box_config.settle_seconds,
        ignore=box_config.ignore,
        marker=None if box_config.ready_marker == "none" else box_config.ready_marker,
        on_error=on_error,
    )
    mode = choose_mode(box_config.watch, box_config.root)
    watcher = InboxWatcher(
        layout.inbox,
        mode,
        tracker.note,
        polling_interval=box_config.polling_interval_seconds,
    )
    return Box(box_config, layout, tracker, watcher)
