"""Types and helpers the operator-command tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

Run = Callable[..., tuple[int, str, str]]
WriteConfig = Callable[..., Path]


def run_subprocess(
    *args: str, timeout: float = 60, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m dropbox_importer ARGS...` as a real process (in `cwd`, with `env`)."""
    return subprocess.run(
        [sys.executable, "-m", "dropbox_importer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env=env,
    )
