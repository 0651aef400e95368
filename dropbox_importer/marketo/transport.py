"""What went wrong on the wire, in words an operator acts on: refused, DNS, time-out, TLS.

requests wraps the socket's own error two or three levels deep (ConnectionError ->
MaxRetryError -> NewConnectionError -> ConnectionRefusedError); its text is a paragraph that
quotes the whole URL. `describe(exc)` walks that chain and names the cause in a few words.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NameResolutionError, ProtocolError


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every exception it wraps: causes, contexts, `reason` and args."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += [arg for arg in current.args if isinstance(arg, BaseException)]
        todo += [e for e in linked if isinstance(e, BaseException)]


def _host(exc: BaseException) -> str | None:
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    return urlsplit(url).hostname if isinstance(url, str) else None


def describe(exc: BaseException) -> str:
    """A short cause: 'connection refused', 'DNS lookup of h failed', 'read time-out', ...

    Never quotes a URL (an identity URL may carry a query), only the host for DNS failures.
    """
    chain = list(_chain(exc))
    host = _host(exc)
    for link in chain:
        if isinstance(link, NameResolutionError | socket.gaierror):
            name = host or "the host"
            detail = next((e.strerror for e in chain if isinstance(e, socket.gaierror)), None)
            return f"DNS lookup of {name} failed" + (f" ({detail})" if detail else "")
    for link in chain:
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
    if isinstance(exc, requests.ConnectTimeout):
        return "connect time-out (no connection established)"
    if isinstance(exc, requests.ReadTimeout | requests.Timeout):
        return "read time-out (no answer in time)"
    for link in chain:
        if isinstance(link, ssl.SSLError | requests.exceptions.SSLError):
            return f"TLS handshake failed ({getattr(link, 'reason', None) or type(link).__name__})"
        if isinstance(link, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(link, OSError) and link.strerror:
            return link.strerror[:1].lower() + link.strerror[1:]
    for link in chain:
        if isinstance(link, ProtocolError):
            return "connection closed without an answer"
    return type(exc).__name__
