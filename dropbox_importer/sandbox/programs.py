"""Program members: each row finds or creates its lead by email and joins the program.

A program member import (`POST /bulk/v1/program/{programId}/members/import.json`) gives every
row's lead the import's `programMemberStatus` in the program. Rows carry `email` (the key),
lead fields (written to the lead, as a lead import would) and program member custom fields
(written to the membership). Documented choices where Marketo's pages are silent:

- the lead is looked up by email in every partition, in the configured order, and created in the
  first partition when none has it;
- a status is set as given, also when it is "behind" the member's current one (Marketo's UI
  keeps progression; the bulk API's behaviour is not published);
- a row without an email fails with `Value for required field 'email' not found`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dropbox_importer.sandbox.catalog import ObjectCatalog, Program
from dropbox_importer.sandbox.database import Lead, LeadDatabase, normalise, now_iso
from dropbox_importer.sandbox.fields import InvalidValueError, converter
from dropbox_importer.sandbox.jobs import PROGRAM_MEMBERS
from dropbox_importer.sandbox.profile import Rules
from dropbox_importer.sandbox.rows import (
    Column,
    RowReport,
    column_of,
    header_name,
    import_table,
    read_table,
    row_values,
    unknown_warning,
)


@dataclass
class Membership:
    """One lead's membership of one program."""

    lead_id: int
    status: str
    fields: dict[str, object]
    created_at: str
    updated_at: str


class ProgramStore:
    """Every program's members; written by the import worker under the lead database's lock."""

    def __init__(self, catalog: ObjectCatalog, db: LeadDatabase) -> None:
        """Programs of `catalog` with no members, their leads kept in `db`."""
        self.catalog = catalog
        self.db = db
        self.members: dict[int, dict[int, Membership]] = {p.id: {} for p in catalog.programs}

    def find_lead(self, email: str) -> Lead | None:
        """The lead with this email in the first partition that has one (lock held)."""
        index = self.db.index("email")
        key = normalise(email)
        for partition in self.db.partitions:
            lead_id = index.get((partition, key))
            if lead_id is not None:
                return self.db.leads[lead_id]
        return None

    def export(self) -> dict[str, list[dict[str, Any]]]:
        """Every membership, JSON-ready, by program id: what a restarted sandbox restores."""
        with self.db.lock:
            return {
                str(program_id): [vars(m).copy() for m in members.values()]
                for program_id, members in self.members.items()
            }

    def restore(self, state: dict[str, list[dict[str, Any]]]) -> None:
        """Put back the memberships `export` wrote, for the programs the catalog still has."""
        with self.db.lock:
            for program_id, members in state.items():
                if int(program_id) in self.members:
                    self.members[int(program_id)] = {
                        int(m["lead_id"]): Membership(**m) for m in members
                    }

    def snapshot(self) -> list[dict[str, Any]]:
        """Every program with its members, for `/sandbox/programs.json`."""
        with self.db.lock:
            return [self._program_json(p) for p in self.catalog.programs]

    def _program_json(self, program: Program) -> dict[str, Any]:
        channel = self.catalog.channel(program.channel)
        members = self.members[program.id]
        return {
            "id": program.id,
            "name": program.name,
            "channel": program.channel,
            "statuses": list(channel.statuses),
            "members": [
                {
                    "leadId": lead_id,
                    "email": self.db.leads[lead_id].values.get("email"),
                    "status": m.status,
                    "reachedSuccess": m.status in channel.success,
                    "fields": dict(m.fields),
                    "membershipDate": m.created_at,
                    "updatedAt": m.updated_at,
                }
                for lead_id, m in sorted(members.items())
            ],
        }


@dataclass(frozen=True)
class ProgramMemberJob:
    """One program member import: its program, status and file format."""

    format: str
    program_id: int
    status: str
    store: ProgramStore = field(compare=False, repr=False)

    @property
    def kind(self) -> str:
        """jobs.PROGRAM_MEMBERS."""
        return PROGRAM_MEMBERS

    def process(
        self, payload: bytes, unknown_column: str, rules: Rules, *, limit: int | None = None
    ) -> RowReport:
        """Import every row into the program; BatchFailedError for an unusable file."""
        header, rows = read_table(payload, self.format)
        importer = MemberRows(header, self, unknown_column, rules)
        return import_table(
            rows, importer.report, importer.import_row, self.store.db.lock, limit=limit
        )

    def to_json(self) -> dict[str, Any]:
        """The job's parameters for `/sandbox/batches.json`."""
        return {"programId": self.program_id, "programMemberStatus": self.status}


class MemberRows:
    """Imports the rows of one program member file; the header is planned once, up front."""

    def __init__(
        self, header: list[str], job: ProgramMemberJob, unknown_column: str, rules: Rules
    ) -> None:
        """Map the columns to lead fields and program member fields (names as `rules` say)."""
        self.job = job
        self.db = job.store.db
        self.width = len(header)
        self.report = RowReport(header=header)
        self.stamp = now_iso()
        self.email_index = -1
        self.lead_columns: list[Column] = []
        self.member_columns: list[Column] = []
        unknown: list[str] = []
        catalog = job.store.catalog
        for index, name in enumerate(header):
            lead_field = self.db.field(header_name(name, rules))
            member_field = None if lead_field else catalog.member_field(header_name(name, rules))
            if lead_field is None and member_field is None:
                unknown.append(name)
            elif lead_field is not None and lead_field.name == "email":
                self.email_index = index
            elif lead_field is not None and not lead_field.read_only:
                self.lead_columns.append(column_of(index, lead_field, rules))
            elif member_field is not None and not member_field.read_only:
                self.member_columns.append(column_of(index, member_field, rules))
        self.unknown_warning = unknown_warning(unknown, unknown_column)
        email = self.db.field("email")
        assert email is not None
        self.check_email = converter(email, rules.ascii_email)

    def import_row(self, row: list[str]) -> None:
        """Import one row, or record why it failed; note any warning."""
        report = self.report
        number = report.rows
        report.rows += 1
        if len(row) > self.width:
            reason = f"Row has {len(row)} fields where the header has {self.width}"
            report.failures.append((number, row, reason))
            return
        cells = row + [""] * (self.width - len(row))
        email = cells[self.email_index].strip() if self.email_index >= 0 else ""
        if not email:
            report.failures.append((number, row, "Value for required field 'email' not found"))
            return
        warnings = [self.unknown_warning] if self.unknown_warning else []
        try:
            self.check_email(email)
            lead_values = row_values(cells, self.lead_columns, warnings)
            member_values = row_values(cells, self.member_columns, warnings)
        except InvalidValueError as exc:
            report.failures.append((number, row, str(exc)))
            return
        self._apply(email, lead_values, member_values)
        report.imported += 1
        report.members += 1
        if warnings:
            report.warnings.append((number, row, "; ".join(warnings)))

    def _apply(
        self, email: str, lead_values: dict[str, object], member_values: dict[str, object]
    ) -> None:
        store, job = self.job.store, self.job
        lead = store.find_lead(email)
        if lead is None:
            created = self.db.upsert("email", email, self.db.partitions[0], lead_values, self.stamp)
            assert created is not None  # an email lookup always inserts
            lead = created
        elif lead_values:
            self.db.upsert("email", email, lead.partition, lead_values, self.stamp)
        members = store.members[job.program_id]
        membership = members.get(lead.id)
        if membership is None:
            members[lead.id] = Membership(
                lead.id, job.status, member_values, self.stamp, self.stamp
            )
            return
        membership.status = job.status
        membership.fields.update(member_values)
        membership.updated_at = self.stamp
