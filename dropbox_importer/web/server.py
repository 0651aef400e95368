"""Serving the status page from the daemon: a threaded werkzeug server on its own thread.

Requests are answered on threads of their own, away from the pipeline's; each reads the journal
through a read-only connection of its own, so a slow page never holds up a claim or a settle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from dropbox_importer.config import Config
from dropbox_importer.config.model import MetricsConfig
from dropbox_importer.web.app import StatusPage

log = structlog.get_logger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """No access lines: they would drown the daemon's own log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Skip the access line."""

    def log(self, type: str, message: str, *args: Any) -> None:
        """Server errors (a client gone mid-answer) are the client's business: debug only."""
        log.debug("web_server_message", kind=type, detail=message % args if args else message)


class WebServer:
    """The running status page; `stop()` closes its port."""

    def __init__(self, server: BaseWSGIServer, thread: threading.Thread, listen: MetricsConfig):
        self._server = server
        self._thread = thread
        self.listen = listen

    @classmethod
    def start(cls, listen: MetricsConfig, config: Callable[[], Config]) -> WebServer:
        """Listen on `listen` (port 0 picks one) and serve; OSError if the address is taken."""
        server = make_server(
            listen.host,
            listen.port,
            StatusPage(config),
            threaded=True,
            request_handler=_QuietHandler,
        )
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="web", daemon=True
        )
        thread.start()
        host = f"[{listen.host}]" if ":" in listen.host else listen.host
        log.info("web_listening", url=f"http://{host}:{server.server_port}/")
        return cls(server, thread, listen)

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self._server.server_port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop answering and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)
