"""The HTTP layer: keep-alive connections survive unread bodies; stopping closes them."""

from __future__ import annotations

import http.client
import socket

import pytest
import requests
from sandbox_client import Client, MakeSandbox
from structlog.testing import capture_logs

from dropbox_importer.sandbox import Sandbox
from dropbox_importer.sandbox.keepalive import KeepAliveHandler
from tests.waiting import wait_for


def connect(sandbox: Sandbox) -> http.client.HTTPConnection:
    host, port = sandbox.base_url.removeprefix("http://").rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=10)


def test_one_connection_serves_requests_after_a_refused_unread_body(sandbox: Sandbox) -> None:
    headers = Client(sandbox).auth
    connection = connect(sandbox)
    # 612: the sandbox refuses without reading the body; the next request must still parse.
    connection.request(
        "POST", "/bulk/v1/leads.json?format=csv", body=b"x" * 50_000,
        headers={**headers, "Content-Type": "text/csv"},
    )  # fmt: skip
    first = connection.getresponse()
    assert b'"612"' in first.read()
    assert first.getheader("Connection") != "close"
    connection.request("GET", "/rest/v1/leads/partitions.json", headers=headers)
    second = connection.getresponse()
    assert second.status == 200
    assert b'"success": true' in second.read()
    connection.close()


def test_stopping_the_sandbox_closes_idle_keep_alive_connections(
    make_sandbox: MakeSandbox,
) -> None:
    sandbox = make_sandbox()
    client = Client(sandbox)
    assert client.get("/rest/v1/leads/partitions.json").json()["success"] is True
    sandbox.stop()
    with pytest.raises(requests.ConnectionError):
        client.get("/rest/v1/leads/partitions.json")


def test_an_idle_keep_alive_connection_timing_out_is_logged_at_debug(
    make_sandbox: MakeSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(KeepAliveHandler, "timeout", 0.3)
    sandbox = make_sandbox()
    host, port = sandbox.base_url.removeprefix("http://").split(":")
    with capture_logs() as logs, socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"GET /sandbox/stats.json HTTP/1.1\r\nHost: x\r\n\r\n")
        while conn.recv(65536):  # the answer, then the server closes the idle connection
            pass
        wait_for(lambda: any(e["event"] == "sandbox_server_error" for e in logs), what="log")

    (timed_out,) = [e for e in logs if e["event"] == "sandbox_server_error"]
    assert timed_out["log_level"] == "debug" and "timed out" in timed_out["detail"]
