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
    "EMBEDDED",
    "Config",
    "ConfigError",
    "DropboxConfig",
    "InstanceConfig",
    "SandboxOptions",
    "Timeouts",
    "load_config",
]


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Load, check and resolve a config file (secrets included); ConfigError lists all problems."""
    checked = check_file(Path(path).absolute())
    config = build(checked, os.environ if environ is None else environ)
    if checked.problems:
        raise ConfigError(checked.problems)
    return config
