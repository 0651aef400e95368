"""Route folders: the path under `inbox/` that sets a file's import parameters.

Grammar of one folder name (nested folders accumulate, as if joined with commas):

    folder  := <named route> | token ("," token)*
    token   := "csv" | "tsv" | "ssv" | key "=" value
    key     := format | list | listId | partition | partitionName | lookup | lookupField

Keys are case-insensitive; white space around tokens, keys and values is dropped. A folder whose
whole name is a route named in the config contributes that route's parameters, and so does a
bare token naming one (`acme-emea,lookup=id`). One parameter set to two different values, in one
folder or across nested ones, is an error; the drop box's defaults then fill what is left, and a
file's extension decides the format when nothing else did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import PurePosixPath

from dropbox_importer.marketo.models import ImportFormat, ImportParams

# Every spelling a folder or a config may use, lower-cased, mapped to the RouteSpec field.
KEY_ALIASES: dict[str, str] = {
    "format": "format",
    "list": "list_id",
    "listid": "list_id",
    "partition": "partition_name",
    "partitionname": "partition_name",
    "lookup": "lookup_field",
    "lookupfield": "lookup_field",
}

# Marketo's own parameter name of each field, used in every message a person reads.
API_NAMES: dict[str, str] = {
    "format": "format",
    "list_id": "listId",
    "partition_name": "partitionName",
    "lookup_field": "lookupField",
}

# The short key a rendered folder name uses for each field (format is rendered bare).
SHORT_KEYS: dict[str, str] = {
    "list_id": "list",
    "partition_name": "partition",
    "lookup_field": "lookup",
}

KEY_HINT = "use format, list, partition or lookup"
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

    def merged(self, other: RouteSpec, *, where: str) -> RouteSpec:
        """Both specs' parameters together; RouteError naming `where` if one is set twice."""
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
        return replace(self, **changes)  # type: ignore[arg-type]

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
    if field_name == "list_id":
        # isascii: int() would also take other scripts' digits, which no partner means.
        if not (value.isascii() and value.isdigit()) or int(value) == 0:
            raise RouteError(
                folder,
                f"listId must be a whole number above 0 in folder '{folder}', not '{value}': "
                "use the static list's id, e.g. list=1234",
            )
        return RouteSpec(list_id=int(value))
    if not value:
        raise RouteError(
            folder, f"{name} is empty in folder '{folder}': write a value after the '='"
        )
    if field_name == "partition_name":
        return RouteSpec(partition_name=value)
    return RouteSpec(lookup_field=value)


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
            f"key=value with key format, list, partition or lookup{routes}",
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
    return spec.filled_from(defaults)


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
    )


def route_label(route: PurePosixPath) -> str:
    """How logs and result.json name a route: the folder path, "" at the top of inbox/."""
    return "" if route == PurePosixPath(".") else route.as_posix()
