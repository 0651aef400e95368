"""Uploads stream from disk: a well-formed multipart body, never the whole file in memory."""

from __future__ import annotations

import io
import json
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from werkzeug.formparser import parse_form_data

from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.models import ImportFormat, ImportParams
from dropbox_importer.marketo.multipart import MultipartFile
from dropbox_importer.marketo.settings import InstanceSettings


def parse(body: bytes, content_type: str) -> tuple[str, bytes]:
    """Parse a multipart body the way the sandbox (werkzeug) does; return filename and bytes."""
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    _stream, _form, files = parse_form_data(environ)
    part = files["file"]
    return str(part.filename), part.read()


@pytest.mark.parametrize("size", [0, 1, 8191, 65536, 200_003])
def test_body_parses_back_to_the_file(tmp_path: Path, size: int) -> None:
    content = bytes(i % 251 for i in range(size))
    path = tmp_path / "leads.csv"
    path.write_bytes(content)
    with MultipartFile(path) as body:
        length = len(body)
        raw = b"".join(iter(lambda: body.read(8192), b""))
    assert len(raw) == length
    assert parse(raw, body.content_type) == ("leads.csv", content)


def test_awkward_file_names_cannot_break_the_part_header(tmp_path: Path) -> None:
    path = tmp_path / 'we"ird\nname.csv'
    path.write_bytes(b"email\n")
    with MultipartFile(path) as body:
        raw = body.read()
    name, content = parse(raw, body.content_type)
    assert content == b"email\n" and '"' not in name and "\n" not in name


class DiscardingHandler(BaseHTTPRequestHandler):
    """Reads a body in small blocks; answers identity with a token, anything else like a create."""

    received: list[int] = []

    def do_POST(self) -> None:
        remaining = int(self.headers["Content-Length"])
        total = 0
        while remaining:
            block = self.rfile.read(min(remaining, 65536))
            remaining -= len(block)
            total += len(block)
        if self.path.startswith("/identity/"):
            answer: dict[str, object] = {"access_token": "t0k3n", "expires_in": 3599}
        else:
            self.received.append(total)
            answer = {"success": True, "result": [{"batchId": 7, "status": "Queued"}]}
        body = json.dumps(answer)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def discard_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), DiscardingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_ten_megabyte_upload_keeps_memory_flat(tmp_path: Path, discard_server: str) -> None:
    path = tmp_path / "big.csv"
    with path.open("wb") as out:
        for _ in range(160):
            out.write(b"x" * 65535 + b"\n")  # 10 MiB
    settings = InstanceSettings("big", discard_server, "id", "secret")
    client = MarketoClient(settings)
    client.check_credentials()
    tracemalloc.start()
    try:
        batch_id = client.create_import(path, ImportParams(ImportFormat.CSV))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        client.close()
    assert batch_id == 7
    assert DiscardingHandler.received[-1] > path.stat().st_size
    # The whole file would be 10 MiB; streamed, the peak stays around a few blocks.
    assert peak < 1_000_000, f"peak {peak} bytes"
    print(f"upload of {path.stat().st_size} bytes: traced peak {peak} bytes")
