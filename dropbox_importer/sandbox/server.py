"""`Sandbox`: the emulator served on loopback from background threads, as a context manager."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

import structlog
from werkzeug.serving import BaseWSGIServer, make_server

from dropbox_importer.sandbox import persist
from dropbox_importer.sandbox.app import SandboxApp
from dropbox_importer.sandbox.keepalive import ConnectionRegistry, KeepAliveHandler
from dropbox_importer.sandbox.settings import SandboxSettings

log = structlog.get_logger(__name__)


class Sandbox:
    """A running sandbox: `with Sandbox(settings) as sandbox: sandbox.base_url`."""

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state_file: Path | None = None,
    ) -> None:
        """Prepare a sandbox; nothing listens until `start()` or `with`.

        With `state_file`, leads and batches are loaded from it at start and written to it at
        stop (persist.py): a restarted sandbox knows what the last one did.
        """
        self.settings = settings or SandboxSettings()
        self.app = SandboxApp(self.settings)
        self.state_file = state_file
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._connections = ConnectionRegistry()

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
        # A handler class per sandbox, so each one closes only its own connections.
        handler = type("SandboxHandler", (KeepAliveHandler,), {"registry": self._connections})
        self._server = make_server(
            self._host, self._port, self.app, threaded=True, request_handler=handler
        )
        if self.state_file is not None:
            persist.load(self.app, self.state_file)
        self.app.queue.start()
        self.app.other.start()
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
            self._connections.close_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.app.other.stop()
        self.app.queue.stop()
        if self.state_file is not None:
            try:
                persist.save(self.app, self.state_file)
            except OSError as exc:
                log.error("sandbox_state_not_saved", path=str(self.state_file), error=str(exc))
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
