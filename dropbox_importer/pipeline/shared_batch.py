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
from pathlib import Path

import structlog

from dropbox_importer.csvfile.matching import Listed, read_marketo_rows
from dropbox_importer.dropbox.layout import write_atomic
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.models import ImportParams
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.records import FileRecord, JobMember, JobRecord, PartRecord
from dropbox_importer.pipeline.shared_submit import jobs_dir

log = structlog.get_logger(__name__)

KINDS = {"failures": "Import Failure Reason", "warnings": "Import Warning Reason"}


def _key(member: JobMember) -> str:
    return f"{member.file_id}-{member.part_index}"


class SharedBatches:
    """Splits shared batches' rows files per member; safe to use from several settle threads."""

    def __init__(
        self,
        journal: Journal,
        parts_root: Path,
        clients: Callable[[str], MarketoClient],
    ) -> None:
        self._journal = journal
        self._root = jobs_dir(parts_root)
        self._clients = clients
        self._guard = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}

    def job_of(self, part: PartRecord) -> JobRecord | None:
        """The shared job the part was sent in; None when it went alone (or is not sent)."""
        if part.batch_id is None:
            return None
        return self._journal.job_of_batch(part.batch_id, part.file_id)

    def own_counts(
        self, record: FileRecord, parts: list[PartRecord], params: ImportParams
    ) -> list[PartRecord]:
        """The file's parts, each final part of a shared batch with its own counts recorded."""
        changed = False
        for part in parts:
            job = self.job_of(part)
            if job is None or not part.final:
                continue
            member = job.member(record.id, part.index)
            split = self._split(job, record.dropbox, params)
            failed = split["failures"].get(_key(member), 0)
            warned = split["warnings"].get(_key(member), 0)
            handled = min(max(job.handled - member.first_row, 0), member.rows)
            self._journal.record_member_counts(
                record.id, part.index, max(handled - failed, 0), failed, warned
            )
            changed = True
        return self._journal.parts(record.id) if changed else parts

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

    def _split(
        self, job: JobRecord, dropbox: str, params: ImportParams
    ) -> dict[str, dict[str, int]]:
        """Per kind, how many of Marketo's listed rows each member got (split once per job)."""
        with self._guard:
            lock = self._locks.setdefault(job.id, threading.Lock())
        with lock:
            return {kind: self._split_kind(job, dropbox, params, kind) for kind in KINDS}

    def _split_kind(
        self, job: JobRecord, dropbox: str, params: ImportParams, kind: str
    ) -> dict[str, int]:
        count = job.rows_failed if kind == "failures" else job.rows_with_warning
        if job.batch_id is None or count == 0:
            return {}
        folder = self._folder(job)
        done = folder / f"{kind}.split.json"
        try:
            counts: dict[str, int] = json.loads(done.read_bytes())
            return counts
        except (OSError, ValueError):
            pass
        folder.mkdir(parents=True, exist_ok=True)
        client = self._clients(dropbox)
        whole = folder / f"{kind}.marketo"
        download = client.download_failures if kind == "failures" else client.download_warnings
        download(job.batch_id, whole, target=params.target)
        names, shares = self._shares(job, whole, params, KINDS[kind])
        counts = {}
        for member, rows in shares.items():
            counts[_key(member)] = len(rows)
            target = folder / f"{kind}-{_key(member)}"
            self._write_share(target, names, rows, params, KINDS[kind])
        # Written last: its presence says every share above is complete.
        write_atomic(done, json.dumps(counts).encode())
        log.info(
            "shared_batch_split",
            batch_id=job.batch_id,
            kind=kind,
            rows=sum(counts.values()),
            files=len({m.file_id for m in job.members}),
        )
        return counts

    def _shares(
        self, job: JobRecord, whole: Path, params: ImportParams, reason: str
    ) -> tuple[list[str], dict[JobMember, list[Listed]]]:
        """Marketo's data columns, and its listed rows, each given to the member whose sent row
        it is."""
        shares: dict[JobMember, list[Listed]] = {m: [] for m in job.members}
        header, parts = self._sent(job, params)
        lookup = params.lookup_field or "email"
        marketo = read_marketo_rows(whole, params.format, reason, header, lookup)
        for member in job.members:
            for row in parts(member):
                listed = marketo.claim_row(row)
                if listed is not None:
                    shares[member].append(listed)
        left = marketo.left()
        for number, _data, _reason in left:
            log.warning("result_row_unmatched", batch_id=job.batch_id, marketo_row=number)
        shares[job.members[0]].extend(left)
        return marketo.names, shares

    def _sent(
        self, job: JobRecord, params: ImportParams
    ) -> tuple[list[str], Callable[[JobMember], Iterator[list[str]]]]:
        """The job's header as sent, and each member's rows as sent (from its part file)."""
        paths = {}
        for member in job.members:
            for part in self._journal.parts(member.file_id):
                if part.index == member.part_index and part.path is not None:
                    paths[member] = part.path
        header: list[str] = []
        first = paths.get(job.members[0])
        if first is not None and first.exists():
            with first.open(encoding="utf-8", newline="") as stream:
                header = next(csv.reader(stream, delimiter=params.format.delimiter), [])

        def rows(member: JobMember) -> Iterator[list[str]]:
            path = paths.get(member)
            if path is None or not path.exists():
                log.warning("shared_part_missing", batch_id=job.batch_id, file_id=member.file_id)
                return
            with path.open(encoding="utf-8", newline="") as stream:
                reader = csv.reader(stream, delimiter=params.format.delimiter)
                next(reader, None)
                for row in reader:
                    if row:
                        yield row

        return header, rows

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
