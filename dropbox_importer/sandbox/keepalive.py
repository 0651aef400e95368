"""A werkzeug request handler that keeps HTTP/1.1 connections open between requests.

werkzeug's own handler closes every connection after one answer, because it cannot tell
where an unread request body ends. This one bounds the body by its Content-Length, drains
what the application left unread, and only then reads the next request: a polling client
then pays for one TCP connection, not one per status call.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import structlog
from werkzeug.serving import WSGIRequestHandler

log = structlog.get_logger(__name__)

# Unread request bodies up to this size are drained to keep the connection; larger: close it.
MAX_DRAIN_BYTES = 64 * 1024 * 1024
IDLE_TIMEOUT_SECONDS = 60.0


class BoundedInput:
    """The request body: at most Content-Length bytes of the connection, counted."""

    def __init__(self, stream: Any, length: int) -> None:
        """Read at most `length` bytes from `stream`."""
        self._stream = stream
        self.remaining = length

    def read(self, size: int = -1) -> bytes:
        """Read up to `size` bytes (all that is left if negative)."""
        if self.remaining <= 0:
            return b""
        size = self.remaining if size < 0 else min(size, self.remaining)
        data: bytes = self._stream.read(size)
        self.remaining -= len(data)
        if not data:
            self.remaining = 0  # the client went away mid-body
        return data

    def readline(self, size: int = -1) -> bytes:
        """Read one line, bounded like `read`."""
        if self.remaining <= 0:
            return b""
        size = self.remaining if size < 0 else min(size, self.remaining)
        data: bytes = self._stream.readline(size)
        self.remaining -= len(data)
        return data

    def drain(self) -> bool:
        """Discard the unread rest of the body; False if it is too large to be worth it."""
        if self.remaining > MAX_DRAIN_BYTES:
            return False
        while self.remaining > 0:
            if not self.read(min(self.remaining, 1 << 20)):
                return False
        return True


class ConnectionRegistry:
    """The open client connections, so stopping the server can close idle keep-alives."""

    def __init__(self) -> None:
        """No connections yet."""
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def add(self, connection: socket.socket) -> None:
        """Track a new connection."""
        with self._lock:
            self._open.add(connection)

    def discard(self, connection: socket.socket) -> None:
        """Forget a closed connection."""
        with self._lock:
            self._open.discard(connection)

    def close_all(self) -> None:
        """Shut every open connection down; their handler threads then end."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)


class KeepAliveHandler(WSGIRequestHandler):
    """Serves many requests per connection; quiet access log; errors as structlog events."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_SECONDS
    registry: ConnectionRegistry | None = None

    def setup(self) -> None:
        """Register the connection."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.registry is not None:
            self.registry.add(self.connection)

    def finish(self) -> None:
        """Unregister the connection."""
        if self.registry is not None:
            self.registry.discard(self.connection)
        super().finish()

    def run_wsgi(self) -> None:
        """Answer one request and decide whether the connection can serve another."""
        environ = self.make_environ()
        if environ.get("wsgi.input_terminated"):
            body = None  # chunked upload: werkzeug's reader finds the end; close afterwards
            self.close_connection = True
        else:
            body = BoundedInput(self.rfile, int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = body
        if environ.get("HTTP_EXPECT", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        captured: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            captured[:] = [status, headers]
            return lambda data: None

        try:
            payload = b"".join(self.server.app(environ, start_response))
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # a dropped connection, on purpose or by the client
            return
        except Exception:
            log.exception("sandbox_request_crashed", path=environ.get("PATH_INFO"))
            captured[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "application/json")]]
            payload = b'{"success": false, "errors": [{"code": "611", "message": "System error"}]}'
        if body is not None and not body.drain():
            self.close_connection = True
        self._write(captured[0], captured[1], payload)

    def _write(self, status: str, headers: list[tuple[str, str]], payload: bytes) -> None:
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for key, value in headers:
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # Headers and body in one write: two small writes meet Nagle and delayed ACKs (40 ms).
        self._headers_buffer.append(b"\r\n" + payload)
        self.flush_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Access lines would drown the daemon's own logs: skip them."""

    def log(self, type: str, message: str, *args: Any) -> None:
        """Route werkzeug's own error messages to structlog."""
        if type == "error":
            detail = message % args if args else message
            # An idle keep-alive connection timing out is routine, not an error of the sandbox.
            level = "debug" if message.startswith("Request timed out") else "error"
            getattr(log, level)("sandbox_server_error", detail=detail)
