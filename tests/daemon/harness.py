"""The daemon harness end-to-end tests use; it lives in the package, shared with bench/."""

from __future__ import annotations

from dropbox_importer.testing import (
    SANDBOX_WINDOW_SECONDS,
    DaemonProcess,
    files_under,
    free_port,
    originals_under,
    wait_for,
    write_config,
)

__all__ = [
    "SANDBOX_WINDOW_SECONDS",
    "DaemonProcess",
    "files_under",
    "free_port",
    "originals_under",
    "wait_for",
    "write_config",
]
