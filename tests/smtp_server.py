"""A real SMTP server for tests: aiosmtpd on a loopback port, STARTTLS and AUTH required.

Its certificate comes from a throw-away CA (trustme); a client trusts it through
`SSL_CERT_FILE=server.ca_file`, which OpenSSL's default verify paths honour, so the daemon
checks the certificate exactly as it would a real server's.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from tests.waiting import free_port

USER, PASSWORD = "notifier", "mail-pass-4f9a"


@dataclass
class Received:
    """One message the server accepted: envelope recipients and the parsed message."""

    recipients: list[str]
    message: Message


@dataclass
class Collector:
    """aiosmtpd handler keeping every message it is given."""

    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        content = envelope.original_content or b""
        self.received.append(Received(list(envelope.rcpt_tos), message_from_bytes(content)))
        return "250 Message accepted for delivery"


def _authenticate(
    _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
) -> AuthResult:
    good = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd answers a refusal with 535 itself.
    return AuthResult(success=good, handled=False)


@dataclass
class SmtpServer:
    """A running server: where it listens, the CA to trust, what it received."""

    host: str
    port: int
    ca_file: Path
    collector: Collector

    @property
    def received(self) -> list[Received]:
        """Messages accepted so far."""
        return self.collector.received


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 that requires STARTTLS and the login USER:PASSWORD."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    collector = Collector()
    port = free_port()
    controller = Controller(
        collector,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_required=True,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, ca_file, collector)
    finally:
        controller.stop()
