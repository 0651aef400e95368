"""What the daemon cannot use right now: folders and drop boxes it cannot read, write or create.

A partner can `chmod` its own folders, an operator can mistype a root: such a fault is local to
one folder or one drop box and must stay so. Each is recorded here under a key (drop box, route
folder, where it was met), logged once when found and once when gone, and published to
`<state_dir>/problems.json` for `dropbox-importer status` (another process) to show:

    {"schema": 1, "updated_at": "...Z", "pid": 1234,
     "problems": [{"dropbox", "route", "folder", "stage", "reason", "since"}]}

`stage` says where it was met: `dropbox` (the root could not be opened or created), `scan`
(an inbox folder could not be read), `claim` (a file could not be moved out of its folder into
processing/), `settle` (a file could not be moved into done/ or failed/).
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import structlog

from dropbox_importer.dropbox.layout import write_atomic

log = structlog.get_logger(__name__)

PROBLEMS_NAME = "problems.json"
SCHEMA = 1

Stage = Literal["dropbox", "scan", "claim", "settle"]


@dataclass(frozen=True)
class Problem:
    """One thing the daemon cannot use, and why, in words an operator acts on."""

    dropbox: str
    route: str | None  # None for the drop box as a whole
    folder: str
    stage: Stage
    reason: str
    since: str


def explain(exc: OSError, folder: Path, *, doing: str) -> str:
    """A sentence for an OSError met while `doing` (`read`, `create`, `move a file out of`) it."""
    what = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"cannot {doing} {folder}: {what}; give the daemon's user (or its group) read, "
            "write and search permission there (e.g. chmod 2770), or remove the folder"
        )
    if exc.errno == errno.EROFS:
        return f"cannot {doing} {folder}: {what}; the filesystem is mounted read-only"
    if exc.errno == errno.ENOENT:
        return f"cannot {doing} {folder}: a folder above it does not exist; create it"
    return f"cannot {doing} {folder}: {what}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Problems:
    """The daemon's current problems; thread-safe, published on every change."""

    def __init__(
        self,
        state_dir: Path | None,
        *,
        clock: Callable[[], str] = _now,
        found: Callable[[Problem], None] | None = None,
        gone: Callable[[Problem], None] | None = None,
    ) -> None:
        self._path = None if state_dir is None else state_dir / PROBLEMS_NAME
        self._clock = clock
        # Told of each problem found and gone (the daemon mirrors folders into its run log).
        self._found = found
        self._gone = gone
        self._lock = threading.Lock()
        self._current: dict[tuple[str, str | None, str, str], Problem] = {}

    def report(
        self, dropbox: str, route: str | None, folder: Path, stage: Stage, reason: str
    ) -> bool:
        """Record a problem; log it only if it is new (or its reason changed). True if new."""
        key = (dropbox, route, str(folder), stage)
        with self._lock:
            known = self._current.get(key)
            if known is not None and known.reason == reason:
                return False
            problem = Problem(dropbox, route, str(folder), stage, reason, self._clock())
            self._current[key] = problem
        event = "dropbox_unavailable" if stage == "dropbox" else "folder_unusable"
        log.error(event, dropbox=dropbox, route=route, folder=str(folder), stage=stage,
                  reason=reason)  # fmt: skip
        self._publish()
        if self._found is not None:
            self._tell(self._found, problem)
        return True

    def resolve(
        self,
        dropbox: str,
        *,
        stage: Stage,
        keep: Callable[[Problem], bool] = lambda _problem: False,
    ) -> bool:
        """Forget the drop box's problems of `stage` unless `keep(problem)`; log each one gone.

        True if any was forgotten.
        """
        with self._lock:
            gone = [
                (key, problem)
                for key, problem in self._current.items()
                if problem.dropbox == dropbox and problem.stage == stage and not keep(problem)
            ]
            for key, _ in gone:
                del self._current[key]
        for _, problem in gone:
            event = "dropbox_available" if stage == "dropbox" else "folder_usable_again"
            log.info(event, dropbox=dropbox, route=problem.route, folder=problem.folder,
                     stage=stage)  # fmt: skip
        if gone:
            self._publish()
        if self._gone is not None:
            for _, problem in gone:
                self._tell(self._gone, problem)
        return bool(gone)

    def resolve_folder(self, dropbox: str, folder: Path, stage: Stage) -> bool:
        """Forget one folder's problem of `stage` (a move in it just worked)."""
        return self.resolve(dropbox, stage=stage, keep=lambda p: p.folder != str(folder))

    @staticmethod
    def _tell(listener: Callable[[Problem], None], problem: Problem) -> None:
        try:
            listener(problem)
        except Exception:  # a journal that cannot be written shows elsewhere
            log.warning("problem_not_recorded", dropbox=problem.dropbox, folder=problem.folder)

    def forget_dropboxes(self, names: Iterable[str]) -> None:
        """Drop every problem of drop boxes no longer configured, without a log line each."""
        gone = set(names)
        with self._lock:
            before = len(self._current)
            self._current = {k: p for k, p in self._current.items() if p.dropbox not in gone}
            changed = len(self._current) != before
        if changed:
            self._publish()

    def current(self, dropbox: str | None = None) -> list[Problem]:
        """The problems now, of one drop box or of all, in the order found."""
        with self._lock:
            return [p for p in self._current.values() if dropbox in (None, p.dropbox)]

    def publish(self) -> None:
        """Write the current problems out now (a start clears the last run's)."""
        self._publish()

    def _publish(self) -> None:
        if self._path is None:
            return
        with self._lock:
            document = {
                "schema": SCHEMA,
                "updated_at": self._clock(),
                "pid": os.getpid(),
                "problems": [asdict(p) for p in self._current.values()],
            }
            data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
            try:
                write_atomic(self._path, data)
            except OSError as exc:
                # The state dir is the journal's too: if it cannot be written, the journal
                # fails loudly on its own; status just shows older problems meanwhile.
                log.warning("problems_not_published", path=str(self._path), error=str(exc))


def read_published(state_dir: Path) -> dict[str, object] | None:
    """The document the daemon last published, or None when there is none or it is unreadable."""
    try:
        document = json.loads((state_dir / PROBLEMS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None
