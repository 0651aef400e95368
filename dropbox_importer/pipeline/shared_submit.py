"""The submitter's side of coalescing: gathering the files that go with one taken, sending them.

`Coalescer` is asked by the submitter, for each file it takes, whether the file may share a job
(coalesce.py says which may, when and how many). If files that may join it are waiting in its
drop box's lane, it takes them out of the lane, records the job in the journal (which parts,
which rows of the job each) before the create, writes the one upload and creates it; otherwise
the submitter sends the file alone as before. Waiting is the submitter's queue's business:
`must_wait` tells it when a file that could share a job should stay in the queue so that others
can join it.

A shared job the create does not accept is undone: held by its list (1019, or a job of ours),
every file goes back to the head of its lane, in order; refused (a bad parameter, say), every
file goes back to be sent alone, so each gets Marketo's verdict on itself; with credentials
refused, every file is parked for the operator as a file alone would be.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from dropbox_importer.config import DropboxConfig
from dropbox_importer.csvfile import Part
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.errors import (
    AuthenticationError,
    ImportInProgress,
    MarketoError,
    Stopped,
)
from dropbox_importer.marketo.models import ImportParams
from dropbox_importer.pipeline.coalesce import (
    SHALLOW_DEPTH,
    Member,
    coalesces,
    job_cap,
    sent_header,
    write_job,
)
from dropbox_importer.pipeline.fairness import FairQueue
from dropbox_importer.pipeline.journal import Fenced, Journal
from dropbox_importer.pipeline.poll import SpeedEstimate
from dropbox_importer.pipeline.reasons import FileChanged, Rejected, params_for
from dropbox_importer.pipeline.records import FileRecord, JobMember

log = structlog.get_logger(__name__)

# Files one job may take: the part size limit is what bounds a job; this bounds the journal's
# transaction and the settles that follow one batch.
MAX_MEMBERS = 2000
# Bytes a job may grow by besides its parts' rows: a line end after a part that had none.
_LINE_END = 2
# Time one job's gathering may spend checking and cutting files not cut yet: past it, only
# files already cut join, so the file whose turn it is is not held back while Marketo has room.
# Files that wait are cut ahead meanwhile (`prepare_ahead`), so this is rarely reached.
GATHER_PREPARE_SECONDS = 1.0


def jobs_dir(parts_root: Path) -> Path:
    """Where shared jobs keep their upload and their split rows files until they settle."""
    return parts_root / "jobs"


class Coalescer:
    """Sends waiting files of one instance together; the submitter's thread calls it."""

    def __init__(
        self,
        name: str,
        client: MarketoClient,
        journal: Journal,
        queue: FairQueue[int],
        *,
        boxes: Callable[[str], DropboxConfig],
        list_of: Callable[[int], int | None],
        parts_root: Path,
        speed: SpeedEstimate,
        stop: threading.Event,
        prepare: Callable[[FileRecord, DropboxConfig], tuple[ImportParams, Sequence[Part]]],
        reject: Callable[[int, str], None],
        forget: Callable[[int], None],
        park: Callable[[int, str, MarketoError], None],
        on_submitted: Callable[[Sequence[int], int, int, str], None],
    ) -> None:
        self.name = name
        self._client = client
        self._journal = journal
        self._queue = queue
        self._boxes = boxes
        self._list_of = list_of  # the submitter's: the listId a file's route sets, learnt once
        self._parts_root = parts_root
        self._speed = speed
        self._stop = stop
        self._prepare = prepare
        self._reject = reject
        self._forget = forget
        self._park = park
        self._on_submitted = on_submitted
        self._members: dict[int, Member | None] = {}  # prepared files: their only part, or None
        self._may: dict[int, bool] = {}  # file id -> may share a job (before it is cut)
        self._sizes: dict[int, int] = {}  # file id -> the original's bytes
        self._alone: set[int] = set()  # files to send alone (their shared job was refused)
        self._sharing: set[int] = set()  # files known to may share a job, not yet sent
        client.on_slot_freed(queue.wake)

    def forget(self, file_id: int) -> None:
        """The file is sent or settled: drop what was learnt about it."""
        self._members.pop(file_id, None)
        self._may.pop(file_id, None)
        self._sizes.pop(file_id, None)
        self._alone.discard(file_id)
        self._sharing.discard(file_id)

    def sharers_waiting(self) -> bool:
        """True while files that may share a job wait (or are in hand): called under the
        queue's lock, so it only reads what `may_share` learnt."""
        return bool(self._sharing)

    def _send_alone(self, ids: Sequence[int]) -> None:
        """These files go alone from now on (their shared job failed or was refused)."""
        self._alone.update(ids)
        self._sharing.difference_update(ids)

    def may_share(
        self, file_id: int, found: Callable[[int], tuple[FileRecord, DropboxConfig] | None]
    ) -> bool:
        """Whether the file could share a job: its route lets it, it is small enough for one
        part, and no refused job sent it alone. Quick after the first look (`found` gives the
        file's record and drop box then): called under the queue's lock."""
        if file_id in self._alone:
            return False
        if file_id not in self._may:
            looked = found(file_id)
            if looked is None:
                self._may[file_id] = False
            else:
                record, box = looked
                self._sizes[file_id] = record.size
                fits = record.size <= box.max_part_bytes
                self._may[file_id] = fits and coalesces(record.route, box)
                if self._may[file_id]:
                    self._sharing.add(file_id)
        return self._may[file_id]

    def queue_full(self) -> bool:
        """True while our jobs fill the shallow queue (or all the queue we may use, when that
        is less): files that could share one wait, and files that arrive meanwhile join them."""
        used, allowed = self._client.jobs_in_flight()
        return used >= min(SHALLOW_DEPTH, allowed)

    def member(
        self,
        record: FileRecord,
        box: DropboxConfig,
        params: ImportParams,
        parts: Sequence[Part],
        base: int,
    ) -> Member | None:
        """The file, cut into `parts` to import with `params`, as a member of a shared job;
        None when it goes alone. `base` is the journal index of this round's first part."""
        if record.id in self._members:
            return self._members[record.id]
        found: Member | None = None
        if len(parts) == 1 and coalesces(record.route, box) and record.id not in self._alone:
            part = parts[0]
            try:
                header = sent_header(part.path)
            except OSError:
                header = b""
            if header:
                found = Member(record.id, record.route, params, header, part, base + part.index)
        self._members[record.id] = found
        return found

    def send_together(self, first: Member, record: FileRecord, box: DropboxConfig) -> bool:
        """Send `first` with the files waiting that may join it; False when none may (the
        caller sends it alone). Raises Stopped when the daemon stops meanwhile."""
        if first.file_id in self._alone:
            return False
        others = self._companions(first, record.dropbox, box)
        if not others:
            return False
        self._send([first, *others], record, box)
        return True

    def _companions(self, first: Member, dropbox: str, box: DropboxConfig) -> list[Member]:
        """Files waiting in the lane that may join `first`, in order, under the job's cap."""
        waiting = self._queue.waiting()
        cap = job_cap(
            first,
            max_bytes=box.max_part_bytes,
            waiting_bytes=first.part.bytes + sum(self._sizes.get(f, 0) for f in waiting),
            rows_per_second=self._speed.rows_per_second,
            overhead_seconds=self._speed.job_overhead_seconds,
        )
        total = first.part.bytes + _LINE_END
        chosen: list[Member] = []
        deadline = time.monotonic() + GATHER_PREPARE_SECONDS
        listed = first.params.list_id
        for file_id in self._queue.lane(dropbox):
            if len(chosen) + 1 >= MAX_MEMBERS:
                break
            # A file of the same static list that cannot join ends the gathering: the list's
            # files import in the order they came, so a later one never passes it.
            same_list = listed is not None and self._list_of(file_id) == listed
            if file_id not in self._members and time.monotonic() > deadline:
                if same_list:
                    break
                continue  # not cut yet, and no time left to cut it: its own turn will
            candidate = self._candidate(file_id, first, box)
            if candidate is None:
                if same_list:
                    break
                continue
            if total + candidate.body_bytes + _LINE_END > cap:
                break
            chosen.append(candidate)
            total += candidate.body_bytes + _LINE_END
        taken = self._queue.remove(dropbox, [c.file_id for c in chosen])
        return [c for c in chosen if c.file_id in taken]

    def _candidate(self, file_id: int, first: Member, box: DropboxConfig) -> Member | None:
        """The waiting file as a member that may join `first`, or None (it stays waiting)."""
        if self._may.get(file_id) is False or file_id in self._alone:
            return None
        if file_id not in self._members and not self._cut(file_id, box, first.params):
            return None
        member = self._members.get(file_id)
        return member if member is not None and member.joins(first) else None

    def prepare_ahead(self, budget: float) -> None:
        """While nothing may go: check and cut waiting files that could share a job, for at
        most `budget` seconds, so that the job they join later gathers them at no cost."""
        deadline = time.monotonic() + budget
        for file_id in self._queue.waiting():
            if time.monotonic() > deadline or self._stop.is_set():
                return
            if file_id in self._members or not self._may.get(file_id) or file_id in self._alone:
                continue
            try:
                box = self._boxes(self._journal.get(file_id).dropbox)
            except KeyError:
                continue
            self._cut(file_id, box, None)

    def _cut(self, file_id: int, box: DropboxConfig, params: ImportParams | None) -> bool:
        """Check and cut a waiting file (unless its parameters are not `params`) and learn it
        as a member; False when it may not share a job. A file refused settles at once."""
        record = self._journal.get(file_id)
        if not (coalesces(record.route, box) and record.size <= box.max_part_bytes):
            return False
        try:
            planned = record.cut.params if record.cut is not None else params_for(record, box)
            if params is not None and planned != params:
                return False
            params, parts = self._prepare(record, box)
        except Rejected as exc:
            # Found out now rather than at its turn: it settles as it would have then.
            if self._queue.remove(record.dropbox, [file_id]):
                # file_failed follows with the same reason once the file is in failed/.
                log.debug(
                    "file_rejected",
                    dropbox=record.dropbox,
                    route=record.route,
                    file=record.relative,
                    file_id=file_id,
                    reason=exc.reason,
                )
                self._reject(file_id, exc.reason)
            return False
        except (MarketoError, FileChanged):
            return False  # its own turn says what is wrong
        record = self._journal.get(file_id)  # SUBMITTING now, its parts recorded
        current = [p for p in self._journal.parts(file_id) if p.round == record.round]
        if any(p.batch_id is not None for p in current):
            return False
        base = min((p.index for p in current), default=0)
        return self.member(record, box, params, parts, base) is not None

    def _send(self, members: list[Member], record: FileRecord, box: DropboxConfig) -> None:
        """Record the job, write its upload, create it; undo it if Marketo does not take it."""
        bound = log.bind(dropbox=record.dropbox, instance=self.name)
        ids = [m.file_id for m in members]
        plan, row = [], 0
        for m in members:
            plan.append(JobMember(m.file_id, m.index, row, m.part.first_line, m.part.rows))
            row += m.part.rows
        for file_id in self._uncertain(members):
            bound.warning("batch_resubmitted_uncertain", file_id=file_id, shared=True)
        size = len(members[0].header) + sum(m.body_bytes + _LINE_END for m in members)
        try:
            job_id = self._journal.record_job(record.dropbox, record.route, plan, size)
        except Exception:
            # Not recorded, so not sent: the files go back to the lane, each to go alone
            # (whatever failed then fails for each on its own, as for any file).
            self._send_alone(ids)
            self._put_back(record.dropbox, ids)
            raise
        folder = jobs_dir(self._parts_root) / str(job_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            upload = folder / f"job-{job_id}.{members[0].params.format.value}"
            write_job(members, upload)
        except OSError as exc:
            # Nothing reached Marketo (a full disk, an unwritable state_dir): the files wait
            # in the queue again, each to go alone, rather than in SUBMITTING until a restart.
            self._send_alone(ids)
            self._undo(job_id, folder, record.dropbox, ids)
            bound.warning(
                "shared_job_not_written", files=len(ids), folder=str(folder), error=str(exc)
            )
            return
        params = members[0].params
        try:
            batch_id = self._client.create_import(upload, params, stop=self._stop)
        except (Stopped, Fenced):
            raise  # stopping, or no longer the leader: the next run recovers the job
        except ImportInProgress as exc:
            self._undo(job_id, folder, record.dropbox, ids)
            bound.info(
                "import_waits_for_list",
                list_id=exc.list_id,
                files=len(ids),
                held_by_us=exc.own,
                retry_in=None if exc.own or math.isinf(exc.retry_in) else round(exc.retry_in, 2),
            )
            return
        except AuthenticationError as exc:
            # Every file would meet it: each waits for the operator, as one alone would.
            self._undo(job_id, folder, record.dropbox, [])
            for file_id in ids:
                self._park(file_id, record.dropbox, exc)
            return
        except MarketoError as exc:
            # Refused for good: one of them may be the cause, so each goes alone and gets
            # Marketo's verdict on itself.
            self._send_alone(ids)
            self._undo(job_id, folder, record.dropbox, ids)
            bound.warning(
                "shared_import_refused", code=exc.code, message=exc.message, files=len(ids)
            )
            return
        except Exception:
            # Marketo may have taken it: the job stays recorded (its parts uncertain, so the
            # next send of each says so) and the files wait in the queue again, each to go
            # alone and meet whatever went wrong on its own.
            self._send_alone(ids)
            self._put_back(record.dropbox, ids)
            raise
        self._journal.record_job_batch(job_id, batch_id)
        for m in members:
            log.info(
                "batch_created",
                dropbox=record.dropbox,
                route=m.route,
                file=self._journal.get(m.file_id).relative,
                file_id=m.file_id,
                batch_id=batch_id,
                part=m.part.index,
                rows=m.part.rows,
                shared_by=len(members),
            )
            self._forget(m.file_id)  # the submitter's, which calls ours
        self._on_submitted(ids, batch_id, row, self.name)

    def _uncertain(self, members: Sequence[Member]) -> list[int]:
        """Files whose part a run that died may already have sent (then sent again here)."""
        return [
            m.file_id
            for m in members
            if any(
                p.index == m.index and p.submission_uncertain
                for p in self._journal.parts(m.file_id)
            )
        ]

    def _undo(self, job_id: int, folder: Path, dropbox: str, ids: Sequence[int]) -> None:
        """The job was not created: put its files back at the head, in order, and forget it.

        The files go back first: a journal that cannot forget the job (a full disk) leaves it
        for the next start's sweep, never its files out of the lane."""
        self._put_back(dropbox, ids)
        try:
            self._journal.cancel_job(job_id)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _put_back(self, dropbox: str, ids: Sequence[int]) -> None:
        """Put files back at the head of their lane, in order."""
        for file_id in reversed(ids):
            self._queue.put_front(dropbox, file_id)
