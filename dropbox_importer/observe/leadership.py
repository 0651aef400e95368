"""What `status`, the status page and /metrics say about leadership, read from the journal.

The journal records the latest leader (host, epoch, since when) and every host that runs a
daemon on it with its role and when it was last seen (pipeline/leadership.py writes them). Only
a shared (PostgreSQL) journal has more than one host to tell about; on SQLite the state
directory's lock says whether the one daemon runs. A
host counts as seen while its last note is younger than two leases: a leader notes itself every
quarter lease, a standby every fifth, so two leases without one means it stopped or froze.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.records import HostRecord

PREFIX = "dropbox_importer"
ROLES = ("leader", "standby")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def seen(host: HostRecord, now: datetime, lease_seconds: float) -> bool:
    """True while the host's last note is younger than two leases."""
    return (now - host.seen_at).total_seconds() < 2 * lease_seconds


def leadership_document(
    journal: Journal, lease_seconds: float, now: datetime
) -> dict[str, Any] | None:
    """The JSON-ready leadership section (None for a journal from before leadership existed).

    Keys (only ever added to): engine, epoch, leader, leader_pid, since, leader_seen_at,
    leader_seen (bool), hosts [{name, role, pid, since, seen_at, seen_seconds_ago, seen}].
    """
    try:
        current = journal.leadership()
        hosts = journal.hosts()
    except Exception:  # a journal of schema version 1 has no leadership tables yet
        return None
    by_name = {h.name: h for h in hosts}
    leader = by_name.get(current.leader or "")
    return {
        "engine": journal.engine,
        "epoch": current.epoch,
        "leader": current.leader,
        "leader_pid": current.pid,
        "since": _iso(current.since),
        "leader_seen_at": None if leader is None else _iso(leader.seen_at),
        "leader_seen": leader is not None
        and leader.role == "leader"
        and seen(leader, now, lease_seconds),
        "hosts": [
            {
                "name": h.name,
                "role": h.role,
                "pid": h.pid,
                "since": _iso(h.since),
                "seen_at": _iso(h.seen_at),
                "seen_seconds_ago": round((now - h.seen_at).total_seconds(), 1),
                "seen": seen(h, now, lease_seconds),
            }
            for h in hosts
        ],
    }


def _ago(seconds: float) -> str:
    whole = max(int(seconds), 0)
    if whole < 120:
        return f"{whole}s ago"
    if whole < 7200:
        return f"{whole // 60}m ago"
    return f"{whole // 3600}h ago"


def leadership_lines(doc: dict[str, Any] | None) -> list[str]:
    """The human lines: who leads since when, and the standby hosts seen."""
    return [line for line, _ok in leadership_items(doc)]


def leadership_items(doc: dict[str, Any] | None) -> list[tuple[str, bool]]:
    """Each line with whether it is good news (False: someone should look), for the page."""
    lines = _lines(doc)
    alarms = ("NOT SEEN", "LAST SEEN", "NEVER SEEN", "NONE SEEN", "STOPPED", "STANDBY", "none yet")
    return [(line, not any(alarm in line for alarm in alarms)) for line in lines]


def _lines(doc: dict[str, Any] | None) -> list[str]:
    if doc is None or doc["leader"] is None:
        return ["leader: none yet (no daemon has led this journal)"]
    leader = doc["leader"]
    hosts = {h["name"]: h for h in doc["hosts"]}
    mine = hosts.get(leader)
    if doc["leader_seen"]:
        state = f"seen {_ago(mine['seen_seconds_ago'])}" if mine else "seen"
    elif mine is not None and mine["role"] != "leader":
        state = f"{mine['role'].upper()} {_ago(mine['seen_seconds_ago'])}: no host leads now"
    else:
        ago = f"LAST SEEN {_ago(mine['seen_seconds_ago'])}" if mine else "NEVER SEEN"
        state = f"{ago}: frozen or down? a standby takes over within the lease"
    out = [f"leader: {leader} since {doc['since']} (epoch {doc['epoch']}, {state})"]
    standbys = [h for h in doc["hosts"] if h["role"] == "standby"]
    if not any(h["seen"] for h in standbys):
        out.append("standby: NONE SEEN: nothing takes over if the leader stops")
    for h in standbys:
        when = _ago(h["seen_seconds_ago"])
        out.append(f"standby: {h['name']} ({'seen' if h['seen'] else 'LAST SEEN'} {when})")
    return out


class LeadershipCollector(Collector):
    """Gauges read at scrape time: does this daemon lead, the epoch, the hosts seen by role."""

    def __init__(
        self,
        host: str,
        leading: Callable[[], bool],
        journal: Journal,
        lease_seconds: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._host = host
        self._leading = leading
        self._journal = journal
        self._lease = lease_seconds
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """This daemon's role, then what the journal says (left out if it cannot be read)."""
        leader = GaugeMetricFamily(
            f"{PREFIX}_leader",
            "1 while this daemon leads its journal (watches, claims, calls Marketo), else 0",
            labels=["host"],
        )
        leader.add_metric([self._host], 1.0 if self._leading() else 0.0)
        yield leader
        try:
            current = self._journal.leadership()
            hosts = self._journal.hosts()
        except Exception:  # a scrape must answer even when the database does not
            return
        epoch = GaugeMetricFamily(
            f"{PREFIX}_leadership_epoch",
            "fencing epoch of the journal: goes up by one at every change of leader",
        )
        epoch.add_metric([], float(current.epoch))
        yield epoch
        if self._journal.engine == "sqlite":
            return  # one host, which notes itself only at start: nothing to count
        now = self._clock()
        by_role = GaugeMetricFamily(
            f"{PREFIX}_hosts_seen",
            "hosts running a daemon on this shared journal, seen within two leases, by role",
            labels=["role"],
        )
        for role in ROLES:
            count = sum(1 for h in hosts if h.role == role and seen(h, now, self._lease))
            by_role.add_metric([role], float(count))
        yield by_role
