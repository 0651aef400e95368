"""Claimed file -> checked parts -> import batches: one submitter thread per instance.

Creates are where Marketo's limits bite (10 queued jobs per instance, shared with every other
integration), so one thread per instance takes files in fair turns across drop boxes and blocks
in the client until a queue slot is free. A static list takes one job at a time (1019): a file
whose list is held waits in the queue without blocking the files of other lists. Everything
that can fail the file before a slot is spent (route, encoding, shape, preflight) runs here
first.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from dropbox_importer.config import DropboxConfig
from dropbox_importer.csvfile import (
    Duplicates,
    FileRejected,
    Inspection,
    Part,
    inspect_file,
    split_file,
)
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
    ImportInProgress,
    MarketoError,
    RequestRejected,
    Stopped,
)
from dropbox_importer.marketo.models import ImportParams
from dropbox_importer.pipeline.fairness import FairQueue
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.preflight import Catalog, PreflightError, check_header, check_targets
from dropbox_importer.pipeline.prepared import save_prepared
from dropbox_importer.pipeline.reasons import (
    VANISHED,
    FileChanged,
    Rejected,
    params_for,
    route_for,
    routed,
)
from dropbox_importer.pipeline.records import FileRecord
from dropbox_importer.pipeline.rounds import round_parts_dir
from dropbox_importer.pipeline.states import FileState

log = structlog.get_logger(__name__)

# Kept importable from here: the one-shot import and older callers use these names.
__all__ = [
    "EMPTY_LOOKUP",
    "OPERATOR_RETRY_SECONDS",
    "VANISHED",
    "Cut",
    "FileChanged",
    "Prepared",
    "Rejected",
    "Submitter",
    "check_and_cut",
    "params_for",
    "prepare",
    "route_for",
    "routed",
]

# The reason of a row failed locally because its lookup value is empty.
EMPTY_LOOKUP = "lookup field is empty"

# How long a file waits before another try when the instance refuses us (403-like errors).
OPERATOR_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class Cut:
    """A checked file cut into parts: the parts, rows failed locally, its mapped header."""

    parts: list[Part]
    local_failures: dict[int, str]  # original line -> reason
    header: HeaderMap | None  # None when the file had no readable header to map
    duplicates: Duplicates = field(default_factory=Duplicates)
    lookup_field: str = "email"  # the lookup column as the file names it, once mapped
    inspection: Inspection | None = None


@dataclass(frozen=True)
class Prepared:
    """A file made ready for Marketo: its parameters, its parts, rows failed locally."""

    params: ImportParams
    parts: list[Part]
    local_failures: dict[int, str]
    inspection: Inspection | None = None
    round: int = 1  # the round of the file these parts were cut in


def details_of(inspection: Inspection) -> dict[str, object]:
    """What a round's checks learned, as the journal keeps it for result.json."""
    return {
        "encoding": inspection.encoding,
        "encoding_by": inspection.encoding_by,
        "blank_rows": len(inspection.blank_lines),
        "ignored_columns": list(inspection.ignored_columns),
        "last_line": inspection.last_line,
    }


def without_padding(header: HeaderMap, columns: list[int]) -> HeaderMap:
    """The map with Excel's padding (trailing unnamed, empty columns, 1-based) not sent."""
    padding = {column - 1 for column in columns}
    return HeaderMap(
        tuple(
            replace(c, field=None, fate=Fate.IGNORED, how="no name and no value (Excel's padding)")
            if c.index in padding
            else c
            for c in header.columns
        )
    )


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
    try:
        header = map_columns(path, params, rules, box.encoding, catalog)
        inspection = inspect_file(
            path,
            params.format,
            encoding=box.encoding,
            lookup_field=params.lookup_field,
            names=None if header is None else header.lookup_names,
            candidates=box.encoding_candidates,
        )
        if header is not None and inspection.ignored_columns:
            header = without_padding(header, inspection.ignored_columns)
        if catalog is not None and header is not None:
            check_header(header, params, catalog)
        if catalog is not None:
            check_targets(params, catalog)
    except (FileRejected, PreflightError) as exc:
        raise Rejected(str(exc)) from exc
    except RequestRejected as exc:
        raise Rejected(f"Marketo refused the preflight check: {exc}") from exc
    local = {line: EMPTY_LOOKUP for line in inspection.empty_lookup_lines}
    if local and len(local) >= inspection.rows:
        raise Rejected(
            f"every row has an empty '{params.lookup_field or 'email'}' (the lookup field); "
            "fill it in and drop the file again"
        )
    local.update(inspection.bad_email_lines)
    if len(local) >= inspection.rows:
        line, reason = min(inspection.bad_email_lines.items())
        others = len(local) - 1
        raise Rejected(
            f"no row can be imported: line {line}: {reason}"
            + (f" (and {others} more row(s) that cannot be sent)" if others else "")
            + "; fix the file and drop it again"
        )
    if parts_dir.exists():
        shutil.rmtree(parts_dir)  # a previous attempt's parts: cut again, deterministically
    parts_dir.mkdir(parents=True)
    names: list[str] | None = None if header is None else header.sent_names
    keep: tuple[int, ...] | None = None
    if header is not None and header.drops_columns:
        keep = header.sent
    elif header is None and inspection.ignored_columns:
        keep = tuple(range(inspection.named_columns))  # Excel's padding left out
        names = inspection.header[: inspection.named_columns]
    try:
        parts = split_file(
            path,
            params.format,
            parts_dir,
            max_bytes=box.max_part_bytes,
            # The encoding the checks decided on, so that auto detection runs once.
            encoding=inspection.encoding,
            # Rows failed locally, and blank rows (Excel's empty rows among them).
            skip_lines=frozenset(local) | inspection.skip_lines(),
            header=names,
            keep=keep,
        )
    except FileRejected as exc:
        raise Rejected(str(exc)) from exc
    save_prepared(parts_dir, header, inspection.duplicates, inspection.lookup_field)
    return Cut(parts, local, header, inspection.duplicates, inspection.lookup_field, inspection)


def prepare(
    record: FileRecord, box: DropboxConfig, parts_dir: Path, catalog: Catalog | None
) -> Prepared:
    """Check the claimed file and cut it into parts under Marketo's size limit.

    FileChanged when the file is not the one the round began with (before or after the cut:
    parts cut from a file still being written would import a snapshot of it, maybe a cut row).
    """
    params, policy = route_for(record, box)
    path = Path(record.processing_path)
    try:
        cut = check_and_cut(path, params, box, parts_dir, catalog, policy.columns)
    except Rejected:
        if file_digest(path) != (record.size, record.sha256):
            raise FileChanged(str(path)) from None  # the verdict was on other bytes
        raise
    if file_digest(path) != (record.size, record.sha256):
        raise FileChanged(str(path))
    return Prepared(params, cut.parts, cut.local_failures, cut.inspection, record.round)


class Submitter:
    """The thread that submits claimed files of one instance, in fair turns across drop boxes.

    A file whose static list is held (by a batch of ours, or by another integration's job after
    a 1019) waits without holding anything up: the submitter passes over it to the next file in
    turn and comes back when the list frees. So a file split into parts sends one part per
    batch of its list's turn, and never two jobs of one list are in Marketo's queue at once.
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
        on_changed: Callable[[int, str], None] | None = None,
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
        self._on_changed = on_changed
        self._stop = stop
        # Files taken before, waiting for their list: prepared once, not again each turn.
        self._prepared: dict[int, Prepared] = {}
        self._lists: dict[int, int | None] = {}  # file id -> the listId its route sets
        client.on_list_freed(queue.wake)
        self._thread = threading.Thread(target=self._run, name=f"submit-{name}", daemon=True)

    def start(self) -> None:
        """Start the submitting thread."""
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the thread to finish the create in hand."""
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            file_id = self._queue.get(timeout=0.5, hold=self._hold, key=self._list_key)
            if file_id is None:
                continue
            try:
                self.submit(file_id)
            except Stopped:
                return
            except Exception:  # never let one file stop the instance's submissions
                log.exception("submit_crashed", file_id=file_id, instance=self.name)

    def _hold(self, file_id: int) -> float:
        """Seconds the file must still wait for its static list (0: it may go now)."""
        return self._client.list_wait(self._list_key(file_id))

    def _list_key(self, file_id: int) -> int | None:
        """The listId the file's route sets (None: no list), worked out once per file."""
        if file_id not in self._lists:
            self._lists[file_id] = self._list_of(file_id)
        return self._lists[file_id]

    def _list_of(self, file_id: int) -> int | None:
        try:
            record = self._journal.get(file_id)
            return params_for(record, self._boxes(record.dropbox)).list_id
        except (Rejected, KeyError):
            return None  # submit() says what is wrong with it

    def _forget(self, file_id: int) -> None:
        self._prepared.pop(file_id, None)
        self._lists.pop(file_id, None)

    def _operator_must_act(self, file_id: int, dropbox: str, exc: MarketoError) -> None:
        """Access denied, bad credentials, a client bug: not the partner's fault.

        The file waits in processing/ and is tried again; the log says an operator must act.
        """
        # The client logged instance_needs_operator once; the file says why it waits.
        record = self._journal.get(file_id)
        log.debug(
            "file_held_for_operator",
            instance=self.name,
            dropbox=record.dropbox,
            route=record.route,
            file=record.relative,
            file_id=file_id,
            code=exc.code,
        )
        self._journal.set_note(
            file_id,
            f"instance {self.name} needs an operator ({exc.code or 'no code'}: {exc.message}); "
            f"tried again every {OPERATOR_RETRY_SECONDS:g} s",
        )
        if not self._stop.wait(OPERATOR_RETRY_SECONDS):
            self._queue.put(dropbox, file_id)

    def _reject(self, file_id: int, reason: str) -> None:
        self._forget(file_id)
        self._on_rejected(file_id, reason)

    def _base(self, record: FileRecord) -> int:
        """The journal index of the round's first part: indices run on across rounds."""
        return sum(1 for p in self._journal.parts(record.id) if p.round < record.round)

    def _prepare(self, record: FileRecord, box: DropboxConfig) -> Prepared:
        """Check and cut the file, record its parts; once per round of a file (Rejected,
        MarketoError, FileChanged)."""
        prepared = self._prepared.get(record.id)
        if prepared is not None and prepared.round == record.round:
            return prepared
        parts_dir = round_parts_dir(self._parts_root, record)
        try:
            prepared = prepare(record, box, parts_dir, self._catalog if box.preflight else None)
        except FileNotFoundError as exc:
            raise Rejected(VANISHED) from exc
        if record.state is FileState.CLAIMED:
            self._journal.transition(record.id, FileState.SUBMITTING)
        if prepared.inspection is not None:
            self._journal.record_details(record.id, details_of(prepared.inspection))
        base = self._base(record)
        known = {part.index for part in self._journal.parts(record.id)}
        for part in prepared.parts:
            if base + part.index not in known:
                self._journal.record_part(
                    record.id,
                    base + part.index,
                    first_line=part.first_line,
                    rows=part.rows,
                    size=part.bytes,
                    path=part.path,
                    round_number=record.round,
                )
        self._journal.record_local_failures(record.id, prepared.local_failures)
        self._prepared[record.id] = prepared
        return prepared

    def submit(self, file_id: int) -> None:
        """Prepare the file if needed, then create a batch for every part without one.

        Stops at a part whose list is held and puts the file back at the head of its drop
        box's turn; it goes on from there once the list frees.
        """
        record = self._journal.get(file_id)
        # The client's own events (retries, an ambiguous create) carry the file too.
        with structlog.contextvars.bound_contextvars(
            dropbox=record.dropbox, route=record.route, file=record.relative, file_id=file_id
        ):
            self._submit(record)

    def _submit(self, record: FileRecord) -> None:
        file_id = record.id
        box = self._boxes(record.dropbox)
        bound = log.bind(
            dropbox=record.dropbox, route=record.route, file=record.relative, file_id=file_id
        )
        try:
            prepared = self._prepare(record, box)
        except FileChanged:
            self._forget(file_id)
            if self._on_changed is None:
                self._on_rejected(file_id, "the file changed after it was claimed")
            else:
                self._on_changed(file_id, "in processing/ while it was checked and cut")
            return
        except Rejected as exc:
            # file_failed follows with the same reason once the file is in failed/.
            bound.debug("file_rejected", reason=exc.reason)
            self._reject(file_id, exc.reason)
            return
        except MarketoError as exc:
            self._operator_must_act(file_id, record.dropbox, exc)
            return
        base = self._base(record)
        known = {part.index - base: part for part in self._journal.parts(file_id)}
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
            self._journal.mark_submission_uncertain(file_id, base + part.index)
            try:
                batch_id = self._client.create_import(part.path, prepared.params, stop=self._stop)
            except ImportInProgress as exc:
                # Refused before or by Marketo: this attempt created nothing.
                self._journal.mark_submission_uncertain(file_id, base + part.index, False)
                bound.info(
                    "import_waits_for_list",
                    list_id=exc.list_id,
                    part=part.index,
                    held_by_us=exc.own,
                    retry_in=None if exc.own else round(exc.retry_in, 2),
                )
                self._queue.put_front(record.dropbox, file_id)
                return
            except RequestRejected as exc:
                bound.warning("import_refused", code=exc.code, message=exc.message)
                self._reject(file_id, f"Marketo refused the import: {exc}")
                return
            except MarketoError as exc:
                self._operator_must_act(file_id, record.dropbox, exc)
                return
            self._journal.record_batch(file_id, base + part.index, batch_id)
            bound.info(
                "batch_created",
                batch_id=batch_id,
                part=base + part.index,
                rows=part.rows,
                round=record.round,
            )
            self._on_submitted(file_id, batch_id, part.rows, self.name)
        # Atomic with the check that every part has a batch: one lost meanwhile is sent again.
        if not self._journal.finish_submitting(file_id):
            self._queue.put_front(record.dropbox, file_id)
            return
        self._forget(file_id)
        # A part may have finished while later parts were still being created.
        self._on_all_submitted(file_id)
