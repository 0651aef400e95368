"""`run --help` tells the operator the signals and exit codes, as systemd's unit relies on them."""

from __future__ import annotations

from tests.actions.cli_harness import run_subprocess


def test_run_help_names_sighup_the_restart_only_keys_and_the_exit_codes() -> None:
    result = run_subprocess("run", "--help")

    assert result.returncode == 0
    text = result.stdout
    assert "SIGHUP           reload the config" in text
    assert "instances, state_dir, state and log_format need\n" in text
    for line in (
        "0  stopped by a signal",
        "1  the journal cannot be used",
        "2  the config does not load",
        "3  another daemon",
        "75 it led a shared journal",
    ):
        assert line in text
