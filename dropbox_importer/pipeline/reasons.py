"""Why a file cannot be imported (`Rejected`, its fixed sentences, the route's parameters), or
not yet (`FileChanged`).

Shared by the submitter (which rejects files) and the settler (which writes the reason into
result.json), so that neither imports the other.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from dropbox_importer.config import DropboxConfig
from dropbox_importer.dropbox.routes import RouteError, import_params, resolve_route
from dropbox_importer.marketo.models import ImportParams
from dropbox_importer.pipeline.records import FileRecord

# What the partner reads when the claimed file was removed before anything was known of it.
VANISHED = "the file disappeared from processing/ before it could be settled; drop it again"


class FileChanged(Exception):  # noqa: N818 - what happened to the file
    """The claimed file is not the one its round began with: its writer was still at work.

    Not a rejection: the file waits for its writer and is imported again (pipeline.rounds).
    """


class Rejected(Exception):  # noqa: N818 - what happens to the file, not an error of ours
    """The file cannot be imported; `reason` is the sentence the partner reads."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def params_for(record: FileRecord, box: DropboxConfig) -> ImportParams:
    """The import parameters the file's route folder sets (Rejected if it can't be parsed)."""
    try:
        spec = resolve_route(PurePosixPath(record.route or "."), box.routes, box.defaults)
        return import_params(spec, record.name)
    except RouteError as exc:
        raise Rejected(str(exc)) from exc
