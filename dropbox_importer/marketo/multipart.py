"""A `multipart/form-data` body that streams one file from disk instead of reading it whole.

`requests`' own `files=` reads the file into memory; an import file may be 10 MB and several
threads upload at once, so the body is built from a header, the open file and a trailer, with a
known length (Marketo needs Content-Length, not chunked encoding).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

CHUNK = 64 * 1024


class MultipartFile:
    """A file-like request body: `read()` in chunks, `len()` for the Content-Length header."""

    def __init__(
        self, path: Path, *, field: str = "file", content_type: str = "text/plain"
    ) -> None:
        self.boundary = secrets.token_hex(16)
        # Quotes and line breaks in a file name would break the part header.
        filename = path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
        self._head = (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._file: BinaryIO = path.open("rb")
        self._size = path.stat().st_size
        self._parts: Iterator[bytes] = self._generate()
        self._pending = b""

    @property
    def content_type(self) -> str:
        """The request's Content-Type header, boundary included."""
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self._head) + self._size + len(self._tail)

    def _generate(self) -> Iterator[bytes]:
        yield self._head
        while chunk := self._file.read(CHUNK):
            yield chunk
        yield self._tail

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes of the body (http.client and urllib3 ask for fixed blocks)."""
        if size < 0:
            return b"".join([self._pending, *self._parts])
        while len(self._pending) < size:
            chunk = next(self._parts, None)
            if chunk is None:
                break
            self._pending = self._pending + chunk if self._pending else chunk
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def close(self) -> None:
        """Close the underlying file."""
        self._file.close()

    def __enter__(self) -> MultipartFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
