"""`Sandbox`: the emulator served on loopback from background threads, as a context manager."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

import structlog
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from dropbox_importer.sandbox.app import SandboxApp
from dropbox_importer.sandbox.settings import SandboxSettings

log = structlog.get_logger(__name__)


class QuietHandler(WSGIRequestHandler):
    """werkzeug's handler without its per-request access lines; errors become log events."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Access lines would drown the daemon's own logs: skip them."""

    def log(self, type: str, message: str, *args: Any) -> None:
        """Route werkzeug's own error messages to structlog."""
        if type == "error":
            log.error("sandbox_server_error", detail=message % args if args else message)


class Sandbox:
    """A running sandbox: `with Sandbox(settings) as sandbox: sandbox.base_url`."""

    def __init__(
        self, settings: SandboxSettings | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        """Prepare a sandbox; nothing listens until `start()` or `with`."""
        self.settings = settings or SandboxSettings()
        self.app = SandboxApp(self.settings)
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT` of the running server."""
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        host = str(self._server.host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self._server.server_port}"

    def start(self) -> Sandbox:
        """Bind the port and serve from a background thread."""
        self._server = make_server(
            self._host, self._port, self.app, threaded=True, request_handler=QuietHandler
        )
        self.app.queue.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sandbox-http",
            daemon=True,
        )
        self._thread.start()
        log.debug("sandbox_started", base_url=self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and the import scheduler."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.app.queue.stop()
        log.debug("sandbox_stopped")

    def __enter__(self) -> Sandbox:
        """Start and return the sandbox."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the sandbox."""
        self.stop()
