"""Every kind of config mistake is reported with file, line, key path and what to write."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from dropbox_importer.config import ConfigError, load_config

SECRET = "do-not-print-me-7731"

GOOD_INSTANCE = """\
instances:
  main:
    base_url: https://123-ABC-456.mktorest.com
    client_id: the-client
    client_secret_env: MKTO_SECRET
"""


def problems(tmp_path: Path, text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The problems loading `text` reports (it must not load)."""
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"MKTO_SECRET": SECRET} if environ is None else environ)
    assert str(caught.value) == "\n".join(caught.value.problems)
    assert SECRET not in str(caught.value)
    return caught.value.problems


def only(found: list[str], tmp_path: Path, line: int, key: str) -> str:
    """The single problem, checked to name the file, line and key; its message part."""
    assert len(found) == 1, found
    prefix = f"{tmp_path / 'config.yaml'}:{line}: {key}: "
    assert found[0].startswith(prefix), found[0]
    return found[0].removeprefix(prefix)


def with_box(box_lines: str) -> str:
    """A config with the good instance and drop box `acme` with the given extra lines."""
    body = textwrap.indent(textwrap.dedent(box_lines), "    ")
    return f"{GOOD_INSTANCE}dropboxes:\n  acme:\n    root: /srv/acme\n    instance: main\n{body}"


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    text = with_box("setle_seconds: 3\n")
    message = only(problems(tmp_path, text), tmp_path, 10, "dropboxes.acme.setle_seconds")
    assert "unknown key 'setle_seconds'" in message and "did you mean 'settle_seconds'" in message


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    text = with_box("settle_seconds: soon\n")
    message = only(problems(tmp_path, text), tmp_path, 10, "dropboxes.acme.settle_seconds")
    assert message == "expected a number >= 0, got 'soon'"


def test_value_outside_its_range_names_the_range(tmp_path: Path) -> None:
    text = GOOD_INSTANCE + "    max_queued_jobs: 11\ndropboxes:\n  a: {root: /a, instance: main}\n"
    message = only(problems(tmp_path, text), tmp_path, 6, "instances.main.max_queued_jobs")
    assert "a whole number between 1 and 10" in message


def test_word_outside_its_choices_lists_them(tmp_path: Path) -> None:
    message = only(
        problems(tmp_path, with_box("watch: inotify\n")), tmp_path, 10, "dropboxes.acme.watch"
    )
    assert "one of auto | events | polling" in message


def test_unknown_encoding_is_refused(tmp_path: Path) -> None:
    message = only(
        problems(tmp_path, with_box("encoding: klingon\n")), tmp_path, 10, "dropboxes.acme.encoding"
    )
    assert "known text encoding" in message


def test_missing_required_key_points_at_its_section(tmp_path: Path) -> None:
    text = GOOD_INSTANCE + "dropboxes:\n  acme:\n    instance: main\n"
    message = only(problems(tmp_path, text), tmp_path, 8, "dropboxes.acme.root")
    assert message.startswith("missing: add it")


def test_drop_box_naming_an_unknown_instance(tmp_path: Path) -> None:
    text = GOOD_INSTANCE + "dropboxes:\n  acme:\n    root: /srv/acme\n    instance: mian\n"
    message = only(problems(tmp_path, text), tmp_path, 9, "dropboxes.acme.instance")
    assert "no instance named 'mian'" in message and "use one of the instances (main)" in message


@pytest.mark.parametrize(
    ("second_root", "relation"),
    [("/srv/acme", "is the same as"), ("/srv/acme/inner", "overlaps"), ("/srv", "overlaps")],
)
def test_two_drop_boxes_with_the_same_or_nested_roots(
    tmp_path: Path, second_root: str, relation: str
) -> None:
    text = with_box("") + f"  other:\n    root: {second_root}\n    instance: main\n"
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.other.root")
    assert relation in message and "drop box 'acme'" in message
    assert "give each drop box a folder of its own" in message


def test_key_given_twice(tmp_path: Path) -> None:
    text = with_box("settle_seconds: 3\nsettle_seconds: 4\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.acme.settle_seconds")
    assert message == "appears twice (also on line 10): keep one"


def test_no_secret_source(tmp_path: Path) -> None:
    text = GOOD_INSTANCE.replace("    client_secret_env: MKTO_SECRET\n", "")
    text += "dropboxes:\n  a: {root: /a, instance: main}\n"
    message = only(problems(tmp_path, text), tmp_path, 2, "instances.main")
    assert "set exactly one of client_secret_file, client_secret_env or client_secret" in message


def test_two_secret_sources_never_print_the_secret(tmp_path: Path) -> None:
    text = GOOD_INSTANCE + f"    client_secret: {SECRET}\n"
    text += "dropboxes:\n  a: {root: /a, instance: main}\n"
    message = only(problems(tmp_path, text), tmp_path, 5, "instances.main.client_secret_env")
    assert "given: client_secret, client_secret_env" in message


def test_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    text = GOOD_INSTANCE.replace("client_secret_env: MKTO_SECRET", "client_secret: [1, 2]")
    text += "dropboxes:\n  a: {root: /a, instance: main}\n"
    found = problems(tmp_path, text)
    message = only(found[:1], tmp_path, 5, "instances.main.client_secret")
    assert message.startswith("expected a non-empty string") and "[1, 2]" not in message
    assert "1, 2" not in "\n".join(found)


def test_secret_env_variable_not_set(tmp_path: Path) -> None:
    text = GOOD_INSTANCE + "dropboxes:\n  a: {root: /a, instance: main}\n"
    message = only(
        problems(tmp_path, text, environ={}), tmp_path, 5, "instances.main.client_secret_env"
    )
    assert "MKTO_SECRET is not set" in message and "set that variable" in message


def test_secret_file_missing(tmp_path: Path) -> None:
    text = GOOD_INSTANCE.replace("client_secret_env: MKTO_SECRET", "client_secret_file: nope")
    text += "dropboxes:\n  a: {root: /a, instance: main}\n"
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    message = only(
        problems(tmp_path, text, environ), tmp_path, 5, "instances.main.client_secret_file"
    )
    assert str(tmp_path / "nope") in message and "CREDENTIALS_DIRECTORY" in message


def test_base_url_and_munchkin_id_together(tmp_path: Path) -> None:
    text = (
        GOOD_INSTANCE
        + "    munchkin_id: 123-ABC-456\ndropboxes:\n  a: {root: /a, instance: main}\n"
    )
    message = only(problems(tmp_path, text), tmp_path, 2, "instances.main")
    assert "set exactly one of base_url" in message and "munchkin_id" in message


def test_base_url_without_a_scheme(tmp_path: Path) -> None:
    text = GOOD_INSTANCE.replace("https://", "") + "dropboxes:\n  a: {root: /a, instance: main}\n"
    message = only(problems(tmp_path, text), tmp_path, 3, "instances.main.base_url")
    assert "https://<munchkin-id>.mktorest.com" in message


def test_sandbox_options_only_with_an_embedded_instance(tmp_path: Path) -> None:
    text = (
        GOOD_INSTANCE
        + "    sandbox: {rows_per_second: 5}\ndropboxes:\n  a: {root: /a, instance: main}\n"
    )
    message = only(problems(tmp_path, text), tmp_path, 6, "instances.main.sandbox")
    assert "only for base_url: embedded" in message


def test_embedded_instance_refuses_credentials(tmp_path: Path) -> None:
    text = "instances:\n  demo:\n    base_url: embedded\n    client_secret_env: X\n"
    text += "dropboxes:\n  a: {root: /a, instance: demo}\n"
    message = only(problems(tmp_path, text), tmp_path, 4, "instances.demo.client_secret_env")
    assert "not used with base_url: embedded" in message and "remove it" in message


def test_poll_band_upside_down(tmp_path: Path) -> None:
    text = GOOD_INSTANCE + "    poll_min_seconds: 40\ndropboxes:\n  a: {root: /a, instance: main}\n"
    message = only(problems(tmp_path, text), tmp_path, 6, "instances.main.poll_min_seconds")
    assert "above poll_max_seconds 30" in message


def test_route_name_a_partner_folder_cannot_be(tmp_path: Path) -> None:
    text = with_box("routes:\n  csv: {listId: 5}\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.acme.routes.csv")
    assert "can't name a route folder" in message


def test_route_list_id_that_is_no_number(tmp_path: Path) -> None:
    text = with_box("routes:\n  emea: {listId: abc}\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.acme.routes.emea.listId")
    assert "a whole number above 0" in message


def test_route_setting_one_parameter_twice(tmp_path: Path) -> None:
    text = with_box("defaults:\n  list: 5\n  listId: 6\n")
    message = only(problems(tmp_path, text), tmp_path, 12, "dropboxes.acme.defaults.listId")
    assert "keep one of them" in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = with_box("ignore: [*.part\n")
    (found,) = problems(tmp_path, text)
    assert found.startswith(f"{tmp_path / 'config.yaml'}:")
    assert "not valid YAML" in found and "fix the syntax" in found


def test_empty_file(tmp_path: Path) -> None:
    message = only(problems(tmp_path, ""), tmp_path, 1, "(top)")
    assert "expected instances and dropboxes" in message


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: cannot read the config"):
        load_config(tmp_path / "nowhere.yaml")


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    text = with_box("settle_seconds: -1\nwatch: sometimes\nbogus: 1\n")
    found = problems(tmp_path, text)
    keys = [problem.split(": ")[1] for problem in found]
    assert keys == [
        "dropboxes.acme.settle_seconds",
        "dropboxes.acme.watch",
        "dropboxes.acme.bogus",
    ]


def test_state_dir_inside_a_drop_box(tmp_path: Path) -> None:
    text = "state_dir: /srv/acme/state\n" + with_box("")
    message = only(problems(tmp_path, text), tmp_path, 1, "state_dir")
    assert "inside drop box 'acme'" in message and "move it out" in message


def test_named_route_left_empty(tmp_path: Path) -> None:
    text = with_box("routes:\n  emea:\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.acme.routes.emea")
    assert message == "expected a mapping of keys, got nothing"


def test_a_route_that_mixes_import_kinds(tmp_path: Path) -> None:
    text = with_box("routes:\n  webinar: {program: 12, status: Attended, list: 5}\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.acme.routes.webinar")
    assert message.startswith(
        "mixes lead import keys (list) and program member import keys (program, status): "
    )
    assert message.endswith("keep the keys of one")


def test_a_route_with_half_a_program_member_import(tmp_path: Path) -> None:
    text = with_box("defaults:\n  programId: 12\n")
    message = only(problems(tmp_path, text), tmp_path, 10, "dropboxes.acme.defaults")
    assert message.startswith("sets only half of a program member import: add programMemberStatus")


def test_a_route_object_that_is_no_api_name(tmp_path: Path) -> None:
    text = with_box("routes:\n  cars: {object: ../cars}\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.acme.routes.cars.object")
    assert "a custom object's API name" in message


def with_state(state_lines: str) -> str:
    """A good config with the given `state:` section."""
    body = textwrap.indent(textwrap.dedent(state_lines), "  ")
    return with_box("") + f"state:\n{body}"


def test_a_password_in_the_journal_url_is_refused_and_never_echoed(tmp_path: Path) -> None:
    for url in (
        f"postgresql://importer:{SECRET}@db.example.com/journal",
        f"postgresql://importer@db.example.com/journal?password={SECRET}",
    ):
        text = with_state(f"journal: {url}\n")
        message = only(problems(tmp_path, text), tmp_path, 11, "state.journal")
        assert "without a password" in message and "state.password_file" in message


def test_a_journal_that_is_neither_sqlite_nor_postgresql(tmp_path: Path) -> None:
    text = with_state("journal: mysql://db.example.com/journal\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "state.journal")
    assert "postgresql://" in message


def test_a_password_file_for_a_sqlite_journal_is_refused(tmp_path: Path) -> None:
    text = with_state("password_file: journal\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "state.password_file")
    assert "only used with a postgresql:// journal" in message


def test_a_missing_journal_password_file_is_named(tmp_path: Path) -> None:
    text = with_state("journal: postgresql://importer@db/journal\npassword_file: nowhere\n")
    found = problems(tmp_path, text, {"MKTO_SECRET": SECRET, "CREDENTIALS_DIRECTORY": "/creds"})
    message = only(found, tmp_path, 12, "state.password_file")
    assert "cannot read /creds/nowhere" in message


def test_the_journal_password_is_read_from_credentials_or_beside_the_config(
    tmp_path: Path,
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "journal").write_text("from-credentials\n")
    (tmp_path / "journal").write_text("beside-the-config\n")
    path = tmp_path / "config.yaml"
    path.write_text(with_state("journal: postgresql://importer@db/j\npassword_file: journal\n"))
    environ = {"MKTO_SECRET": SECRET, "CREDENTIALS_DIRECTORY": str(credentials)}
    assert load_config(path, environ=environ).state.password == "from-credentials"
    state = load_config(path, environ={"MKTO_SECRET": SECRET}).state
    assert state.password == "beside-the-config"
    assert "beside-the-config" not in repr(state)
