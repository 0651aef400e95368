"""The sandbox's two readings of Marketo where its documentation is uncertain: kind and strict.

`kind` is the gentler reading (and the sandbox's behaviour before there were profiles); `strict`
takes the harsher reading of every uncertain fact in MARKETO.md ("Learnt since"), so that a
client proven against both is correct whichever one a real instance turns out to follow. The
rules are plain data: the endpoints of every import kind (leads, program members, custom
objects) read the ones that apply to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ProfileName = Literal["kind", "strict"]
PROFILES: tuple[ProfileName, ...] = ("kind", "strict")

# The fault codes Marketo documents as transient: a client must retry them.
TRANSIENT_CODES = ("502", "604", "608", "611", "713")
# 614 ("Invalid Subscription": the subscription is unreachable for a moment) is in Adobe's
# table of codes to retry; public clients see it in bursts. Strict answers with it too.
STRICT_TRANSIENT_CODES = (*TRANSIENT_CODES, "614")


@dataclass(frozen=True)
class Rules:
    """What one profile does at each point where Marketo's behaviour is uncertain."""

    name: ProfileName
    # 1019 "Import in progress" for a create whose listId already has a job in the queue.
    list_in_progress: bool
    # Header names matched as sent (case-insensitively): " Email " is no field. Kind trims.
    headers_as_sent: bool
    # Rows whose email has characters outside ASCII fail. Kind accepts them.
    ascii_email: bool
    # Failures and warnings files: empty columns dropped, rows shuffled (seeded), HTTP 404
    # when there are no rows, served as application/json. Kind: every column, row order,
    # always a file (maybe header only), in the upload's own content type.
    sparse_row_files: bool
    # A batch that ends Failed can carry counts and failed rows (it failed half-way).
    failed_batches_carry_rows: bool
    # The code answered for a batch id that is unknown, malformed or past its retention.
    unknown_batch_code: str
    # The transient codes a fault answers with when the fault settings name none.
    transient_codes: tuple[str, ...]

    def queue_full_message(self, max_queued_jobs: int) -> str:
        """The text of 1016; real instances send the strict one (the code is what matters)."""
        if self.name == "strict":
            return (
                f"There are {max_queued_jobs} imports currently being processed. "
                "Please try again later"
            )
        return f"Too many jobs ({max_queued_jobs}) in queue"


KIND = Rules(
    name="kind",
    list_in_progress=False,
    headers_as_sent=False,
    ascii_email=False,
    sparse_row_files=False,
    failed_batches_carry_rows=False,
    unknown_batch_code="1003",
    transient_codes=TRANSIENT_CODES,
)

# 610 "Requested resource not found" for an unknown batch id: a code that a client's error
# table files under "a bug of ours, never retry", which is the harsh case to get right.
STRICT = Rules(
    name="strict",
    list_in_progress=True,
    headers_as_sent=True,
    ascii_email=True,
    sparse_row_files=True,
    failed_batches_carry_rows=True,
    unknown_batch_code="610",
    transient_codes=STRICT_TRANSIENT_CODES,
)


def rules_of(name: str) -> Rules:
    """The rules of a profile by name (ValueError for an unknown one)."""
    if name == "kind":
        return KIND
    if name == "strict":
        return STRICT
    raise ValueError(f"unknown sandbox profile {name!r}: kind or strict")
