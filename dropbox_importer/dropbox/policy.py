"""What a file in a drop box may do: which folders count, which lists, partitions and lookup fields.

A drop box is written by outsiders. Without a policy, anyone who can write to `inbox/` picks any
list, partition or lookup field by naming a folder (`inbox/partition=Other,list=9999/`), and a
partner can rename an operator-made route folder (SFTP servers cannot refuse a rename without
breaking temporary-name uploads; network shares have no such switch at all). So the operator
sets, per drop box and overridable per named route:

    allow.folders        named: only route folders named in the config; any: the grammar too
    allow.lists          listIds a file may be imported into (absent: any)
    allow.partitions     partitionNames a file may go to (absent: any)
    allow.lookup_fields  lookup fields a file may use, Marketo's default `email` included
    allow.programs       programIds a file may add members to (absent: any)
    allow.objects        custom objects (API names) a file may import records into (absent: any)

and `columns` (see csvfile.header). A refusal names the rule and the fix and never another
tenant's lists or partitions: it only ever quotes what this drop box itself allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from dropbox_importer.csvfile.header import ColumnRules
from dropbox_importer.dropbox.routes import route_label
from dropbox_importer.marketo.models import ImportKind, ImportParams


class RouteRefused(ValueError):  # noqa: N818 - what happens to the file, not an error of ours
    """The drop box's policy refuses this file's route; `reason` names the rule and the fix.

    `rule` is the config key at work (allow.lists); `value` what it refused (listId 9999).
    """

    def __init__(self, reason: str, *, rule: str = "", value: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.rule = rule
        self.value = value


def _refused(
    value: str, rule: str, allowed: frozenset[int] | frozenset[str], what: str
) -> RouteRefused:
    shown = ", ".join(str(v) for v in sorted(allowed, key=str)) or "none"
    return RouteRefused(
        f"{value} is not open to this drop box ({rule}: {shown}): drop the file in a route "
        f"folder with one of those {what}, or ask the operator to allow this one",
        rule=rule,
        value=value,
    )


@dataclass(frozen=True)
class AllowRules:
    """Where a file of the drop box may be imported; None sets no limit."""

    folders: str = "any"  # any | named
    lists: frozenset[int] | None = None
    partitions: frozenset[str] | None = None
    lookup_fields: frozenset[str] | None = None  # compared in any case
    programs: frozenset[int] | None = None
    objects: frozenset[str] | None = None  # custom objects' API names, compared exactly

    @property
    def open_targets(self) -> list[str]:
        """The targets partners may pick freely by naming a folder: 'list', 'program', ...."""
        if self.folders == "named":
            return []
        targets = (
            ("list", self.lists),
            ("partition", self.partitions),
            ("program", self.programs),
            ("object", self.objects),
        )
        return [name for name, rule in targets if rule is None]


@dataclass(frozen=True)
class Policy:
    """A drop box's (or a named route's) rules for where files go and what their columns become."""

    allow: AllowRules = field(default_factory=AllowRules)
    columns: ColumnRules = field(default_factory=ColumnRules)


def routes_named(route: PurePosixPath, named: Mapping[str, object]) -> list[str]:
    """Named routes a route path uses: a whole folder name, or a bare token of one."""
    found = []
    for part in route.parts:
        if part in named:
            found.append(part)
            continue
        found += [token.strip() for token in part.split(",") if token.strip() in named]
    return found


def _folder_list(names: list[str]) -> str:
    shown = [f"inbox/{name}/" for name in sorted(names)]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def check_folder(route: PurePosixPath, allow: AllowRules, named: Mapping[str, object]) -> None:
    """With `folders: named`, refuse any folder but one named route (RouteRefused)."""
    if allow.folders != "named":
        return
    if len(route.parts) == 1 and route.parts[0] in named:
        return
    where = (
        "directly in inbox/" if route == PurePosixPath(".") else f"in folder '{route_label(route)}'"
    )
    raise RouteRefused(
        f"the file is {where}, but this drop box takes files only in its route folders "
        f"(allow.folders: named): move it to {_folder_list(list(named))}, or ask the operator "
        "to add a route"
    )


def policy_for(
    route: PurePosixPath, box_policy: Policy, route_policies: Mapping[str, Policy]
) -> Policy:
    """The policy of a route path: its named route's own, else the drop box's.

    RouteRefused when the path combines two named routes that each have a policy of their own.
    """
    own = sorted({name for name in routes_named(route, route_policies)})
    if len(own) > 1:
        raise RouteRefused(
            f"folder '{route_label(route)}' combines the routes {' and '.join(own)}, which have "
            "rules of their own: use one of them"
        )
    return route_policies[own[0]] if own else box_policy


def check_params(params: ImportParams, allow: AllowRules) -> None:
    """Refuse a list, partition, lookup field, program or custom object the rules do not allow.

    Raises RouteRefused. A program member or custom object import sets no lookup field, list
    or partition, so only its own target is held against the rules.
    """
    if params.kind is ImportKind.PROGRAM_MEMBERS:
        programs = allow.programs
        if programs is not None and params.program_id not in programs:
            raise _refused(f"programId {params.program_id}", "allow.programs", programs, "programs")
        return
    if params.kind is ImportKind.CUSTOM_OBJECTS:
        objects = allow.objects
        if objects is not None and params.object_name not in objects:
            raise _refused(
                f"custom object '{params.object_name}'", "allow.objects", objects, "objects"
            )
        return
    lists, partitions, lookups = allow.lists, allow.partitions, allow.lookup_fields
    if lists is not None and params.list_id is not None and params.list_id not in lists:
        raise _refused(f"listId {params.list_id}", "allow.lists", lists, "lists")
    partition = params.partition_name
    if partitions is not None and partition is not None and partition not in partitions:
        raise _refused(f"partitionName '{partition}'", "allow.partitions", partitions, "partitions")
    lookup = params.lookup_field or "email"  # Marketo's default lookup field
    if lookups is not None and lookup.casefold() not in {name.casefold() for name in lookups}:
        raise _refused(f"lookupField '{lookup}'", "allow.lookup_fields", lookups, "lookup fields")
