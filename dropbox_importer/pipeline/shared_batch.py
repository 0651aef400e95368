"""A batch several files shared: Marketo's rows files split per file, and each file's own counts.

Marketo answers one failures file and one warnings file per batch. For a job several files
shared (coalesce.py), each file's result must hold exactly its own rows, with its own line
numbers, and its own counts. So, once per batch, the first of its files to settle downloads
Marketo's files and walks the job's rows as they were sent (each member's part file, in the
order the job was built), finding each listed row by content (csvfile/matching.py): a listed
row belongs to the member whose sent row it is. Each member's share is written as a file in
Marketo's own shape, which that member's settle then merges with its original exactly as it
would the rows file of a batch of its own. A listed row no sent row matches goes to the job's
first member (logged `result_row_unmatched`), where it is reported without a line.

A member's part file may not be on this host: the state dir is each host's own, and after a
takeover the parts are on the host that died (or a state dir was lost). The member's original is
then cut again with the cut the journal recorded (recut.py). When even that cannot be done (the
original changed, went or cannot be read), its rows as sent are unknown, and so is whose the
rows are that no other member's sent rows match: each such member gets all of them, counted as
failed (at most its own rows), and its file fails with a reason saying so (`unattributed`). No
other member is given them, so none is reported imported for rows it may not have.

Counts: a member's failures and warnings are the rows it was given; the rows Marketo handled
are all of them for a Complete batch, for a Failed one those before the point it reached (rows
are imported in file order), so a member's `leads_processed` is what it handled less what
failed.

Everything lives in the job's folder in the state dir, written atomically, the split recorded
last: a kill -9 midway splits again; the folder goes once every member has settled.
"""

from __future__ import annotations

import csv
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from dropbox_importer.csvfile.matching import Listed, read_marketo_rows
from dropbox_importer.dropbox.layout import write_atomic
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.models import ImportParams
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.records import FileRecord, JobMember, JobRecord, PartRecord
from dropbox_importer.pipeline.recut import PartLost
from dropbox_importer.pipeline.shared_submit import jobs_dir

log = structlog.get_logger(__name__)

KINDS = {"failures": "Import Failure Reason", "warnings": "Import Warning Reason"}

# A member's part cut again into `scratch` from its original: the part file (PartLost: why not).
Recut = Callable[[FileRecord, PartRecord, Path], Path]


def _key(member: JobMember) -> str:
    return f"{member.file_id}-{member.part_index}"


@dataclass(frozen=True)
class Split:
    """One kind of a batch's rows, split: how many each member got, by member key, and for the
    members whose rows as sent were lost, why (they got the rows nobody's matched)."""

    counts: dict[str, int]
    unattributed: dict[str, str] = field(default_factory=dict)


class SharedBatches:
    """Splits shared batches' rows files per member; safe to use from several settle threads."""

    def __init__(
        self,
        journal: Journal,
        parts_root: Path,
        clients: Callable[[str], MarketoClient],
        recut: Recut | None = None,
    ) -> None:
        self._journal = journal
        self._root = jobs_dir(parts_root)
        self._clients = clients
        self._recut = recut  # None: a part not on this host cannot be had again
        self._guard = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}

    def job_of(self, part: PartRecord) -> JobRecord | None:
        """The shared job the part was sent in; None when it went alone (or is not sent)."""
        if part.batch_id is None:
            return None
        return self._journal.job_of_batch(part.batch_id, part.file_id)

    def own_counts(
        self, record: FileRecord, parts: list[PartRecord], params: ImportParams
    ) -> str | None:
        """Record each final part of a shared batch's own counts. Returns, when some rows
        Marketo failed in the round's batches may be this file's or another's, the sentence
        saying so (the file fails with it); None when every row was told apart."""
        doubt = None
        for part in parts:
            job = self.job_of(part)
            if job is None or not part.final:
                continue
            member = job.member(record.id, part.index)
            split = self._split(job, record.dropbox, params)
            handled = min(max(job.handled - member.first_row, 0), member.rows)
            key = _key(member)
            failed, warned = (split[kind].counts.get(key, 0) for kind in KINDS)
            if key in split["failures"].unattributed:
                # Rows that may be another member's: counted here, never beyond its own rows.
                if part.round == record.round and failed:
                    doubt = _doubt(job, failed, split["failures"].unattributed[key])
                failed = min(failed, handled)
            if key in split["warnings"].unattributed:
                warned = min(warned, handled)
            self._journal.record_member_counts(
                record.id, part.index, max(handled - failed, 0), failed, warned
            )
        return doubt

    def rows_file(self, job: JobRecord, member: JobMember, kind: str) -> Path | None:
        """The member's share of the batch's `kind` rows, in Marketo's shape (None: none)."""
        path = self._folder(job) / f"{kind}-{_key(member)}"
        return path if path.exists() else None

    def forget_if_settled(self, job: JobRecord) -> None:
        """Remove the job's folder once every member file has settled."""
        if all(self._journal.get(m.file_id).state.terminal for m in job.members):
            shutil.rmtree(self._folder(job), ignore_errors=True)
            with self._guard:
                self._locks.pop(job.id, None)

    def _folder(self, job: JobRecord) -> Path:
        return self._root / str(job.id)

    def _split(self, job: JobRecord, dropbox: str, params: ImportParams) -> dict[str, Split]:
        """Per kind, Marketo's listed rows split between the members (once per job)."""
        with self._guard:
            lock = self._locks.setdefault(job.id, threading.Lock())
        with lock:
            return {kind: self._split_kind(job, dropbox, params, kind) for kind in KINDS}

    def _split_kind(self, job: JobRecord, dropbox: str, params: ImportParams, kind: str) -> Split:
        count = job.rows_failed if kind == "failures" else job.rows_with_warning
        if job.batch_id is None or count == 0:
            return Split({})
        folder = self._folder(job)
        done = folder / f"{kind}.split.json"
        doubts = folder / f"{kind}.unattributed.json"
        try:
            counts: dict[str, int] = json.loads(done.read_bytes())
            unattributed: dict[str, str] = (
                json.loads(doubts.read_bytes()) if doubts.exists() else {}
            )
            return Split(counts, unattributed)
        except (OSError, ValueError):
            pass
        folder.mkdir(parents=True, exist_ok=True)
        client = self._clients(dropbox)
        whole = folder / f"{kind}.marketo"
        download = client.download_failures if kind == "failures" else client.download_warnings
        download(job.batch_id, whole, target=params.target)
        names, shares, lost = self._shares(job, whole, params, KINDS[kind])
        counts = {}
        for member, rows in shares.items():
            counts[_key(member)] = len(rows)
            target = folder / f"{kind}-{_key(member)}"
            self._write_share(target, names, rows, params, KINDS[kind])
        unattributed = {_key(m): why for m, why in lost.items() if shares[m]}
        if unattributed:
            write_atomic(doubts, json.dumps(unattributed).encode())
        # Written last: its presence says every share above is complete.
        write_atomic(done, json.dumps(counts).encode())
        log.info(
            "shared_batch_split",
            batch_id=job.batch_id,
            kind=kind,
            rows=sum(counts.values()),
            files=len({m.file_id for m in job.members}),
            unattributed_files=len(unattributed),
        )
        return Split(counts, unattributed)

    def _shares(
        self, job: JobRecord, whole: Path, params: ImportParams, reason: str
    ) -> tuple[list[str], dict[JobMember, list[Listed]], dict[JobMember, str]]:
        """Marketo's data columns; its listed rows, each given to the member whose sent row it
        is; and the members whose rows as sent are lost, with why."""
        shares: dict[JobMember, list[Listed]] = {m: [] for m in job.members}
        paths, lost = self._sent(job)
        header = self._header(paths, params)
        lookup = params.lookup_field or "email"
        marketo = read_marketo_rows(whole, params.format, reason, header, lookup)
        for member, path in paths.items():
            for row in _rows(path, params):
                listed = marketo.claim_row(row)
                if listed is not None:
                    shares[member].append(listed)
        left = marketo.left()
        if lost:
            # Nobody's sent rows match them: they are the lost members' (or beyond matching);
            # which member's is unknown, so each lost member is given every one of them.
            if left:
                log.warning(
                    "shared_rows_unattributed",
                    batch_id=job.batch_id,
                    kind=reason,
                    rows=len(left),
                    file_ids=sorted(m.file_id for m in lost),
                )
            for member in lost:
                shares[member].extend(left)
            return marketo.names, shares, lost
        for number, _data, _reason in left:
            log.warning("result_row_unmatched", batch_id=job.batch_id, marketo_row=number)
        shares[job.members[0]].extend(left)
        return marketo.names, shares, {}

    def _sent(self, job: JobRecord) -> tuple[dict[JobMember, Path], dict[JobMember, str]]:
        """Each member's part file as sent, in job order (cut again when it is not on this
        host), and, for the members whose rows as sent cannot be had, why, for the partner."""
        paths: dict[JobMember, Path] = {}
        lost: dict[JobMember, str] = {}
        for member in job.members:
            record = self._journal.get(member.file_id)
            try:
                paths[member] = self._part_file(job, member, record)
            except PartLost as exc:
                lost[member] = exc.reason
                log.warning(
                    "shared_part_lost",
                    batch_id=job.batch_id,
                    dropbox=record.dropbox,
                    file=record.relative,
                    file_id=record.id,
                    reason=exc.reason,
                )
        also = f" (and of {len(lost) - 1} other file(s))" if len(lost) > 1 else ""
        return paths, {
            m: f"the rows of this file as sent{also} are not in this host's state dir (another"
            f" host cut them, or the state dir was lost) and it cannot be cut again: {why}"
            for m, why in lost.items()
        }

    def _part_file(self, job: JobRecord, member: JobMember, record: FileRecord) -> Path:
        """The member's part file as sent: this host's, else cut again (PartLost: neither)."""
        part = next(
            (p for p in self._journal.parts(member.file_id) if p.index == member.part_index),
            None,
        )
        if part is None:
            raise PartLost("its part is no longer in the journal")
        if part.path is not None and _size(part.path) == part.size:
            return part.path  # (a file of another size there is another cut's, left over)
        if self._recut is None:
            raise PartLost("its part file is not on this host")
        path = self._recut(record, part, self._folder(job) / f"recut-{_key(member)}")
        log.info(
            "shared_part_recut",
            batch_id=job.batch_id,
            dropbox=record.dropbox,
            file=record.relative,
            file_id=record.id,
            path=str(path),
        )
        return path

    @staticmethod
    def _header(paths: dict[JobMember, Path], params: ImportParams) -> list[str]:
        """The job's header as sent: every member's part starts with it (coalesce.py), so the
        first part on hand gives it ([] when none is)."""
        for path in paths.values():
            with path.open(encoding="utf-8", newline="") as stream:
                return next(csv.reader(stream, delimiter=params.format.delimiter), [])
        return []

    @staticmethod
    def _write_share(
        path: Path, names: list[str], rows: list[Listed], params: ImportParams, reason: str
    ) -> None:
        """One member's rows in Marketo's shape: its columns, then the reason last."""
        if not rows:
            return
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream, delimiter=params.format.delimiter, lineterminator="\n")
            writer.writerow([*names, reason])
            for _number, data, why in rows:
                writer.writerow([*data, why])
        tmp.replace(path)


def _size(path: Path) -> int | None:
    """The file's size in bytes; None when it is not there."""
    try:
        return path.stat().st_size
    except OSError:
        return None


def _rows(path: Path, params: ImportParams) -> Iterator[list[str]]:
    """A part file's rows as sent, its header left out."""
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.reader(stream, delimiter=params.format.delimiter)
        next(reader, None)
        for row in reader:
            if row:
                yield row


def _doubt(job: JobRecord, rows: int, why: str) -> str:
    """What the partner reads of rows Marketo failed that may be this file's or another's."""
    others = len({m.file_id for m in job.members}) - 1
    return (
        f"Marketo failed {rows} row(s) of batch {job.batch_id}, which this file shared with"
        f" {others} other file(s) of this drop box, and whose they are cannot be told: {why}."
        " They are counted as failed here (at most this file's rows) and listed in the failures"
        " file beside this one, without a line number where they match none of this file's"
        " lines; check them and drop the file again"
    )


def sweep_jobs(journal: Journal, parts_root: Path) -> int:
    """At start, before any submitter runs: remove the folders of jobs that are over (every
    member settled) or were never created (a run died before Marketo's answer: their files
    are sent again). Returns how many went."""
    root = jobs_dir(parts_root)
    removed = 0
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        job = journal.job(int(folder.name)) if folder.name.isdigit() else None
        members = () if job is None or job.batch_id is None else job.members
        if not all(journal.get(m.file_id).state.terminal for m in members):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed
