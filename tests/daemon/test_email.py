"""E-mail to a drop box's recipients through a real SMTP server (STARTTLS, login)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from dropbox_importer.config.model import NotifyConfig, SmtpConfig
from dropbox_importer.observe.notify import Notifier
from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config
from tests.smtp_server import PASSWORD, USER, SmtpServer, smtp_server

pytestmark = pytest.mark.slow
__all__ = ["smtp_server"]  # the fixture, used by name

RECIPIENTS = ["data-team@acme.example", "ops@example.com"]


def test_a_failed_file_sends_one_email_to_the_drop_boxs_recipients(
    tmp_path: Path, make_sandbox: Callable[..., Any], smtp_server: SmtpServer
) -> None:
    sandbox = make_sandbox(rows_per_second=2000.0, job_overhead_seconds=0.05, window_seconds=2.0)
    root = tmp_path / "box"
    login = tmp_path / "smtp-login"
    login.write_text(f"{USER}:{PASSWORD}\n")
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"acme": {"root": str(root), "notify": {"email": RECIPIENTS}}},
    )
    data = yaml.safe_load(config.read_text())
    data["smtp"] = {
        "host": smtp_server.host,
        "port": smtp_server.port,
        "from": "dropbox-importer@example.com",
        "credentials_file": str(login),
        "timeout_seconds": 10,
    }
    config.write_text(yaml.safe_dump(data))
    daemon = DaemonProcess(
        config, tmp_path / "daemon.log", env={"SSL_CERT_FILE": str(smtp_server.ca_file)}
    ).start()
    try:
        inbox = root / "inbox" / "csv"
        inbox.mkdir(parents=True)
        (inbox / "good.csv").write_text("email\ngood@example.com\n")
        wait_for((root / "done" / "csv" / "good.csv").exists, timeout=30, what="good.csv done")
        (inbox / "typo.csv").write_text("emial,firstName\nx@example.com,X\n")
        wait_for(lambda: smtp_server.received, timeout=30, what="an e-mail")
        wait_for(lambda: daemon.count("notification_sent") == 1, what="notification_sent")
    finally:
        assert daemon.stop() == 0

    (mail,) = smtp_server.received  # good.csv (done) asked for nothing: when is [failed]
    assert sorted(mail.recipients) == sorted(RECIPIENTS)
    message = mail.message
    assert message["Subject"] == "typo.csv: NOT imported (acme, csv)"
    assert message["From"] == "dropbox-importer@example.com"
    body = message.get_payload(decode=True).decode()
    assert "The file csv/typo.csv in drop box acme was NOT imported." in body
    assert "Why: line 1: the lookup field 'email' is not a column of the header" in body
    assert "kept byte for byte in failed/csv/typo.csv" in body
    assert "upload the file again into inbox/csv/." in body
    assert str(tmp_path) not in body  # paths inside the drop box only, never the server's
    (sent,) = [e for e in daemon.events() if e["event"] == "notification_sent"]
    assert sent["kind"] == "email" and sent["target"] == f"smtp://127.0.0.1:{smtp_server.port}"
    assert PASSWORD not in daemon.log_path.read_text()
    assert len(originals_under(root / "failed")) == 1


def test_a_refused_login_is_given_up_at_once_and_never_logged(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp_server.ca_file))
    wrong = "not-the-pass-19c"
    smtp = SmtpConfig(
        smtp_server.host, "d@example.com", smtp_server.port, "starttls", USER, wrong, 10.0
    )
    policy = NotifyConfig(email=("ops@example.com",))
    notifier = Notifier(lambda _: policy, smtp=lambda: smtp).start()
    event = {"dropbox": "acme", "route": "", "file": "x.csv", "outcome": "failed", "counts": {}}
    with capture_logs() as logs:
        assert notifier.file_settled(event)
        wait_for(lambda: any(e["event"] == "notification_failed" for e in logs), what="give-up")
        notifier.stop(timeout=5)

    (failed,) = [e for e in logs if e["event"] == "notification_failed"]
    assert failed["attempts"] == 1 and "refused the login (535)" in failed["reason"]
    assert not [e for e in logs if e["event"] == "notification_retry"]
    assert wrong not in repr(logs)
    assert smtp_server.received == []
