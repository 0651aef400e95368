"""Where an instance's client secret comes from: the config, an environment variable or a file.

A file may be a path, or a bare name looked up in systemd's `$CREDENTIALS_DIRECTORY`
(`LoadCredential=`), so the secret never has to sit in the config file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class SecretError(ValueError):
    """No secret could be resolved; the message names the instance and source, never a value."""


def resolve_secret(
    *,
    value: str | None = None,
    env: str | None = None,
    file: str | Path | None = None,
    instance: str,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The client secret of `instance` from exactly one source: value, env variable or file."""
    environ = os.environ if environ is None else environ
    given = [name for name, v in (("value", value), ("env", env), ("file", file)) if v]
    if len(given) != 1:
        raise SecretError(
            f"instance {instance!r}: set exactly one of client_secret, client_secret_env or "
            f"client_secret_file (got {', '.join(given) or 'none'})"
        )
    if value:
        return value
    if env:
        secret = environ.get(env, "")
        if not secret.strip():
            raise SecretError(
                f"instance {instance!r}: environment variable {env} is not set or empty"
            )
        return secret.strip()
    return _read_file(Path(str(file)), instance, environ)


def _read_file(path: Path, instance: str, environ: Mapping[str, str]) -> str:
    credentials_dir = environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and len(path.parts) == 1 and credentials_dir:
        # systemd's LoadCredential= puts each credential as a file named after it here.
        path = Path(credentials_dir) / path
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(
            f"instance {instance!r}: cannot read secret file {path}: {exc.strerror}"
        ) from None
    if not secret:
        raise SecretError(f"instance {instance!r}: secret file {path} is empty")
    return secret
