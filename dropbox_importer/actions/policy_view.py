"""A drop box's effective policy in words, for `check`: who can import where, which columns.

Pure functions over the config (and, when Marketo answered, its lead fields): `check` prints
them under its route table; a drop box whose partners can pick any list or partition by naming
a folder gets a warning, and rules naming no lead field are problems.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dropbox_importer.config import DropboxConfig
from dropbox_importer.csvfile.header import PROTECTED_FIELDS, ColumnRules
from dropbox_importer.dropbox.policy import AllowRules, Policy
from dropbox_importer.marketo.models import LeadField


def _listed(values: Iterable[object] | None, none: str = "any") -> str:
    if values is None:
        return none
    shown = sorted(str(v) for v in values)
    return ", ".join(shown) if shown else "none"


def allow_lines(allow: AllowRules, *, folders: bool = True) -> list[tuple[str, str]]:
    """(what, who may) rows for the allow rules."""
    rows = []
    if folders:
        rows.append(
            (
                "folders",
                "named routes only"
                if allow.folders == "named"
                else "any: named routes and folders partners make (inbox/list=…/, …)",
            )
        )
    rows += [
        ("lists", _listed(allow.lists)),
        ("partitions", _listed(allow.partitions)),
        ("lookup fields", _listed(allow.lookup_fields)),
        ("programs", _listed(allow.programs)),
        ("custom objects", _listed(allow.objects)),
    ]
    return rows


def column_lines(rules: ColumnRules) -> list[tuple[str, str]]:
    """(what, rule) rows for the column rules."""
    allowed = {name.casefold() for name in rules.allow or ()}
    protected = [name for name in PROTECTED_FIELDS if name.casefold() not in allowed]
    if rules.allow is None:
        sent = "any lead field but the protected ones"
    else:
        sent = "only " + ", ".join(rules.allow) + " (and the route's lookup field)"
    rows = [("columns sent", sent)]
    if rules.deny:
        rows.append(("columns denied", ", ".join(rules.deny)))
    if protected:
        rows.append(("protected, not sent", ", ".join(protected)))
    if len(protected) < len(PROTECTED_FIELDS):
        opened = [name for name in PROTECTED_FIELDS if name.casefold() in allowed]
        rows.append(("protected, allowed", ", ".join(opened)))
    if rules.aliases:
        rows.append(("aliases", ", ".join(f"{k} -> {v}" for k, v in rules.aliases.items())))
    if rules.ignore:
        rows.append(("ignored", ", ".join(rules.ignore)))
    rows.append(
        (
            "a denied column",
            "fails the file" if rules.on_denied == "reject" else "is dropped, the rest is sent",
        )
    )
    return rows


def open_warning(box: DropboxConfig) -> str | None:
    """A warning when partners can pick any list, partition, program or object by a folder."""
    open_targets = box.allow.open_targets
    if not open_targets:
        return None
    what = " and any ".join("custom object" if t == "object" else t for t in open_targets)
    keys = " and ".join(f"allow.{target}s" for target in open_targets)
    return (
        f"WARNING: partners can import into any {what} by naming a folder "
        f"(inbox/{open_targets[0]}=…/): set allow.folders: named, or {keys}"
    )


def field_problems(
    policy: Policy, fields: Sequence[LeadField], where: str, what: str = ""
) -> list[str]:
    """Names in the column rules that are none of `fields` (`what` names them: a lead field)."""
    known = {f.name.casefold() for f in fields}
    what = what or "lead field"
    problems = [
        f"{where}columns.aliases maps '{alias}' to '{target}', which is no {what}"
        for alias, target in policy.columns.aliases.items()
        if target.casefold() not in known
    ]
    for key, names in (("allow", policy.columns.allow or ()), ("deny", policy.columns.deny)):
        problems += [
            f"{where}columns.{key} names '{name}', which is no {what}"
            for name in names
            if name.casefold() not in known
        ]
    problems += [
        f"{where}allow.lookup_fields names '{name}', which is no lead field"
        for name in sorted(policy.allow.lookup_fields or ())
        if name.casefold() not in known
    ]
    return problems


def render_policy(box: DropboxConfig) -> list[str]:
    """The drop box's effective policy, then each named route's own rules, as text lines."""
    rows = allow_lines(box.allow) + column_lines(box.columns)
    width = max(len(what) for what, _ in rows)
    out = [f"drop box {box.name}: who can import where, which columns"]
    out += [f"  {what.ljust(width)}  {rule}" for what, rule in rows]
    for name, policy in sorted(box.route_policies.items()):
        own = _differences(box.policy, policy)
        own_width = max(len(what) for what, _ in own)
        out.append(f"  route {name}, its own rules:")
        out += [f"    {what.ljust(own_width)}  {rule}" for what, rule in own]
    warning = open_warning(box)
    if warning is not None:
        out.append(f"  {warning}")
    return out


def _differences(base: Policy, route: Policy) -> list[tuple[str, str]]:
    """The (what, rule) rows a route's rules change."""
    before = dict(allow_lines(base.allow, folders=False) + column_lines(base.columns))
    after = allow_lines(route.allow, folders=False) + column_lines(route.columns)
    changed = [(what, rule) for what, rule in after if before.get(what) != rule]
    return changed or [("(none)", "the same as the drop box's")]
