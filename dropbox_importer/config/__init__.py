"""The daemon's YAML config: one schema, a loader that reports every problem with its line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dropbox_importer.config.build import build
from dropbox_importer.config.loader import ConfigError, check_file
from dropbox_importer.config.model import (
    EMBEDDED,
    Config,
    DropboxConfig,
    InstanceConfig,
    SandboxOptions,
    Timeouts,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "EMBEDDED",
    "Config",
    "ConfigError",
    "DropboxConfig",
    "InstanceConfig",
    "SandboxOptions",
    "Timeouts",
    "default_config_path",
    "load_config",
]

# Where the server install puts the config (docs/install.md), and the variable that overrides it.
DEFAULT_CONFIG = Path("/etc/dropbox-importer/config.yaml")
CONFIG_ENV = "DROPBOX_IMPORTER_CONFIG"


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The config a command reads without --config: $DROPBOX_IMPORTER_CONFIG, else the default."""
    value = (os.environ if environ is None else environ).get(CONFIG_ENV, "").strip()
    return Path(value) if value else DEFAULT_CONFIG


def load_config(
    path: Path, *, environ: Mapping[str, str] | None = None, secrets: bool = True
) -> Config:
    """Load, check and resolve a config file; ConfigError lists all problems.

    With `secrets=False` no secret is read (`status` and `retry` need none): each secret source
    is still checked to be given exactly once, and the secret values are left empty.
    """
    checked = check_file(Path(path).absolute())
    config = build(checked, os.environ if environ is None else environ, secrets=secrets)
    if checked.problems:
        raise ConfigError(checked.problems)
    return config
