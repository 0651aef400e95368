"""The daemon: watch -> claim -> submit -> poll -> settle, told in one loop.

Threads: one observer per drop box (watchdog), one submitter and one poller per Marketo
instance, one settler pool; the main thread owns readiness, claiming, recovery, signals and
systemd notifications. State lives in the journal, never only in memory: a restart (or a kill -9)
continues where the last run stopped.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import structlog

from dropbox_importer import logs, systemd
from dropbox_importer.config import Config, ConfigError, DropboxConfig, InstanceConfig, load_config
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.health import HealthSnapshot
from dropbox_importer.marketo.models import BatchStatus
from dropbox_importer.observe.hub import Observers
from dropbox_importer.pipeline.boxes import Box, open_box
from dropbox_importer.pipeline.claim import Claimer
from dropbox_importer.pipeline.fairness import FairQueue
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.lock import StateDirLock
from dropbox_importer.pipeline.lost import handle_lost_batch
from dropbox_importer.pipeline.poll import PollBand, Poller
from dropbox_importer.pipeline.preflight import Catalog
from dropbox_importer.pipeline.reasons import FileChanged, Rejected, params_for
from dropbox_importer.pipeline.records import FileRecord, PartRecord
from dropbox_importer.pipeline.recover import recover
from dropbox_importer.pipeline.reload import ReloadPlan, plan_reload
from dropbox_importer.pipeline.rounds import Rounds
from dropbox_importer.pipeline.runlog import Pending, RunLog
from dropbox_importer.pipeline.settle import Settler
from dropbox_importer.pipeline.states import FileState
from dropbox_importer.pipeline.submit import Submitter
from dropbox_importer.pipeline.watch import scan_inbox
from dropbox_importer.sandbox import Sandbox, SandboxSettings

log = structlog.get_logger(__name__)

__all__ = ["Box", "Daemon", "Instance", "embedded_sandbox_settings", "run"]

TICK_SECONDS = 0.1
STOP_DEADLINE_SECONDS = 8.0
SETTLE_RETRY_FIRST_SECONDS = 1.0
SETTLE_RETRY_MAX_SECONDS = 300.0


@dataclass
class Instance:
    """One Marketo instance at run time: its client, queue, submitter and poller."""

    config: InstanceConfig
    client: MarketoClient
    queue: FairQueue[int]
    poller: Poller
    submitter: Submitter
    sandbox: Sandbox | None = None


class Daemon:
    """Runs every drop box of a config until SIGTERM."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.reload_requested = threading.Event()
        self.instances: dict[str, Instance] = {}
        self.boxes: dict[str, Box] = {}
        self.journal: Journal | None = None
        self.settler: Settler | None = None
        self.claimer: Claimer | None = None
        self.rounds: Rounds | None = None
        self._settle_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="settle")
        self._batch_files: dict[int, int] = {}  # batch id -> file id, for the poller's callbacks
        # file id -> the round handed to the settler: each round settles once (a file written
        # to after it settled is imported, and settles, again in a later round).
        self._settling: dict[int, int] = {}
        self.observers: Observers | None = None
        # file id -> (when to try settling again, how many tries failed, the rejection)
        self._settle_retries: dict[
            int, tuple[float, int, str | None]
        ] = {}  # file ids handed to the settler, never twice
        self._lock = threading.Lock()
        self.runlog: RunLog | None = None
        # A reload's drop box changes held back until the box is idle: the file's config they
        # come from, and per drop box why it waits and since when (UTC, for status).
        self._target: Config | None = None
        self._held: dict[str, Pending] = {}
        self._next_held_check = 0.0

    # -- start and stop -------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; return the process exit code."""
        lock = StateDirLock(self.config.state_dir)
        lock.acquire()
        try:
            self.journal = Journal.open(self.config.state_dir)
            self.runlog = RunLog(self.journal)
            self.runlog.started(str(self.config.path), _config_sha256(self.config))
            self.observers = Observers(lambda: self.config, self.journal)
            self.observers.start()
            self._install_signals()
            self._start_instances()
            self.settler = Settler(
                self.journal,
                parts_root=self.parts_root,
                boxes=self._box_config,
                layouts=lambda name: self.boxes[name].layout,
                clients=self._client_for,
            )
            self.claimer = Claimer(self.journal, self._enqueue, self.runlog)
            self.rounds = Rounds(
                self.journal,
                boxes=self.boxes.get,
                requeue=self._enqueue,
                settle=self._hand_to_settler,
            )
            self._start_boxes()
            self.runlog.running_dropboxes(list(self.boxes))
            self._recover()
            log.info("daemon_ready", dropboxes=sorted(self.boxes), instances=sorted(self.instances))
            systemd.ready(self._status_line())
            self._loop()
        finally:
            self._shutdown()
            lock.release()
        return 0

    @property
    def parts_root(self) -> Path:
        """Where the parts of split or converted files are kept until they settle."""
        return self.config.state_dir / "parts"

    def _install_signals(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("daemon_stopping", signal=signal.Signals(signum).name)
            self.stop_event.set()

        def on_reload(_signum: int, _frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)

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
            client = MarketoClient(settings)
            assert self.observers is not None
            self.observers.instance_started(name, client)
            queue: FairQueue[int] = FairQueue()
            band = PollBand(instance_config.poll_min_seconds, instance_config.poll_max_seconds)
            poller = Poller(
                name,
                functools.partial(self._batch_status, client),
                self._on_batch_final,
                band=band,
                on_error=self._on_poll_error,
                on_progress=self._on_batch_progress,
            )
            submitter = Submitter(
                name,
                client,
                self.journal,
                queue,
                boxes=self._box_config,
                parts_root=self.parts_root,
                catalog=Catalog(client),
                on_submitted=self._on_submitted,
                on_rejected=self._on_rejected,
                on_all_submitted=self._settle_if_finished,
                stop=self.stop_event,
                on_changed=self._on_changed,
            )
            self.instances[name] = Instance(
                instance_config, client, queue, poller, submitter, sandbox
            )
            poller.start()
            submitter.start()

    def _start_boxes(self) -> None:
        assert self.observers is not None
        for name, box_config in self.config.dropboxes.items():
            self.boxes[name] = open_box(box_config)
            self.boxes[name].watcher.start()
            self.observers.dropbox_started(name, functools.partial(self._waiting, name))

    def _shutdown(self) -> None:
        systemd.stopping()
        self.stop_event.set()  # also when the loop or the start-up ended by an exception
        deadline = time.monotonic() + STOP_DEADLINE_SECONDS
        for box in self.boxes.values():
            box.watcher.stop()
        for instance in self.instances.values():
            instance.queue.close()
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
        self._settle_pool.shutdown(wait=True, cancel_futures=True)
        for instance in self.instances.values():
            if instance.sandbox is not None:
                instance.sandbox.__exit__(None, None, None)
        if self.observers is not None:
            self.observers.stop()
        if self.runlog is not None:
            with contextlib.suppress(Exception):  # a full disk must not hide the real error
                self.runlog.write_health(self._health(), force=True)
                self.runlog.stopped()
        if self.journal is not None:
            self.journal.close()
        log.info("daemon_stopped")

    # -- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        assert self.claimer is not None
        interval = systemd.watchdog_interval()
        next_ping = 0.0
        next_status = 0.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            for box in list(self.boxes.values()):
                if now >= box.next_rescan:
                    box.tracker.note_all(scan_inbox(box.layout.inbox))
                    box.next_rescan = now + box.config.rescan_seconds
                for candidate in box.tracker.due(now):
                    if self.stop_event.is_set():
                        break
                    self.claimer.take(box, candidate)
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._reload()
            self._apply_held(now)
            self._retry_settles(now)
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

    def _retry_settles(self, now: float) -> None:
        with self._lock:
            due = [(f, r) for f, (at, _, r) in self._settle_retries.items() if at <= now]
            for file_id, _ in due:
                _, tries, rejection = self._settle_retries[file_id]
                # Parked until this try ends; _settle sets the next time if it fails again.
                self._settle_retries[file_id] = (float("inf"), tries, rejection)
        for file_id, rejection in due:
            self._hand_to_settler(file_id, rejection)

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
        return (
            f"{waiting} waiting, {in_flight} in flight, "
            f"{counts.get(FileState.DONE, 0)} done, {counts.get(FileState.FAILED, 0)} failed"
        )

    # -- claim ----------------------------------------------------------------------------

    def _enqueue(self, dropbox: str, file_id: int) -> None:
        """Queue a claimed file for the submitter of its drop box's instance."""
        self.instances[self.config.dropboxes[dropbox].instance].queue.put(dropbox, file_id)

    # -- callbacks from the submitter and the poller -------------------------------------

    def _on_submitted(self, file_id: int, batch_id: int, rows: int, instance: str) -> None:
        with self._lock:
            self._batch_files[batch_id] = file_id
        if self.observers is not None:
            self.observers.batch_created(instance)
        self.instances[instance].poller.follow(batch_id, rows)

    def _on_rejected(self, file_id: int, reason: str) -> None:
        self._hand_to_settler(file_id, reason)

    def _on_changed(self, file_id: int, where: str) -> None:
        """The file was written to after its claim: wait for its writer, then a new round."""
        assert self.rounds is not None
        self.rounds.changed(file_id, where)

    def _hand_to_settler(self, file_id: int, rejection: str | None) -> None:
        assert self.journal is not None
        current = self.journal.get(file_id).round
        with self._lock:
            if self._settling.get(file_id) == current:
                return
            self._settling[file_id] = current
        self._settle_pool.submit(self._settle, file_id, rejection)

    def _on_batch_final(self, status: BatchStatus) -> None:
        assert self.journal is not None
        with self._lock:
            file_id = self._batch_files.get(status.batch_id)
        if file_id is None:
            return
        context = self._file_context(status.batch_id)
        # Forgotten only once recorded: if recording fails, the poller asks again later.
        self.journal.record_batch_status(file_id, status)
        with self._lock:
            self._batch_files.pop(status.batch_id, None)
        if self.observers is not None:
            self.observers.batch_finished(self._record_instance(file_id), status.status.value)
        log.info(
            "batch_finished",
            **context,
            status=status.status.value,
            leads=status.leads_processed,
            failed=status.rows_failed,
            warnings=status.rows_with_warning,
        )
        self._settle_if_finished(file_id)

    def _batch_status(self, client: MarketoClient, batch_id: int) -> BatchStatus:
        """Ask Marketo about a batch; the client's events name the batch's file."""
        with structlog.contextvars.bound_contextvars(**self._file_context(batch_id)):
            return client.batch_status(batch_id, stop=self.stop_event)

    def _file_context(self, batch_id: int) -> dict[str, object]:
        """dropbox, route, file, file_id and batch_id of a batch, for its log events."""
        assert self.journal is not None
        with self._lock:
            file_id = self._batch_files.get(batch_id)
        if file_id is None:
            return {"batch_id": batch_id}
        try:
            record = self.journal.get(file_id)
        except Exception:  # a log line must not fail for want of its context
            return {"batch_id": batch_id, "file_id": file_id}
        return {
            "dropbox": record.dropbox,
            "route": record.route,
            "file": record.relative,
            "file_id": file_id,
            "batch_id": batch_id,
        }

    def _on_batch_progress(self, status: BatchStatus) -> None:
        """Marketo's answer about a batch still queued or importing: rows so far, for status."""
        assert self.journal is not None
        with self._lock:
            file_id = self._batch_files.get(status.batch_id)
        if file_id is not None:
            self.journal.record_batch_status(file_id, status)

    def _on_poll_error(self, batch_id: int, exc: Exception) -> None:
        """Marketo no longer knows the batch (expired, lost, or an embedded sandbox restarted),
        as a second status call confirmed: its part is sent once more, or, lost twice, fails."""
        assert self.journal is not None
        with self._lock:
            file_id = self._batch_files.get(batch_id)
        log.error("batch_lost", **self._file_context(batch_id), error=str(exc))
        if file_id is None:
            return
        requeue = handle_lost_batch(self.journal, file_id, batch_id)
        with self._lock:
            self._batch_files.pop(batch_id, None)
        if self.observers is not None:
            self.observers.batch_finished(self._record_instance(file_id), "Lost")
        if requeue:
            self._enqueue(self.journal.get(file_id).dropbox, file_id)
        else:
            # A failed part like any other: the file settles once every part is final, never
            # while its submitter may still be working on it.
            self._settle_if_finished(file_id)

    def _settle_if_finished(self, file_id: int) -> None:
        assert self.journal is not None
        record = self.journal.get(file_id)
        # This round's parts: an earlier round's were all final (or never sent) when it began.
        parts = [p for p in self.journal.parts(file_id) if p.round == record.round]
        if record.state is FileState.POLLING and all(p.final for p in parts):
            self._hand_to_settler(file_id, None)

    def _settle(self, file_id: int, rejection: str | None) -> None:
        assert self.settler is not None and self.journal is not None
        try:
            self.settler.settle(file_id, rejection)
        except FileChanged:
            with self._lock:
                self._settling.pop(file_id, None)
                self._settle_retries.pop(file_id, None)
            self._on_changed(file_id, "in processing/ before it settled")
            return
        except Exception as exc:
            # A read-only or full done/, a download that failed: the file waits in
            # processing/ (or SETTLING, its destination recorded) and is tried again.
            with self._lock:
                self._settling.pop(file_id, None)
                tries = self._settle_retries.get(file_id, (0.0, 0, None))[1] + 1
                delay = min(SETTLE_RETRY_FIRST_SECONDS * 2 ** (tries - 1), SETTLE_RETRY_MAX_SECONDS)
                self._settle_retries[file_id] = (time.monotonic() + delay, tries, rejection)
            try:
                record = self.journal.get(file_id)
                where = {"dropbox": record.dropbox, "route": record.route, "file": record.relative}
            except Exception:  # the journal itself may be what fails (a full disk)
                where = {}
            log.error(
                "settle_failed",
                **where,
                file_id=file_id,
                error=str(exc),
                retry_in_seconds=delay,
                tries=tries,
            )
            with contextlib.suppress(Exception):  # a journal that fails too is logged above
                self.journal.set_note(
                    file_id,
                    f"cannot be settled yet ({exc}); tried {tries} time(s), next in {delay:g} s",
                )
            return
        with self._lock:
            self._settle_retries.pop(file_id, None)
        record = self.journal.get(file_id)
        if self.rounds is not None:
            self.rounds.settled(record)
        if self.observers is not None:
            self.observers.file_settled(record)

    # -- recovery and reload --------------------------------------------------------------

    def _recover(self) -> None:
        """Resume every file the journal says is unfinished; adopt files it never saw."""
        assert self.journal is not None and self.claimer is not None
        recover(
            self.journal,
            self.boxes,
            follow=self._follow_again,
            enqueue=self._enqueue,
            settle=lambda file_id: self._hand_to_settler(file_id, None),
            settle_if_finished=self._settle_if_finished,
            adopt=functools.partial(self.claimer.register, adopted=True),
        )
        if self.rounds is not None:
            watch = max((b.config.settled_watch_seconds for b in self.boxes.values()), default=0)
            self.rounds.recover(watch)

    def _follow_again(self, record: FileRecord, part: PartRecord) -> None:
        """Poll a batch created by an earlier run (its status is asked for at once)."""
        assert part.batch_id is not None
        box = self.boxes[record.dropbox].config
        instance = self.instances[box.instance]
        try:
            list_id = params_for(record, box).list_id
        except Rejected:
            list_id = None
        instance.client.adopt_batch(part.batch_id, list_id)
        if self.observers is not None:
            self.observers.batch_created(instance.config.name)
        with self._lock:
            self._batch_files[part.batch_id] = record.id
        instance.poller.follow(part.batch_id, part.rows, first_delay=0)

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
        """Run on `config`: stop and (re)start the drop boxes named."""
        for name in stop:
            self.boxes.pop(name).watcher.stop()
        self.config = config
        for name in start:
            self.boxes[name] = open_box(config.dropboxes[name])
            self.boxes[name].watcher.start()
            if self.observers is not None:
                self.observers.dropbox_started(name, functools.partial(self._waiting, name))

    def _record_reload(self, new: Config, plan: ReloadPlan) -> None:
        """Log what the reload did, and tell the journal (for status)."""
        log.info(
            "config_reloaded",
            dropboxes=sorted(self.boxes),
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
        if self.runlog is not None:
            self.runlog.config_applied(_config_sha256(new))
            if plan.refused:
                self.runlog.reload_refused(
                    f"{', '.join(plan.refused)} need a restart (everything else was applied)"
                )
            self.runlog.set_pending(list(self._held.values()))
            self.runlog.running_dropboxes(list(self.boxes))

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

    def _record_instance(self, file_id: int) -> str:
        assert self.journal is not None
        return self.config.dropboxes[self.journal.get(file_id).dropbox].instance


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
