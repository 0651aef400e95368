"""Is the daemon running, are the Marketo instances well, and where is every file and why.

Per drop box: what waits in inbox/ and why (settling, waiting for its marker, a blocked
folder, an ignored name), what is in flight (its state, rows processed so far, and what holds
it: a full import queue, a failing instance, a stopped daemon), and what finished, with its
reason and where it is now. `--dropbox`, `--route`, `--file`, `--since` and `--outcome` narrow
it down; `--file NAME` prints each matching file's whole history.

Reads only the journal and the folders, never a secret, so it works as any user who can read
them, beside a running daemon or without one; a shared journal (PostgreSQL) is read from any
host with its database password, the one secret it needs, and `status` then begins with who
leads since when and the standby hosts seen. Exit codes: 0 when everything could be read, 1
when a journal or an inbox could not be read, 2 for a config error or a bad option. `--json`
prints one document whose keys are only ever added to (see report/collect.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from dropbox_importer.actions.options import add_config_option, load
from dropbox_importer.config import ConfigError
from dropbox_importer.observe.leadership import leadership_lines
from dropbox_importer.report.collect import OUTCOMES, Filters, collect
from dropbox_importer.report.times import SINCE_FORMS, age, parse_since

EXIT_OK, EXIT_PROBLEMS, EXIT_CONFIG = 0, 1, 2
DEFAULT_RECENT = 10
# With a search filter the finished files shown are the matches, up to this many per drop box.
DEFAULT_SEARCH_LIMIT = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `status`'s options."""
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--recent",
        type=int,
        default=None,
        metavar="N",
        help=f"finished files shown per drop box (default {DEFAULT_RECENT}, "
        f"{DEFAULT_SEARCH_LIMIT} with a filter)",
    )
    parser.add_argument("--dropbox", metavar="NAME", help="only this drop box")
    parser.add_argument("--route", metavar="ROUTE", help="only files of this route folder")
    parser.add_argument(
        "--file",
        metavar="NAME",
        help="only files with this name (a glob such as 'leads*.csv'), with each one's history",
    )
    parser.add_argument(
        "--since", metavar="WHEN", help=f"only files seen, claimed or finished since: {SINCE_FORMS}"
    )
    parser.add_argument(
        "--outcome",
        choices=[*OUTCOMES, "in-flight"],
        help="only finished files of this outcome, or only those in flight or waiting",
    )


def _filters(args: argparse.Namespace, known: list[str], now: datetime) -> Filters:
    """The options as Filters; ValueError says what is wrong with one."""
    if args.dropbox is not None and args.dropbox not in known:
        raise ValueError(f"no drop box named '{args.dropbox}' (known: {', '.join(known)})")
    since = None if args.since is None else parse_since(args.since, now)
    outcome = None if args.outcome is None else args.outcome.replace("-", "_")
    return Filters(args.dropbox, args.route, args.file, since, outcome)


# -- text ---------------------------------------------------------------------------------------


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    return f"{n / 1000:.1f} kB" if n < 1_000_000 else f"{n / 1_000_000:.1f} MB"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "    " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    ]


def _ago(stamp: str | None, now: datetime) -> str:
    if stamp is None:
        return "never"
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return f"{age((now - moment).total_seconds())} ago"


def _since(stamp: str | None, now: datetime) -> str:
    """A stamp and how long ago it was: 2026-11-29T04:26:35Z (3m12s)."""
    if stamp is None:
        return "?"
    return f"{stamp} ({_ago(stamp, now).removesuffix(' ago')})"


def render_daemon(doc: dict[str, Any], now: datetime) -> list[str]:
    """The daemon line and the config lines."""
    daemon = doc["daemon"]
    out = []
    if daemon["running"]:
        pid = f"pid {daemon['pid']}" if daemon["pid"] else "pid unknown"
        if daemon.get("host"):  # a shared journal: the leader's host
            pid += f" on {daemon['host']}"
        since = daemon["since"]
        if since:
            up = _ago(since, now).removesuffix(" ago")
            out.append(f"daemon: running since {since} ({pid}, up {up})")
        else:
            out.append(f"daemon: running ({pid})")
    elif daemon["running"] is None:
        out.append("daemon: unknown (this system does not say who holds the lock)")
    elif daemon["stopped_at"]:
        out.append(
            f"daemon: NOT RUNNING ({daemon['ended']} at {daemon['stopped_at']}); nothing is "
            "claimed or sent until it starts"
        )
    else:
        out.append("daemon: NOT RUNNING (it never ran on this state directory)")
    config = daemon["config"]
    if config is None or not daemon["running"]:
        return out
    if not config["same_path"]:
        out.append(f"  config: the daemon runs on {config['path']}, not on this file")
    elif config["reload_rejected"]:
        out.append(
            f"  config: the last reload was NOT APPLIED in full (file read at "
            f"{config['read_at']}): {config['reload_rejected']}"
        )
    elif config["matches_file"] is False:
        out.append(
            f"  config: the file CHANGED after the daemon read it ({config['read_at']}): "
            "systemctl reload dropbox-importer applies it"
        )
    for pending in config["pending"]:
        out.append(
            f"  config: the change to drop box {pending['dropbox']} is HELD BACK since "
            f"{pending['since']}: {pending['reason']}"
        )
    return out


def render_instance(instance: dict[str, Any], now: datetime) -> str:
    """One instance's health on one line."""
    name, state = instance["name"], instance["state"]
    if state == "unknown":
        return f"instance {name}: no call recorded yet"
    last = f"last call {_ago(instance['last_call_at'], now)}"
    if state == "ok":
        line = f"instance {name}: OK, {last}"
    elif state in ("unhealthy", "outage"):
        word = "OUTAGE" if state == "outage" else "FAILING"
        line = (
            f"instance {name}: {word} since {_since(instance['since'], now)}, "
            f"{instance['failures']} failed call(s) in a row: {instance['last_error']}; "
            f"last OK {_ago(instance['last_ok_at'], now)}"
        )
    elif state == "needs_operator":
        line = (
            f"instance {name}: NEEDS AN OPERATOR since {_since(instance['since'], now)}: "
            f"{instance['operator_reason']}; files wait, retried every minute"
        )
    elif state == "paused_quota":
        line = (
            f"instance {name}: PAUSED, Marketo's daily API quota is spent; resumes at "
            f"{instance['paused_until']}"
        )
    else:
        line = f"instance {name}: {state}"
    if instance.get("waiting_for") == "queue_full":
        line += (
            f"; import queue full ({instance['queued_jobs']} of {instance['max_queued_jobs']} "
            "jobs): creates wait"
        )
    elif instance.get("waiting_for") == "list_busy":
        line += "; a static list is busy: creates for it wait"
    return line


def _path(route: str, name: str) -> str:
    return f"{route}/{name}" if route else name


def _rows(item: dict[str, Any]) -> str:
    rows = item["rows"]
    if not rows["total"]:
        return "-"
    return f"{rows['processed']:,}/{rows['total']:,}"


def _batches(item: dict[str, Any]) -> str:
    """The file's batch ids, a shared one with how many files share it: 3410 (12 files)."""
    sharing = {s["batch_id"]: s["files"] for s in item.get("shared", [])}
    shown = [f"{b} ({sharing[b]} files)" if b in sharing else str(b) for b in item["batch_ids"]]
    return ",".join(shown) or "-"


def render_box(box: dict[str, Any], limit: int) -> list[str]:
    """One drop box: problems, blocked folders, then one small table per section."""
    live = "" if box["live"] in (None, True) else ", NOT RUNNING in the daemon yet"
    out = [f"{box['name']}  ({box['root']}, instance {box['instance']}{live})"]
    out += [f"  PROBLEM: {problem}" for problem in box["problems"]]
    for blocked in box["blocked_folders"]:
        where = f"inbox/{blocked['folder']}/" if blocked["folder"] else "inbox/"
        out.append(f"  BLOCKED FOLDER {where} since {blocked['since']}: {blocked['reason']}")
    out.append(f"  waiting in inbox: {len(box['waiting'])}")
    if box["waiting"]:
        rows = [
            [_path(w["route"], w["file"]), _size(w["size"]), age(w["age_seconds"]), w["why"]]
            for w in box["waiting"]
        ]
        out += _table(["FILE", "SIZE", "AGE", "WHY"], rows)
    if box["ignored"]:
        out.append(f"  never imported from inbox: {len(box['ignored'])}")
        rows = [[_path(i["route"], i["file"]), i["why"]] for i in box["ignored"]]
        out += _table(["FILE", "WHY"], rows)
    out.append(f"  in flight: {len(box['in_flight'])}")
    if box["in_flight"]:
        rows = [
            [
                _path(f["route"], f["file"]),
                f["state"],
                _rows(f),
                _batches(f),
                age(f["age_seconds"]),
                f["why"],
            ]
            for f in box["in_flight"]
        ]
        out += _table(["FILE", "STATE", "ROWS", "BATCHES", "AGE", "WHY"], rows)
    if box["shared_jobs"]:
        out.append(f"  jobs shared by several files: {len(box['shared_jobs'])} most recent")
        rows = [
            [
                str(j["batch_id"]),
                str(j["files"]),
                f"{j['rows']:,}",
                j["status"] or "sent",
                j["first_file"],
                j["created_at"] or "-",
            ]
            for j in box["shared_jobs"]
        ]
        out += _table(["BATCH", "FILES", "ROWS", "STATUS", "FIRST FILE", "CREATED (UTC)"], rows)
    more = " (more: narrow the search or raise --recent)" if box["more_recent"] else ""
    out.append(f"  recently finished: {len(box['recent'])}{more}")
    if box["recent"]:
        rows = [
            [
                r["finished_at"] or "-",
                r["outcome"].upper(),
                _path(r["route"], r["file"]),
                r["destination_in_box"] or "-",
                r["reason"] or "",
            ]
            for r in box["recent"]
        ]
        out += _table(["FINISHED (UTC)", "OUTCOME", "FILE", "NOW IN", "REASON"], rows)
    return out


def render_history(doc: dict[str, Any]) -> list[str]:
    """Each matching file's history, newest file first; then matches not claimed yet."""
    pattern = doc["filters"]["file"]
    histories = doc["history"]
    out = [f"history of '{pattern}': {len(histories)} claimed file(s), newest first"]
    for item in histories:
        where = f"now in {item['location']}" if item["location"] else ""
        out.append("")
        out.append(
            f"{item['dropbox']}  {_path(item['route'], item['file'])}  "
            f"(file {item['id']}, {item['state']}{', ' + where if where else ''})"
        )
        if item["reason"]:
            out.append(f"  reason: {item['reason']}")
        rows = [[e["at"] or "now", e["what"], e["detail"]] for e in item["events"]]
        out += [line[2:] for line in _table(["AT (UTC)", "WHAT", "DETAIL"], rows)]
    unclaimed = [
        (box["name"], entry)
        for box in doc["dropboxes"]
        for entry in box["waiting"] + box["ignored"]
    ]
    if unclaimed:
        out.append("")
        out.append(f"in an inbox, not claimed: {len(unclaimed)}")
        for name, entry in unclaimed:
            out.append(f"  {name}  {_path(entry['route'], entry['file'])}: {entry['why']}")
    return out


def render(doc: dict[str, Any], now: datetime, limit: int) -> str:
    """The human report: daemon, instances, then one block per drop box (or histories)."""
    out: list[str] = []
    if not doc["journal"]["found"]:
        out.append(f"no journal at {doc['journal']['path']} yet: the daemon never claimed a file")
    out += render_daemon(doc, now)
    if "leadership" in doc["journal"]:  # a shared journal: who leads, who stands by
        out += leadership_lines(doc["journal"]["leadership"])
    stale = "" if doc["daemon"]["running"] else "as last recorded: "
    out += [stale + render_instance(instance, now) for instance in doc["instances"]]
    out.append("")
    if doc["filters"]["file"] is not None:
        out += render_history(doc)
        out.append("")
        return "\n".join(out)
    for box in doc["dropboxes"]:
        out += render_box(box, limit)
        out.append("")
    return "\n".join(out)


def main(args: argparse.Namespace) -> int:
    """Print the daemon's, the instances' and every drop box's status; 1 if unreadable."""
    try:
        config = load(args, secrets=False)
    except ConfigError as exc:
        print(f"dropbox-importer: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    now = datetime.now(UTC)
    try:
        filters = _filters(args, sorted(config.dropboxes), now)
    except ValueError as exc:
        print(f"dropbox-importer: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    searching = any(
        value is not None for value in (filters.route, filters.file, filters.since, filters.outcome)
    )
    limit = args.recent if args.recent is not None else DEFAULT_RECENT
    if args.recent is None and searching:
        limit = DEFAULT_SEARCH_LIMIT
    if limit < 0:
        print("dropbox-importer: --recent must be 0 or more", file=sys.stderr)
        return EXIT_CONFIG
    doc = collect(config, filters, limit, now)
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render(doc, now, limit))
    return EXIT_PROBLEMS if any(b["problems"] for b in doc["dropboxes"]) else EXIT_OK
