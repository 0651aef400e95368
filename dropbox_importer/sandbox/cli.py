"""Run the local Marketo emulator in the foreground until SIGINT or SIGTERM.

The first line printed names the base URL and the credentials, so a script can parse it.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from dropbox_importer import logs
from dropbox_importer.sandbox.profile import PROFILES
from dropbox_importer.sandbox.server import Sandbox
from dropbox_importer.sandbox.settings import (
    FaultSettings,
    OtherIntegrationSettings,
    SandboxSettings,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `sandbox`'s options."""
    defaults = SandboxSettings()
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    add("--port", type=int, default=8710, help="port to bind; 0 picks a free one")
    add("--client-id", default=defaults.client_id)
    add("--client-secret", default=defaults.client_secret)
    add("--rows-per-second", type=float, default=defaults.rows_per_second)
    add("--job-overhead", type=float, default=defaults.job_overhead_seconds, metavar="S")
    add("--token-lifetime", type=float, default=defaults.token_lifetime_seconds, metavar="S")
    add("--calls-per-window", type=int, default=defaults.calls_per_window)
    add("--window-seconds", type=float, default=defaults.window_seconds)
    add("--max-in-flight", type=int, default=defaults.max_in_flight)
    add("--daily-quota", type=int, default=defaults.daily_quota)
    add("--unknown-column", choices=("warn", "fail"), default=defaults.unknown_column)
    add(
        "--profile",
        choices=PROFILES,
        default=defaults.profile,
        help="kind, or strict: the harsher reading of every uncertain Marketo behaviour",
    )
    add(
        "--list-busy-from",
        choices=("queued", "importing"),
        default=defaults.list_busy_from,
        help="strict: a list's job that makes a create for the list answer 1019",
    )
    add(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of calls answered 502/604/608/611/713 (strict: and 614)",
    )
    add("--http-5xx-rate", type=float, default=0.0)
    add("--drop-rate", type=float, default=0.0, help="share of connections closed unanswered")
    add(
        "--lost-answer-rate",
        type=float,
        default=0.0,
        help="share of calls that run, then lose their answer (a create queues its batch)",
    )
    add("--failed-batch-rate", type=float, default=0.0)
    add("--latency", type=float, default=0.0, metavar="S", help="added latency per delayed call")
    add("--latency-rate", type=float, default=0.0)
    add("--seed", type=int, default=0, help="seed of the fault stream, to replay a run")
    other = defaults.other_integration
    add(
        "--other-jobs",
        type=int,
        default=other.jobs,
        metavar="N",
        help="another integration keeps N jobs of its own queued or importing (default: none)",
    )
    add("--other-rows", type=int, default=other.rows, help="leads per job of the other one")
    add("--other-list", type=int, default=other.list_id, help="list the other one imports to")
    add(
        "--other-poll",
        type=float,
        default=other.poll_seconds,
        metavar="S",
        help="one status call of the other integration every S seconds",
    )
    add("--log-level", default="info")


def settings_from(args: argparse.Namespace) -> SandboxSettings:
    """The sandbox settings the command line asks for."""
    faults = FaultSettings(
        rate=args.fault_rate,
        http_5xx_rate=args.http_5xx_rate,
        drop_rate=args.drop_rate,
        lost_answer_rate=args.lost_answer_rate,
        failed_batch_rate=args.failed_batch_rate,
        latency_seconds=args.latency,
        latency_rate=args.latency_rate,
        seed=args.seed,
    )
    return SandboxSettings(
        client_id=args.client_id,
        client_secret=args.client_secret,
        rows_per_second=args.rows_per_second,
        job_overhead_seconds=args.job_overhead,
        token_lifetime_seconds=args.token_lifetime,
        calls_per_window=args.calls_per_window,
        window_seconds=args.window_seconds,
        max_in_flight=args.max_in_flight,
        daily_quota=args.daily_quota,
        unknown_column=args.unknown_column,
        profile=args.profile,
        list_busy_from=args.list_busy_from,
        faults=faults,
        other_integration=OtherIntegrationSettings(
            jobs=args.other_jobs,
            rows=args.other_rows,
            list_id=args.other_list,
            poll_seconds=args.other_poll,
        ),
    )


def main(args: argparse.Namespace) -> int:
    """Serve the sandbox until SIGINT or SIGTERM; exit 0."""
    logs.configure(level=args.log_level)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    settings = settings_from(args)
    with Sandbox(settings, host=args.host, port=args.port) as sandbox:
        # The sandbox's credentials are public test values: printing them is its purpose.
        print(
            f"sandbox listening on {sandbox.base_url} client_id={settings.client_id} "
            f"client_secret={settings.client_secret} profile={settings.profile}",
            flush=True,
        )
        while not stop.wait(1.0):
            pass
    return 0
