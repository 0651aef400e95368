"""Route folders: the grammar partners use under inbox/ and the parameters it yields."""

from __future__ import annotations

import random
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dropbox_importer.dropbox.routes import (
    RouteError,
    RouteSpec,
    import_params,
    parse_folder_name,
    resolve_route,
    route_label,
)
from dropbox_importer.marketo.models import ImportFormat, ImportKind, ImportParams

NAMED = {"acme-emea": RouteSpec(format=ImportFormat.CSV, list_id=1234, partition_name="EMEA")}
NONE = RouteSpec()


def parse(name: str) -> RouteSpec:
    return parse_folder_name(name, NAMED)


def refused(name: str) -> RouteError:
    with pytest.raises(RouteError) as caught:
        parse(name)
    assert caught.value.folder == name
    assert name in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("csv", RouteSpec(format=ImportFormat.CSV)),
        ("TSV", RouteSpec(format=ImportFormat.TSV)),
        ("format=ssv", RouteSpec(format=ImportFormat.SSV)),
        ("list=1234", RouteSpec(list_id=1234)),
        ("listId=1234", RouteSpec(list_id=1234)),
        ("LISTID=1234", RouteSpec(list_id=1234)),
        ("partition=EMEA", RouteSpec(partition_name="EMEA")),
        ("partitionName=EMEA", RouteSpec(partition_name="EMEA")),
        ("lookup=id", RouteSpec(lookup_field="id")),
        ("lookupField=externalId", RouteSpec(lookup_field="externalId")),
        (
            "csv,list=5,partition=Europe,lookup=email",
            RouteSpec(ImportFormat.CSV, 5, "Europe", "email"),
        ),
        ("csv, list = 5", RouteSpec(format=ImportFormat.CSV, list_id=5)),
        ("list=5,list=5", RouteSpec(list_id=5)),
        ("partition=a=b", RouteSpec(partition_name="a=b")),
        ("acme-emea", NAMED["acme-emea"]),
        ("acme-emea,lookup=id", RouteSpec(ImportFormat.CSV, 1234, "EMEA", "id")),
        (
            "program=1001,status=Attended",
            RouteSpec(program_id=1001, program_member_status="Attended"),
        ),
        (
            "csv,PROGRAMID=7,programMemberStatus=No Show",
            RouteSpec(ImportFormat.CSV, program_id=7, program_member_status="No Show"),
        ),
        ("object=car_c", RouteSpec(object_name="car_c")),
        ("tsv, Object = car_c", RouteSpec(ImportFormat.TSV, object_name="car_c")),
    ],
)
def test_folder_name_sets_parameters(name: str, expected: RouteSpec) -> None:
    assert parse(name) == expected


def test_unknown_key_names_the_folder_and_the_keys_to_use() -> None:
    error = refused("lst=5")
    expected = (
        "unknown key 'lst' in folder 'lst=5': use format, list, partition, lookup, program, "
        "status or object"
    )
    assert str(error) == expected
    assert error.reason == str(error)


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5", "", "\u0663"])
def test_list_id_must_be_a_positive_whole_number(value: str) -> None:
    error = refused(f"list={value}")
    assert "listId must be a whole number above 0" in str(error)
    assert "list=1234" in str(error)  # shows what a good one looks like


@pytest.mark.parametrize("name", ["partition=", "lookup=", "partitionName= "])
def test_partition_and_lookup_must_not_be_empty(name: str) -> None:
    assert "is empty" in str(refused(name))


def test_one_key_with_two_values_in_one_folder_is_refused() -> None:
    error = refused("list=5,list=6")
    assert "listId is set twice" in str(error) and "5" in str(error) and "6" in str(error)


def test_named_route_and_a_different_list_conflict() -> None:
    assert "listId is set twice" in str(refused("acme-emea,list=9"))


def test_unknown_word_suggests_formats_and_named_routes() -> None:
    message = str(refused("excel"))
    assert "csv, tsv, ssv" in message and "acme-emea" in message


@pytest.mark.parametrize("name", ["csv,,list=5", "csv,", ",csv"])
def test_empty_setting_from_a_stray_comma_is_refused(name: str) -> None:
    assert "extra comma" in str(refused(name))


def test_unknown_format_value_is_refused() -> None:
    assert "format must be one of csv, tsv, ssv" in str(refused("format=xlsx"))


def test_nested_folders_accumulate_like_the_comma_form() -> None:
    nested = resolve_route(PurePosixPath("csv/list=1234/partition=EU"), NAMED, NONE)
    assert nested == resolve_route(PurePosixPath("csv,list=1234,partition=EU"), NAMED, NONE)
    assert nested == RouteSpec(ImportFormat.CSV, 1234, "EU")


def test_nested_conflict_names_the_whole_route() -> None:
    with pytest.raises(RouteError) as caught:
        resolve_route(PurePosixPath("list=1/csv/list=2"), NAMED, NONE)
    assert caught.value.folder == "list=1/csv/list=2"
    assert "keep one listId" in str(caught.value)


def test_nested_same_value_twice_is_fine() -> None:
    spec = resolve_route(PurePosixPath("acme-emea/list=1234"), NAMED, NONE)
    assert spec == NAMED["acme-emea"]


def test_bad_component_in_a_nested_route_names_that_folder() -> None:
    with pytest.raises(RouteError) as caught:
        resolve_route(PurePosixPath("acme-emea/lst=5"), NAMED, NONE)
    assert caught.value.folder == "lst=5"


def test_defaults_fill_only_what_the_route_left_out() -> None:
    defaults = RouteSpec(list_id=1, lookup_field="email")
    spec = resolve_route(PurePosixPath("list=7"), NAMED, defaults)
    assert spec == RouteSpec(list_id=7, lookup_field="email")


def test_top_of_inbox_takes_the_defaults() -> None:
    defaults = RouteSpec(partition_name="Default")
    assert resolve_route(PurePosixPath("."), NAMED, defaults) == defaults
    assert resolve_route(PurePosixPath(""), NAMED, NONE) == NONE


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("leads.csv", ImportFormat.CSV),
        ("LEADS.TSV", ImportFormat.TSV),
        ("export.2024.Ssv", ImportFormat.SSV),
    ],
)
def test_extension_decides_the_format_when_no_folder_does(
    filename: str, expected: ImportFormat
) -> None:
    assert import_params(RouteSpec(list_id=3), filename) == ImportParams(expected, list_id=3)


def test_folder_format_wins_over_the_extension() -> None:
    params = import_params(RouteSpec(format=ImportFormat.TSV, lookup_field="id"), "leads.csv")
    assert params == ImportParams(ImportFormat.TSV, lookup_field="id")


@pytest.mark.parametrize("filename", ["leads.txt", "leads", "leads.csv.gz", ".csv"])
def test_unknown_extension_without_a_format_folder_is_refused(filename: str) -> None:
    with pytest.raises(RouteError) as caught:
        import_params(NONE, filename)
    assert filename in str(caught.value)
    assert "drop it in a csv, tsv or ssv folder" in str(caught.value)


def test_route_label_names_the_top_of_inbox_as_empty() -> None:
    assert route_label(PurePosixPath(".")) == ""
    assert route_label(PurePosixPath("csv/list=5")) == "csv/list=5"


# -- properties -------------------------------------------------------------------------------

values = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=",/"),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() == s and s != "")
formats = st.none() | st.sampled_from(list(ImportFormat))
lead_specs = st.builds(
    RouteSpec,
    format=formats,
    list_id=st.none() | st.integers(min_value=1, max_value=10**12),
    partition_name=st.none() | values,
    lookup_field=st.none() | values,
)
member_specs = st.builds(
    RouteSpec,
    format=formats,
    program_id=st.integers(min_value=1, max_value=10**12),
    program_member_status=values,
)
object_specs = st.builds(
    RouteSpec,
    format=formats,
    object_name=st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True),
)
specs = (lead_specs | member_specs | object_specs).filter(lambda spec: spec != NONE)


@given(specs)
def test_any_spec_rendered_to_a_folder_name_parses_back(spec: RouteSpec) -> None:
    assert parse_folder_name(spec.folder_name(), {}) == spec


@given(specs, st.randoms())
def test_nested_folders_accumulate_like_one_comma_folder(
    spec: RouteSpec, rnd: random.Random
) -> None:
    tokens = spec.folder_name().split(",")
    rnd.shuffle(tokens)
    nested = resolve_route(PurePosixPath(*tokens), {}, NONE)
    assert nested == resolve_route(PurePosixPath(",".join(tokens)), {}, NONE) == spec


@given(st.text(max_size=40).filter(lambda s: "/" not in s))
def test_any_folder_name_parses_or_raises_route_error(name: str) -> None:
    try:
        spec = parse_folder_name(name, NAMED)
    except RouteError as error:
        assert error.folder == name and error.reason
    else:
        assert isinstance(spec, RouteSpec)


# -- program members and custom objects ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "says"),
    [
        (
            "program=1001,status=Attended,list=5",
            "folder 'program=1001,status=Attended,list=5' mixes a program member import "
            "(program=1001,status=Attended) with lead settings (list=5): a program member "
            "import takes no list, partition or lookup field; remove list=5, or put lead files "
            "in a folder of their own",
        ),
        (
            "object=car_c,lookup=id,partition=EU",
            "folder 'object=car_c,lookup=id,partition=EU' mixes a custom object import "
            "(object=car_c) with lead settings (lookup=id): a custom object import takes no "
            "list",
        ),
        (
            "program=1001,object=car_c",
            "folder 'program=1001,object=car_c' mixes a program member import (program=1001) "
            "with a custom object import (object=car_c): a file imports program members "
            "(program=…,status=…) or custom object records (object=…), not both; keep program "
            "and status, or object",
        ),
        ("status=Attended,object=car_c", "(status=Attended) with a custom object import"),
        ("program=abc", "programId must be a whole number above 0 in folder 'program=abc', not"),
        ("program=0", "use the program's id, e.g. program=1234"),
        ("status=", "programMemberStatus is empty in folder 'status='"),
        ("object=", "apiName is empty in folder 'object='"),
        ("object=../car_c", "apiName '../car_c' in folder 'object=../car_c' is no custom object"),
    ],
)
def test_kinds_do_not_mix_and_their_values_are_checked(name: str, says: str) -> None:
    assert says in str(refused(name))


def test_a_mix_across_nested_folders_or_a_named_route_names_the_whole_route() -> None:
    with pytest.raises(RouteError) as caught:
        resolve_route(PurePosixPath("acme-emea/program=5,status=Registered"), NAMED, NONE)
    assert caught.value.folder == "acme-emea/program=5,status=Registered"
    assert "remove list=1234,partition=EMEA" in str(caught.value)


@pytest.mark.parametrize(
    ("route", "says"),
    [
        (
            "program=1001",
            "programMemberStatus is missing in folder 'program=1001': a program member import "
            "needs a status too, e.g. program=1001,status=Attended",
        ),
        (
            "csv/status=Registered",
            "programId is missing in folder 'csv/status=Registered': a program member import "
            "needs the program too, e.g. program=1234,status=Registered",
        ),
    ],
)
def test_a_program_member_route_needs_both_program_and_status(route: str, says: str) -> None:
    with pytest.raises(RouteError) as caught:
        resolve_route(PurePosixPath(route), NAMED, NONE)
    assert str(caught.value) == says


def test_a_named_route_hides_a_program_and_its_status() -> None:
    named = {"webinar-attended": RouteSpec(program_id=1234, program_member_status="Attended")}
    spec = resolve_route(PurePosixPath("webinar-attended/csv"), named, NONE)
    assert import_params(spec, "attendees.txt") == ImportParams(
        ImportFormat.CSV, program_id=1234, program_member_status="Attended"
    )


def test_defaults_fill_only_the_parameters_of_the_routes_kind() -> None:
    defaults = RouteSpec(ImportFormat.TSV, lookup_field="email", partition_name="EU")
    members = resolve_route(PurePosixPath("program=7,status=Invited"), NAMED, defaults)
    assert members == RouteSpec(ImportFormat.TSV, program_id=7, program_member_status="Invited")
    objects = resolve_route(PurePosixPath("object=car_c"), NAMED, defaults)
    assert objects == RouteSpec(ImportFormat.TSV, object_name="car_c")
    leads = resolve_route(PurePosixPath("list=3"), NAMED, defaults)
    assert leads == RouteSpec(ImportFormat.TSV, 3, "EU", "email")


def test_a_route_without_a_kind_takes_the_defaults_kind() -> None:
    defaults = RouteSpec(program_id=7, program_member_status="Registered")
    assert resolve_route(PurePosixPath("csv"), NAMED, defaults) == RouteSpec(
        ImportFormat.CSV, program_id=7, program_member_status="Registered"
    )
    # A lead route of such a drop box stays a lead import: the defaults' program is not its.
    assert resolve_route(PurePosixPath("list=3"), NAMED, defaults) == RouteSpec(list_id=3)
    assert import_params(RouteSpec(), "a.csv").kind is ImportKind.LEADS
