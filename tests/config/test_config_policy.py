"""The policy keys load into typed rules, route overrides key by key, mistakes with file:line."""

from __future__ import annotations

from pathlib import Path

from dropbox_importer.config import load_config
from dropbox_importer.csvfile.header import ColumnRules
from dropbox_importer.dropbox.policy import AllowRules, Policy
from tests.config.test_config_errors import SECRET, only, problems, with_box


def load(tmp_path: Path, box_lines: str) -> object:
    path = tmp_path / "config.yaml"
    path.write_text(with_box(box_lines))
    return load_config(path, environ={"MKTO_SECRET": SECRET}).dropboxes["acme"]


def test_absent_policy_sets_no_limit_but_protects_consent_fields(tmp_path: Path) -> None:
    box = load(tmp_path, "")
    assert box.policy == Policy(AllowRules(), ColumnRules())  # type: ignore[attr-defined]
    assert ColumnRules().denial("unsubscribed", "email") is not None


def test_policy_keys_load_and_a_route_overrides_only_the_keys_it_sets(tmp_path: Path) -> None:
    box = load(
        tmp_path,
        """\
        allow:
          folders: named
          lists: [1, 2]
          partitions: [EMEA]
          lookup_fields: [email]
        columns:
          aliases: {"E-Mail": email}
          ignore: [Notes]
          allow: [email, firstName]
          on_denied: drop
        routes:
          plain: {list: 1}
          consent:
            list: 3
            allow: {lists: [3]}
            columns: {allow: [email, unsubscribed]}
        """,
    )
    assert box.allow == AllowRules("named", frozenset({1, 2}), frozenset({"EMEA"}),  # type: ignore[attr-defined]
                                   frozenset({"email"}))  # fmt: skip
    columns = ColumnRules({"E-Mail": "email"}, ("Notes",), ("email", "firstName"), (), "drop")
    assert box.columns == columns  # type: ignore[attr-defined]
    consent = box.route_policies["consent"]  # type: ignore[attr-defined]
    assert consent.allow == AllowRules("named", frozenset({3}), frozenset({"EMEA"}),
                                       frozenset({"email"}))  # fmt: skip
    # The route's columns.allow replaces the drop box's; aliases, ignore, on_denied stay.
    assert consent.columns == ColumnRules(
        {"E-Mail": "email"}, ("Notes",), ("email", "unsubscribed"), (), "drop"
    )
    assert "plain" not in box.route_policies  # type: ignore[attr-defined]


def test_a_named_route_outside_allow_is_a_config_error(tmp_path: Path) -> None:
    text = with_box("allow: {lists: [1]}\nroutes:\n  emea: {list: 2, partition: EMEA}\n")
    message = only(problems(tmp_path, text), tmp_path, 12, "dropboxes.acme.routes.emea")
    assert message.startswith("listId 2 is outside allow.lists")
    assert "add it to allow.lists or change the route" in message


def test_defaults_outside_allow_are_a_config_error_unless_folders_are_named(
    tmp_path: Path,
) -> None:
    text = with_box("allow: {lookup_fields: [email]}\ndefaults: {lookup: id}\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.acme.defaults")
    assert "lookupField 'id' is outside allow.lookup_fields" in message


def test_folders_named_without_routes_refuses_everything(tmp_path: Path) -> None:
    text = with_box("allow:\n  folders: named\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.acme.allow.folders")
    assert "names no routes" in message


def test_folders_is_the_drop_boxs_alone(tmp_path: Path) -> None:
    text = with_box("routes:\n  emea:\n    list: 1\n    allow: {folders: any}\n")
    message = only(
        problems(tmp_path, text), tmp_path, 13, "dropboxes.acme.routes.emea.allow.folders"
    )
    assert "unknown key 'folders'" in message


def test_wrong_values_say_what_was_expected(tmp_path: Path) -> None:
    text = with_box(
        "allow:\n  lists: [abc]\n  folders: some\ncolumns:\n  aliases: [email]\n  on_denied: keep\n"
    )
    found = problems(tmp_path, text)
    assert [p.split(": ")[1] for p in found] == [
        "dropboxes.acme.allow.lists",
        "dropboxes.acme.allow.folders",
        "dropboxes.acme.columns.aliases",
        "dropboxes.acme.columns.on_denied",
    ]
    assert "a list of static list ids" in found[0]
    assert "one of any | named" in found[1]
    assert "a mapping of column names to field names" in found[2]
    assert "one of reject | drop" in found[3]


def test_a_field_both_allowed_and_denied_is_reported(tmp_path: Path) -> None:
    text = with_box("columns:\n  allow: [email, leadScore]\n  deny: [LEADSCORE]\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.acme.columns.allow")
    assert "'leadScore' is both allowed and denied" in message


def test_aliases_differing_only_in_case_are_reported(tmp_path: Path) -> None:
    text = with_box('columns:\n  aliases: {"E-Mail": email, "e-mail": email}\n')
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.acme.columns.aliases")
    assert "differ only in case" in message


def test_empty_lookup_fields_would_refuse_every_file(tmp_path: Path) -> None:
    text = with_box("allow:\n  lookup_fields: []\n")
    message = only(problems(tmp_path, text), tmp_path, 11, "dropboxes.acme.allow.lookup_fields")
    assert "every file would be refused" in message


def test_programs_and_objects_load_and_a_route_outside_them_is_a_problem(tmp_path: Path) -> None:
    box = load(
        tmp_path,
        """\
        defaults: {lookupField: email}
        allow: {programs: [1001], objects: [car_c]}
        routes:
          attended: {program: 1001, status: Attended}
          cars: {object: car_c, allow: {objects: [car_c, boat_c]}}
        """,
    )
    assert box.allow.programs == frozenset({1001})  # type: ignore[attr-defined]
    assert box.route_policies["cars"].allow.objects == frozenset({"car_c", "boat_c"})  # type: ignore[attr-defined]
    text = with_box(
        "allow: {programs: [1001], objects: [car_c]}\n"
        "routes:\n  webinar: {program: 2002, status: Attended}\n  boats: {object: boat_c}\n"
    )
    found = problems(tmp_path, text)
    assert [p.split(": ", 2)[1:] for p in found] == [
        [
            "dropboxes.acme.routes.webinar",
            "programId 2002 is outside allow.programs, so every file there would be refused: "
            "add it to allow.programs or change the route",
        ],
        [
            "dropboxes.acme.routes.boats",
            "custom object 'boat_c' is outside allow.objects, so every file there would be "
            "refused: add it to allow.objects or change the route",
        ],
    ]


def test_allow_objects_takes_api_names_only(tmp_path: Path) -> None:
    text = with_box("allow: {objects: [car_c, ../x]}\n")
    message = only(problems(tmp_path, text), tmp_path, 10, "dropboxes.acme.allow.objects")
    assert "a list of custom object API names, e.g. [car_c]" in message
