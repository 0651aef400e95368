"""SIGHUP: which parts of a changed config can be applied to a running daemon, and which not.

Pure decisions over two configs; the daemon applies them. Files in flight were cut and routed
under the old settings: changing how they are cut, routed or where they go half-way through
would mix two imports of one file, so such a change waits for a restart.
"""

from __future__ import annotations

from collections.abc import Callable

from dropbox_importer.config import Config, DropboxConfig

# The keys of a drop box that decide how a file already claimed is cut, routed and sent.
# `columns` and a route's own rules (its allow with them) decide which columns a file's parts
# carry; the drop box's `allow` does not: a file in flight already passed it.
IN_FLIGHT_KEYS = (
    "instance", "root", "routes", "defaults", "columns", "route_policies", "encoding",
    "encoding_candidates", "max_part_bytes",
)  # fmt: skip


def changes_files_in_flight(old: DropboxConfig, new: DropboxConfig | None) -> bool:
    """True if `new` would handle the files `old` has in flight differently (or drop them)."""
    if new is None:
        return True
    return any(getattr(old, key) != getattr(new, key) for key in IN_FLIGHT_KEYS)


def needs_restart(current: Config, new: Config, busy: Callable[[str], bool]) -> str | None:
    """Why `new` cannot be applied without a restart, or None when it can.

    `busy(dropbox)` says whether a drop box has files in flight.
    """
    if new.instances != current.instances or new.state_dir != current.state_dir:
        return "instances or state_dir changed"
    changed = sorted(
        name
        for name, old in current.dropboxes.items()
        if changes_files_in_flight(old, new.dropboxes.get(name)) and busy(name)
    )
    if changed:
        return f"drop boxes with files in flight would change: {', '.join(changed)}"
    return None


def boxes_to_restart(current: Config, new: Config) -> tuple[list[str], list[str]]:
    """(drop boxes to stop, drop boxes to (re)start) to go from `current` to `new`."""
    stop = sorted(
        name
        for name, old in current.dropboxes.items()
        if name not in new.dropboxes or new.dropboxes[name] != old
    )
    start = sorted(
        name for name, box in new.dropboxes.items() if current.dropboxes.get(name) != box
    )
    return stop, start
