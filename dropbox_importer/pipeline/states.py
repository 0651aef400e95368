"""The life of a claimed file, written down once: its states and the moves allowed between them.

    CLAIMED ──> SUBMITTING ──> POLLING ──> SETTLING ──> DONE
       │             │    <──────┘               │    └──> FAILED
       │             │   (a batch Marketo lost is sent again)
       └─────────────┴──> SETTLING (rejected before submit, or a part refused)

    CLAIMED, SUBMITTING, POLLING, DONE, FAILED ──> CHANGED ──> CLAIMED (the next round)

CLAIMED     in processing/, nothing of this round sent to Marketo yet.
SUBMITTING  parts being created; some may already have batch ids.
POLLING     every part has a batch id; waiting for Marketo to finish them. A batch Marketo no
            longer knows frees its part to be sent once more: back to SUBMITTING. Or a part
            was refused after earlier ones were created: the reason is recorded and the file
            waits only for the batches it has, then settles with them.
SETTLING    the outcome is decided and the destination chosen; result files and the original are
            being moved. Replaying a SETTLING file must reach the same destination.
DONE        in done/ with its result files.
FAILED      in failed/ with its result files.
CHANGED     written to after its claim (in processing/, or in done/ or failed/ within the drop
            box's settled_watch_seconds, and then moved back to processing/): waits until its
            writer is done, then is imported again, whole, in a new round.

DONE and FAILED are terminal but for one move: a late write within the watch time reopens them.
The daemon, the journal and `status` all use this table; nothing else decides what may follow what.
"""

from __future__ import annotations

from enum import StrEnum


class FileState(StrEnum):
    """Where a claimed file stands; the value is what the journal stores."""

    CLAIMED = "claimed"
    SUBMITTING = "submitting"
    POLLING = "polling"
    SETTLING = "settling"
    DONE = "done"
    FAILED = "failed"
    CHANGED = "changed"

    @property
    def terminal(self) -> bool:
        """True once the file has reached done/ or failed/ (only a late write reopens it)."""
        return self in TERMINAL


TERMINAL = frozenset({FileState.DONE, FileState.FAILED})

ALLOWED: dict[FileState, frozenset[FileState]] = {
    FileState.CLAIMED: frozenset({FileState.SUBMITTING, FileState.SETTLING, FileState.CHANGED}),
    FileState.SUBMITTING: frozenset({FileState.POLLING, FileState.SETTLING, FileState.CHANGED}),
    FileState.POLLING: frozenset({FileState.SUBMITTING, FileState.SETTLING, FileState.CHANGED}),
    FileState.SETTLING: frozenset({FileState.DONE, FileState.FAILED}),
    FileState.DONE: frozenset({FileState.CHANGED}),
    FileState.FAILED: frozenset({FileState.CHANGED}),
    FileState.CHANGED: frozenset({FileState.CLAIMED, FileState.SETTLING}),
}


# Named for what happened, like the other errors the daemon matches on (AlreadyRunning, ...).
class InvalidTransition(Exception):  # noqa: N818
    """A move the state table does not allow: a bug in the caller, never a partner's fault."""

    def __init__(self, old: FileState, new: FileState) -> None:
        allowed = ", ".join(sorted(s.value for s in ALLOWED[old])) or "nothing (terminal)"
        super().__init__(f"a file cannot go from {old.value} to {new.value}; allowed: {allowed}")
        self.old = old
        self.new = new


def can_transition(old: FileState, new: FileState) -> bool:
    """True if the table allows moving a file from `old` to `new`."""
    return new in ALLOWED[old]


def check_transition(old: FileState, new: FileState) -> None:
    """Raise InvalidTransition unless the table allows moving from `old` to `new`."""
    if not can_transition(old, new):
        raise InvalidTransition(old, new)
