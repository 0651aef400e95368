"""Run the daemon in the foreground (systemd's way): watch every drop box until SIGTERM."""

from __future__ import annotations

import argparse
import sys

import structlog

from dropbox_importer import logs
from dropbox_importer.actions.options import add_config_option, load
from dropbox_importer.config import ConfigError
from dropbox_importer.daemon import Daemon
from dropbox_importer.pipeline.lock import AlreadyRunning

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
