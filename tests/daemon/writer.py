"""A real writer process holding one handle on a file, as an SFTP or SMB server holds it.

The test drives it through a pipe: each `write` returns once the bytes are in the file, so the
test knows exactly what the file holds when it waits for the daemon; between writes the handle
stays open, as it does in a stalled upload.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Runs in the child: one descriptor, opened once, written through, closed at the end.
_CHILD = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
print("open", flush=True)
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    if command == "write":
        data = bytes.fromhex(argument)
        while data:
            data = data[os.write(fd, data):]
        print("written", flush=True)
    elif command == "close":
        os.close(fd)
        print("closed", flush=True)
        break
"""

TIMEOUT_SECONDS = 30.0


class HeldWriter:
    """A child process with `path` open for writing until `close()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._expect("open")

    def _expect(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != word:
            self.proc.kill()
            raise AssertionError(f"writer of {self.path} said {line!r}, not {word!r}")

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def write(self, data: bytes | str) -> None:
        """Append `data` through the held handle; return once it is in the file."""
        raw = data.encode() if isinstance(data, str) else data
        if raw:
            self._send(f"write {raw.hex()}")
            self._expect("written")

    def close(self) -> None:
        """Close the handle and let the child exit."""
        self._send("close")
        self._expect("closed")
        self.proc.wait(timeout=TIMEOUT_SECONDS)

    def kill(self) -> None:
        """End the child if it is still running (a test that failed half-way)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT_SECONDS)
