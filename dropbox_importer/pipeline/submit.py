"""Claimed file -> checked parts -> import batches: one submitter thread per instance.

Creates are where Marketo's limits bite (10 queued jobs per instance, shared with every other
integration), so one thread per instance takes files in fair turns across drop boxes and blocks
in the client until a queue slot is free. Everything that can fail the file before a slot is
spent (route, encoding, shape, preflight) runs here first.
"""

from __future__ import annotations

import heapq
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from dropbox_importer.config import DropboxConfig
from dropbox_importer.csvfile import FileRejected, Part, inspect_file, split_file
from dropbox_importer.dropbox.results import file_digest
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.errors import (
    AuthenticationError,
    MarketoError,
    RequestRejected,
    Stopped,
)
from dropbox_importer.marketo.models import ImportParams
from dropbox_importer.pipeline.cut import Cut, differences, recorded_cut
from dropbox_importer.pipeline.fairness import FairQueue
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.preflight import Catalog, PreflightError, check_header, check_targets
from dropbox_importer.pipeline.reasons import (
    CHANGED,
    VANISHED,
    Rejected,
    params_for,
    unreadable_reason,
)
from dropbox_importer.pipeline.records import FileRecord
from dropbox_importer.pipeline.states import FileState

log = structlog.get_logger(__name__)

# Kept importable from here: the one-shot import and older callers use these names.
__all__ = [
    "CHANGED",
    "OPERATOR_RETRY_SECONDS",
    "VANISHED",
    "Prepared",
    "Rejected",
    "Submitter",
    "check_and_cut",
    "params_for",
    "prepare",
]

# How long a file waits before another try when the instance refuses our credentials.
OPERATOR_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class Prepared:
    """A file made ready for Marketo: its parameters, its parts, rows failed locally."""

    params: ImportParams
    parts: list[Part]
    local_failures: dict[int, str]
    cut: Cut


def check_and_cut(
    path: Path, params: ImportParams, box: DropboxConfig, parts_dir: Path, catalog: Catalog | None
) -> tuple[list[Part], dict[int, str]]:
    """Check a file (with a catalog, against Marketo too); cut it into parts in `parts_dir`.

    Returns the parts and the rows failed locally (line -> reason); Rejected says why not.
    """
    return cut_file(path, Cut(params, box.encoding, box.max_part_bytes), parts_dir, catalog)


def cut_file(
    path: Path, cut: Cut, parts_dir: Path, catalog: Catalog | None
) -> tuple[list[Part], dict[int, str]]:
    """`check_and_cut` with the cut's own encoding and size limit."""
    params = cut.params
    try:
        inspection = inspect_file(
            path, params.format, encoding=cut.encoding, lookup_field=params.lookup_field
        )
    except FileRejected as exc:
        raise Rejected(str(exc)) from exc
    if catalog is not None:
        try:
            check_header(inspection.header, params, catalog)
            check_targets(params, catalog)
        except PreflightError as exc:
            raise Rejected(str(exc)) from exc
        except RequestRejected as exc:
            raise Rejected(f"Marketo refused the preflight check: {exc}") from exc
    local = {line: "lookup field is empty" for line in inspection.empty_lookup_lines}
    if local and len(local) >= inspection.rows:
        raise Rejected(
            f"every row has an empty '{params.lookup_field or 'email'}' (the lookup field); "
            "fill it in and drop the file again"
        )
    if parts_dir.exists():
        shutil.rmtree(parts_dir)  # a previous attempt's parts: cut again, deterministically
    parts_dir.mkdir(parents=True)
    parts = split_file(
        path,
        params.format,
        parts_dir,
        max_bytes=cut.max_part_bytes,
        encoding=cut.encoding,
        skip_lines=frozenset(local),
    )
    return parts, local


def prepare(
    record: FileRecord, box: DropboxConfig, parts_dir: Path, catalog: Catalog | None
) -> Prepared:
    """Check the claimed file and cut it into parts under Marketo's size limit.

    The cut recorded in the journal is used when there is one (a restart resumes the same
    parts), else the one the drop box's config gives now.
    """
    cut = recorded_cut(record, box)
    path = Path(record.processing_path)
    try:
        parts, local = cut_file(path, cut, parts_dir, catalog)
        # Parts cut from a file still being written would import a truncated snapshot.
        same = file_digest(path) == (record.size, record.sha256)
    except FileNotFoundError as exc:
        raise Rejected(VANISHED) from exc
    except OSError as exc:
        raise Rejected(unreadable_reason(exc)) from exc
    if not same:
        raise Rejected(CHANGED)
    return Prepared(cut.params, parts, local, cut)


def refused(exc: MarketoError) -> str:
    """What the partner reads when Marketo refuses the file's import for good."""
    hint = {
        "603": "the importer's API user may not import here (its role, a workspace or an IP "
        "allow-list); the operator was told",
    }.get(exc.code or "", "the operator was told")
    code = f"error {exc.code}" if exc.code else "an error"
    return f"Marketo refused the import with {code}: {exc.message} ({hint})"


class Submitter:
    """The thread that submits claimed files of one instance, in fair turns across drop boxes.

    A file refused for good (Marketo's 1003/1006/1008, 603 access denied, an unknown code) fails
    alone; only refused credentials, which would refuse every file, park the file for a retry,
    and never the thread: the next file is taken at once.
    """

    def __init__(
        self,
        name: str,
        client: MarketoClient,
        journal: Journal,
        queue: FairQueue[int],
        *,
        boxes: Callable[[str], DropboxConfig],
        parts_root: Path,
        catalog: Catalog,
        on_submitted: Callable[[int, int, int, str], None],
        on_rejected: Callable[[int, str], None],
        on_all_submitted: Callable[[int], None],
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._client = client
        self._journal = journal
        self._queue = queue
        self._boxes = boxes
        self._parts_root = parts_root
        self._catalog = catalog
        self._on_submitted = on_submitted
        self._on_rejected = on_rejected
        self._on_all_submitted = on_all_submitted
        self._stop = stop
        self._clock = clock
        # (when to try again, dropbox, file id) of files parked until an operator acts.
        self._parked: list[tuple[float, str, int]] = []
        self._thread = threading.Thread(target=self._run, name=f"submit-{name}", daemon=True)

    def start(self) -> None:
        """Start the submitting thread."""
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the thread to finish the create in hand."""
        self._thread.join(timeout)

    @property
    def parked(self) -> int:
        """Files waiting for an operator to fix the instance's credentials."""
        return len(self._parked)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self._clock()
            while self._parked and self._parked[0][0] <= now:
                _, dropbox, parked = heapq.heappop(self._parked)
                self._queue.put(dropbox, parked)
            wait = 0.5 if not self._parked else min(0.5, max(self._parked[0][0] - now, 0.0))
            file_id = self._queue.get(timeout=wait)
            if file_id is None:
                continue
            try:
                self.submit(file_id)
            except Stopped:
                return
            except Exception:  # never let one file stop the instance's submissions
                log.exception("submit_crashed", file_id=file_id, instance=self.name)

    def _operator_must_act(self, file_id: int, dropbox: str, exc: MarketoError) -> None:
        """Credentials refused: not the partner's fault, and every file would meet it.

        The file waits in processing/ and is tried again in a minute; the thread goes on.
        """
        log.error(
            "instance_needs_operator",
            instance=self.name,
            file_id=file_id,
            code=exc.code,
            message=exc.message,
            retry_in_seconds=OPERATOR_RETRY_SECONDS,
        )
        heapq.heappush(self._parked, (self._clock() + OPERATOR_RETRY_SECONDS, dropbox, file_id))

    def _refuse(self, file_id: int, bound: Any, exc: MarketoError) -> None:
        """Marketo refused this file for good: it fails alone, with Marketo's code and message."""
        if not isinstance(exc, RequestRejected):
            # 603 or an unknown code: the file fails, and an operator should know.
            log.error("instance_needs_operator", instance=self.name, file_id=file_id,
                      code=exc.code, message=exc.message)  # fmt: skip
        bound.warning("import_refused", code=exc.code, message=exc.message)
        self._reject(file_id, bound, refused(exc))

    def _reject(self, file_id: int, bound: Any, reason: str) -> None:
        """Fail the file; when batches of it exist already, once they have finished."""
        parts = self._journal.parts(file_id)
        if any(p.batch_id is not None for p in parts):
            # Those parts import whatever we do: the file settles with them, failed.
            self._journal.record_reason(file_id, reason)
            if self._journal.get(file_id).state is not FileState.POLLING:
                self._journal.transition(file_id, FileState.POLLING, "refused part way")
            created = [p.batch_id for p in parts if p.batch_id is not None]
            bound.info("file_rejected_part_way", reason=reason, waiting_for=created)
            self._on_all_submitted(file_id)
            return
        bound.info("file_rejected", reason=reason)
        self._on_rejected(file_id, reason)

    def submit(self, file_id: int) -> None:
        """Prepare the file if needed, then create a batch for every part without one."""
        record = self._journal.get(file_id)
        box = self._boxes(record.dropbox)
        bound = log.bind(dropbox=record.dropbox, route=record.route, file=record.name)
        parts_dir = self._parts_root / str(file_id)
        try:
            prepared = prepare(record, box, parts_dir, self._catalog if box.preflight else None)
            recorded = self._journal.parts(file_id)
            # Once a create may have reached Marketo, the parts are fixed: a different cut
            # would send rows twice or never.
            started = any(p.batch_id is not None or p.submission_uncertain for p in recorded)
            if started and (changed := differences(recorded, prepared.parts)) is not None:
                raise Rejected(
                    f"the file can no longer be cut as it was when it was first sent ({changed}); "
                    "the parts already sent are listed in this result; drop the rest again"
                )
            if record.cut is None or not started:
                self._journal.record_cut(
                    file_id,
                    prepared.cut,
                    [(p.index, p.first_line, p.rows, p.bytes) for p in prepared.parts],
                )
            known = {part.index: part for part in self._journal.parts(file_id)}
        except Rejected as exc:
            self._reject(file_id, bound, exc.reason)
            return
        except AuthenticationError as exc:
            self._operator_must_act(file_id, record.dropbox, exc)
            return
        except MarketoError as exc:
            self._refuse(file_id, bound, exc)
            return
        if record.state is FileState.CLAIMED:
            self._journal.transition(file_id, FileState.SUBMITTING)
        self._journal.record_local_failures(file_id, prepared.local_failures)
        for part in prepared.parts:
            before = known.get(part.index)
            if before is not None and before.batch_id is not None:
                continue
            if before is not None and before.submission_uncertain:
                # A run died between sending this create and recording its answer: Marketo
                # may already hold it. Sending again is the only way not to lose the rows;
                # insert-or-update makes a second import of the same rows harmless.
                bound.warning("batch_resubmitted_uncertain", part=part.index)
            # Marked before the create: if the answer is lost to a crash, recovery knows this
            # part may have reached Marketo and counts a resubmission as such.
            self._journal.mark_submission_uncertain(file_id, part.index)
            try:
                batch_id = self._client.create_import(part.path, prepared.params, stop=self._stop)
            except AuthenticationError as exc:
                self._operator_must_act(file_id, record.dropbox, exc)
                return
            except MarketoError as exc:
                self._journal.mark_submission_uncertain(file_id, part.index, uncertain=False)
                self._refuse(file_id, bound, exc)
                return
            self._journal.record_batch(file_id, part.index, batch_id)
            bound.info("batch_created", batch_id=batch_id, part=part.index, rows=part.rows)
            self._on_submitted(file_id, batch_id, part.rows, self.name)
        self._journal.transition(file_id, FileState.POLLING)
        # A part may have finished while later parts were still being created.
        self._on_all_submitted(file_id)
