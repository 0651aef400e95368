"""Route folders: the path under `inbox/` that sets a file's import parameters.

Grammar of one folder name (nested folders accumulate, as if joined with commas):

    folder  := <named route> | token ("," token)*
    token   := "csv" | "tsv" | "ssv" | key "=" value
    key     := format | list | listId | partition | partitionName | lookup | lookupField
             | program | programId | status | programMemberStatus | object

Keys are case-insensitive; white space around tokens, keys and values is dropped. A folder whose
whole name is a route named in the config contributes that route's parameters, and so does a
bare token naming one (`acme-emea,lookup=id`). One parameter set to two different values, in one
folder or across nested ones, is an error; the drop box's defaults then fill what is left, and a
file's extension decides the format when nothing else did.

Three kinds of import: leads (list, partition, lookup, or none of the keys below), program
members (`program` and `status`, both required) and custom objects (`object`, the API name).
A route that mixes two kinds is an error naming the folder. The defaults fill only what the
route's kind takes; a route that names no kind takes the defaults' kind (leads if they name none).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import PurePosixPath

from dropbox_importer.marketo.models import ImportFormat, ImportKind, ImportParams

# Every spelling a folder or a config may use, lower-cased, mapped to the RouteSpec field.
KEY_ALIASES: dict[str, str] = {
    "format": "format",
    "list": "list_id",
    "listid": "list_id",
    "partition": "partition_name",
    "partitionname": "partition_name",
    "lookup": "lookup_field",
    "lookupfield": "lookup_field",
    "program": "program_id",
    "programid": "program_id",
    "status": "program_member_status",
    "programmemberstatus": "program_member_status",
    "object": "object_name",
}

# Marketo's own parameter name of each field, used in every message a person reads.
API_NAMES: dict[str, str] = {
    "format": "format",
    "list_id": "listId",
    "partition_name": "partitionName",
    "lookup_field": "lookupField",
    "program_id": "programId",
    "program_member_status": "programMemberStatus",
    "object_name": "apiName",
}

# The short key a rendered folder name uses for each field (format is rendered bare).
SHORT_KEYS: dict[str, str] = {
    "list_id": "list",
    "partition_name": "partition",
    "lookup_field": "lookup",
    "program_id": "program",
    "program_member_status": "status",
    "object_name": "object",
}

KEY_HINT = "use format, list, partition, lookup, program, status or object"
KEY_NAMES = "format, list, partition, lookup, program, status or object"

# The parameters only one import kind takes (format goes with every kind).
KIND_FIELDS: dict[ImportKind, tuple[str, ...]] = {
    ImportKind.LEADS: ("list_id", "partition_name", "lookup_field"),
    ImportKind.PROGRAM_MEMBERS: ("program_id", "program_member_status"),
    ImportKind.CUSTOM_OBJECTS: ("object_name",),
}
KIND_NAMES = {
    ImportKind.LEADS: "a lead import",
    ImportKind.PROGRAM_MEMBERS: "a program member import",
    ImportKind.CUSTOM_OBJECTS: "a custom object import",
}
# A custom object's API name: what Marketo allows, and nothing that could reach into a path.
API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
FORMAT_NAMES = ", ".join(f.value for f in ImportFormat)


class RouteError(ValueError):
    """A route folder that can't be turned into import parameters; says what to change."""

    def __init__(self, folder: str, reason: str) -> None:
        super().__init__(reason)
        self.folder = folder
        self.reason = reason


@dataclass(frozen=True)
class RouteSpec:
    """Import parameters a route sets so far; None means not set (yet)."""

    format: ImportFormat | None = None
    list_id: int | None = None
    partition_name: str | None = None
    lookup_field: str | None = None
    program_id: int | None = None
    program_member_status: str | None = None
    object_name: str | None = None

    def kinds(self) -> list[ImportKind]:
        """The import kinds whose own parameters this spec sets (more than one is an error)."""
        return [
            kind
            for kind, names in KIND_FIELDS.items()
            if any(getattr(self, name) is not None for name in names)
        ]

    @property
    def kind(self) -> ImportKind | None:
        """The import kind the spec's parameters name; None when only the format (or nothing)."""
        found = self.kinds()
        return found[0] if len(found) == 1 else None

    def keeping(self, kind: ImportKind) -> RouteSpec:
        """This spec without the parameters of the other import kinds."""
        others = [n for k, names in KIND_FIELDS.items() if k is not kind for n in names]
        return replace(self, **dict.fromkeys(others))

    def tokens(self, names: tuple[str, ...]) -> str:
        """The folder tokens (`list=5,lookup=id`) of the named parameters that are set."""
        return ",".join(
            f"{SHORT_KEYS[name]}={getattr(self, name)}"
            for name in names
            if getattr(self, name) is not None
        )

    def merged(self, other: RouteSpec, *, where: str) -> RouteSpec:
        """Both specs' parameters together.

        RouteError naming `where` if one is set twice, or if together they mix import kinds.
        """
        changes: dict[str, object] = {}
        for field in fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if theirs is None or theirs == mine:
                continue
            if mine is not None:
                name = API_NAMES[field.name]
                raise RouteError(
                    where,
                    f"{name} is set twice in folder '{where}', to {_shown(mine)} and "
                    f"{_shown(theirs)}: keep one {name} in the folder path",
                )
            changes[field.name] = theirs
        both = replace(self, **changes)  # type: ignore[arg-type]
        check_kinds(both, where)
        return both

    def filled_from(self, defaults: RouteSpec) -> RouteSpec:
        """This spec with its unset parameters taken from `defaults`."""
        changes = {
            field.name: getattr(defaults, field.name)
            for field in fields(self)
            if getattr(self, field.name) is None
        }
        return replace(self, **changes)

    def folder_name(self) -> str:
        """The shortest folder name that parses back to this spec ("" when nothing is set)."""
        tokens = [] if self.format is None else [self.format.value]
        for field_name, key in SHORT_KEYS.items():
            value = getattr(self, field_name)
            if value is not None:
                tokens.append(f"{key}={value}")
        return ",".join(tokens)


def check_kinds(spec: RouteSpec, folder: str) -> None:
    """RouteError naming `folder` and the fix when the spec mixes two import kinds."""
    found = spec.kinds()
    if len(found) < 2:
        return
    shown = {kind: f"{KIND_NAMES[kind]} ({spec.tokens(KIND_FIELDS[kind])})" for kind in found}
    if ImportKind.LEADS in found:
        other = found[1]
        leads = spec.tokens(KIND_FIELDS[ImportKind.LEADS])
        raise RouteError(
            folder,
            f"folder '{folder}' mixes {shown[other]} with lead settings ({leads}): "
            f"{KIND_NAMES[other]} takes no list, partition or lookup field; remove {leads}, "
            "or put lead files in a folder of their own",
        )
    raise RouteError(
        folder,
        f"folder '{folder}' mixes {shown[found[0]]} with {shown[found[1]]}: a file imports "
        "program members (program=…,status=…) or custom object records (object=…), not both; "
        "keep program and status, or object",
    )


def check_complete(spec: RouteSpec, folder: str) -> None:
    """RouteError naming `folder` when a program member import lacks its program or status."""
    if spec.program_id is not None and spec.program_member_status is None:
        raise RouteError(
            folder,
            f"programMemberStatus is missing in folder '{folder}': a program member import "
            f"needs a status too, e.g. program={spec.program_id},status=Attended",
        )
    if spec.program_member_status is not None and spec.program_id is None:
        raise RouteError(
            folder,
            f"programId is missing in folder '{folder}': a program member import needs the "
            f"program too, e.g. program=1234,status={spec.program_member_status}",
        )


def _shown(value: object) -> str:
    """A parameter value as messages quote it."""
    return str(value) if isinstance(value, int) else f"'{value}'"


def parse_value(field_name: str, value: str, folder: str) -> RouteSpec:
    """One parameter from its text; RouteError saying what a valid value looks like."""
    name = API_NAMES[field_name]
    if field_name == "format":
        try:
            return RouteSpec(format=ImportFormat(value.lower()))
        except ValueError:
            raise RouteError(
                folder,
                f"format must be one of {FORMAT_NAMES} in folder '{folder}', not '{value}'",
            ) from None
    if field_name in ("list_id", "program_id"):
        # isascii: int() would also take other scripts' digits, which no partner means.
        if not (value.isascii() and value.isdigit()) or int(value) == 0:
            what, key = ("static list", "list") if name == "listId" else ("program", "program")
            raise RouteError(
                folder,
                f"{name} must be a whole number above 0 in folder '{folder}', not '{value}': "
                f"use the {what}'s id, e.g. {key}=1234",
            )
        return RouteSpec(**{field_name: int(value)})  # type: ignore[arg-type]
    if not value:
        raise RouteError(
            folder, f"{name} is empty in folder '{folder}': write a value after the '='"
        )
    if field_name == "object_name" and not API_NAME.fullmatch(value):
        raise RouteError(
            folder,
            f"apiName '{value}' in folder '{folder}' is no custom object API name: use the "
            "object's API name (letters, digits and _), e.g. object=car_c",
        )
    return RouteSpec(**{field_name: value})  # type: ignore[arg-type]


def parse_token(token: str, folder: str, named: Mapping[str, RouteSpec]) -> RouteSpec:
    """The parameters one comma-separated token of a folder name sets."""
    if not token:
        raise RouteError(
            folder,
            f"empty setting in folder '{folder}': remove the extra comma",
        )
    if "=" not in token:
        if token.lower() in ImportFormat.__members__.values():
            return RouteSpec(format=ImportFormat(token.lower()))
        if token in named:
            return named[token]
        routes = f", or a route named in the config ({', '.join(sorted(named))})" if named else ""
        raise RouteError(
            folder,
            f"unknown setting '{token}' in folder '{folder}': use {FORMAT_NAMES}, "
            f"key=value with key {KEY_NAMES}{routes}",
        )
    key, value = (part.strip() for part in token.split("=", 1))
    field_name = KEY_ALIASES.get(key.lower())
    if field_name is None:
        raise RouteError(folder, f"unknown key '{key}' in folder '{folder}': {KEY_HINT}")
    return parse_value(field_name, value, folder)


def parse_folder_name(name: str, named: Mapping[str, RouteSpec]) -> RouteSpec:
    """The parameters one folder name sets: a named route or comma-separated settings."""
    if name in named:
        return named[name]
    if name in ("", ".", ".."):
        raise RouteError(name, f"folder '{name}' is not a route folder: use a plain name")
    spec = RouteSpec()
    for token in name.split(","):
        spec = spec.merged(parse_token(token.strip(), name, named), where=name)
    return spec


def resolve_route(
    route: PurePosixPath, named: Mapping[str, RouteSpec], defaults: RouteSpec
) -> RouteSpec:
    """The parameters of a route (a folder path under inbox/, "." for none), defaults filled in."""
    spec = RouteSpec()
    label = route_label(route)
    for part in route.parts:
        spec = spec.merged(parse_folder_name(part, named), where=label)
    filled = with_defaults(spec, defaults)
    check_complete(filled, label)
    return filled


def with_defaults(spec: RouteSpec, defaults: RouteSpec) -> RouteSpec:
    """`spec` with what it leaves out taken from `defaults`, as far as its kind takes it.

    The defaults fill only what the route's kind of import takes: a drop box whose defaults set
    a lookup field can still have program member and custom object routes. A route that names
    no kind takes the defaults' (leads if they name none).
    """
    kind = spec.kind or defaults.kind or ImportKind.LEADS
    return spec.filled_from(defaults.keeping(kind))


def format_from_extension(filename: str) -> ImportFormat | None:
    """The format a file name's extension (case-insensitive) stands for, if any."""
    suffix = PurePosixPath(filename).suffix.lower().lstrip(".")
    return ImportFormat(suffix) if suffix in ImportFormat.__members__.values() else None


def import_params(spec: RouteSpec, filename: str) -> ImportParams:
    """The import parameters of one file; the extension decides a format the route left open."""
    file_format = spec.format or format_from_extension(filename)
    if file_format is None:
        raise RouteError(
            "",
            f"no format for '{filename}': its folder names none and its extension is not "
            f".csv, .tsv or .ssv; rename the file or drop it in a csv, tsv or ssv folder",
        )
    return ImportParams(
        format=file_format,
        list_id=spec.list_id,
        partition_name=spec.partition_name,
        lookup_field=spec.lookup_field,
        program_id=spec.program_id,
        program_member_status=spec.program_member_status,
        object_name=spec.object_name,
    )


def route_label(route: PurePosixPath) -> str:
    """How logs and result.json name a route: the folder path, "" at the top of inbox/."""
    return "" if route == PurePosixPath(".") else route.as_posix()
