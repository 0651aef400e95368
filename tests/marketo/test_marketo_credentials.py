"""Resolving a client secret from the config, the environment or a (systemd) file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dropbox_importer.marketo.credentials import SecretError, resolve_secret

SECRET = "s3cr3t-value-xyz"


def test_value_from_config_is_used_as_is() -> None:
    assert resolve_secret(value=SECRET, instance="acme") == SECRET


def test_env_variable_is_read_and_stripped() -> None:
    got = resolve_secret(env="ACME_SECRET", instance="acme", environ={"ACME_SECRET": SECRET + "\n"})
    assert got == SECRET


def test_missing_env_variable_names_instance_and_variable() -> None:
    with pytest.raises(SecretError, match=r"instance 'acme'.*ACME_SECRET"):
        resolve_secret(env="ACME_SECRET", instance="acme", environ={})


def test_file_path_is_read(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    assert resolve_secret(file=path, instance="acme", environ={}) == SECRET


def test_bare_file_name_is_looked_up_in_systemd_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "acme-secret").write_text(SECRET)
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert resolve_secret(file="acme-secret", instance="acme", environ=environ) == SECRET


def test_unreadable_file_names_instance_and_path_not_secret(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match=r"instance 'acme'.*nope") as caught:
        resolve_secret(file=tmp_path / "nope", instance="acme", environ={})
    assert SECRET not in str(caught.value)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretError, match="empty"):
        resolve_secret(file=tmp_path / "empty", instance="acme", environ={})


@pytest.mark.parametrize(
    "sources",
    [{}, {"value": SECRET, "env": "X"}, {"value": SECRET, "file": "f"}],
)
def test_exactly_one_source_is_required(sources: dict[str, str]) -> None:
    with pytest.raises(SecretError, match="exactly one") as caught:
        resolve_secret(instance="acme", environ={"X": SECRET}, **sources)  # type: ignore[arg-type]
    assert SECRET not in str(caught.value)
