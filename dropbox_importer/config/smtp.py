"""The `smtp` section: where e-mail notifications go out, and the login read from a file.

The login lives in a file, never in the config: `credentials_file` holds one line
`user:password` (split at the first colon). Like `client_secret_file`, a bare name is read in
systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=smtp:/etc/dropbox-importer/credentials/smtp`),
any other relative path from the config's folder. A password is never sent in the clear: with
`security: none` a login is refused unless the server is on loopback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dropbox_importer.config.loader import Checked
from dropbox_importer.config.model import SmtpConfig


def read_login(path: Path) -> tuple[str, str]:
    """(user, password) from a credentials file; ValueError saying what is wrong, never quoting."""
    try:
        line = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    user, colon, password = line.partition(":")
    if not colon or not user or not password or "\n" in line:
        raise ValueError(f"{path} must hold one line user:password")
    return user, password


def build_smtp(
    checked: Checked,
    raw: dict[str, Any] | None,
    environ: Mapping[str, str] | None,
    base: Path,
    loopback: bool,
) -> SmtpConfig | None:
    """The smtp section; `environ` None leaves the login unread (commands that send nothing).

    `loopback` says whether `host` is a loopback address.
    """
    if raw is None:
        return None
    host, sender = raw.get("host") or "", raw.get("from") or ""
    security = raw.get("security") or "starttls"
    file = raw.get("credentials_file")
    user, password = None, ""
    if file and security == "none" and not loopback:
        checked.problem(
            "smtp.security",
            f"none would send the login to {host} in the clear: use starttls or tls, or a "
            "relay on this host without a login",
        )
    if file and environ is not None:
        path = Path(file)
        directory = environ.get("CREDENTIALS_DIRECTORY")
        if not path.is_absolute() and len(path.parts) == 1 and directory:
            path = Path(directory) / path
        elif not path.is_absolute():
            path = base / path
        try:
            user, password = read_login(path)
        except ValueError as exc:
            checked.problem(
                "smtp.credentials_file",
                f"{exc}: a bare name is read in $CREDENTIALS_DIRECTORY (LoadCredential=)",
            )
    elif file:
        user = "(not read)"
    return SmtpConfig(
        host=host,
        sender=sender,
        port=raw.get("port") or (465 if security == "tls" else 587),
        security=security,
        username=user,
        password=password,
        timeout_seconds=raw.get("timeout_seconds") or 30.0,
    )
