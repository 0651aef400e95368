"""What every operator command shares: the --config option, its default and how it is loaded."""

from __future__ import annotations

import argparse
from pathlib import Path

from dropbox_importer.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    Config,
    ConfigError,
    default_config_path,
    load_config,
)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Register --config; without it the command reads $DROPBOX_IMPORTER_CONFIG or the default."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"the YAML config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})",
    )


def config_path(args: argparse.Namespace) -> Path:
    """The config file the command reads: --config, else $DROPBOX_IMPORTER_CONFIG, else default."""
    given: Path | None = args.config
    return given if given is not None else default_config_path()


def load(args: argparse.Namespace, *, secrets: bool = True) -> Config:
    """Load the command's config; a default that does not exist says how to name another one.

    `secrets=False` reads no secret (for `status` and `retry`, which never call Marketo).
    ConfigError as `load_config` raises it.
    """
    path = config_path(args)
    try:
        return load_config(path, secrets=secrets)
    except ConfigError as exc:
        if args.config is None and not path.exists():
            hint = (
                f"{path}: no config there (the default when neither --config nor "
                f"${CONFIG_ENV} names one): give --config FILE or set {CONFIG_ENV}"
            )
            raise ConfigError([hint]) from exc
        raise
