"""Sandbox throughput: CSV ingest in MB/s (upload, then row processing) and status calls/s.

Run with `.venv/bin/python -m bench.sandbox`. Client and server share this process, so the
figures are a lower bound of what the server alone can do.
"""

from __future__ import annotations

import argparse
import http.client
import time
from datetime import datetime
from typing import Any

import requests

from dropbox_importer import logs
from dropbox_importer.sandbox import Sandbox, SandboxSettings

TARGET_INGEST_MB_S = 50.0
TARGET_STATUS_PER_S = 1000.0


def make_csv(target_bytes: int) -> bytes:
    """A realistic lead file of about `target_bytes`: unique emails, a few text columns."""
    header = "email,firstName,lastName,company,city,country,numberOfEmployees\n"
    lines = [header]
    size, i = len(header), 0
    while size < target_bytes:
        line = (
            f"lead{i}@example.com,First{i},Last{i},Company {i % 997},City {i % 113},FR,{i % 500}\n"
        )
        lines.append(line)
        size += len(line)
        i += 1
    return "".join(lines).encode()


def token(base: str, settings: SandboxSettings) -> str:
    """A bearer token for the sandbox's credentials."""
    params = {
        "grant_type": "client_credentials",
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
    }
    value: str = requests.get(f"{base}/identity/oauth/token", params=params, timeout=30).json()[
        "access_token"
    ]
    return value


def bench_ingest(base: str, headers: dict[str, str], payload: bytes, files: int) -> dict[str, Any]:
    """Upload `files` copies back to back; return MB/s of the create calls and of processing."""
    session = requests.Session()
    started = time.perf_counter()
    for _ in range(files):
        body = session.post(
            f"{base}/bulk/v1/leads.json",
            params={"format": "csv"},
            files={"file": ("leads.csv", payload, "text/csv")},
            headers=headers,
            timeout=60,
        ).json()
        assert body["success"], body
    upload_seconds = time.perf_counter() - started
    deadline = time.monotonic() + 300
    while True:
        batches = session.get(f"{base}/sandbox/batches.json", timeout=30).json()["batches"]
        if all(b["status"] in ("Complete", "Failed") for b in batches):
            break
        if time.monotonic() > deadline:
            raise TimeoutError("batches did not finish")
        time.sleep(0.05)  # polling interval of a deadline-bounded wait
    processing = [
        (
            datetime.fromisoformat(b["finished"]) - datetime.fromisoformat(b["started"])
        ).total_seconds()
        for b in batches
    ]
    megabytes = len(payload) * files / 1e6
    return {
        "file_mb": len(payload) / 1e6,
        "rows_per_file": batches[0]["rows"],
        "upload_mb_s": megabytes / upload_seconds,
        "processing_mb_s": megabytes / sum(processing),
        "processing_rows_s": batches[0]["rows"] * files / sum(processing),
    }


def bench_status(base: str, headers: dict[str, str], seconds: float) -> float:
    """Status calls per second from one client on one keep-alive connection.

    http.client rather than requests: requests' own per-call cost would dominate the figure.
    """
    host, port = base.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    path = "/bulk/v1/leads/batch/3401.json"
    calls = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        connection.request("GET", path, headers=headers)
        answer = connection.getresponse()
        assert answer.status == 200 and b'"success": true' in answer.read()
        calls += 1
    connection.close()
    return calls / (time.perf_counter() - started)


def main() -> int:
    """Run both benchmarks and print the figures against their targets."""
    parser = argparse.ArgumentParser(prog="bench.sandbox", description=__doc__)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--file-mb", type=float, default=9.0)
    parser.add_argument("--status-seconds", type=float, default=3.0)
    args = parser.parse_args()
    logs.configure(level="warning")
    # No call limits and instant simulated imports: only the sandbox's own work is measured.
    settings = SandboxSettings(
        rows_per_second=1e12,
        job_overhead_seconds=0.0,
        calls_per_window=10**9,
        daily_quota=10**9,
        max_queued_jobs=10**6,
    )
    payload = make_csv(int(args.file_mb * 1e6))
    with Sandbox(settings) as sandbox:
        headers = {"Authorization": f"Bearer {token(sandbox.base_url, settings)}"}
        ingest = bench_ingest(sandbox.base_url, headers, payload, args.files)
        status = bench_status(sandbox.base_url, headers, args.status_seconds)
    print(f"file size:        {ingest['file_mb']:.1f} MB, {ingest['rows_per_file']} rows")
    print(f"ingest (create):  {ingest['upload_mb_s']:.0f} MB/s  (target {TARGET_INGEST_MB_S:.0f})")
    print(
        f"row processing:   {ingest['processing_mb_s']:.1f} MB/s, "
        f"{ingest['processing_rows_s']:.0f} rows/s"
    )
    print(f"status calls:     {status:.0f} /s  (target {TARGET_STATUS_PER_S:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
