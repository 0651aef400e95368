"""`dropbox-importer sandbox` as a subprocess: parseable first line, runtime faults, clean exit."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import requests

LINE = re.compile(
    r"sandbox listening on (http://\S+) client_id=(\S+) client_secret=(\S+) profile=(\w+)"
)


def test_the_command_serves_until_sigterm_and_exits_zero() -> None:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "dropbox_importer", "sandbox", "--port", "0",
            "--client-id", "cli-id", "--client-secret", "cli-secret", "--log-level", "warning",
        ],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        match = LINE.match(proc.stdout.readline())  # blocks until the line is flushed
        assert match, "first line names the base URL and credentials"
        base, client_id, secret, profile = match.groups()
        assert profile == "kind"
        assert base.startswith("http://127.0.0.1:")
        token = requests.get(
            f"{base}/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
            timeout=10,
        ).json()["access_token"]
        faults = requests.post(
            f"{base}/sandbox/faults.json", json={"rate": 1.0, "codes": ["608"]}, timeout=10
        )
        assert faults.json()["rate"] == 1.0
        answer = requests.get(
            f"{base}/rest/v1/leads/describe.json",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        assert answer["errors"][0]["code"] == "608"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_the_command_serves_the_strict_profile_when_asked() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dropbox_importer", "sandbox", "--port", "0", "--profile",
         "strict", "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        match = LINE.match(proc.stdout.readline())
        assert match and match.group(4) == "strict"
        base, client_id, secret, _ = match.groups()
        token = requests.post(
            f"{base}/identity/oauth/token",
            data={"grant_type": "client_credentials", "client_id": client_id,
                  "client_secret": secret},
            timeout=10,
        ).json()["access_token"]  # fmt: skip
        answer = requests.get(
            f"{base}/bulk/v1/leads/batch/3401.json",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        assert answer["errors"][0]["code"] == "610"  # strict's answer for an unknown batch
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
