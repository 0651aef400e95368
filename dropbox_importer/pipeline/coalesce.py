"""Files that would wait for Marketo go as one job: which may share one, when, and how many.

Marketo imports two jobs at a time per instance and queues ten, shared with every other
integration on it, and every job costs a fixed start-up whatever its size (MARKETO.md). A
partner who exports one file per web form or per sales rep drops hundreds of small files; sent
one job each, they hold Marketo's queue for hours. So files of one drop box whose import
parameters are the same (format, listId, partitionName, lookupField) and whose headers are the
same once mapped (csvfile/header.py: the header row Marketo receives, byte for byte) are sent as
one upload: that header once, then each file's rows, in the order the files were claimed.

When: never while Marketo has room. A file goes at once, with whatever compatible files are
already waiting, when fewer than `SHALLOW_DEPTH` jobs of ours are in Marketo's queue: two
importing and one waiting behind each, so an import lane never idles while we learn that a job
ended. With more, and while its static list is held (one job per list: 1019), the file waits in
the daemon's queue, and the files that arrive meanwhile join it. A file too large to share a
job (cut into several parts), or whose route says `coalesce: false`, goes alone as before.

How many: as many as fit under the drop box's part size limit. But two lanes import at once,
and one big job would leave the other idle, so a job of a route without a list takes no more
than its share of the bytes waiting (half, one per lane), unless that share is too small to be
worth a job's start-up (`AMORTISED_OVERHEADS` overheads' worth of rows at the speed seen so
far). A list route has one lane anyway: its job takes everything waiting that fits.

Each file still settles on its own (shared_batch.py); the journal records which parts went into
which job (`jobs`, `job_members`) before the create is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dropbox_importer.config import DropboxConfig
from dropbox_importer.csvfile import Part
from dropbox_importer.dropbox.policy import routes_named
from dropbox_importer.marketo.models import ImportParams

# Our jobs in Marketo's queue before files that could share one wait for each other: two
# importing (Marketo's lanes) and one queued behind each.
SHALLOW_DEPTH = 4
# A job of a route without a list is never cut below this many job start-ups' worth of rows:
# below it, the start-up costs more than the lane the job would leave idle.
AMORTISED_OVERHEADS = 4.0
# Import lanes Marketo runs at once per instance.
LANES = 2
# How many bytes of a part file are read to find its header row.
_HEADER_READ = 1 << 16


def coalesces(route: str, box: DropboxConfig) -> bool:
    """Whether files of this route folder may share a job: a named route's own `coalesce`
    (false if two named routes in the path disagree), else the drop box's."""
    named = [box.route_coalesce[n] for n in routes_named(PurePosixPath(route or "."), box.routes)
             if n in box.route_coalesce]  # fmt: skip
    return all(named) if named else box.coalesce


def sent_header(part: Path) -> bytes:
    """The header row of a part file as it is sent, its line end included (b"" if none)."""
    with part.open("rb") as stream:
        head = stream.read(_HEADER_READ)
    end = 0
    while (end := head.find(b"\n", end) + 1) > 0:
        if head.count(b'"', 0, end) % 2 == 0:
            return head[:end]
    return b""


@dataclass(frozen=True)
class Member:
    """A file's only part, ready to share a job: what decides whom it may join."""

    file_id: int
    route: str
    params: ImportParams
    header: bytes  # the header row as sent; files share a job only with the same one
    part: Part
    index: int = 0  # the part's index in the journal (parts of earlier rounds come first)

    @property
    def body_bytes(self) -> int:
        """What the part adds to a job besides the header it shares."""
        return self.part.bytes - len(self.header)

    def joins(self, first: Member) -> bool:
        """True when this part may go in one upload with `first`."""
        return self.params == first.params and self.header == first.header and bool(self.header)


def job_cap(
    first: Member,
    *,
    max_bytes: int,
    waiting_bytes: int,
    rows_per_second: float,
    overhead_seconds: float,
) -> int:
    """The most bytes a job starting with `first` may hold (never below `first`'s own).

    `waiting_bytes` is what every file waiting for this instance would add, `first`'s
    included; the speed and overhead are the poller's estimates of this instance.
    """
    if first.params.list_id is not None:
        return max_bytes  # one job of a list at a time: nothing to share the lanes with
    per_row = first.part.bytes / max(first.part.rows, 1)
    amortised = AMORTISED_OVERHEADS * overhead_seconds * rows_per_second * per_row
    share = waiting_bytes / LANES
    return max(first.part.bytes, min(max_bytes, int(max(amortised, share))))


def write_job(members: Sequence[Member], out: Path) -> int:
    """Write the upload of a shared job: the header once, then each part's rows in order.

    Each part's rows end in a line end (the header's, where the part's last row has none), so
    no row runs into the next file's. Returns the bytes written.
    """
    header = members[0].header
    line_end = b"\r\n" if header.endswith(b"\r\n") else b"\n"
    written = 0
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("wb") as stream:
        written += stream.write(header)
        for member in members:
            body = member.part.path.read_bytes()[len(member.header) :]
            written += stream.write(body)
            if body and not body.endswith(b"\n"):
                written += stream.write(line_end)
    tmp.replace(out)
    return written
