"""The daemon harness end-to-end tests use; it lives in the package, shared with bench/.

`DaemonProcess` here starts the daemon as the test session's service account when there is one
(tests/unprivileged.py): unprivileged and without capabilities, as the systemd unit runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dropbox_importer import testing
from dropbox_importer.testing import (
    SANDBOX_WINDOW_SECONDS,
    files_under,
    free_port,
    originals_under,
    wait_for,
    write_config,
)
from tests.unprivileged import UMASK, Current

__all__ = [
    "SANDBOX_WINDOW_SECONDS",
    "DaemonProcess",
    "files_under",
    "free_port",
    "originals_under",
    "wait_for",
    "write_config",
]


@dataclass
class DaemonProcess(testing.DaemonProcess):
    """`dropbox-importer run` in a subprocess, as the service account when the session has one."""

    def __post_init__(self) -> None:
        if not self.run_as and Current.account is not None:
            self.run_as = Current.account.command()
            self.umask = UMASK
