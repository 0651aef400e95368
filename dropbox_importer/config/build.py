"""Checked values to a Config: the rules that span keys, secrets and relative paths.

Secrets are resolved here, at load, so a missing credential stops the daemon at start-up and
not at its first file. Relative paths (state_dir, root, a client_secret_file that is not a bare
name looked up in $CREDENTIALS_DIRECTORY) are relative to the config file's folder.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from dropbox_importer.config.loader import Checked
from dropbox_importer.config.model import (
    EMBEDDED,
    Config,
    DropboxConfig,
    InstanceConfig,
    MetricsConfig,
    NotifyConfig,
    RetentionConfig,
    SandboxOptions,
    StateConfig,
    Timeouts,
)
from dropbox_importer.config.smtp import build_smtp
from dropbox_importer.csvfile.header import ColumnRules
from dropbox_importer.dropbox.policy import AllowRules, Policy, RouteRefused, check_params
from dropbox_importer.dropbox.routes import (
    KEY_ALIASES,
    KIND_FIELDS,
    KIND_NAMES,
    RouteSpec,
    import_params,
    parse_value,
    with_defaults,
)
from dropbox_importer.marketo.credentials import SecretError, resolve_secret
from dropbox_importer.marketo.models import ImportFormat
from dropbox_importer.marketo.settings import LimitSettings, munchkin_base_url

SECRET_KEYS = ("client_secret", "client_secret_env", "client_secret_file")
SECRET_FIXES = {
    "client_secret": "write the secret there, or use client_secret_file",
    "client_secret_env": "set that variable in the service's environment",
    "client_secret_file": "fix the path (a bare name is looked up in $CREDENTIALS_DIRECTORY, "
    "which systemd's LoadCredential= sets)",
}
# A named route is a folder partners see: a plain name that no folder grammar could mean.
ROUTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]*")


def build(checked: Checked, environ: Mapping[str, str], *, secrets: bool = True) -> Config:
    """The Config of a checked file; problems found are added to `checked.problems`.

    `secrets=False` leaves every secret unread (and empty): for commands that need none.
    """
    values, base = checked.values, checked.path.parent
    instances = {
        name: build_instance(checked, name, raw, environ if secrets else None)
        for name, raw in (values.get("instances") or {}).items()
    }
    dropboxes = {
        name: build_dropbox(checked, name, raw, base)
        for name, raw in (values.get("dropboxes") or {}).items()
    }
    for section in ("instances", "dropboxes"):
        if values.get(section) == {}:
            checked.problem(section, f"is empty: configure at least one under {section}")
    check_instances_named(checked, dropboxes, instances)
    check_roots_apart(checked, dropboxes)
    state_dir = base / (values.get("state_dir") or ".")
    check_state_outside_roots(checked, state_dir, dropboxes)
    raw_smtp = values.get("smtp")
    smtp = build_smtp(
        checked,
        raw_smtp,
        environ if secrets else None,
        base,
        loopback=_loopback((raw_smtp or {}).get("host") or ""),
    )
    for name, box in dropboxes.items():
        if box.notify is not None and box.notify.email and raw_smtp is None:
            checked.problem(
                f"dropboxes.{name}.notify.email",
                "needs a server to send through: add an smtp section (host, from)",
            )
    return Config(
        path=checked.path,
        state_dir=state_dir,
        log_level=values.get("log_level") or "info",
        log_format=values.get("log_format") or "auto",
        instances=instances,
        dropboxes=dropboxes,
        metrics=build_metrics(checked, values.get("metrics")),
        state=build_state(checked, values.get("state") or {}, environ, secrets=secrets),
        web=build_metrics(checked, values.get("web"), key="web", port=9465),
        smtp=smtp,
    )


def build_instance(
    checked: Checked, name: str, raw: dict[str, Any], environ: Mapping[str, str] | None
) -> InstanceConfig:
    """One instance: its URL, credentials and limits; `environ` None leaves the secret unread."""
    key = f"instances.{name}"
    base_url, client_id, secret = instance_url(checked, key, raw), "", ""
    sources = [source for source in SECRET_KEYS if raw.get(source)]
    if base_url == EMBEDDED:
        for extra in ("client_id", *sources):
            if raw.get(extra):
                checked.problem(
                    f"{key}.{extra}",
                    "not used with base_url: embedded (the sandbox makes its own): remove it",
                )
    else:
        if raw.get("sandbox") is not None:
            checked.problem(f"{key}.sandbox", "only for base_url: embedded: remove it")
        client_id = raw.get("client_id") or ""
        if not client_id and f"{key}.client_id" not in checked.reported:
            checked.problem(f"{key}.client_id", "missing: add the API client id")
        secret = instance_secret(checked, key, name, raw, environ)
    poll_min, poll_max = raw.get("poll_min_seconds") or 5.0, raw.get("poll_max_seconds") or 30.0
    if poll_min > poll_max:
        checked.problem(
            f"{key}.poll_min_seconds",
            f"is {poll_min:g}, above poll_max_seconds {poll_max:g}: make it smaller",
        )
    sandbox = raw.get("sandbox")
    return InstanceConfig(
        name=name,
        base_url=base_url,
        client_id=client_id,
        secret=secret,
        limits=LimitSettings(
            calls_per_window=raw.get("calls_per_window") or 80,
            window_seconds=raw.get("window_seconds") or 20.0,
            max_in_flight=raw.get("max_in_flight") or 8,
            max_queued_jobs=raw.get("max_queued_jobs") or 8,
        ),
        timeouts=Timeouts(
            raw.get("connect_timeout_seconds") or 10.0, raw.get("read_timeout_seconds") or 60.0
        ),
        poll_min_seconds=poll_min,
        poll_max_seconds=poll_max,
        outage_error_seconds=raw.get("outage_error_seconds") or 300.0,
        sandbox=None if sandbox is None else SandboxOptions(**_given(sandbox)),
    )


def instance_url(checked: Checked, key: str, raw: dict[str, Any]) -> str:
    """The REST base URL from exactly one of base_url and munchkin_id."""
    base_url, munchkin_id = raw.get("base_url"), raw.get("munchkin_id")
    if bool(base_url) == bool(munchkin_id):
        checked.problem(
            key,
            "set exactly one of base_url (https://<munchkin-id>.mktorest.com or embedded) "
            "and munchkin_id",
        )
        return ""
    if munchkin_id:
        return munchkin_base_url(munchkin_id)
    url = str(base_url)
    if url.lower() == EMBEDDED:
        return EMBEDDED
    if not url.startswith(("https://", "http://")):
        checked.problem(
            f"{key}.base_url",
            "expected https://<munchkin-id>.mktorest.com (Admin > Web Services) or embedded",
        )
    return url.rstrip("/")


def instance_secret(
    checked: Checked, key: str, name: str, raw: dict[str, Any], environ: Mapping[str, str] | None
) -> str:
    """The client secret from exactly one source ("" unread when `environ` is None).

    Problems never quote a secret.
    """
    sources = [source for source in SECRET_KEYS if raw.get(source)]
    if len(sources) != 1:
        given = ", ".join(sources) or "none"
        checked.problem(
            f"{key}.{sources[1]}" if len(sources) > 1 else key,
            f"set exactly one of client_secret_file, client_secret_env or client_secret "
            f"(given: {given})",
        )
        return ""
    if environ is None:
        return ""
    file = raw.get("client_secret_file")
    if file and not _credential_name(file, environ):
        file = str(checked.path.parent / file)
    try:
        return resolve_secret(
            value=raw.get("client_secret"),
            env=raw.get("client_secret_env"),
            file=file,
            instance=name,
            environ=environ,
        )
    except SecretError as exc:
        checked.problem(f"{key}.{sources[0]}", f"{exc}: {SECRET_FIXES[sources[0]]}")
        return ""


def _credential_name(file: str, environ: Mapping[str, str]) -> bool:
    """True when systemd's credentials folder, not the config's folder, holds this file."""
    path = Path(file)
    return path.is_absolute() or (len(path.parts) == 1 and "CREDENTIALS_DIRECTORY" in environ)


def build_dropbox(checked: Checked, name: str, raw: dict[str, Any], base: Path) -> DropboxConfig:
    """One drop box with its routes; its instance and root are checked against the others."""
    key = f"dropboxes.{name}"
    routes: dict[str, RouteSpec] = {}
    box_policy = Policy(
        build_allow(checked, f"{key}.allow", raw.get("allow"), AllowRules()),
        build_columns(checked, f"{key}.columns", raw.get("columns"), ColumnRules()),
    )
    route_policies: dict[str, Policy] = {}
    route_coalesce: dict[str, bool] = {}
    for route, spec in (raw.get("routes") or {}).items():
        route_key = f"{key}.routes.{route}"
        if not ROUTE_NAME.fullmatch(route) or route.lower() in ImportFormat.__members__.values():
            checked.problem(
                route_key,
                f"'{route}' can't name a route folder: use letters, digits, '.', '-', '_' or "
                "spaces, not starting with a dot, and not csv, tsv or ssv",
            )
        routes[route] = route_spec(checked, route_key, spec)
        if isinstance(spec.get("coalesce"), bool):
            route_coalesce[route] = spec["coalesce"]
        if spec.get("allow") is not None or spec.get("columns") is not None:
            route_policies[route] = Policy(
                build_allow(checked, f"{route_key}.allow", spec.get("allow"), box_policy.allow),
                build_columns(
                    checked, f"{route_key}.columns", spec.get("columns"), box_policy.columns
                ),
            )
    defaults = route_spec(checked, f"{key}.defaults", raw.get("defaults") or {})
    check_routes_allowed(checked, key, defaults, routes, box_policy, route_policies)
    leave_out = (
        "root", "instance", "defaults", "routes", "allow", "columns", "notify", "retention",
    )  # fmt: skip
    root = base / (raw.get("root") or ".")
    return DropboxConfig(
        **_given(raw, leave_out=leave_out),
        name=name,
        root=root,
        instance=raw.get("instance") or "",
        defaults=defaults,
        routes=routes,
        allow=box_policy.allow,
        columns=box_policy.columns,
        route_policies=route_policies,
        route_coalesce=route_coalesce,
        notify=build_notify(checked, f"{key}.notify", raw.get("notify")),
        retention=build_retention(checked, f"{key}.retention", raw.get("retention"), base, root),
    )


def _given(raw: dict[str, Any], leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """The values that are set (a wrong one is None, already reported), minus `leave_out`."""
    return {k: v for k, v in raw.items() if v is not None and k not in leave_out}


def route_spec(checked: Checked, key: str, raw: dict[str, Any]) -> RouteSpec:
    """A route's parameters from a mapping that may use long or short key names.

    One route imports one kind: leads, program members (programId and programMemberStatus
    together) or custom objects (object); a mix is a problem at `key`.
    """
    spec = RouteSpec()
    for name, value in raw.items():
        if value is None or name in ("allow", "columns", "coalesce"):
            continue  # a named route's own rules, not a parameter
        field_name = KEY_ALIASES[name.lower()]
        one = getattr(parse_value(field_name, str(value), key), field_name)
        if getattr(spec, field_name) not in (None, one):
            checked.problem(
                f"{key}.{name}",
                f"sets the same parameter as another key here, to {value!r}: keep one of them",
            )
            continue
        spec = replace(spec, **{field_name: one})
    if len(spec.kinds()) > 1:
        given = " and ".join(
            f"{KIND_NAMES[kind].removeprefix('a ')} keys ("
            + ", ".join(
                n
                for n, v in raw.items()
                if v is not None and KEY_ALIASES[n.lower()] in KIND_FIELDS[kind]
            )
            + ")"
            for kind in spec.kinds()
        )
        checked.problem(
            key,
            f"mixes {given}: a route imports leads (listId, partitionName, lookupField), "
            "program members (programId with programMemberStatus) or custom objects (object); "
            "keep the keys of one",
        )
    elif (spec.program_id is None) != (spec.program_member_status is None):
        missing = "programMemberStatus" if spec.program_member_status is None else "programId"
        checked.problem(
            key,
            f"sets only half of a program member import: add {missing} (a program member "
            "import needs programId and programMemberStatus)",
        )
    return spec


def build_allow(
    checked: Checked, key: str, raw: dict[str, Any] | None, base: AllowRules
) -> AllowRules:
    """Allow rules: `base` (the drop box's, for a route) with the keys `raw` sets replaced."""
    if raw is None:
        return base
    given = _set_in_file(checked, key, raw)
    if given.get("lookup_fields") == frozenset():
        checked.problem(
            f"{key}.lookup_fields",
            "is empty, so every file would be refused: name the lookup fields files may use "
            "(Marketo's default is email), or remove the key",
        )
    return replace(base, **given)


def _set_in_file(checked: Checked, key: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The keys of a section the file itself sets (not defaults filled in), with good values."""
    return {
        name: value
        for name, value in raw.items()
        if value is not None and f"{key}.{name}" in checked.lines
    }


def build_columns(
    checked: Checked, key: str, raw: dict[str, Any] | None, base: ColumnRules
) -> ColumnRules:
    """Column rules: `base` with the keys `raw` sets replaced; one name with two meanings is a
    problem."""
    if raw is None:
        return base
    given = _set_in_file(checked, key, raw)
    rules = ColumnRules(
        aliases=given.get("aliases", base.aliases),
        ignore=tuple(given.get("ignore", base.ignore)),
        allow=tuple(given["allow"]) if "allow" in given else base.allow,
        deny=tuple(given.get("deny", base.deny)),
        on_denied=given.get("on_denied", base.on_denied),
    )
    aliases, ignore = rules.aliases, rules.ignore
    seen: dict[str, str] = {}
    for name in aliases:
        if name.casefold() in seen:
            checked.problem(
                f"{key}.aliases",
                f"'{seen[name.casefold()]}' and '{name}' differ only in case, and column names "
                "are matched in any case: keep one",
            )
        seen[name.casefold()] = name
    both = sorted(n for n in ignore if n.casefold() in seen)
    if both:
        checked.problem(
            f"{key}.ignore",
            f"{', '.join(repr(n) for n in both)} also has an alias: ignore it or map it, not both",
        )
    denied = {name.casefold() for name in rules.deny}
    twice = sorted(name for name in rules.allow or () if name.casefold() in denied)
    if twice:
        checked.problem(
            f"{key}.allow" if "allow" in given else f"{key}.deny",
            f"{', '.join(repr(n) for n in twice)} is both allowed and denied: keep one",
        )
    return rules


def check_routes_allowed(
    checked: Checked,
    key: str,
    defaults: RouteSpec,
    routes: dict[str, RouteSpec],
    box_policy: Policy,
    route_policies: dict[str, Policy],
) -> None:
    """The operator's own routes obey the rules they are under: a named route, or the defaults
    a file directly in inbox/ gets, outside allow would refuse every file dropped there."""
    if box_policy.allow.folders == "named" and not routes:
        checked.problem(
            f"{key}.allow.folders",
            "is named, but the drop box names no routes, so every file would be refused: add "
            "routes, or set folders: any",
        )
    if any(problem.startswith(f"{key}.allow") for problem in checked.reported):
        return  # the rules themselves are wrong: checking routes against them adds only noise
    where = {
        f"{key}.defaults": (defaults, box_policy),
        **{
            f"{key}.routes.{name}": (
                with_defaults(spec, defaults),
                route_policies.get(name, box_policy),
            )
            for name, spec in routes.items()
        },
    }
    for at, (spec, policy) in where.items():
        if at.endswith(".defaults") and policy.allow.folders == "named":
            continue  # no file gets the defaults alone
        try:
            params = import_params(spec, "route.csv")  # the name only stands in for a format
        except ValueError:
            continue  # a route mixing kinds, or half a program member import: reported above
        try:
            check_params(params, policy.allow)
        except RouteRefused as exc:
            checked.problem(
                at,
                f"{exc.value} is outside {exc.rule}, so every file there would be refused: add "
                f"it to {exc.rule} or change the route",
            )


def check_instances_named(
    checked: Checked, dropboxes: dict[str, DropboxConfig], instances: dict[str, InstanceConfig]
) -> None:
    """Every drop box imports into a configured instance."""
    for name, box in dropboxes.items():
        if box.instance and box.instance not in instances:
            known = ", ".join(sorted(instances)) or "none configured"
            checked.problem(
                f"dropboxes.{name}.instance",
                f"no instance named '{box.instance}': use one of the instances ({known})",
            )


def check_roots_apart(checked: Checked, dropboxes: dict[str, DropboxConfig]) -> None:
    """No two drop boxes share a root or nest one inside the other."""
    seen: list[tuple[str, Path]] = []
    for name, box in dropboxes.items():
        root = box.root.resolve()
        for other, other_root in seen:
            if root == other_root or other_root in root.parents or root in other_root.parents:
                relation = "is the same as" if root == other_root else "overlaps"
                checked.problem(
                    f"dropboxes.{name}.root",
                    f"{box.root} {relation} the root of drop box '{other}' ({other_root}): "
                    "give each drop box a folder of its own, side by side",
                )
        seen.append((name, root))


def check_state_outside_roots(
    checked: Checked, state_dir: Path, dropboxes: dict[str, DropboxConfig]
) -> None:
    """The journal stays out of every drop box, where partners could read or delete it."""
    state = state_dir.resolve()
    for name, box in dropboxes.items():
        root = box.root.resolve()
        if state == root or root in state.parents:
            checked.problem(
                "state_dir",
                f"{state_dir} is inside drop box '{name}' ({root}), where partners could read "
                "or delete the journal: move it out, e.g. /var/lib/dropbox-importer",
            )


def build_state(
    checked: Checked, raw: dict[str, Any], environ: Mapping[str, str], *, secrets: bool = True
) -> StateConfig:
    """The journal's place; a PostgreSQL password is read now, from its file.

    With `secrets=False` (status, retry) the password is still read when it can be, since
    reading a shared journal needs it, but a file this user cannot read is no config problem:
    `unreadable_password` says why, for the command to tell when it connects.
    """
    journal = raw.get("journal") or "sqlite"
    password_file = raw.get("password_file")
    password, unreadable = None, None
    if password_file and journal == "sqlite":
        checked.problem("state.password_file", "only used with a postgresql:// journal: remove it")
    elif password_file:
        path = Path(password_file)
        credentials = environ.get("CREDENTIALS_DIRECTORY")
        if _credential_name(password_file, environ) and not path.is_absolute() and credentials:
            path = Path(credentials) / path
        elif not path.is_absolute():
            path = checked.path.parent / path
        try:
            password = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            unreadable = f"cannot read {path}: {exc.strerror}"
            if secrets:
                checked.problem(
                    "state.password_file", f"{unreadable}; {SECRET_FIXES['client_secret_file']}"
                )
        else:
            if not password:
                checked.problem("state.password_file", f"{path} is empty: write the password in it")
    return StateConfig(
        journal=journal,
        password=password,
        unreadable_password=unreadable,
        host_name=raw.get("host_name") or socket.gethostname(),
        lease_seconds=raw.get("lease_seconds") or 15.0,
    )


def build_metrics(
    checked: Checked, raw: dict[str, Any] | None, *, key: str = "metrics", port: int = 9464
) -> MetricsConfig | None:
    """A listener (metrics, web); a non-loopback address needs allow_remote, as it has no auth."""
    if raw is None:
        return None
    listen = raw.get("listen") or f"127.0.0.1:{port}"
    host, _, chosen = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    allow_remote = bool(raw.get("allow_remote"))
    what = "/metrics" if key == "metrics" else "the status page"
    if not allow_remote and not _loopback(host):
        checked.problem(
            f"{key}.listen",
            f"{host} is not a loopback address and {what} has no authentication: listen on "
            f"127.0.0.1 (reach it through a proxy) or set {key}.allow_remote: true",
        )
    return MetricsConfig(host=host, port=int(chosen), allow_remote=allow_remote)


def _loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1; names other than localhost are not trusted."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_notify(checked: Checked, key: str, raw: dict[str, Any] | None) -> NotifyConfig | None:
    """A drop box's notification targets: a webhook, a command, e-mail recipients."""
    if raw is None:
        return None
    if not raw.get("webhook") and not raw.get("command") and not raw.get("email"):
        targets = {f"{key}.{t}" for t in ("webhook", "command", "email")}
        if key not in checked.reported and not targets & checked.reported:
            checked.problem(
                key, "names no target: set webhook, command or email (or several), or remove it"
            )
        return None
    return NotifyConfig(**_given(raw))


def build_retention(
    checked: Checked, key: str, raw: dict[str, Any] | None, base: Path, root: Path
) -> RetentionConfig | None:
    """A drop box's retention; archive needs a folder outside the box's working folders."""
    if raw is None:
        return None
    if raw.get("done_days") is None and raw.get("failed_days") is None:
        if not checked.reported & {f"{key}.done_days", f"{key}.failed_days"}:
            checked.problem(key, "sets no age: add done_days, failed_days or both, or remove it")
        return None
    archive_dir = raw.get("archive_dir")
    action = raw.get("action") or "delete"
    if f"{key}.action" in checked.reported:
        pass  # a wrong action was reported; which folder it needs is unknown
    elif action == "archive" and not archive_dir:
        checked.problem(f"{key}.archive_dir", "missing: action: archive needs a folder to move to")
    if action == "delete" and archive_dir:
        checked.problem(f"{key}.archive_dir", "only used with action: archive: remove it")
    folder = None if not archive_dir else base / archive_dir
    if folder is not None:
        inside = [name for name in _BOX_FOLDERS if _within(folder, root / name)]
        if inside:
            checked.problem(
                f"{key}.archive_dir",
                f"{folder} is inside the drop box's {inside[0]}/ folder, which the daemon "
                "reads: archive somewhere else, e.g. /srv/archive/<drop box>",
            )
    return RetentionConfig(
        done_days=raw.get("done_days"),
        failed_days=raw.get("failed_days"),
        action=action,
        archive_dir=folder,
    )


# The drop box folders the daemon works in; an archive inside one would be swept or claimed.
_BOX_FOLDERS = ("inbox", "processing", "done", "failed")


def _within(path: Path, folder: Path) -> bool:
    resolved, container = path.resolve(), folder.resolve()
    return resolved == container or container in resolved.parents
