"""The drop box's policy: which folders count and which lists, partitions and lookups are open."""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePosixPath

import pytest

from dropbox_importer.csvfile.header import ColumnRules
from dropbox_importer.dropbox.policy import (
    AllowRules,
    Policy,
    RouteRefused,
    check_folder,
    check_params,
    policy_for,
)
from dropbox_importer.marketo.models import ImportFormat, ImportParams

NAMED = {"acme-emea": object(), "acme-us": object()}
STRICT = AllowRules(folders="named")


@pytest.mark.parametrize("route", ["acme-emea", "acme-us"])
def test_named_folders_pass(route: str) -> None:
    check_folder(PurePosixPath(route), STRICT, NAMED)


@pytest.mark.parametrize(
    "route",
    [".", "list=9999", "csv,list=9999", "acme-emea,lookup=id", "acme-emea/list=1", "acme-emeA"],
)
def test_any_other_folder_is_refused_naming_the_rule_and_the_routes(route: str) -> None:
    with pytest.raises(RouteRefused) as caught:
        check_folder(PurePosixPath(route), STRICT, NAMED)
    reason = caught.value.reason
    assert "allow.folders: named" in reason
    assert "move it to inbox/acme-emea/ or inbox/acme-us/" in reason


def test_the_folder_grammar_is_open_by_default() -> None:
    check_folder(PurePosixPath("csv,list=9999"), AllowRules(), NAMED)


def params(list_id: int | None = None, partition: str | None = None, lookup: str | None = None):
    return ImportParams(ImportFormat.CSV, list_id, partition, lookup)


RULES = AllowRules(
    lists=frozenset({1234}), partitions=frozenset({"EMEA"}), lookup_fields=frozenset({"email"})
)


@pytest.mark.parametrize(
    ("given", "rule", "value"),
    [
        (params(list_id=9999), "allow.lists", "listId 9999"),
        (params(partition="Competitor"), "allow.partitions", "partitionName 'Competitor'"),
        (params(lookup="id"), "allow.lookup_fields", "lookupField 'id'"),
    ],
)
def test_targets_outside_allow_are_refused_quoting_only_this_drop_boxs_own(
    given: ImportParams, rule: str, value: str
) -> None:
    with pytest.raises(RouteRefused) as caught:
        check_params(given, RULES)
    assert (caught.value.rule, caught.value.value) == (rule, value)
    assert caught.value.reason.startswith(f"{value} is not open to this drop box ({rule}: ")
    assert "ask the operator" in caught.value.reason


def test_targets_inside_allow_and_unset_ones_pass() -> None:
    check_params(params(1234, "EMEA", "EMAIL"), RULES)
    check_params(params(), RULES)  # no list, no partition, Marketo's default lookup email
    with pytest.raises(RouteRefused):
        check_params(params(), AllowRules(lookup_fields=frozenset({"id"})))


def test_a_named_route_brings_its_own_policy_wherever_it_appears() -> None:
    box = Policy()
    own = Policy(AllowRules(lists=frozenset({5})), ColumnRules(allow=("email",)))
    routes = {"consent": own}
    assert policy_for(PurePosixPath("consent"), box, routes) is own
    assert policy_for(PurePosixPath("csv/consent,lookup=id"), box, routes) is own
    assert policy_for(PurePosixPath("csv,list=5"), box, routes) is box
    with pytest.raises(RouteRefused, match="combines the routes a and b"):
        policy_for(PurePosixPath("a/b"), box, {"a": own, "b": Policy()})


def test_open_targets_name_what_partners_can_pick() -> None:
    assert AllowRules().open_targets == ["list", "partition", "program", "object"]
    closed = AllowRules(lists=frozenset(), programs=frozenset({1001}), objects=frozenset())
    assert closed.open_targets == ["partition"]
    assert AllowRules(folders="named").open_targets == []


MEMBERS = ImportParams(ImportFormat.CSV, program_id=1001, program_member_status="Attended")
CARS = ImportParams(ImportFormat.CSV, object_name="car_c")


def test_programs_and_custom_objects_outside_the_rules_are_refused() -> None:
    allow = AllowRules(
        lists=frozenset({7}), programs=frozenset({1001}), objects=frozenset({"boat_c"})
    )
    check_params(MEMBERS, allow)  # a program member import sets no list: lists don't apply
    with pytest.raises(RouteRefused) as caught:
        check_params(CARS, allow)
    assert caught.value.reason == (
        "custom object 'car_c' is not open to this drop box (allow.objects: boat_c): drop the "
        "file in a route folder with one of those objects, or ask the operator to allow this one"
    )
    with pytest.raises(RouteRefused) as refused_program:
        check_params(replace(MEMBERS, program_id=2002), allow)
    assert refused_program.value.rule == "allow.programs"
    assert "programId 2002 is not open to this drop box (allow.programs: 1001)" in str(
        refused_program.value
    )
