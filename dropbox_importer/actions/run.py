"""Run the daemon in the foreground (systemd's way): watch every drop box until SIGTERM.

Signals:
  SIGTERM, SIGINT  stop: the create on the wire finishes, the rest resumes from the journal
                   at the next start (systemctl stop)
  SIGHUP           reload the config (systemctl reload): every change applies at once, drop box
                   by drop box, except a drop box's change that would treat its files in flight
                   differently, which waits until they have settled (config_change_held, then
                   config_change_applied); instances, state_dir, state and log_format need
                   a restart and are named in config_reload_needs_restart; a config that does
                   not load is refused whole (config_reload_rejected) and the running one stays

On a shared journal (state.journal: postgresql://...) it stands by until it leads
(leadership_standby, then leadership_acquired), and waits for the database while it cannot be
reached (journal_unreachable).

Exit codes:
  0  stopped by a signal
  1  the journal cannot be used (journal_unusable says why: a state_dir it cannot write, a
     journal from a newer version)
  2  the config does not load (FILE:LINE: key: what is wrong)
  3  another daemon holds the state directory's lock
  75 it led a shared journal, stopped answering for most of a lease (frozen, or cut off from
     the database) and another host took over: it stood down (leadership_lost); systemd
     restarts it as a standby

`dropbox-importer status` shows whether it runs, since when, and whether on the config as the
file is now.
"""

from __future__ import annotations

import argparse
import sys

import structlog

from dropbox_importer import logs
from dropbox_importer.actions.options import add_config_option, load
from dropbox_importer.config import ConfigError
from dropbox_importer.daemon import Daemon
from dropbox_importer.pipeline.journal import JournalError
from dropbox_importer.pipeline.lock import AlreadyRunning

EXIT_JOURNAL = 1
EXIT_CONFIG = 2
EXIT_ALREADY_RUNNING = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `run`'s options."""
    add_config_option(parser)


def main(args: argparse.Namespace) -> int:
    """Load the config, set up logging and run the daemon."""
    try:
        config = load(args)
    except ConfigError as exc:
        print(f"dropbox-importer: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    json = {"json": True, "console": False}.get(config.log_format)
    logs.configure(json=json, level=config.log_level)
    try:
        return Daemon(config).run()
    except AlreadyRunning as exc:
        structlog.get_logger(__name__).error("daemon_already_running", reason=str(exc))
        print(f"dropbox-importer: {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except JournalError as exc:
        structlog.get_logger(__name__).error("journal_unusable", reason=str(exc))
        print(f"dropbox-importer: {exc}", file=sys.stderr)
        return EXIT_JOURNAL
