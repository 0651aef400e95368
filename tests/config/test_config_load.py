"""Loading good configs: the example, defaults, relative paths, secrets and the sandbox."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from dropbox_importer.config import (
    DEFAULT_CONFIG,
    EMBEDDED,
    ConfigError,
    DropboxConfig,
    default_config_path,
    load_config,
)
from dropbox_importer.config.schema import DROPBOX, REQUIRED, TOP, Named, Section, key_paths
from dropbox_importer.dropbox.routes import RouteSpec
from dropbox_importer.marketo.models import ImportFormat

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"
SECRET = "s3cret-value-9f2"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def minimal(
    tmp_path: Path, instance: dict[str, Any] | None = None, box: dict[str, Any] | None = None
) -> Path:
    """A config with one instance (secret from $MKTO_SECRET) and one drop box, overridden."""
    main = {
        "base_url": "https://123-ABC-456.mktorest.com/",
        "client_id": "the-client",
        **(instance or {"client_secret_env": "MKTO_SECRET"}),
    }
    document = {
        "instances": {"main": main},
        "dropboxes": {"acme": {"root": "boxes/acme", "instance": "main", **(box or {})}},
    }
    return write(tmp_path, yaml.safe_dump(document))


def used_paths(data: Any, section: Section, prefix: str = "") -> set[str]:
    """The schema key paths a parsed YAML document uses, `*` for operator-chosen names."""
    found: set[str] = set()
    for name, value in data.items():
        found.add(prefix + name)
        check = section.options[name].check
        if isinstance(check, Section):
            found |= used_paths(value, check, f"{prefix}{name}.")
        elif isinstance(check, Named):
            for child in value.values():
                found |= used_paths(child, check.section, f"{prefix}{name}.*.")
    return found


def route_keys_merged(paths: set[str]) -> set[str]:
    """Key paths with the route section's keys counted once, wherever a route mapping is."""
    prefixes = ("dropboxes.*.defaults.", "dropboxes.*.routes.*.")
    out = set()
    for path in paths:
        for prefix in prefixes:
            if path.startswith(prefix):
                path = "route." + path.removeprefix(prefix)
        out.add(path)
    return out


def test_example_names_exactly_the_schema_keys() -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    assert route_keys_merged(used_paths(document, TOP)) == route_keys_merged(key_paths())


def test_example_loads_with_its_credentials_present(tmp_path: Path) -> None:
    (tmp_path / "main").write_text(SECRET + "\n")
    (tmp_path / "journal").write_text("database-password\n")
    (tmp_path / "smtp").write_text("notifier:mail-pass-77\n")
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path), "MARKETO_STAGING_SECRET": "other"}
    config = load_config(EXAMPLE, environ=environ)
    assert config.state.password == "database-password"
    assert config.state.shared and "database-password" not in repr(config)
    assert config.instances["main"].secret == SECRET
    assert config.smtp is not None
    assert (config.smtp.username, config.smtp.password) == ("notifier", "mail-pass-77")
    assert "mail-pass-77" not in repr(config)
    assert config.instances["main"].base_url == "https://123-ABC-456.mktorest.com"
    assert config.instances["sandbox"].base_url == EMBEDDED
    acme = config.dropboxes["acme"]
    assert acme.routes["acme-emea"] == RouteSpec(ImportFormat.CSV, 1234, "EMEA")
    assert acme.routes["acme-us"] == RouteSpec(None, 1235, "Americas", "email")
    assert acme.defaults == RouteSpec(lookup_field="email")


def test_dataclass_defaults_agree_with_the_schema(tmp_path: Path) -> None:
    box = load_config(minimal(tmp_path), environ={"MKTO_SECRET": SECRET}).dropboxes["acme"]
    for name, option in DROPBOX.options.items():
        if option.default is REQUIRED or isinstance(option.check, Section | Named):
            continue
        assert getattr(box, name) == option.default, name
        field = {f.name: f for f in dataclasses.fields(DropboxConfig)}[name]
        assert field.default == option.default, name


def test_minimal_config_gets_top_level_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(minimal(tmp_path), environ={"MKTO_SECRET": SECRET})
    assert (config.log_level, config.log_format) == ("info", "auto")
    assert config.state_dir == Path("/var/lib/dropbox-importer")
    assert config.dropboxes["acme"].root == tmp_path / "boxes" / "acme"
    assert config.path == tmp_path / "config.yaml"


def test_instance_settings_carry_url_limits_timeouts_and_secret(tmp_path: Path) -> None:
    path = minimal(tmp_path, {"client_secret_env": "MKTO_SECRET", "max_in_flight": 3})
    instance = load_config(path, environ={"MKTO_SECRET": SECRET}).instances["main"]
    settings = instance.settings()
    assert settings.base_url == "https://123-ABC-456.mktorest.com"
    assert (settings.client_id, settings.client_secret) == ("the-client", SECRET)
    assert settings.limits.max_in_flight == 3 and settings.read_timeout == 60.0


def test_secret_never_appears_in_a_repr(tmp_path: Path) -> None:
    config = load_config(minimal(tmp_path), environ={"MKTO_SECRET": SECRET})
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.instances["main"].settings())


def test_bare_secret_file_name_is_read_from_the_credentials_directory(tmp_path: Path) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "mkto").write_text(SECRET)
    path = minimal(tmp_path, {"client_secret_file": "mkto"})
    config = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert config.instances["main"].secret == SECRET


def test_relative_secret_file_is_read_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "mkto").write_text(SECRET + "\n")
    config = load_config(minimal(tmp_path, {"client_secret_file": "secrets/mkto"}), environ={})
    assert config.instances["main"].secret == SECRET


def test_secret_written_in_the_config_is_used(tmp_path: Path) -> None:
    config = load_config(minimal(tmp_path, {"client_secret": SECRET}), environ={})
    assert config.instances["main"].secret == SECRET


def test_munchkin_id_gives_the_rest_base_url(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        instances:
          main: {munchkin_id: 999-XYZ-111, client_id: c, client_secret: s}
        dropboxes:
          acme: {root: /srv/acme, instance: main}
        """,
    )
    assert load_config(path).instances["main"].base_url == "https://999-XYZ-111.mktorest.com"


def test_embedded_instance_needs_no_credentials_and_takes_the_sandbox_details(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """\
        instances:
          demo:
            base_url: embedded
            sandbox: {rows_per_second: 200}
        dropboxes:
          acme: {root: acme, instance: demo}
        """,
    )
    instance = load_config(path, environ={}).instances["demo"]
    assert instance.embedded and instance.sandbox is not None
    assert (instance.sandbox.rows_per_second, instance.sandbox.job_overhead_seconds) == (200, 1)
    settings = instance.settings(base_url="http://127.0.0.1:9", client_id="c", client_secret="s")
    assert (settings.base_url, settings.client_id, settings.client_secret) == (
        "http://127.0.0.1:9",
        "c",
        "s",
    )
    with pytest.raises(ValueError, match="running sandbox"):
        instance.settings()


def test_embedded_sandbox_can_follow_the_strict_profile(tmp_path: Path) -> None:
    from dropbox_importer.daemon import embedded_sandbox_settings

    path = write(
        tmp_path,
        """\
        instances:
          strict: {base_url: embedded, sandbox: {profile: strict}}
          kind: {base_url: embedded, sandbox: {}}
          plain: {base_url: embedded}
        dropboxes:
          acme: {root: acme, instance: strict}
        """,
    )
    instances = load_config(path, environ={}).instances
    profiles = {name: embedded_sandbox_settings(i).profile for name, i in instances.items()}
    assert profiles == {"strict": "strict", "kind": "kind", "plain": "kind"}
    wrong = write(
        tmp_path,
        """\
        instances:
          demo: {base_url: embedded, sandbox: {profile: harsh}}
        dropboxes:
          acme: {root: acme, instance: demo}
        """,
    )
    with pytest.raises(ConfigError, match=r"profile: .*one of kind \| strict"):
        load_config(wrong, environ={})


def test_yaml_merge_keys_share_settings_between_drop_boxes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        instances:
          main: {base_url: "http://127.0.0.1:9", client_id: c, client_secret: s}
        dropboxes:
          first: &shared {root: first, instance: main, watch: polling, settle_seconds: 0}
          second:
            <<: *shared
            root: second
        """,
    )
    boxes = load_config(path, environ={}).dropboxes
    assert boxes["second"].watch == "polling" and boxes["second"].settle_seconds == 0
    assert boxes["second"].root == tmp_path / "second"


def test_route_mappings_take_long_and_short_names(tmp_path: Path) -> None:
    box = {
        "defaults": {"partition": "Europe"},
        "routes": {"emea": {"format": "TSV", "list": 7, "lookupField": "id"}},
    }
    config = load_config(minimal(tmp_path, box=box), environ={"MKTO_SECRET": SECRET})
    acme = config.dropboxes["acme"]
    assert acme.routes == {"emea": RouteSpec(ImportFormat.TSV, 7, None, "id")}
    assert acme.defaults == RouteSpec(partition_name="Europe")


def test_named_routes_hide_programs_with_statuses_and_custom_objects(tmp_path: Path) -> None:
    box = {
        "defaults": {"lookup": "email"},
        "routes": {
            "webinar-attended": {"program": 1234, "status": "Attended"},
            "no-shows": {"programId": 1234, "programMemberStatus": "No Show"},
            "cars": {"object": "car_c", "format": "tsv"},
        },
    }
    config = load_config(minimal(tmp_path, box=box), environ={"MKTO_SECRET": SECRET})
    routes = config.dropboxes["acme"].routes
    assert routes["webinar-attended"] == RouteSpec(
        program_id=1234, program_member_status="Attended"
    )
    assert routes["no-shows"] == RouteSpec(program_id=1234, program_member_status="No Show")
    assert routes["cars"] == RouteSpec(ImportFormat.TSV, object_name="car_c")


def test_without_secrets_a_server_config_loads_where_its_credential_is_not_at_hand(
    tmp_path: Path,
) -> None:
    # The documented server install: systemd hands the secret over as $CREDENTIALS_DIRECTORY.
    path = minimal(tmp_path, instance={"client_secret_file": "main"})

    with pytest.raises(ConfigError, match="cannot read secret file"):
        load_config(path, environ={})
    config = load_config(path, environ={}, secrets=False)

    assert config.instances["main"].secret == ""
    assert config.dropboxes["acme"].root == tmp_path / "boxes" / "acme"


def test_without_secrets_two_secret_sources_are_still_refused(tmp_path: Path) -> None:
    path = minimal(tmp_path, instance={"client_secret_file": "main", "client_secret_env": "X"})

    with pytest.raises(ConfigError, match="set exactly one of client_secret_file"):
        load_config(path, environ={}, secrets=False)


def test_the_default_config_path_and_its_environment_variable() -> None:
    assert default_config_path({}) == Path("/etc/dropbox-importer/config.yaml")
    assert default_config_path({"DROPBOX_IMPORTER_CONFIG": "/srv/c.yaml"}) == Path("/srv/c.yaml")
    assert default_config_path({"DROPBOX_IMPORTER_CONFIG": " "}) == DEFAULT_CONFIG
