"""Real parts for the operator commands: a config on disk, drop boxes in tmp_path, the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dropbox_importer.cli import main as cli_main
from tests.actions.cli_harness import Run, WriteConfig


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """`write_config(dropboxes=..., instance=...)`: a config file with one instance, `main`."""

    def write(
        *,
        dropboxes: dict[str, dict[str, Any]] | None = None,
        instance: dict[str, Any] | None = None,
        extra_instances: dict[str, dict[str, Any]] | None = None,
    ) -> Path:
        boxes = dropboxes if dropboxes is not None else {"acme": {}}
        config = {
            "state_dir": str(tmp_path / "state"),
            "log_level": "warning",
            "log_format": "json",
            "instances": {
                "main": instance or {"base_url": "embedded"},
                **(extra_instances or {}),
            },
            "dropboxes": {
                name: {"root": str(tmp_path / name), "instance": "main", **box}
                for name, box in boxes.items()
            },
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `dropbox-importer ARGS...` in this process; return (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli_main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
