"""The daemon: watch -> claim -> submit -> poll -> settle, told in one loop.

Threads: one observer per drop box (watchdog), one submitter and one poller per Marketo
instance, one settler pool; the main thread owns readiness, claiming, recovery, signals and
systemd notifications. State lives in the journal, never only in memory: a restart (or a kill -9)
continues where the last run stopped.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog

from dropbox_importer import systemd
from dropbox_importer.config import Config, ConfigError, DropboxConfig, InstanceConfig, load_config
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.models import BatchState, BatchStatus
from dropbox_importer.observe.hub import Observers
from dropbox_importer.pipeline.boxes import Box, open_box
from dropbox_importer.pipeline.claim import Claimer
from dropbox_importer.pipeline.fairness import FairQueue
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.lock import StateDirLock
from dropbox_importer.pipeline.poll import PollBand, Poller
from dropbox_importer.pipeline.preflight import Catalog
from dropbox_importer.pipeline.reasons import FileChanged
from dropbox_importer.pipeline.records import FileRecord, PartRecord
from dropbox_importer.pipeline.recover import recover
from dropbox_importer.pipeline.reload import boxes_to_restart, needs_restart
from dropbox_importer.pipeline.rounds import Rounds
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

    # -- start and stop -------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; return the process exit code."""
        lock = StateDirLock(self.config.state_dir)
        lock.acquire()
        try:
            self.journal = Journal.open(self.config.state_dir)
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
            self.claimer = Claimer(self.journal, self._enqueue)
            self.rounds = Rounds(
                self.journal,
                boxes=self.boxes.get,
                requeue=self._enqueue,
                settle=self._hand_to_settler,
            )
            self._start_boxes()
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
                sandbox = Sandbox(embedded_sandbox_settings(instance_config)).__enter__()
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
                functools.partial(client.batch_status, stop=self.stop_event),
                self._on_batch_final,
                band=band,
                on_error=self._on_poll_error,
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
            self._retry_settles(now)
            if self.rounds is not None:
                self.rounds.tick(now)
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
        # Forgotten only once recorded: if recording fails, the poller asks again later.
        self.journal.record_batch_status(file_id, status)
        with self._lock:
            self._batch_files.pop(status.batch_id, None)
        if self.observers is not None:
            self.observers.batch_finished(self._record_instance(file_id), status.status.value)
        log.info(
            "batch_finished",
            batch_id=status.batch_id,
            status=status.status.value,
            leads=status.leads_processed,
            failed=status.rows_failed,
            warnings=status.rows_with_warning,
        )
        self._settle_if_finished(file_id)

    def _on_poll_error(self, batch_id: int, exc: Exception) -> None:
        """Marketo no longer knows the batch (expired, or an embedded sandbox restarted)."""
        assert self.journal is not None
        with self._lock:
            file_id = self._batch_files.get(batch_id)
        log.error("batch_lost", batch_id=batch_id, error=str(exc))
        if file_id is None:
            return
        # A failed part like any other: the file settles once every part is final, never
        # while its submitter may still be working on it.
        lost = BatchStatus(batch_id, BatchState.FAILED, message=f"Marketo lost batch {batch_id}")
        self.journal.record_batch_status(file_id, lost)
        with self._lock:
            self._batch_files.pop(batch_id, None)
        if self.observers is not None:
            self.observers.batch_finished(self._record_instance(file_id), "Lost")
        self._settle_if_finished(file_id)

    def _settle_if_finished(self, file_id: int) -> None:
        assert self.journal is not None
        record = self.journal.get(file_id)
        parts = self.journal.parts(file_id)
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
            log.error(
                "settle_failed",
                file_id=file_id,
                error=str(exc),
                retry_in_seconds=delay,
                tries=tries,
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
            adopt=self.claimer.register,
        )
        if self.rounds is not None:
            watch = max((b.config.settled_watch_seconds for b in self.boxes.values()), default=0)
            self.rounds.recover(watch)

    def _follow_again(self, record: FileRecord, part: PartRecord) -> None:
        """Poll a batch created by an earlier run (its status is asked for at once)."""
        assert part.batch_id is not None
        instance = self.instances[self.boxes[record.dropbox].config.instance]
        instance.client.adopt_batch(part.batch_id)
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
        finally:
            systemd.ready(self._status_line())

    def _apply(self, new: Config) -> None:
        """Swap drop boxes in place; what would strand files in flight needs a restart."""
        assert self.journal is not None
        journal = self.journal
        reason = needs_restart(self.config, new, lambda name: bool(journal.unfinished(name)))
        if reason is not None:
            log.warning("config_reload_needs_restart", reason=reason)
            return
        stop, start = boxes_to_restart(self.config, new)
        for name in stop:
            self.boxes.pop(name).watcher.stop()
        for name in start:
            self.boxes[name] = open_box(new.dropboxes[name])
            self.boxes[name].watcher.start()
        self.config = new
        log.info("config_reloaded", dropboxes=sorted(self.boxes))

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


def embedded_sandbox_settings(instance: InstanceConfig) -> SandboxSettings:
    """Settings of the in-process sandbox that `base_url: embedded` runs."""
    options = instance.sandbox
    if options is None:
        return SandboxSettings()
    return SandboxSettings(
        rows_per_second=options.rows_per_second,
        job_overhead_seconds=options.job_overhead_seconds,
    )


def run(config_path: Path) -> int:
    """Load the config and run the daemon; return the exit code."""
    config = load_config(config_path)
    return Daemon(config).run()
