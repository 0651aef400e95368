"""SIGHUP: which parts of a changed config apply now, which wait, and which need a restart.

Pure decisions over two configs; the daemon applies them (`plan_reload`). Every change applies
at once, drop box by drop box, with two exceptions:

- a drop box with files in flight whose change would handle them differently (how they are
  cut, routed or sent, IN_FLIGHT_KEYS; or its removal) keeps its old settings until its last
  file in flight has settled, then takes the new ones: two imports of one file must never mix;
- keys that only a restart can change (RESTART_ONLY: the Marketo instances, whose clients,
  queues and batches in flight belong to the running process; the state directory, which holds
  the journal and the lock; `state`, where the journal lives and how its hosts share it; the
  log format) keep their running value and are named, so the
  operator knows to restart. A new drop box that needs a new instance waits for that restart.

Everything else (new and changed drop boxes, metrics, web, smtp, log_level) applies at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from dropbox_importer.config import Config, DropboxConfig

# Top-level keys a running daemon cannot change (see the module's docstring).
RESTART_ONLY = ("state_dir", "state", "instances", "log_format")

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


@dataclass(frozen=True)
class ReloadPlan:
    """What a SIGHUP does: the config to run now, what waits, what needs a restart."""

    config: Config  # the new config, minus restart-only keys and held-back drop boxes
    held: dict[str, str]  # drop box -> why its change waits (applied once it is idle)
    refused: list[str]  # key paths that need a restart, e.g. instances.main.poll_max_seconds
    stop: list[str]  # drop boxes to stop now
    start: list[str]  # drop boxes to (re)start now


def restart_only_changes(current: Config, new: Config) -> list[str]:
    """The key paths among RESTART_ONLY whose value differs, as specific as can be said."""
    changed = [
        key for key in ("state_dir", "log_format") if getattr(current, key) != getattr(new, key)
    ]
    # The journal (and a shared one's leadership) belongs to the running process; a password is
    # named by its key, never compared aloud.
    changed += [
        f"state.{'password_file' if k in ('password', 'unreadable_password') else k}"
        for k in ("journal", "password", "unreadable_password", "host_name", "lease_seconds")
        if getattr(current.state, k) != getattr(new.state, k)
    ]
    changed = list(dict.fromkeys(changed))
    for name in sorted(set(current.instances) | set(new.instances)):
        old, wanted = current.instances.get(name), new.instances.get(name)
        if old == wanted:
            continue
        if old is None or wanted is None:
            changed.append(f"instances.{name}")
            continue
        keys = [f.name for f in fields(old) if getattr(old, f.name) != getattr(wanted, f.name)]
        # A changed secret is named by its source key only; the value is never compared aloud.
        changed += [f"instances.{name}.{'client_secret' if k == 'secret' else k}" for k in keys]
    return changed


def plan_reload(current: Config, new: Config, busy: Callable[[str], bool]) -> ReloadPlan:
    """How to go from the running `current` to the file's `new` without losing a file.

    `busy(dropbox)` says whether a drop box has files in flight now.
    """
    refused = restart_only_changes(current, new)
    running = replace(
        new,
        state_dir=current.state_dir,
        state=current.state,
        instances=current.instances,
        log_format=current.log_format,
    )
    boxes = dict(running.dropboxes)
    held: dict[str, str] = {}
    for name in sorted(set(current.dropboxes) | set(new.dropboxes)):
        old, wanted = current.dropboxes.get(name), new.dropboxes.get(name)
        if old == wanted:
            continue
        if wanted is not None and wanted.instance not in current.instances:
            refused.append(f"dropboxes.{name}.instance")
            _keep(boxes, name, old)
            continue
        if old is not None and changes_files_in_flight(old, wanted) and busy(name):
            held[name] = (
                "it has files in flight, which keep the settings they were claimed under: "
                "the change applies once they have settled"
            )
            _keep(boxes, name, old)
    running = replace(running, dropboxes=boxes)
    stop, start = boxes_to_restart(current, running)
    return ReloadPlan(running, held, refused, stop, start)


def _keep(boxes: dict[str, DropboxConfig], name: str, old: DropboxConfig | None) -> None:
    if old is None:
        boxes.pop(name, None)
    else:
        boxes[name] = old


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
