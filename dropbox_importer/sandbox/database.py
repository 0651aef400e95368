"""The lead database: leads deduplicated per partition, static lists and their members."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dropbox_importer.sandbox.fields import STANDARD_FIELDS
from dropbox_importer.sandbox.settings import LeadField, SandboxSettings


def now_iso() -> str:
    """The current UTC time as Marketo writes it (ISO 8601, seconds, Z)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Lead:
    """One lead: its field values, partition and list memberships."""

    id: int
    partition: str
    values: dict[str, object]
    lists: set[int] = field(default_factory=set)
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)

    def to_json(self) -> dict[str, Any]:
        """This lead as `/sandbox/leads.json` shows it."""
        return {
            "id": self.id,
            "partitionName": self.partition,
            "lists": sorted(self.lists),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "fields": dict(self.values),
        }


class LeadDatabase:
    """Leads, lists and partitions; the import worker is its only writer."""

    def __init__(self, settings: SandboxSettings) -> None:
        """An empty database with the configured lists, partitions and custom fields."""
        self.fields: tuple[LeadField, ...] = STANDARD_FIELDS + settings.custom_fields
        self.by_lower_name = {f.name.lower(): f for f in self.fields}
        self.lists = dict(settings.lists)
        self.partitions = tuple(settings.partitions)
        self.created_at = now_iso()
        self.lock = threading.Lock()
        self.leads: dict[int, Lead] = {}
        self._next_id = 1
        # lookup field -> (partition, normalised value) -> lead id; built on a field's first use.
        self._indexes: dict[str, dict[tuple[str, object], int]] = {}

    def field(self, name: str) -> LeadField | None:
        """The field with this REST name, matched case-insensitively like Marketo's headers."""
        return self.by_lower_name.get(name.lower())

    def index(self, field_name: str) -> dict[tuple[str, object], int]:
        """The dedupe index of a lookup field (call with `lock` held)."""
        found = self._indexes.get(field_name)
        if found is None:
            found = {}
            for lead in self.leads.values():
                value = lead.values.get(field_name)
                if value is not None:
                    found[(lead.partition, normalise(value))] = lead.id
            self._indexes[field_name] = found
        return found

    def upsert(
        self, lookup: str, key: object, partition: str, values: dict[str, object], stamp: str
    ) -> Lead | None:
        """Insert or update the lead whose `lookup` field equals `key` (lock held).

        With lookup `id` only updates happen: None means no such lead.
        """
        if lookup == "id":
            lead = self.leads.get(int(str(key)))
            if lead is None:
                return None
        else:
            lead_id = self.index(lookup).get((partition, normalise(key)))
            if lead_id is None:
                lead = Lead(self._next_id, partition, {}, set(), stamp, stamp)
                self._next_id += 1
                self.leads[lead.id] = lead
                values = {lookup: key, **values}
            else:
                lead = self.leads[lead_id]
        self._write(lead, values, stamp)
        return lead

    def _write(self, lead: Lead, values: dict[str, object], stamp: str) -> None:
        for name, index in self._indexes.items():
            if name in values:
                old = lead.values.get(name)
                if old is not None:
                    index.pop((lead.partition, normalise(old)), None)
                index[(lead.partition, normalise(values[name]))] = lead.id
        lead.values.update(values)
        lead.updated_at = stamp

    def export(self) -> dict[str, Any]:
        """Every lead and the next id, JSON-ready: what a restarted sandbox restores."""
        with self.lock:
            return {
                "next_id": self._next_id,
                "leads": [self.leads[i].to_json() for i in sorted(self.leads)],
            }

    def restore(self, state: dict[str, Any]) -> None:
        """Put back the leads `export` wrote (lists and partitions come from the settings)."""
        with self.lock:
            self.leads = {
                int(item["id"]): Lead(
                    int(item["id"]),
                    str(item["partitionName"]),
                    dict(item["fields"]),
                    {int(n) for n in item["lists"]},
                    str(item["createdAt"]),
                    str(item["updatedAt"]),
                )
                for item in state.get("leads", [])
            }
            self._next_id = max(int(state.get("next_id", 1)), max(self.leads, default=0) + 1)
            self._indexes = {}  # rebuilt on each lookup field's first use

    def snapshot(self) -> list[dict[str, Any]]:
        """Every lead as JSON, in id order."""
        with self.lock:
            return [self.leads[i].to_json() for i in sorted(self.leads)]


def normalise(value: object) -> object:
    """The dedupe key of a value: strings compare case-insensitively, like Marketo's email."""
    return value.lower() if isinstance(value, str) else value
