"""What an import job of any kind offers the shared queue.

Marketo runs lead, program member and custom object imports in one FIFO queue with one set of
limits (2 importing, 10 queued). `ImportQueue` schedules and times every job alike; what a job
does with its rows is the job's own business, behind `Job.process`. Lead imports keep their own
request type (`rows.ImportRequest`); program member and custom object jobs implement `Job`.
"""

from __future__ import annotations

from typing import Any, Protocol

from dropbox_importer.sandbox.profile import Rules
from dropbox_importer.sandbox.rows import RowReport

# The `kind` of each job, as `/sandbox/batches.json` shows it.
LEADS = "leads"
PROGRAM_MEMBERS = "program_members"
CUSTOM_OBJECTS = "custom_objects"


class Job(Protocol):
    """A queued import other than leads: it knows its format and how to import its rows."""

    @property
    def kind(self) -> str:
        """PROGRAM_MEMBERS or CUSTOM_OBJECTS."""
        ...

    @property
    def format(self) -> str:
        """csv, tsv or ssv."""
        ...

    def process(
        self, payload: bytes, unknown_column: str, rules: Rules, *, limit: int | None = None
    ) -> RowReport:
        """Import every row (the first `limit`, for a batch failing half-way) as the profile's
        `rules` say; BatchFailedError when the file as a whole is unusable."""
        ...

    def to_json(self) -> dict[str, Any]:
        """The job's parameters for `/sandbox/batches.json`."""
        ...
