"""Folders opened one component at a time, never through a symbolic link.

A partner who can make symbolic links (network shares allow it) could swap a route folder for
a link between two system calls of a move by path, and the move would follow it into another
drop box. A descriptor of an open folder keeps naming that folder whatever happens to its
name, so the claim opens every component below the drop box's root with
`O_DIRECTORY | O_NOFOLLOW` and makes its last checks and its rename relative to those
descriptors (`dir_fd=`): no component swapped after it was opened is ever followed.

The root itself is opened by its path: it is the operator's, and a link there is the
operator's choice.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NO_LINK = _FOLDER | os.O_NOFOLLOW


class LinkInPath(OSError):  # noqa: N818 - named for what it found
    """A component below the root is a symbolic link or no folder; `component` names it."""

    def __init__(self, component: Path) -> None:
        super().__init__(errno.ELOOP, "a symbolic link or no folder", str(component))
        self.component = component


@contextmanager
def open_below(root: Path, parts: Sequence[str], *, create: bool = False) -> Iterator[int]:
    """A descriptor of `root/parts...`, each part opened without following a link.

    With `create`, missing parts are made (mode 0777 less the umask). Raises LinkInPath for a
    part that is a link or no folder, FileNotFoundError for a missing one, and any other
    OSError (EACCES...) as it comes. The descriptor is closed on leaving.
    """
    fd = os.open(root, _FOLDER)
    try:
        walked = root
        for part in parts:
            walked = walked / part
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
            try:
                child = os.open(part, _NO_LINK, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise LinkInPath(walked) from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def lstat_at(folder: int, name: str) -> os.stat_result | None:
    """`name` in the open folder, never followed; None when there is no such entry."""
    try:
        return os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return None
