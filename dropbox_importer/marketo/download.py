"""Failures and warnings files: streamed to disk, and told apart from an error answer.

Adobe's OpenAPI says `failures.json` and `warnings.json` produce `application/json` whatever the
file holds, and an error answer is JSON too, so the content type cannot tell them apart: the first
bytes do. A JSON object carrying `success` or `errors` is an answer to classify; anything else is
the file, written as it streams in, never held in memory. One public client reports HTTP 404 for
a batch with no rows to list: that is an empty file, not an error.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import requests

# The condition `responses.classify` gives an HTTP 404.
HTTP_404 = "http_404"
CHUNK = 64 * 1024

# Receives the body of a download, in chunks, once the answer is known to be the file.
Sink = Callable[[Iterator[bytes]], None]


def sniff(response: requests.Response) -> tuple[dict[str, Any] | None, Iterator[bytes]]:
    """(the answer's JSON envelope, or None when the body is a file; the body, in chunks)."""
    chunks = response.iter_content(CHUNK)
    first = next(chunks, b"")
    if first.lstrip()[:1] != b"{":
        return None, itertools.chain([first], chunks)
    # Error answers are a few hundred bytes; a file never starts with "{" (a header row of
    # field names), so reading the rest into memory here only ever reads an answer.
    data = first + b"".join(chunks)
    try:
        body = json.loads(data)
    except ValueError:
        return None, iter([data])
    if isinstance(body, dict) and ("success" in body or "errors" in body):
        return body, iter(())
    return None, iter([data])


def save(chunks: Iterable[bytes], dest: Path) -> None:
    """Write `chunks` to `dest` through a temporary name, synced, then renamed into place."""
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        with tmp.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
