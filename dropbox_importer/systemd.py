"""sd_notify with the standard library: readiness, status, watchdog and stop for `Type=notify`.

systemd passes the address of its notification socket in `$NOTIFY_SOCKET`: a filesystem path,
or a name in the abstract namespace written with a leading `@`. Each message is one datagram of
newline-separated `KEY=VALUE` assignments. Outside systemd the variable is unset and every call
here is a harmless no-op, so the daemon runs the same in a terminal, in tests and under systemd.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


def _address(environ: Mapping[str, str]) -> str | None:
    """The socket address from `$NOTIFY_SOCKET`, or None when there is none we can use."""
    value = environ.get("NOTIFY_SOCKET", "")
    if value.startswith("@"):
        # Linux abstract namespace: the name starts with a NUL byte instead of `@`.
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    # Unset, empty, or a transport this module does not speak (e.g. `vsock:` of newer systemd).
    return None


def notify(*states: str) -> bool:
    """Send `KEY=VALUE` states to systemd in one datagram; False when not run by systemd."""
    address = _address(os.environ)
    if address is None or not states:
        return False
    message = "\n".join(states).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError as exc:
        # A lost notification must not take the daemon down; systemd's own time-outs
        # (TimeoutStartSec, WatchdogSec) are the safety net and will say what was missed.
        log.warning("sd_notify_failed", error=str(exc), states=[s.split("=", 1)[0] for s in states])
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds systemd allows between watchdog pings (`WatchdogSec=`), or None when off."""
    pid = os.environ.get("WATCHDOG_PID")
    # The variables are inherited by children; they are meant only for the process named here.
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000


def ready(status_text: str | None = None) -> bool:
    """Tell systemd start-up is complete (`READY=1`), with an optional status line."""
    states = ["READY=1"]
    if status_text:
        states.append(f"STATUS={_one_line(status_text)}")
    return notify(*states)


def status(text: str) -> bool:
    """Set the one-line status `systemctl status` shows."""
    return notify(f"STATUS={_one_line(text)}")


def reloading() -> bool:
    """Tell systemd a configuration reload has begun; send `ready()` when it is done."""
    return notify("RELOADING=1")


def stopping() -> bool:
    """Tell systemd the daemon is shutting down (`STOPPING=1`)."""
    return notify("STOPPING=1")


def watchdog_ping() -> bool:
    """Tell systemd the main loop is alive (`WATCHDOG=1`); call at least every interval / 2."""
    return notify("WATCHDOG=1")


def _one_line(text: str) -> str:
    # A newline would start a new assignment in the datagram and could forge another state.
    return " ".join(text.splitlines())
