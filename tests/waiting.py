"""Waiting on conditions with a deadline, and finding a free port: shared by every test folder.

The functions live in `dropbox_importer.testing`, which bench/ shares.
"""

from __future__ import annotations

from dropbox_importer.testing import free_port, wait_for

__all__ = ["free_port", "wait_for"]
