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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from dropbox_importer.config import DropboxConfig
from dropbox_importer.csvfile import Duplicates, FileRejected, Part, inspect_file, split_file
from dropbox_importer.csvfile.header import (
    ColumnRules,
    Fate,
    HeaderMap,
    map_header,
    read_header,
    refuse_unmappable,
)
from dropbox_importer.dropbox.results import file_digest
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.errors import (
    AuthenticationError,
    MarketoError,
    RequestRejected,
    Stopped,
)
from dropbox_importer.marketo.models import ImportParams
from dropbox_importer.pipeline.cut import CutSettings, differences
from dropbox_importer.pipeline.fairness import FairQueue
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.preflight import Catalog, PreflightError, check_header, check_targets
from dropbox_importer.pipeline.prepared import save_prepared
from dropbox_importer.pipeline.reasons import (
    CHANGED,
    VANISHED,
    Rejected,
    params_for,
    route_for,
    routed,
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
    "Cut",
    "Prepared",
    "Rejected",
    "Submitter",
    "check_and_cut",
    "params_for",
    "prepare",
    "route_for",
    "routed",
]

# How long a file waits before another try when the instance refuses our credentials.
OPERATOR_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class Cut:
    """A checked file cut into parts: the parts, rows failed locally, its mapped header."""

    parts: list[Part]
    local_failures: dict[int, str]  # original line -> reason
    header: HeaderMap | None  # None when the file had no readable header to map
    duplicates: Duplicates = field(default_factory=Duplicates)
    lookup_field: str = "email"  # the lookup column as the file names it, once mapped


@dataclass(frozen=True)
class Prepared:
    """A file made ready for Marketo: its parameters, its parts, rows failed locally."""

    params: ImportParams
    parts: list[Part]
    local_failures: dict[int, str]
    settings: CutSettings  # how it was cut: recorded before its first part is sent


def map_columns(
    path: Path, params: ImportParams, rules: ColumnRules, encoding: str, catalog: Catalog | None
) -> HeaderMap | None:
    """The file's header mapped to lead fields (describe's, with a catalog); None if no header.

    Raises FileRejected for a header that can't be mapped (ambiguous, duplicate or denied
    columns); RequestRejected when Marketo refuses describe.
    """
    names = read_header(path, params.format, encoding)
    if names is None:
        return None  # inspect_file says what is wrong with the file
    fields = None if catalog is None else catalog.fields()
    header = map_header(names, fields, rules, lookup=params.lookup_field or "email")
    if catalog is not None and header.of(Fate.UNKNOWN):
        # Perhaps created since describe was last asked: ask again if that was a while ago.
        header = map_header(
            names, catalog.fields(missing=True), rules, lookup=params.lookup_field or "email"
        )
    refuse_unmappable(header, rules)
    return header


def check_and_cut(
    path: Path,
    params: ImportParams,
    box: DropboxConfig,
    parts_dir: Path,
    catalog: Catalog | None,
    rules: ColumnRules,
) -> Cut:
    """Check a file (with a catalog, against Marketo too); cut it into parts in `parts_dir`.

    `rules` are the route's column rules. Returns the parts, the rows failed locally and the
    mapped header; Rejected says why not.
    """
    settings = CutSettings(params, box.encoding, box.max_part_bytes)
    return cut_file(path, settings, parts_dir, catalog, rules)


def cut_file(
    path: Path,
    settings: CutSettings,
    parts_dir: Path,
    catalog: Catalog | None,
    rules: ColumnRules,
) -> Cut:
    """`check_and_cut` with the settings' own parameters, encoding and size limit."""
    params = settings.params
    try:
        header = map_columns(path, params, rules, settings.encoding, catalog)
        inspection = inspect_file(
            path,
            params.format,
            encoding=settings.encoding,
            lookup_field=params.lookup_field,
            names=None if header is None else header.lookup_names,
        )
        if catalog is not None and header is not None:
            check_header(header, params, catalog)
        if catalog is not None:
            check_targets(params, catalog)
    except (FileRejected, PreflightError) as exc:
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
        max_bytes=settings.max_part_bytes,
        encoding=settings.encoding,
        skip_lines=frozenset(local),
        header=None if header is None else header.sent_names,
        keep=header.sent if header is not None and header.drops_columns else None,
    )
    save_prepared(parts_dir, header, inspection.duplicates, inspection.lookup_field)
    return Cut(parts, local, header, inspection.duplicates, inspection.lookup_field)


def prepare(
    record: FileRecord, box: DropboxConfig, parts_dir: Path, catalog: Catalog | None
) -> Prepared:
    """Check the claimed file and cut it into parts under Marketo's size limit.

    The cut recorded in the journal is used when there is one (a restart resumes the same
    parts, whatever the config says now), else the one the drop box's config gives now.
    """
    params, policy = route_for(record, box)
    settings = record.cut or CutSettings(params, box.encoding, box.max_part_bytes)
    path = Path(record.processing_path)
    try:
        cut = cut_file(path, settings, parts_dir, catalog, policy.columns)
        # Parts cut from a file still being written would import a truncated snapshot.
        same = file_digest(path) == (record.size, record.sha256)
    except FileNotFoundError as exc:
        raise Rejected(VANISHED) from exc
    except OSError as exc:
        raise Rejected(unreadable_reason(exc)) from exc
    if not same:
        raise Rejected(CHANGED)
    return Prepared(settings.params, cut.parts, cut.local_failures, settings)


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
                    prepared.settings,
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
