"""Why a file cannot be imported (`Rejected`, its fixed sentences, the route's parameters and
rules), or not yet (`FileChanged`).

Shared by the submitter (which rejects files) and the settler (which writes the reason into
result.json), so that neither imports the other.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from dropbox_importer.config import DropboxConfig
from dropbox_importer.dropbox.policy import (
    Policy,
    RouteRefused,
    check_folder,
    check_params,
    policy_for,
)
from dropbox_importer.dropbox.routes import RouteError, import_params, resolve_route
from dropbox_importer.marketo.models import ImportParams
from dropbox_importer.pipeline.records import FileRecord

# What the partner reads when the claimed file was removed before anything was known of it.
VANISHED = "the file disappeared from processing/ before it could be settled; drop it again"


class FileChanged(Exception):  # noqa: N818 - what happened to the file
    """The claimed file is not the one its round began with: its writer was still at work.

    Not a rejection: the file waits for its writer and is imported again (pipeline.rounds).
    """


def unreadable_reason(exc: OSError) -> str:
    """What the partner reads when the daemon's user cannot read the dropped file."""
    return (
        f"the importer cannot read this file ({exc.strerror or exc}): give its group read "
        "permission (chmod g+r, or upload it with mode 0640) and drop it again"
    )


class Rejected(Exception):  # noqa: N818 - what happens to the file, not an error of ours
    """The file cannot be imported; `reason` is the sentence the partner reads."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def routed(route: PurePosixPath, filename: str, box: DropboxConfig) -> tuple[ImportParams, Policy]:
    """The import parameters and rules of a file in this route folder of the drop box.

    The drop box's policy is applied before anything else: with `allow.folders: named` a folder
    the config does not name is refused unparsed. Raises RouteError (the folder does not parse)
    or RouteRefused (the policy refuses it); both say what to change.
    """
    check_folder(route, box.allow, box.routes)
    policy = policy_for(route, box.policy, box.route_policies)
    params = import_params(resolve_route(route, box.routes, box.defaults), filename)
    check_params(params, policy.allow)
    return params, policy


def route_for(record: FileRecord, box: DropboxConfig) -> tuple[ImportParams, Policy]:
    """The file's import parameters and rules (Rejected if its route folder is refused)."""
    try:
        return routed(PurePosixPath(record.route or "."), record.name, box)
    except (RouteError, RouteRefused) as exc:
        raise Rejected(exc.reason) from exc


def params_for(record: FileRecord, box: DropboxConfig) -> ImportParams:
    """The import parameters the file's route folder sets (Rejected if it can't be used)."""
    return route_for(record, box)[0]
