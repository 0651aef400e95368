"""Prove a config works before partners drop files: credentials, folders, routes, targets.

For every instance a drop box uses, a token is fetched; for every drop box, its root must exist
and its folders be writable by the user `check` runs as (run it as the daemon's user); for
every route (each named route of a drop box, and each folder present under its inbox/), the
folder path is parsed, held against the drop box's policy, and what it imports into is looked
up in Marketo: a lead route's list, partition and lookup field; a program member route's program
and status (one of its channel's); a custom object route's object and its dedupe fields. A route
of an instance that could not be reached is NOT CHECKED, with the instance's problem (connection
refused, a DNS failure, no answer in time, credentials refused). Then each drop box's effective
policy is printed (who can import where, which columns), with a warning when partners can pick
any list, partition, program or custom object by naming a folder, and a problem for any field
name in its column rules that Marketo does not know. Instances with `base_url: embedded` are
checked against an in-process sandbox, as the daemon would run them. Every call is read-only.

A shared journal (PostgreSQL) is checked too: reached with the daemon's credentials, its
schema version compared with this version's.

Exit codes: 0 all OK, 1 at least one problem or route not checked (each printed on its row),
2 config error.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import requests

from dropbox_importer import logs
from dropbox_importer.actions.options import add_config_option, load
from dropbox_importer.actions.policy_view import field_problems, render_policy
from dropbox_importer.config import Config, ConfigError, DropboxConfig, InstanceConfig
from dropbox_importer.dropbox.access import current_user, folder_problems, state_dir_problem
from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.dropbox.policy import RouteRefused, check_folder, check_params, policy_for
from dropbox_importer.dropbox.routes import (
    RouteError,
    RouteSpec,
    import_params,
    resolve_route,
    route_label,
)
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.errors import MarketoError, Stopped
from dropbox_importer.marketo.models import ImportKind, LeadField
from dropbox_importer.pipeline.engine import check_journal
from dropbox_importer.pipeline.preflight import (
    Catalog,
    PreflightError,
    mapping_fields,
    spelt_status,
)
from dropbox_importer.pipeline.problems import read_published
from dropbox_importer.pipeline.ready import is_ignored
from dropbox_importer.pipeline.watch import scan_inbox

EXIT_OK, EXIT_PROBLEMS, EXIT_CONFIG = 0, 1, 2
DEFAULT_TIMEOUT = 30.0
# What a lookup against an instance can raise; anything else is a bug and should show as one.
LOOKUP_ERRORS = (MarketoError, Stopped, requests.RequestException)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `check`'s options."""
    add_config_option(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on an instance that has not answered by then (default {DEFAULT_TIMEOUT:g})",
    )


@contextmanager
def open_client(instance: InstanceConfig) -> Iterator[MarketoClient]:
    """A client of the instance; an embedded one gets its in-process sandbox for the duration."""
    if not instance.embedded:
        client = MarketoClient(instance.settings())
        try:
            yield client
        finally:
            client.close()
        return
    # Imported here: only embedded instances need the daemon's sandbox settings.
    from dropbox_importer.daemon import embedded_sandbox_settings
    from dropbox_importer.sandbox import Sandbox

    with Sandbox(embedded_sandbox_settings(instance)) as sandbox:
        client = MarketoClient(
            instance.settings(
                base_url=sandbox.base_url,
                client_id=sandbox.settings.client_id,
                client_secret=sandbox.settings.client_secret,
            )
        )
        try:
            yield client
        finally:
            client.close()


@dataclass(frozen=True)
class RouteRow:
    """One line of the table: a route of a drop box and what was found about it."""

    dropbox: str
    route: str
    kind: str  # leads, program members, custom objects ("-" when the route does not parse)
    format: str
    target: str  # what it imports into: "list 1001, partition EU", "program 1001, status …"
    key: str  # the column that finds a row's record: lookup field, email, dedupe fields
    problems: tuple[str, ...]
    unchecked: str | None = None  # why Marketo was not asked about it


def route_folders(layout: DropboxLayout, box: DropboxConfig) -> list[PurePosixPath]:
    """Every folder under inbox/ (the top itself when files wait there), sorted."""
    found: set[PurePosixPath] = set()
    if not layout.inbox.is_dir():
        return []
    for folder, dirs, files in os.walk(layout.inbox, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        relative = PurePosixPath(Path(folder).relative_to(layout.inbox).as_posix())
        if relative != PurePosixPath(".") or any(not is_ignored(f, box.ignore) for f in files):
            found.add(relative)
    return sorted(found)


def check_route(
    box: DropboxConfig,
    route: PurePosixPath,
    catalog: Catalog | None,
    label: str,
    unchecked: str | None = None,
) -> RouteRow:
    """Parse one route and, when the instance answered, look up what it imports into.

    A folder the drop box's policy refuses is a problem too: a file dropped there would fail.
    Without a catalog the row is not checked against Marketo; `unchecked` says why.
    """
    try:
        check_folder(route, box.allow, box.routes)
        spec = resolve_route(route, box.routes, box.defaults)
        params = import_params(spec, "route.csv")  # the name only stands in for a format
        check_params(params, policy_for(route, box.policy, box.route_policies).allow)
    except (RouteError, RouteRefused) as exc:
        return RouteRow(box.name, label, "-", "-", "-", "-", (exc.reason,))
    row = RouteRow(
        box.name,
        label,
        KIND_WORDS[spec.kind or ImportKind.LEADS],
        spec.format.value if spec.format is not None else "by extension",
        _target(spec),
        _key(spec, None),
        (),
        None if catalog is not None else unchecked or "the instance was not reached",
    )
    if catalog is None:
        return row
    problems: list[str] = []
    try:
        if spec.program_id is not None:
            row = replace(row, target=_program_target(spec, catalog, problems))
        elif spec.object_name is not None:
            row = replace(row, key=_object_key(spec, catalog, problems))
        else:
            problems += _lookup_problems(spec, catalog)
    except Stopped:
        problems.append("Marketo did not answer the lookups before the timeout")
    except LOOKUP_ERRORS as exc:
        problems.append(f"Marketo lookup failed: {exc}")
    return replace(row, problems=tuple(problems))


KIND_WORDS = {
    ImportKind.LEADS: "leads",
    ImportKind.PROGRAM_MEMBERS: "program members",
    ImportKind.CUSTOM_OBJECTS: "custom objects",
}


def _target(spec: RouteSpec) -> str:
    if spec.program_id is not None:
        return f"program {spec.program_id}, status {spec.program_member_status}"
    if spec.object_name is not None:
        return spec.object_name
    shown = [
        f"{word} {value}"
        for word, value in (("list", spec.list_id), ("partition", spec.partition_name))
        if value is not None
    ]
    return ", ".join(shown) or "-"


def _key(spec: RouteSpec, dedupe: tuple[str, ...] | None) -> str:
    if spec.program_id is not None:
        return "email"
    if spec.object_name is not None:
        return ",".join(dedupe) if dedupe else "?"
    return spec.lookup_field or "email"


def _program_target(spec: RouteSpec, catalog: Catalog, problems: list[str]) -> str:
    """The program's target text with its name and Marketo's spelling of the status."""
    program = catalog.program(spec.program_id or 0)
    if program is None:
        problems.append(f"program {spec.program_id} does not exist")
        return _target(spec)
    statuses = catalog.channel_statuses(program.channel) or ()
    status = spec.program_member_status or ""
    spelt = spelt_status(statuses, status)
    if spelt is None:
        problems.append(
            f"status '{status}' is not one of program {program.id}'s statuses "
            f"({', '.join(statuses) or 'none'}; channel {program.channel})"
        )
    return f"program {program.id} ({program.name}), status {spelt or status}"


def _object_key(spec: RouteSpec, catalog: Catalog, problems: list[str]) -> str:
    """The custom object's dedupe fields, or a problem when it does not exist."""
    obj = catalog.custom_object(spec.object_name or "")
    if obj is None:
        problems.append(f"custom object '{spec.object_name}' does not exist")
        return "-"
    return _key(spec, obj.dedupe_fields)


def _lookup_problems(spec: RouteSpec, catalog: Catalog) -> list[str]:
    problems = []
    if spec.list_id is not None and not catalog.list_exists(spec.list_id):
        problems.append(f"static list {spec.list_id} does not exist")
    if spec.partition_name is not None:
        names = catalog.partition_names()
        if spec.partition_name not in names:
            known = ", ".join(sorted(names))
            problems.append(f"partition '{spec.partition_name}' does not exist ({known})")
    lookup = spec.lookup_field or "email"
    if lookup.lower() not in catalog.field_names():
        problems.append(f"lookup field '{lookup}' is no lead field")
    return problems


def check_instance(instance: InstanceConfig, client: MarketoClient, timeout: float) -> str | None:
    """Fetch a token; None when it worked, else the problem (refused, DNS, silence, ...)."""
    try:
        client.check_credentials()
    except Stopped:
        health = client.health_snapshot()
        url = client_url(instance, client)
        if health.last_error is None:
            return f"no answer within {timeout:g} s from {url}"
        tries = f"{health.failures} tr{'y' if health.failures == 1 else 'ies'}"
        return f"cannot reach {url}: {health.last_error} ({tries} in {timeout:g} s)"
    except MarketoError as exc:
        return f"Marketo error {exc.code}: {exc.message}" if exc.code else exc.message
    except LOOKUP_ERRORS as exc:
        return str(exc)
    return None


def client_url(instance: InstanceConfig, client: MarketoClient) -> str:
    """The base URL the client talks to (an embedded sandbox's own)."""
    return instance.base_url if not instance.embedded else client.base_url


def policy_problems(box: DropboxConfig, catalog: Catalog | None) -> list[str]:
    """Names in the drop box's column rules (and its routes') that are no field they can set.

    A named route's rules are held against its own kind's fields (lead fields; lead and program
    member fields; its custom object's); the drop box's against every kind its routes import.
    """
    if catalog is None:
        return []
    try:
        fields = catalog.fields()
        by_route = {name: _route_fields(box, name, catalog) for name in box.routes}
    except Stopped:
        return ["Marketo did not answer describe before the timeout"]
    except LOOKUP_ERRORS as exc:
        return [f"Marketo describe failed: {exc}"]
    every = fields + [f for found in by_route.values() if found for f in found[1]]
    mixed = any(found and found[0] is not ImportKind.LEADS for found in by_route.values())
    problems = field_problems(box.policy, every, "", "field of its imports" if mixed else "")
    for name, policy in sorted(box.route_policies.items()):
        kind, own = by_route.get(name) or (ImportKind.LEADS, fields)
        what = "" if kind is ImportKind.LEADS else f"field of its {KIND_WORDS[kind]}"
        problems += field_problems(policy, own, f"routes.{name}.", what)
    return sorted(set(problems), key=problems.index)


def _route_fields(
    box: DropboxConfig, name: str, catalog: Catalog
) -> tuple[ImportKind, list[LeadField]] | None:
    """A named route's kind and the fields its files may set; None if it does not resolve."""
    try:
        params = import_params(
            resolve_route(PurePosixPath(name), box.routes, box.defaults), "r.csv"
        )
        return params.kind, mapping_fields(params, catalog)
    except (RouteError, PreflightError):
        return None


def check_dropboxes(
    boxes: list[DropboxConfig], instance: InstanceConfig, timeout: float
) -> tuple[str | None, list[RouteRow], dict[str, list[str]]]:
    """The instance's credential problem (or None), one row per route of its drop boxes, and
    each drop box's problems with its column rules."""
    rows: list[RouteRow] = []
    policies: dict[str, list[str]] = {}
    with open_client(instance) as client:
        # The client retries transient faults without end; closing it ends every wait, so a
        # dead or unreachable instance costs `timeout` seconds, not forever.
        deadline = threading.Timer(timeout, client.close)
        deadline.daemon = True
        deadline.start()
        try:
            problem = check_instance(instance, client, timeout)
            catalog = None if problem is not None else Catalog(client)
            unchecked = None if problem is None else f"instance {instance.name}: {problem}"
            for box in boxes:
                named = [(PurePosixPath(name), f"{name} (named)") for name in sorted(box.routes)]
                folders = route_folders(DropboxLayout(box.root), box)
                found = [(f, f"inbox/{route_label(f)}".rstrip("/") + "/") for f in folders]
                rows += [
                    check_route(box, route, catalog, label, unchecked)
                    for route, label in named + found
                ]
                policies[box.name] = policy_problems(box, catalog)
        finally:
            deadline.cancel()
    return problem, rows, policies


def _verdict(row: RouteRow) -> str:
    if row.problems:
        return "PROBLEM: " + "; ".join(row.problems)
    return "OK" if row.unchecked is None else f"NOT CHECKED: {row.unchecked}"


def check_folders(config: Config) -> dict[str, list[str]]:
    """Per drop box, what keeps the current user from working in it (empty: nothing).

    Inbox folders it cannot read count too, and so does what the running daemon last reported
    it cannot use (its `<state_dir>/problems.json`): the daemon may see less than `check`.
    """
    published = read_published(config.state_dir) or {}
    reported = published.get("problems")
    out = {}
    for name, box in sorted(config.dropboxes.items()):
        layout = DropboxLayout(box.root)
        routes = [Path(f) for f in route_folders(layout, box) if f != PurePosixPath(".")]
        problems = folder_problems(layout, routes)
        if layout.inbox.is_dir():
            for folder, exc in unreadable_folders(layout.inbox):
                problems.append(f"cannot read {folder}: {exc.strerror or exc}")
        for problem in reported if isinstance(reported, list) else []:
            if isinstance(problem, dict) and problem.get("dropbox") == name:
                problems.append(f"the daemon reports: {problem.get('reason')}")
        out[name] = problems
    return out


def unreadable_folders(inbox: Path) -> list[tuple[Path, OSError]]:
    """The folders below `inbox` the current user cannot read or enter, with the error."""
    found: list[tuple[Path, OSError]] = []
    for _ in scan_inbox(inbox, lambda folder, exc: found.append((folder, exc))):
        pass
    return found


def render_policies(boxes: list[DropboxConfig], problems: dict[str, list[str]]) -> str:
    """Each drop box's effective policy, its warnings and its problems."""
    out = []
    for box in boxes:
        out += ["", *render_policy(box)]
        out += [f"  PROBLEM: {problem}" for problem in problems.get(box.name, [])]
    return "\n".join(out) + "\n"


def render(
    instances: dict[str, str | None],
    rows: list[RouteRow],
    folders: dict[str, list[str]] | None = None,
    state_problem: str | None = None,
) -> str:
    """The report: one line per instance and per drop box's folders, then the route table."""
    out = [
        f"instance {name}: " + ("credentials OK" if problem is None else f"PROBLEM: {problem}")
        for name, problem in instances.items()
    ]
    user = current_user()
    if state_problem is not None:
        out.append(f"PROBLEM: {state_problem}")
    for name, problems in (folders or {}).items():
        verdict = f"PROBLEM: {'; '.join(problems)}" if problems else "folders OK"
        out.append(f"drop box {name}: {verdict}")
    if folders and os.geteuid() == 0:
        out.append(
            f"  (run as {user}, who may write where the daemon's user cannot; to check as the "
            "daemon: sudo -u dropbox-importer dropbox-importer check)"
        )
    headers = ["DROP BOX", "ROUTE", "KIND", "FORMAT", "IMPORTS INTO", "KEY", "STATUS"]
    table = [[r.dropbox, r.route, r.kind, r.format, r.target, r.key, _verdict(r)] for r in rows]
    if not table:
        out.append("no routes: no named routes and no folders under any inbox/")
        return "\n".join(out) + "\n"
    widths = [max(len(c) for c in column) for column in zip(headers, *table, strict=True)]
    out.append("")
    for line in [headers, *table]:
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return "\n".join(out) + "\n"


def main(args: argparse.Namespace) -> int:
    """Check every instance and route of the config; 1 if anything is wrong."""
    try:
        config = load(args)
    except ConfigError as exc:
        print(f"dropbox-importer: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # Only errors: retries would drown the table, which goes to stdout and says it all.
    logs.configure(json=config.log_format == "json", level="error", stream=sys.stderr)
    journal = check_journal(config)
    journal_problem = journal is not None and journal[1]
    if journal is not None:
        print(journal[0])
    instances: dict[str, str | None] = {}
    rows: list[RouteRow] = []
    policies: dict[str, list[str]] = {}
    for name in sorted(config.instances):
        boxes = [b for b in config.dropboxes.values() if b.instance == name]
        instances[name], found, box_problems = check_dropboxes(
            boxes, config.instances[name], args.timeout
        )
        rows += found
        policies |= box_problems
    folders = check_folders(config)
    state_problem = state_dir_problem(config.state_dir)
    sys.stdout.write(render(instances, rows, folders, state_problem))
    ordered = [config.dropboxes[name] for name in sorted(config.dropboxes)]
    sys.stdout.write(render_policies(ordered, policies))
    problems = (
        journal_problem
        or any(p is not None for p in instances.values())
        or any(r.problems or r.unchecked for r in rows)
        or any(folders.values())
        or state_problem is not None
        or any(policies.values())
    )
    return EXIT_PROBLEMS if problems else EXIT_OK
