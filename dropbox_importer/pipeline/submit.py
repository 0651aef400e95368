"""Claimed file -> checked parts -> import batches: one submitter thread per instance.

Creates are where Marketo's limits bite (10 queued jobs per instance, shared with every other
integration), so one thread per instance takes files in fair turns across drop boxes and blocks
in the client until a queue slot is free. A static list takes one job at a time (1019): a file
whose list is held waits in the queue without blocking the files of other lists. Files that
could share a job wait too while our jobs fill a shallow queue, and go together when a slot
frees (coalesce.py, shared_submit.py). Everything that can fail the file before a slot is spent
(route, encoding, shape, preflight) runs here first.
"""

from __future__ import annotations

import heapq
import math
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from dropbox_importer.config import DropboxConfig
from dropbox_importer.csvfile import (
    Duplicates,
    FileRejected,
    Inspection,
    KeyColumns,
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
    AuthenticationError,
    ImportInProgress,
    MarketoError,
    RequestRejected,
    Stopped,
)
from dropbox_importer.marketo.models import ImportParams
from dropbox_importer.pipeline.cut import CutSettings, differences
from dropbox_importer.pipeline.fairness import FairQueue
from dropbox_importer.pipeline.journal import Fenced, Journal
from dropbox_importer.pipeline.poll import SpeedEstimate
from dropbox_importer.pipeline.preflight import (
    EMPTY_KEY_REASONS,
    EMPTY_LOOKUP,
    Catalog,
    PreflightError,
    check_header,
    check_targets,
    key_columns,
    mapping_fields,
)
from dropbox_importer.pipeline.prepared import save_prepared
from dropbox_importer.pipeline.reasons import (
    VANISHED,
    FileChanged,
    Rejected,
    params_for,
    route_for,
    routed,
    unreadable_reason,
)
from dropbox_importer.pipeline.records import FileRecord
from dropbox_importer.pipeline.rounds import round_parts_dir
from dropbox_importer.pipeline.shared_submit import Coalescer
from dropbox_importer.pipeline.states import FileState

log = structlog.get_logger(__name__)

# Kept importable from here: the one-shot import and older callers use these names.
__all__ = [
    "EMPTY_KEY_REASONS",
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

# How long the submitter, while nothing may go, spends cutting files that wait to share a job
# before it looks at the queue again.
PREPARE_AHEAD_SECONDS = 0.2
# How long a file waits before another try when the instance refuses our credentials.
OPERATOR_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class Cut:
    """A checked file cut into parts: the parts, rows failed locally, its mapped header."""

    params: ImportParams  # what to send: the route's, a status in Marketo's spelling
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
    settings: CutSettings  # how it was cut: recorded before its first part is sent
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
    path: Path,
    params: ImportParams,
    rules: ColumnRules,
    encoding: str,
    catalog: Catalog | None,
    keys: KeyColumns,
) -> HeaderMap | None:
    """The file's header mapped to the import kind's fields (its describe's, with a catalog).

    None if the file has no header. Raises FileRejected for a header that can't be mapped
    (ambiguous, duplicate or denied columns); RequestRejected when Marketo refuses describe.
    """
    names = read_header(path, params.format, encoding)
    if names is None:
        return None  # inspect_file says what is wrong with the file
    fields = None if catalog is None else mapping_fields(params, catalog)
    # A key column (the lookup field, email, a dedupe field) is always allowed.
    lookup = keys.names[0] if keys.names else ""
    header = map_header(names, fields, rules, lookup=lookup)
    if catalog is not None and header.of(Fate.UNKNOWN):
        # Perhaps created since describe was last asked: ask again if that was a while ago.
        header = map_header(
            names, mapping_fields(params, catalog, missing=True), rules, lookup=lookup
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

    `rules` are the route's column rules. Returns the parameters to send (a program member
    status in Marketo's spelling), the parts, the rows failed locally and the mapped header;
    Rejected says why not.
    """
    settings = CutSettings(params, box.encoding, box.max_part_bytes, box.encoding_candidates)
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
        keys = key_columns(params, catalog)
        header = map_columns(path, params, rules, settings.encoding, catalog, keys)
        inspection = inspect_file(
            path,
            params.format,
            encoding=settings.encoding,
            names=None if header is None else header.lookup_names,
            keys=keys,
            candidates=settings.candidates,
        )
        if header is not None and inspection.ignored_columns:
            header = without_padding(header, inspection.ignored_columns)
        if catalog is not None and header is not None:
            check_header(header, params, catalog)
        if catalog is not None:
            params = check_targets(params, catalog)
    except (FileRejected, PreflightError) as exc:
        raise Rejected(str(exc)) from exc
    except RequestRejected as exc:
        raise Rejected(f"Marketo refused the preflight check: {exc}") from exc
    local = dict.fromkeys(inspection.empty_lookup_lines, keys.empty)
    if local and len(local) >= inspection.rows:
        raise Rejected(f"every row has an empty {keys.every}; fill it in and drop the file again")
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
            max_bytes=settings.max_part_bytes,
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
    return Cut(
        params, parts, local, header, inspection.duplicates, inspection.lookup_field, inspection
    )


def prepare(
    record: FileRecord, box: DropboxConfig, parts_dir: Path, catalog: Catalog | None
) -> Prepared:
    """Check the claimed file and cut it into parts under Marketo's size limit.

    The cut recorded in the journal is used when there is one (a restart resumes the same
    parts, whatever the config says now), else the one the drop box's config gives now.
    FileChanged when the file is not the one the round began with (before or after the cut:
    parts cut from a file still being written would import a snapshot of it, maybe a cut row).
    """
    params, policy = route_for(record, box)
    settings = record.cut or CutSettings(
        params, box.encoding, box.max_part_bytes, box.encoding_candidates
    )
    path = Path(record.processing_path)
    try:
        try:
            cut = cut_file(path, settings, parts_dir, catalog, policy.columns)
        except Rejected:
            if file_digest(path) != (record.size, record.sha256):
                raise FileChanged(str(path)) from None  # the verdict was on other bytes
            raise
        same = file_digest(path) == (record.size, record.sha256)
    except FileNotFoundError as exc:
        raise Rejected(VANISHED) from exc
    except OSError as exc:
        raise Rejected(unreadable_reason(exc)) from exc
    if not same:
        raise FileChanged(str(path))
    # What is sent, and recorded with the cut, has Marketo's spelling of a status.
    return Prepared(
        cut.params,
        cut.parts,
        cut.local_failures,
        replace(settings, params=cut.params),
        cut.inspection,
        record.round,
    )


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

    A file whose static list is held (by a batch of ours, or by another integration's job after
    a 1019) waits without holding anything up: the submitter passes over it to the next file in
    turn and comes back when the list frees. So a file split into parts sends one part per
    batch of its list's turn, and never two jobs of one list are in Marketo's queue at once.

    A file refused for good (Marketo's 1003/1006/1008, 603 access denied, a code this client
    does not know) fails alone; refused credentials, which would refuse every file, park the
    file for a retry a minute later. Neither ever holds the thread: the next file goes at once.

    When a file's turn comes, the files waiting in its lane that may share its job go with it
    (shared_submit.py).
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
        on_submitted: Callable[[Sequence[int], int, int, str], None],
        on_rejected: Callable[[int, str], None],
        on_all_submitted: Callable[[int], None],
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        on_changed: Callable[[int, str], None] | None = None,
        speed: SpeedEstimate | None = None,
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
        self._clock = clock
        # (when to try again, dropbox, file id) of files parked until an operator acts.
        self._parked: list[tuple[float, str, int]] = []
        client.on_list_freed(queue.wake)
        self._coalescer = Coalescer(
            name,
            client,
            journal,
            queue,
            boxes=boxes,
            list_of=self._list_key,
            parts_root=parts_root,
            speed=speed or SpeedEstimate(),
            stop=stop,
            prepare=self._prepared_parts,
            reject=self._reject,
            forget=self._forget,
            park=self._operator_must_act,
            on_submitted=on_submitted,
        )
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
            file_id = self._queue.get(timeout=wait, hold=self._hold, key=self._hold_key)
            if file_id is None:
                # Nothing may go: cut the files that wait to share a job meanwhile.
                self._coalescer.prepare_ahead(PREPARE_AHEAD_SECONDS)
                continue
            try:
                self.submit(file_id)
            except (Stopped, Fenced):  # stopping, or no longer the journal's leader
                return
            except Exception:  # never let one file stop the instance's submissions
                log.exception("submit_crashed", file_id=file_id, instance=self.name)

    def _hold(self, file_id: int) -> float:
        """Seconds the file must still wait for its static list, `math.inf` while it waits for
        our jobs to leave the shallow queue (0: it may go now).

        A file that may share a job waits while our jobs fill the shallow queue, and files
        that arrive meanwhile join it. A file that cannot share (coalesce: false, a large file)
        goes as deep as Marketo's queue lets us, unless files that may share are waiting: then
        it waits too, so that a drop box whose files cannot share never takes the turns of one
        whose files wait to share.
        """
        list_id, shares = self._hold_key(file_id)
        wait = self._client.list_wait(list_id)
        if wait > 0:
            return wait
        if not self._coalescer.queue_full():
            return 0.0
        return math.inf if shares or self._coalescer.sharers_waiting() else 0.0

    def _hold_key(self, file_id: int) -> tuple[int | None, bool]:
        """What the file's hold depends on: the listId its route sets (None: no list) and
        whether it may share a job. Quick after the first look at a file."""
        return self._list_key(file_id), self._coalescer.may_share(file_id, self._found)

    def _prepared_parts(
        self, record: FileRecord, box: DropboxConfig
    ) -> tuple[ImportParams, list[Part]]:
        """Check and cut a file waiting in the queue: its parameters and parts."""
        prepared = self._prepare(record, box)
        return prepared.params, prepared.parts

    def _found(self, file_id: int) -> tuple[FileRecord, DropboxConfig] | None:
        """The file's record and drop box (None when it is gone: submit() says so)."""
        try:
            record = self._journal.get(file_id)
            return record, self._boxes(record.dropbox)
        except KeyError:
            return None

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
        self._coalescer.forget(file_id)

    def _operator_must_act(self, file_id: int, dropbox: str, exc: MarketoError) -> None:
        """Credentials refused: not the partner's fault, and every file would meet it.

        The file waits in processing/ and is tried again a minute later; the thread goes on
        with the next file. The log says an operator must act.
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
        self._forget(file_id)
        heapq.heappush(self._parked, (self._clock() + OPERATOR_RETRY_SECONDS, dropbox, file_id))

    def _refuse(self, file_id: int, exc: MarketoError) -> None:
        """Marketo refused this file for good: it fails alone, with Marketo's code and message."""
        log.warning(
            "import_refused", instance=self.name, file_id=file_id, code=exc.code,
            message=exc.message,
        )  # fmt: skip
        if isinstance(exc, RequestRejected):
            self._reject(file_id, f"Marketo refused the import: {exc}")
        else:  # 603, a code nobody documents
            self._reject(file_id, refused(exc))

    def _reject(self, file_id: int, reason: str) -> None:
        """Fail the file; when batches of it exist already, once they have finished."""
        self._forget(file_id)
        parts = self._journal.parts(file_id)
        created = [p.batch_id for p in parts if p.batch_id is not None]
        if created:
            # Those parts import whatever we do: the file settles with them, failed.
            self._journal.record_reason(file_id, reason)
            record = self._journal.get(file_id)
            if record.state is not FileState.POLLING:
                self._journal.transition(file_id, FileState.POLLING, "refused part way")
            log.info("file_rejected_part_way", dropbox=record.dropbox, route=record.route,
                     file=record.relative, file_id=file_id, reason=reason,
                     waiting_for=created)  # fmt: skip
            self._on_all_submitted(file_id)
            return
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
        prepared = prepare(record, box, parts_dir, self._catalog if box.preflight else None)
        base = self._base(record)
        recorded = [p for p in self._journal.parts(record.id) if p.round == record.round]
        # Once a create may have reached Marketo, the parts are fixed: a different cut would
        # send rows twice or never.
        started = any(p.batch_id is not None or p.submission_uncertain for p in recorded)
        if started and (changed := differences(recorded, prepared.parts)) is not None:
            raise Rejected(
                f"the file can no longer be cut as it was when it was first sent ({changed}); "
                "the parts already sent are listed in this result; drop the rest again"
            )
        if record.cut is None or not started:
            self._journal.record_cut(
                record.id,
                prepared.settings,
                [(base + p.index, p.first_line, p.rows, p.bytes, p.path) for p in prepared.parts],
                round_number=record.round,
            )
        else:
            for part in prepared.parts:  # the same cut again: the new parts' files
                self._journal.record_part(
                    record.id,
                    base + part.index,
                    first_line=part.first_line,
                    rows=part.rows,
                    size=part.bytes,
                    path=part.path,
                    round_number=record.round,
                )
        if prepared.inspection is not None:
            self._journal.record_details(record.id, details_of(prepared.inspection))
        if record.state is FileState.CLAIMED:
            self._journal.transition(record.id, FileState.SUBMITTING)
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
        if record.reason is not None and record.state is not FileState.CLAIMED:
            # Refused part way already (a lost batch brought it back): no part is sent again.
            self._reject(file_id, record.reason)
            return
        try:
            prepared = self._prepare(record, box)
        except FileChanged:
            self._forget(file_id)
            if self._on_changed is None:
                self._reject(file_id, "the file changed after it was claimed")
            else:
                self._on_changed(file_id, "in processing/ while it was checked and cut")
            return
        except Rejected as exc:
            # file_failed follows with the same reason once the file is in failed/.
            bound.debug("file_rejected", reason=exc.reason)
            self._reject(file_id, exc.reason)
            return
        except AuthenticationError as exc:
            self._operator_must_act(file_id, record.dropbox, exc)
            return
        except MarketoError as exc:
            self._refuse(file_id, exc)
            return
        base = self._base(record)
        known = {part.index - base: part for part in self._journal.parts(file_id)}
        if all(p.batch_id is None for p in known.values() if p.round == record.round):
            member = self._coalescer.member(record, box, prepared.params, prepared.parts, base)
            if member is not None and self._coalescer.send_together(member, record, box):
                return
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
                    part=base + part.index,
                    held_by_us=exc.own,
                    retry_in=None if exc.own else round(exc.retry_in, 2),
                )
                self._queue.put_front(record.dropbox, file_id)
                return
            except AuthenticationError as exc:
                self._journal.mark_submission_uncertain(file_id, base + part.index, False)
                self._operator_must_act(file_id, record.dropbox, exc)
                return
            except MarketoError as exc:
                # Refused: this attempt created nothing.
                self._journal.mark_submission_uncertain(file_id, base + part.index, False)
                self._refuse(file_id, exc)
                return
            self._journal.record_batch(file_id, base + part.index, batch_id)
            bound.info(
                "batch_created",
                batch_id=batch_id,
                part=base + part.index,
                rows=part.rows,
                kind=prepared.params.kind.value,
                round=record.round,
            )
            self._on_submitted([file_id], batch_id, part.rows, self.name)
        # Atomic with the check that every part has a batch: one lost meanwhile is sent again.
        if not self._journal.finish_submitting(file_id):
            self._queue.put_front(record.dropbox, file_id)
            return
        self._forget(file_id)
        # A part may have finished while later parts were still being created.
        self._on_all_submitted(file_id)
