"""The daemon: watch -> claim -> submit -> poll -> settle, told in one loop.

Threads: one observer per drop box (watchdog), one submitter and one poller per Marketo
instance, small worker pools that record claims and settle files; the main thread owns
readiness, claiming, recovery, reloads and systemd notifications, and never reads a whole
file. State lives in the journal, never only in memory: a restart (or a kill -9) continues
where the last run stopped.

Faults stay local: a folder or a drop box the daemon cannot read, write or create is reported
(`pipeline.problems`) and skipped, and tried again at the drop box's next rescan; the daemon
serves everything else meanwhile.

Signals only set a flag (a handler that logged could deadlock on the logger's lock held by the
code it interrupted); the loop sees the flag within a tick and stops, within 10 s.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import structlog

from dropbox_importer import logs, systemd
from dropbox_importer.config import Config, ConfigError, DropboxConfig, InstanceConfig, load_config
from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.health import HealthSnapshot
from dropbox_importer.marketo.models import BatchStatus, ImportParams
from dropbox_importer.observe.hub import Observers
from dropbox_importer.pipeline.boxes import Box, open_box
from dropbox_importer.pipeline.claim import Claimer
from dropbox_importer.pipeline.cut import recorded_cut
from dropbox_importer.pipeline.engine import leadership_for, open_journal
from dropbox_importer.pipeline.fairness import FairQueue
from dropbox_importer.pipeline.journal import Journal, JournalUnreachable
from dropbox_importer.pipeline.leadership import (
    EXIT_STOOD_DOWN,
    Leadership,
    LeadershipLost,
    NoLeadership,
)
from dropbox_importer.pipeline.lock import StateDirLock
from dropbox_importer.pipeline.lost import handle_lost_batch
from dropbox_importer.pipeline.poll import PollBand, Poller
from dropbox_importer.pipeline.preflight import Catalog
from dropbox_importer.pipeline.problems import Problem, Problems, explain
from dropbox_importer.pipeline.reasons import Rejected
from dropbox_importer.pipeline.records import FileRecord, PartRecord
from dropbox_importer.pipeline.recover import adopt_strays, recover
from dropbox_importer.pipeline.reload import ReloadPlan, plan_reload
from dropbox_importer.pipeline.rounds import Rounds
from dropbox_importer.pipeline.runlog import Pending, RunLog
from dropbox_importer.pipeline.settle import Settler
from dropbox_importer.pipeline.settling import SettleQueue
from dropbox_importer.pipeline.shared_batch import sweep_jobs
from dropbox_importer.pipeline.states import FileState
from dropbox_importer.pipeline.submit import Submitter
from dropbox_importer.pipeline.watch import scan_inbox
from dropbox_importer.sandbox import Sandbox, SandboxSettings
from dropbox_importer.threads import Workers, log_thread_crashes

log = structlog.get_logger(__name__)

__all__ = ["Box", "Daemon", "Instance", "embedded_sandbox_settings", "run"]

TICK_SECONDS = 0.1
STOP_DEADLINE_SECONDS = 8.0
EXIT_THREAD_CRASHED = 1
JOURNAL_RETRY_MAX_SECONDS = 30.0


@dataclass
class Instance:
    """One Marketo instance at run time: its client, queue, submitter and poller."""

    config: InstanceConfig
    client: MarketoClient
    queue: FairQueue[int]
    poller: Poller
    submitter: Submitter
    catalog: Catalog  # what preflight checks against; settle's cuts of shared parts too
    sandbox: Sandbox | None = None


@dataclass
class DownBox:
    """A drop box whose root could not be opened or created: tried again at `next_try`."""

    config: DropboxConfig
    next_try: float


class Daemon:
    """Runs every drop box of a config until SIGTERM."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop_event = threading.Event()  # what the other threads watch
        self._stop_signal: int | None = None  # set by the signal handler, and nothing else
        self._reload_signal = False
        self._crashed: str | None = None
        self.instances: dict[str, Instance] = {}
        self.boxes: dict[str, Box] = {}
        self.down: dict[str, DownBox] = {}
        self.journal: Journal | None = None
        self.problems = Problems(
            config.state_dir, found=self._problem_found, gone=self._problem_gone
        )
        self.claimer: Claimer | None = None
        self.rounds: Rounds | None = None
        self.settling: SettleQueue | None = None
        self._register_workers = Workers("register", 4)
        self._settle_workers = Workers("settle", 2)
        # batch id -> its files (several when they share it), for the poller's callbacks
        # By (instance, batch_id): batch ids are Marketo's, one sequence per instance.
        self._batch_files: dict[tuple[str, int], list[int]] = {}
        self.observers: Observers | None = None
        self._lock = threading.Lock()
        self.runlog: RunLog | None = None
        # A reload's drop box changes held back until the box is idle: the file's config they
        # come from, and per drop box why it waits and since when (UTC, for status).
        self._target: Config | None = None
        self._held: dict[str, Pending] = {}
        self._next_held_check = 0.0
        self.leadership: Leadership = NoLeadership()
        self._stood_down: str | None = None
        self._told_ready = False
        self._next_standby_note = 0.0

    # -- start and stop -------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; return the process exit code.

        On a shared journal the daemon first stands by until it leads; a leader that loses
        its leadership stops and returns EXIT_STOOD_DOWN.
        """
        lock = StateDirLock(self.config.state_dir)
        lock.acquire()
        try:
            self._install_signals()
            log_thread_crashes(self._thread_crashed)
            journal = self._open_journal()
            if journal is None:
                return 0  # stopped while waiting for the journal's database
            self.journal = journal
            self.leadership = leadership_for(self.config, journal, on_lost=self._stand_down)
            self.observers = Observers(lambda: self.config, self.journal)
            self.observers.leadership_started(
                self.config.state.host_name,
                lambda: self.leadership.leading,
                self.config.state.lease_seconds,
            )
            self.observers.start()
            if not self.leadership.wait_to_lead(self.stop_event, self._standing_by):
                return 0  # stopped while standing by
            # The run is recorded once this daemon leads: a standby's would replace the
            # leader's in the shared journal.
            self.runlog = RunLog(self.journal)
            self.runlog.started(str(self.config.path), _config_sha256(self.config))
            # Before any submitter runs: folders of shared jobs that are over, or never made.
            sweep_jobs(self.journal, self.parts_root)
            self.problems.publish()
            self._start_instances()
            settler = Settler(
                self.journal,
                parts_root=self.parts_root,
                boxes=self._box_config,
                layouts=lambda name: DropboxLayout(self.config.dropboxes[name].root),
                clients=self._client_for,
                guard=self.leadership.guard,
                catalogs=self._catalog_for,
            )
            self.settling = SettleQueue(
                settler,
                self.journal,
                self._settle_workers,
                problems=self.problems,
                settled=self._settled,
                on_changed=self._on_changed,
            )
            self.claimer = Claimer(
                self.journal,
                self._enqueue,
                reject=self._on_rejected,
                problems=self.problems,
                workers=self._register_workers,
                guard=self.leadership.guard,
            )
            settling = self.settling
            self.rounds = Rounds(
                self.journal,
                boxes=self.boxes.get,
                requeue=self._enqueue,
                settle=settling.hand,
            )
            now = time.monotonic()
            for box_config in self.config.dropboxes.values():
                self._open_box(box_config, now)
            self.runlog.running_dropboxes(list(self.boxes))
            self._recover(self.boxes)
            watch = max((b.config.settled_watch_seconds for b in self.boxes.values()), default=0)
            self.rounds.recover(watch)
            log.info("daemon_ready", dropboxes=sorted(self.boxes), instances=sorted(self.instances))
            systemd.ready(self._status_line())
            self._loop()
        except LeadershipLost:
            pass  # lost during start-up or recovery: stood down below, as in the loop
        finally:
            self._shutdown()
            lock.release()
        if self._stood_down is not None:
            log.error(
                "daemon_stood_down", host=self.config.state.host_name, reason=self._stood_down
            )
            return EXIT_STOOD_DOWN
        return EXIT_THREAD_CRASHED if self._crashed is not None else 0

    def _open_journal(self) -> Journal | None:
        """The journal; a shared one's database is waited for while it cannot be reached.

        A host that boots while the database is down stays up and keeps trying, as a standby
        would, rather than exhausting systemd's restarts. None when stopped meanwhile.
        """
        delay = 1.0
        while True:
            try:
                return open_journal(self.config)
            except JournalUnreachable as exc:
                log.warning("journal_unreachable", error=str(exc), retry_in_seconds=delay)
                self._standing_by("waiting for the journal's database")
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if self._stopping_now() or self.stop_event.wait(TICK_SECONDS):
                    return None
            delay = min(delay * 2, JOURNAL_RETRY_MAX_SECONDS)

    def _stand_down(self, reason: str) -> None:
        """Leadership is lost: stop at once; nothing may move or reach Marketo any more."""
        self._stood_down = reason
        self.stop_event.set()

    def _stopping_now(self) -> bool:
        """Before leading: a stop signal ends the waits (the loop is not running to see it)."""
        if self._stop_signal is not None and not self.stop_event.is_set():
            log.info("daemon_stopping", signal=signal.Signals(self._stop_signal).name)
            self.stop_event.set()
        return self.stop_event.is_set()

    def _standing_by(self, line: str) -> None:
        """Called at every poll while standing by: tell systemd, keep its watchdog fed."""
        if self._stopping_now():
            return
        if not self._told_ready:
            systemd.ready(line)
            self._told_ready = True
        now = time.monotonic()
        if now >= self._next_standby_note:
            systemd.status(line)
            systemd.watchdog_ping()
            self._next_standby_note = now + 2.0

    @property
    def parts_root(self) -> Path:
        """Where the parts of split or converted files are kept until they settle."""
        return self.config.state_dir / "parts"

    def _install_signals(self) -> None:
        # Only plain assignments: no lock, no log, no I/O. A handler runs between two bytecodes
        # of whatever the main thread was doing, which may hold the very lock it would need.
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self._stop_signal = signum

        def on_reload(_signum: int, _frame: FrameType | None) -> None:
            self._reload_signal = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)

    def _thread_crashed(self, name: str) -> None:
        """A thread died of a bug: stop, so that systemd restarts a whole daemon."""
        self._crashed = name
        self.stop_event.set()

    def _start_instances(self) -> None:
        assert self.journal is not None
        for name, instance_config in self.config.instances.items():
            sandbox = None
            if instance_config.base_url == "embedded":
                # Its leads and batches live in state_dir, as Marketo's outlive a restart.
                state_file = self.config.state_dir / "sandbox" / f"{name}.json"
                sandbox = Sandbox(
                    embedded_sandbox_settings(instance_config), state_file=state_file
                ).__enter__()
                settings = instance_config.settings(
                    base_url=sandbox.base_url,
                    client_id=sandbox.settings.client_id,
                    client_secret=sandbox.settings.client_secret,
                )
                log.info("embedded_sandbox_started", instance=name, base_url=sandbox.base_url)
            else:
                settings = instance_config.settings()
            client = MarketoClient(settings, guard=self.leadership.guard)
            assert self.observers is not None
            self.observers.instance_started(name, client)
            queue: FairQueue[int] = FairQueue()
            band = PollBand(instance_config.poll_min_seconds, instance_config.poll_max_seconds)
            poller = Poller(
                name,
                functools.partial(self._batch_status, name, client),
                functools.partial(self._on_batch_final, name),
                band=band,
                on_error=functools.partial(self._on_poll_error, name),
                on_progress=functools.partial(self._on_batch_progress, name),
            )
            catalog = Catalog(client)
            submitter = Submitter(
                name,
                client,
                self.journal,
                queue,
                boxes=self._box_config,
                parts_root=self.parts_root,
                catalog=catalog,
                on_submitted=self._on_submitted,
                on_rejected=self._on_rejected,
                on_all_submitted=self._settle_if_finished,
                stop=self.stop_event,
                on_changed=self._on_changed,
                speed=poller.speed,
            )
            self.instances[name] = Instance(
                instance_config, client, queue, poller, submitter, catalog, sandbox
            )
            poller.start()
            submitter.start()

    def _open_box(self, box_config: DropboxConfig, now: float) -> bool:
        """Open and watch a drop box; one that cannot be is reported and tried again later."""
        name = box_config.name
        try:
            box = open_box(box_config, on_error=functools.partial(self._unreadable, name))
        except OSError as exc:
            return self._box_down(box_config, now, exc)
        try:
            box.watcher.start()
        except OSError as exc:
            box.watcher.stop()
            return self._box_down(box_config, now, exc)
        self.down.pop(name, None)
        self.problems.resolve(name, stage="dropbox")
        self.boxes[name] = box
        if self.observers is not None:
            self.observers.dropbox_started(name, functools.partial(self._waiting, name))
        return True

    def _box_down(self, box_config: DropboxConfig, now: float, exc: OSError) -> bool:
        reason = explain(exc, box_config.root, doing="open or create the drop box")
        self.problems.report(box_config.name, None, box_config.root, "dropbox", reason)
        self.down[box_config.name] = DownBox(box_config, now + box_config.rescan_seconds)
        return False

    def _retry_down_boxes(self, now: float) -> None:
        for name, down in list(self.down.items()):
            if now >= down.next_try and self._open_box(down.config, now):
                self._recover({name: self.boxes[name]})
                if self.runlog is not None:
                    with contextlib.suppress(Exception):
                        self.runlog.running_dropboxes(list(self.boxes))

    def _shutdown(self) -> None:
        systemd.stopping()
        self.stop_event.set()  # also when the loop or the start-up ended by an exception
        deadline = time.monotonic() + STOP_DEADLINE_SECONDS
        for box in self.boxes.values():
            box.watcher.stop(wait=False)
        for box in self.boxes.values():
            box.watcher.stop(timeout=max(deadline - time.monotonic(), 0.1))
        for instance in self.instances.values():
            instance.queue.close()
        # A claim not yet recorded is adopted from processing/ at the next start: no waiting.
        self._register_workers.stop(min(deadline, time.monotonic() + 1.0))
        # A create already on the wire finishes (its batch id gets recorded); waits for a
        # queue slot or a back-off end at once with Stopped.
        for instance in self.instances.values():
            instance.submitter.join(timeout=max(deadline - time.monotonic(), 0.1))
        # Closing the clients ends every other wait (a quota pause, a back-off, a download of
        # a settle in hand); what is left undone is in the journal for the next start.
        for instance in self.instances.values():
            instance.client.close()
        for instance in self.instances.values():
            instance.poller.stop(timeout=max(deadline - time.monotonic(), 0.1))
        self._settle_workers.stop(deadline)
        for instance in self.instances.values():
            if instance.sandbox is not None:
                instance.sandbox.__exit__(None, None, None)
        if self.observers is not None:
            self.observers.stop()
        if self.runlog is not None:
            with contextlib.suppress(Exception):  # a full disk must not hide the real error
                self.runlog.write_health(self._health(), force=True)
                self.runlog.stopped()
        # Let leadership go only now that nothing runs: a standby may take over from here.
        self.leadership.close()
        if self.journal is not None:
            self.journal.close()
        log.info("daemon_stopped")

    # -- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        assert self.claimer is not None and self.settling is not None
        interval = systemd.watchdog_interval()
        next_ping = 0.0
        next_status = 0.0
        while not self.stop_event.is_set():
            if self._stop_signal is not None:
                log.info("daemon_stopping", signal=signal.Signals(self._stop_signal).name)
                break
            self.leadership.guard()  # a leader that was frozen past its lease stops here
            now = time.monotonic()
            for box in list(self.boxes.values()):
                if now >= box.next_rescan:
                    self._rescan(box)
                    box.next_rescan = now + box.config.rescan_seconds
                for candidate in box.tracker.due(now, until=self._stopping):
                    if self._stopping():
                        break
                    self.claimer.take(box, candidate)
            self._retry_down_boxes(now)
            if self._reload_signal:
                self._reload_signal = False
                self._reload()
            self._apply_held(now)
            self.settling.retry_due()
            if self.rounds is not None:
                self.rounds.tick(now)
            self._keep_runlog(now)
            if self.observers is not None:
                self.observers.tick(now, {n: b.layout for n, b in self.boxes.items()})
            if interval is not None and now >= next_ping:
                systemd.watchdog_ping()
                next_ping = now + interval / 3
            if now >= next_status:
                systemd.status(self._status_line())
                next_status = now + 5
            self.stop_event.wait(TICK_SECONDS)

    def _stopping(self) -> bool:
        return self._stop_signal is not None or self.stop_event.is_set()

    def _rescan(self, box: Box) -> None:
        """Walk the inbox: note every file, report folders that cannot be read, forget the rest."""
        name = box.config.name
        blocked: set[str] = set()

        def unreadable(folder: Path, exc: OSError) -> None:
            blocked.add(str(folder))
            self._unreadable(name, folder, exc)

        found = []
        for path in scan_inbox(box.layout.inbox, unreadable):
            if self._stop_signal is not None:
                return  # a walk of a huge inbox must not hold up a stop
            found.append(path)
        box.tracker.note_all(found)
        log.debug("inbox_rescanned", dropbox=name, files=len(found), unreadable=len(blocked))
        # Readable again, or gone: served from now on.
        self.problems.resolve(name, stage="scan", keep=lambda p: p.folder in blocked)
        waiting = {str(path.parent) for path in found}
        self.problems.resolve(name, stage="claim", keep=lambda p: p.folder in waiting)
        Claimer.prune(box)
        if self.config.state.shared and self.journal is not None and self.claimer is not None:
            claimer = self.claimer
            adopt_strays(
                self.journal,
                box,
                functools.partial(claimer.register_later, adopted=True),
                skip=claimer.registering(),
            )

    def _unreadable(self, dropbox: str, folder: Path, exc: OSError) -> None:
        """A folder of the drop box's inbox cannot be read: reported once, skipped."""
        box = self.boxes.get(dropbox)
        route = ""
        if box is not None and folder.is_relative_to(box.layout.inbox):
            route = folder.relative_to(box.layout.inbox).as_posix().removeprefix(".")
        reason = explain(exc, folder, doing="read")
        self.problems.report(dropbox, route, folder, "scan", reason)

    def _problem_found(self, problem: Problem) -> None:
        """An inbox folder files cannot be claimed from: `status` shows its files blocked."""
        if problem.stage in ("scan", "claim") and self.runlog is not None:
            self.runlog.folder_blocked(problem.dropbox, problem.route or "", problem.reason)

    def _problem_gone(self, problem: Problem) -> None:
        if problem.stage in ("scan", "claim") and self.runlog is not None:
            self.runlog.folder_cleared(problem.dropbox, problem.route or "")

    def _keep_runlog(self, now: float) -> None:
        """Heartbeat and instance health into the journal, for `status` and the status page."""
        if self.runlog is None:
            return
        try:
            self.runlog.keep(now, self._health)
        except Exception as exc:  # the journal's own errors show where files move
            log.warning("runlog_write_failed", error=str(exc))

    def _health(self) -> list[HealthSnapshot]:
        return [instance.client.health_snapshot() for instance in self.instances.values()]

    def _status_line(self) -> str:
        counts = self.journal.counts() if self.journal else {}
        waiting = sum(box.tracker.waiting for box in self.boxes.values())
        in_flight = sum(
            n for state, n in counts.items() if state not in (FileState.DONE, FileState.FAILED)
        )
        problems = len(self.problems.current())
        return (
            f"{waiting} waiting, {in_flight} in flight, "
            f"{counts.get(FileState.DONE, 0)} done, {counts.get(FileState.FAILED, 0)} failed"
            + (f", {problems} problem(s): see dropbox-importer status" if problems else "")
        )

    # -- claim ----------------------------------------------------------------------------

    def _enqueue(self, dropbox: str, file_id: int) -> None:
        """Queue a claimed file for the submitter of its drop box's instance."""
        self.instances[self.config.dropboxes[dropbox].instance].queue.put(dropbox, file_id)

    # -- callbacks from the submitter and the poller -------------------------------------

    def _on_submitted(
        self, file_ids: Sequence[int], batch_id: int, rows: int, instance: str
    ) -> None:
        with self._lock:
            self._batch_files[instance, batch_id] = list(file_ids)
        if self.observers is not None:
            self.observers.batch_created(instance)
        self.instances[instance].poller.follow(batch_id, rows)

    def _on_changed(self, file_id: int, where: str) -> None:
        """The file was written to after its claim: wait for its writer, then a new round."""
        assert self.rounds is not None
        self.rounds.changed(file_id, where)

    def _on_rejected(self, file_id: int, reason: str) -> None:
        assert self.settling is not None
        self.settling.hand(file_id, reason)

    def _on_batch_final(self, instance: str, status: BatchStatus) -> None:
        assert self.journal is not None
        key = (instance, status.batch_id)
        with self._lock:
            file_ids = self._batch_files.get(key)
        if not file_ids:
            return
        context = self._file_context(instance, status.batch_id)
        # Forgotten only once recorded: if recording fails, the poller asks again later.
        self._record_status(file_ids, status)
        with self._lock:
            self._batch_files.pop(key, None)
        if self.observers is not None:
            self.observers.batch_finished(instance, status.status.value)
        log.info(
            "batch_finished",
            **context,
            status=status.status.value,
            leads=status.leads_processed,
            failed=status.rows_failed,
            warnings=status.rows_with_warning,
        )
        for file_id in file_ids:
            self._settle_if_finished(file_id)

    def _record_status(self, file_ids: Sequence[int], status: BatchStatus) -> None:
        """Record Marketo's answer about a batch: on its file's part, or, for a batch files
        shared, on the job and each member (their own counts come at their settle)."""
        assert self.journal is not None
        if len(file_ids) > 1 or self.journal.job_of_batch(status.batch_id, file_ids[0]):
            self.journal.record_job_status(status, file_ids[0])
        else:
            self.journal.record_batch_status(file_ids[0], status)

    def _batch_status(self, instance: str, client: MarketoClient, batch_id: int) -> BatchStatus:
        """Ask Marketo about a batch; the client's events name the batch's file."""
        with structlog.contextvars.bound_contextvars(**self._file_context(instance, batch_id)):
            return client.batch_status(batch_id, stop=self.stop_event)

    def _file_context(self, instance: str, batch_id: int) -> dict[str, object]:
        """dropbox, route, file, file_id and batch_id of an instance's batch, for its log
        events."""
        assert self.journal is not None
        with self._lock:
            file_ids = self._batch_files.get((instance, batch_id))
        if not file_ids:
            return {"batch_id": batch_id}
        file_id = file_ids[0]
        try:
            record = self.journal.get(file_id)
        except Exception:  # a log line must not fail for want of its context
            return {"batch_id": batch_id, "file_id": file_id}
        if len(file_ids) > 1:  # a batch files shared: its drop box and how many
            return {"dropbox": record.dropbox, "batch_id": batch_id, "files": len(file_ids)}
        return {
            "dropbox": record.dropbox,
            "route": record.route,
            "file": record.relative,
            "file_id": file_id,
            "batch_id": batch_id,
        }

    def _on_batch_progress(self, instance: str, status: BatchStatus) -> None:
        """Marketo's answer about a batch still queued or importing: rows so far, for status."""
        assert self.journal is not None
        with self._lock:
            file_ids = self._batch_files.get((instance, status.batch_id))
        if file_ids:
            self._record_status(file_ids, status)

    def _on_poll_error(self, instance: str, batch_id: int, exc: Exception) -> None:
        """Marketo no longer knows the batch (expired, lost, or an embedded sandbox restarted),
        as a second status call confirmed: its part is sent once more, or, lost twice, fails."""
        assert self.journal is not None
        key = (instance, batch_id)
        with self._lock:
            file_ids = self._batch_files.get(key)
        log.error("batch_lost", **self._file_context(instance, batch_id), error=str(exc))
        if not file_ids:
            return
        # Files that shared the batch are sent again each on its own terms (and may share a
        # job again); each counts the loss against its own part.
        requeue = {f: handle_lost_batch(self.journal, f, batch_id) for f in file_ids}
        with self._lock:
            self._batch_files.pop(key, None)
        if self.observers is not None:
            self.observers.batch_finished(instance, "Lost")
        for file_id, again in requeue.items():
            if again:
                self._enqueue(self.journal.get(file_id).dropbox, file_id)
            else:
                # A failed part like any other: the file settles once every part is final,
                # never while its submitter may still be working on it.
                self._settle_if_finished(file_id)

    def _settle_if_finished(self, file_id: int) -> None:
        """Settle a POLLING file once the batches it waits for are all final.

        A file refused part way (its reason recorded) waits only for the batches it has.
        """
        assert self.journal is not None and self.settling is not None
        record = self.journal.get(file_id)
        if record.state is not FileState.POLLING:
            return
        # This round's parts: an earlier round's were all final (or never sent) when it began.
        parts = [p for p in self.journal.parts(file_id) if p.round == record.round]
        if record.reason is not None:
            parts = [p for p in parts if p.batch_id is not None]
        if all(p.final for p in parts):
            self.settling.hand(file_id, record.reason)

    def _settled(self, record: FileRecord) -> None:
        if self.rounds is not None:
            self.rounds.settled(record)  # watched for late writes a while
        if self.observers is not None:
            self.observers.file_settled(record)

    # -- recovery and reload --------------------------------------------------------------

    def _recover(self, boxes: dict[str, Box]) -> None:
        """Resume the unfinished files of `boxes`; adopt files the journal never saw."""
        assert self.journal is not None and self.claimer is not None
        assert self.settling is not None
        settling = self.settling
        recover(
            self.journal,
            boxes,
            follow=self._follow_again,
            enqueue=self._enqueue,
            settle=lambda file_id: settling.hand(file_id, None),
            settle_if_finished=self._settle_if_finished,
            adopt=functools.partial(self.claimer.register_later, adopted=True),
            configured=set(self.config.dropboxes),
        )

    def _follow_again(self, record: FileRecord, part: PartRecord) -> None:
        """Poll a batch created by an earlier run (its status is asked for at once)."""
        assert part.batch_id is not None
        box = self.config.dropboxes[record.dropbox]
        key = (box.instance, part.batch_id)
        with self._lock:
            sharing = self._batch_files.get(key)
            if sharing is not None:  # a batch shared with a file recovered before: followed
                sharing.append(record.id)
                return
        instance = self.instances[box.instance]
        try:
            # The parameters the batch was created with, as recorded with the file's cut.
            params: ImportParams | None = recorded_cut(record, box).params
        except Rejected:
            params = None  # nothing recorded and the route no longer parses: followed as leads
        instance.client.adopt_batch(
            part.batch_id,
            None if params is None else params.list_id,
            target=None if params is None else params.target,
        )
        if self.observers is not None:
            self.observers.batch_created(instance.config.name)
        assert self.journal is not None
        job = self.journal.job_of_batch(part.batch_id, record.id)
        with self._lock:
            self._batch_files[key] = [record.id]
        rows = part.rows if job is None else job.rows
        instance.poller.follow(part.batch_id, rows, first_delay=0)

    def _reload(self) -> None:
        """Apply a changed config for drop boxes; keep the old one when the new is invalid."""
        systemd.reloading()
        try:
            self._apply(load_config(self.config.path))
        except ConfigError as exc:
            log.error("config_reload_rejected", reason=str(exc))
            if self.runlog is not None:
                self.runlog.reload_refused(str(exc))
        finally:
            systemd.ready(self._status_line())

    def _apply(self, new: Config) -> None:
        """Apply every change at once but a busy drop box's (later) and restart-only keys."""
        assert self.journal is not None
        journal = self.journal
        previous = self.config
        plan = plan_reload(previous, new, lambda name: bool(journal.unfinished(name)))
        self._switch(plan.config, plan.stop, plan.start)
        if self.observers is not None:
            self.observers.reconfigure(previous)
        if plan.config.log_level != previous.log_level:
            json = {"json": True, "console": False}.get(plan.config.log_format)
            logs.configure(json=json, level=plan.config.log_level)
        self._target = new if plan.held else None
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._held = {
            name: self._held.get(name, Pending(name, reason, stamp))
            for name, reason in plan.held.items()
        }
        self._record_reload(new, plan)

    def _switch(self, config: Config, stop: list[str], start: list[str]) -> None:
        """Run on `config`: stop and (re)start the drop boxes named.

        A root that cannot be created is reported and tried again; the others start.
        """
        was_down = set(self.down)
        for name in stop:
            if name in self.boxes:
                self.boxes.pop(name).watcher.stop()
            self.down.pop(name, None)
        self.problems.forget_dropboxes(name for name in stop if name not in config.dropboxes)
        self.config = config
        now = time.monotonic()
        for name in start:
            if self._open_box(config.dropboxes[name], now) and name in was_down:
                self._recover({name: self.boxes[name]})

    def _record_reload(self, new: Config, plan: ReloadPlan) -> None:
        """Tell the journal (for status) what the reload did, then log it.

        The journal first: whoever reads `status` on seeing the log line finds it there.
        """
        if self.runlog is not None:
            self.runlog.config_applied(_config_sha256(new))
            if plan.refused:
                self.runlog.reload_refused(
                    f"{', '.join(plan.refused)} need a restart (everything else was applied)"
                )
            self.runlog.set_pending(list(self._held.values()))
            self.runlog.running_dropboxes(list(self.boxes))
        log.info(
            "config_reloaded",
            dropboxes=sorted(self.boxes),
            unavailable=sorted(self.down),
            started=plan.start,
            stopped=sorted(set(plan.stop) - set(plan.start)),
            held=sorted(plan.held),
        )
        for name, reason in sorted(plan.held.items()):
            log.warning("config_change_held", dropbox=name, reason=reason)
        if plan.refused:
            log.warning(
                "config_reload_needs_restart",
                keys=plan.refused,
                reason="these keys keep their running value until a restart",
            )

    def _apply_held(self, now: float) -> None:
        """Apply a held drop box change once the box has no file in flight any more."""
        if not self._held or now < self._next_held_check or self._target is None:
            return
        assert self.journal is not None
        self._next_held_check = now + 1.0
        target = self._target
        for name in sorted(self._held):
            if self.journal.unfinished(name):
                continue
            pending = self._held.pop(name)
            boxes = dict(self.config.dropboxes)
            wanted = target.dropboxes.get(name)
            if wanted is None:
                boxes.pop(name, None)
            else:
                boxes[name] = wanted
            start = [] if wanted is None else [name]
            self._switch(replace(self.config, dropboxes=boxes), [name], start)
            log.info("config_change_applied", dropbox=name, held_since=pending.since)
            if self.runlog is not None:
                self.runlog.set_pending(list(self._held.values()))
                self.runlog.running_dropboxes(list(self.boxes))
        if not self._held:
            self._target = None

    # -- look-ups -------------------------------------------------------------------------

    def _waiting(self, name: str) -> int:
        box = self.boxes.get(name)
        return box.tracker.waiting if box is not None else 0

    def _box_config(self, name: str) -> DropboxConfig:
        return self.config.dropboxes[name]

    def _client_for(self, dropbox: str) -> MarketoClient:
        return self.instances[self.config.dropboxes[dropbox].instance].client

    def _catalog_for(self, dropbox: str) -> Catalog:
        return self.instances[self.config.dropboxes[dropbox].instance].catalog


def _config_sha256(config: Config) -> str:
    """The SHA-256 of the config file's bytes: `status` compares it with the file now."""
    try:
        return hashlib.sha256(config.path.read_bytes()).hexdigest()
    except OSError:
        return ""


def embedded_sandbox_settings(instance: InstanceConfig) -> SandboxSettings:
    """Settings of the in-process sandbox that `base_url: embedded` runs."""
    options = instance.sandbox
    if options is None:
        return SandboxSettings()
    return SandboxSettings(
        rows_per_second=options.rows_per_second,
        job_overhead_seconds=options.job_overhead_seconds,
        profile="strict" if options.profile == "strict" else "kind",
    )


def run(config_path: Path) -> int:
    """Load the config and run the daemon; return the exit code."""
    config = load_config(config_path)
    return Daemon(config).run()
