"""Deciding a file's outcome and putting it, with its results, in done/ or failed/.

The order is what makes a crash harmless: result files are staged in the state dir, the
destination is recorded in the journal, the state becomes SETTLING, and only then do the
results and, last, the original move. A replay after a kill -9 finds SETTLING and the recorded
destination, and finishes the same move; it never picks a second place.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import structlog

from dropbox_importer.config import DropboxConfig
from dropbox_importer.csvfile import Part, write_results
from dropbox_importer.csvfile.header import HeaderMap
from dropbox_importer.dropbox import layout as disk
from dropbox_importer.dropbox.layout import DropboxLayout, FileVanished, Outcome
from dropbox_importer.dropbox.results import DuplicateResult, FileResult, file_digest
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.models import BatchState, ImportFormat
from dropbox_importer.pipeline.cut import CutSettings, recorded_cut
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.lost import RESUBMISSIONS
from dropbox_importer.pipeline.preflight import Catalog
from dropbox_importer.pipeline.prepared import load_prepared
from dropbox_importer.pipeline.reasons import FileChanged, Rejected, unreadable_reason
from dropbox_importer.pipeline.records import FileRecord, PartRecord
from dropbox_importer.pipeline.recut import Recutter
from dropbox_importer.pipeline.rounds import round_parts_dir, vanished_reason
from dropbox_importer.pipeline.shared_batch import SharedBatches
from dropbox_importer.pipeline.states import FileState

log = structlog.get_logger(__name__)

FAILURE_REASON = "Import Failure Reason"
WARNING_REASON = "Import Warning Reason"


def decide(
    parts: Sequence[PartRecord],
    local_failures: int,
    rejection: str | None,
    partial_failure: str,
) -> tuple[Outcome, str | None]:
    """The file's outcome and, for a failure, the sentence that explains it.

    `parts` are those of the file's last round: earlier rounds read older bytes.
    """
    if rejection is not None:
        return "failed", rejection
    failed = [p for p in parts if p.status is BatchState.FAILED]
    lost = [p for p in failed if len(p.lost_batch_ids) > RESUBMISSIONS]
    if lost:  # not Marketo failing the rows: Marketo lost the batches, say so plainly
        return "failed", lost[0].message
    if failed:
        messages = "; ".join(sorted({p.message or "no reason given" for p in failed}))
        return "failed", f"Marketo failed the import: {messages}"
    rows_failed = sum(p.rows_failed for p in parts) + local_failures
    if rows_failed and partial_failure == "failed":
        return "failed", f"{rows_failed} row(s) failed; see the failures file beside this one"
    return "done", None


class Settler:
    """Writes result files and moves a finished file to done/ or failed/."""

    def __init__(
        self,
        journal: Journal,
        *,
        parts_root: Path,
        boxes: Callable[[str], DropboxConfig],
        layouts: Callable[[str], DropboxLayout],
        clients: Callable[[str], MarketoClient],
        guard: Callable[[], None] = lambda: None,
        catalogs: Callable[[str], Catalog | None] = lambda _: None,
    ) -> None:
        self._journal = journal
        self._parts_root = parts_root
        self._boxes = boxes
        self._layouts = layouts
        self._clients = clients
        # Runs before every move; raises once this daemon no longer leads (leadership.py).
        self._guard = guard
        # A shared batch's member parts another host cut are cut again here, as submit cut
        # them: with the drop box's config and its instance's catalog (`catalogs`).
        recut = Recutter(journal, parts_root, boxes=boxes, catalogs=catalogs)
        self._shared = SharedBatches(journal, parts_root, clients, recut)

    def settle(self, file_id: int, rejection: str | None) -> None:
        """Bring the file to its final place; safe to call again after a crash.

        FileChanged (nothing written, nothing moved) when the file is not the one its round
        began with: it is imported again in a new round instead.
        """
        record = self._journal.get(file_id)
        if record.state.terminal:
            return
        layout = self._layouts(record.dropbox)
        staging = self._parts_root / str(file_id) / "results"
        if record.state is not FileState.SETTLING:
            outcome, reason = self._stage(record, rejection, layout, staging)
            destination = self._journal.record_destination(
                file_id, disk.choose_destination(layout, record.processing_path, outcome)
            )
            self._journal.transition(file_id, FileState.SETTLING, outcome, reason=reason)
        else:
            assert record.destination_path is not None
            destination = record.destination_path
            outcome = "done" if _inside(destination, layout.done) else "failed"
            reason = record.reason
            if not (staging / "result.json").exists() and record.processing_path.exists():
                # Staged on another host, whose leadership this one took over (or in a state
                # dir that was lost): stage again, to the outcome and place already recorded.
                self._stage(record, reason if outcome == "failed" else None, layout, staging)
        finals = disk.result_paths(destination, self._format(record))
        # result.json is always written; the row files only when there were rows to report.
        moves = {staging / "result.json": finals.result_json}
        for name, final in (("failures", finals.failures), ("warnings", finals.warnings)):
            if (staging / name).exists():
                moves[staging / name] = final
        try:
            disk.settle(record.processing_path, destination, moves, before_move=self._guard)
        except FileVanished:
            # Removed by someone else while in flight: its result files still tell the
            # partner what happened; there is no original left to move.
            log.warning(
                "file_vanished",
                dropbox=record.dropbox,
                route=record.route,
                file=record.relative,
                file_id=record.id,
            )
        final_state = FileState.DONE if outcome == "done" else FileState.FAILED
        self._journal.transition(file_id, final_state, str(destination))
        shutil.rmtree(self._parts_root / str(file_id), ignore_errors=True)
        for part in self._journal.parts(file_id):
            job = self._shared.job_of(part)
            if job is not None:
                self._shared.forget_if_settled(job)
        # Failed files page (a partner waits); done ones are routine.
        (log.info if outcome == "done" else log.warning)(
            "file_done" if outcome == "done" else "file_failed",
            dropbox=record.dropbox,
            route=record.route,
            file=record.relative,
            file_id=record.id,
            destination=str(destination),
            **({"reason": reason} if reason is not None else {}),
        )

    def _format(self, record: FileRecord) -> ImportFormat:
        """The format the result files are written in (csv when the route says none)."""
        cut = self._cut(record)
        return ImportFormat.CSV if cut is None else cut.params.format

    def _cut(self, record: FileRecord) -> CutSettings | None:
        """How the file was (or would be) cut; None when its route cannot be parsed."""
        try:
            return recorded_cut(record, self._boxes(record.dropbox))
        except Rejected:
            return None

    def _stage(
        self, record: FileRecord, rejection: str | None, layout: DropboxLayout, staging: Path
    ) -> tuple[Outcome, str | None]:
        """Fetch Marketo's row files, write ours and result.json into `staging`."""
        box = self._boxes(record.dropbox)
        cut = self._cut(record)
        doubt = None
        if cut is not None:
            # A batch shared with other files: this file's own counts, from its own rows.
            doubt = self._shared.own_counts(record, self._journal.parts(record.id), cut.params)
        every = self._journal.parts(record.id)
        parts = [p for p in every if p.round == record.round]
        local = self._journal.local_failures(record.id)
        try:
            size, sha256 = file_digest(record.processing_path)
            modified = datetime.fromtimestamp(record.processing_path.stat().st_mtime, UTC)
        except FileNotFoundError:
            size, sha256, modified = 0, "", None
            rejection = rejection or vanished_reason(record, every)
        except OSError as exc:
            # Unreadable to the daemon's user: failed with that reason, its bytes unknown.
            st = record.processing_path.lstat()
            size, sha256, modified = st.st_size, "", datetime.fromtimestamp(st.st_mtime, UTC)
            rejection = rejection or unreadable_reason(exc)
        else:
            if (size, sha256) != (record.size, record.sha256):
                raise FileChanged(str(record.processing_path))
        if record.state is not FileState.SETTLING:
            # Rows Marketo failed that may be this file's: never reported imported (a file
            # staged again keeps the outcome it was given).
            rejection = rejection or doubt
        outcome, reason = decide(parts, len(local), rejection, box.partial_failure)
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        params = None if cut is None else cut.params
        facts = load_prepared(round_parts_dir(self._parts_root, record))
        header = None if facts is None else facts.header
        if cut is not None and (parts or local):
            # The key column as sent: the lookup field, email, or a custom object's dedupe field.
            key = facts.lookup_field if facts is not None and facts.lookup_field else ""
            self._stage_rows(record, cut, parts, local, staging, header, key)
        result = FileResult.build(
            record,
            every,
            params,
            outcome,
            reason=reason,
            # When the daemon first saw it: an upload keeping the partner's mtime (`sftp put
            # -p`) would otherwise date it days back. The mtime is kept as `modified`.
            dropped=record.seen_at or record.claimed_at,
            modified=modified,
            rows_failed_locally=len(local),
            header=header,
            duplicates=None
            if facts is None
            else DuplicateResult.of(facts.lookup_field, facts.duplicates),
            shared=self._shares(record, every),
        )
        # The bytes as they are kept beside this result, even if they changed after the claim.
        result = replace(result, size=size, sha256=sha256)
        result.write(staging / "result.json")
        # On disk before the journal says SETTLING: a replay after a power cut moves these
        # files as they are, and must never find them empty.
        _fsync_staged(staging)
        return outcome, reason

    def _shares(self, record: FileRecord, parts: Sequence[PartRecord]) -> dict[int, dict[str, int]]:
        """By part index, the batch each part shared with other files (for result.json)."""
        out = {}
        for part in parts:
            job = self._shared.job_of(part)
            if job is not None:
                member = job.member(record.id, part.index)
                files = len({m.file_id for m in job.members})
                out[part.index] = {
                    "files": files,
                    "rows": job.rows,
                    "first_row": member.first_row + 1,
                }
        return out

    def _stage_rows(
        self,
        record: FileRecord,
        cut: CutSettings,
        parts: Sequence[PartRecord],
        local: dict[int, str],
        staging: Path,
        header: HeaderMap | None,
        key: str = "",
    ) -> None:
        """Fetch Marketo's failures and warnings and merge them into the partner's files.

        `key` is the column Marketo's rows are first matched by (the lookup field when empty).
        """
        client = self._clients(record.dropbox)
        target = cut.params.target
        failures = [
            self._rows_of(
                record,
                p,
                "failures",
                p.rows_failed,
                partial(client.download_failures, target=target),
                staging,
            )
            for p in parts
        ]
        warnings = [
            self._rows_of(
                record,
                p,
                "warnings",
                p.rows_with_warning,
                partial(client.download_warnings, target=target),
                staging,
            )
            for p in parts
        ]
        for name, fetched, column, extra in (
            ("failures", failures, FAILURE_REASON, local),
            ("warnings", warnings, WARNING_REASON, {}),
        ):
            if any(fetched) or extra:
                write_results(
                    [_part(p) for p in parts],
                    fetched,
                    staging / name,
                    original=record.processing_path,
                    fmt=cut.params.format,
                    reason_column=column,
                    # As the checks decided (a BOM, valid UTF-8, declared or detected).
                    encoding=str(record.details.get("encoding", cut.encoding)),
                    local_failures=extra,
                    sent=header.sent if header is not None and header.drops_columns else None,
                    lookup=key or cut.params.lookup_field or "email",
                    # Rows failed locally were never sent: not Marketo's to warn about.
                    unsent=local.keys(),
                )

    def _rows_of(
        self,
        record: FileRecord,
        part: PartRecord,
        kind: str,
        count: int,
        download: Callable[[int, Path], None],
        staging: Path,
    ) -> Path | None:
        """Marketo's `kind` rows of one part: its share of a shared batch's (split once per
        batch), else the batch's own file, downloaded when Marketo reported rows in it."""
        job = self._shared.job_of(part)
        if job is None:
            return self._fetch(download, part, count, staging / f"{kind}-{part.index}")
        if count == 0:
            return None
        return self._shared.rows_file(job, job.member(record.id, part.index), kind)

    @staticmethod
    def _fetch(
        download: Callable[[int, Path], None], part: PartRecord, count: int, target: Path
    ) -> Path | None:
        """Download one batch's row file when Marketo reported rows in it."""
        if part.batch_id is None or count == 0:
            return None
        download(part.batch_id, target)
        return target


def _part(record: PartRecord) -> Part:
    return Part(
        path=record.path or Path(),
        index=record.index,
        first_line=record.first_line,
        rows=record.rows,
        bytes=record.size,
    )


def _fsync_staged(staging: Path) -> None:
    """fsync every staged result file, then the staging folder itself."""
    for path in sorted(staging.iterdir()):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True
