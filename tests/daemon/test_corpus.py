"""Every partner file of the corpus, end to end through one real daemon and one sandbox.

The files are dropped all at once into the route folders expected.yaml names (one drop box per
declared encoding, since the encoding is a drop box setting), and each test then checks one
file's end: done/ with its rows counted and its local failures listed by line, or failed/ with
the promised words in its reason; and, every time, the original byte for byte as dropped.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from dropbox_importer.sandbox import Sandbox, SandboxSettings
from dropbox_importer.sandbox.settings import LeadField
from tests.daemon.harness import (
    SANDBOX_WINDOW_SECONDS,
    DaemonProcess,
    originals_under,
    wait_for,
    write_config,
)
from tests.daemon.writer import HeldWriter

pytestmark = pytest.mark.slow


def _load_make() -> Any:
    # By path: `tests` is no package on pytest's default import path.
    path = Path(__file__).resolve().parents[1] / "corpus" / "make.py"
    spec = importlib.util.spec_from_file_location("corpus_make_daemon", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_make = _load_make()
MANIFEST: dict[str, dict[str, Any]] = _make.load_manifest()

# Columns of corpus files that are custom fields of the partner's instance (a real instance has
# many); without them preflight would rightly refuse those files for an unknown column.
CUSTOM_FIELDS = (
    LeadField("Notes", "text", None, "Notes"),
    LeadField("Score", "integer", None, "Score"),
    LeadField("Vorname", "string", 255, "Vorname"),
    LeadField("Nachname", "string", 255, "Nachname"),
    LeadField("Straße", "string", 255, "Straße"),
)

# Fast enough that the 12 MB file (120,000 rows) imports in about a second.
SETTINGS = SandboxSettings(
    rows_per_second=150_000.0,
    job_overhead_seconds=0.02,
    window_seconds=SANDBOX_WINDOW_SECONDS,
    custom_fields=CUSTOM_FIELDS,
)

DELIMITERS = {"csv": ",", "tsv": "\t", "ssv": ";"}


def box_name(spec: dict[str, Any]) -> str:
    """The drop box a file goes to: one per encoding and partial_failure setting."""
    name = str(spec.get("encoding", "utf-8")).replace("-", "")
    return name + ("-strict" if spec.get("partial_failure") == "failed" else "")


def box_settings(spec: dict[str, Any]) -> dict[str, Any]:
    """The drop box settings a file's entry asks for."""
    return {
        "encoding": spec.get("encoding", "utf-8"),
        "partial_failure": spec.get("partial_failure", "done"),
        # An empty file fails as empty once this old (empty.csv); 60 s by default.
        "empty_file_seconds": 2,
    }


def route_folder(spec: dict[str, Any]) -> str:
    """The route folder a file is dropped in: its format, and its lookup field if not email."""
    lookup = spec.get("lookup_field")
    return str(spec["route"]) + (f",lookup={lookup}" if lookup else "")


@dataclass(frozen=True)
class CorpusRun:
    """The corpus after one daemon run: where each file was dropped, the sandbox's leads."""

    source: Path
    roots: dict[str, Path]
    leads: dict[str, dict[str, Any]]
    daemon: DaemonProcess
    seconds: float

    def final(self, name: str, outcome: str) -> Path:
        """Where `name` must be once settled with `outcome`."""
        spec = MANIFEST[name]
        return self.roots[box_name(spec)] / outcome / route_folder(spec) / name


def _drop(source: Path, target: Path) -> None:
    """Drop a file as a careful client does: written aside, renamed into the inbox."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name("." + target.name + ".uploading")
    staging.write_bytes(source.read_bytes())
    staging.rename(target)


def _write_with_a_stall(source: Path, target: Path, plan: dict[str, Any]) -> None:
    """Write the file through one held handle that stalls, as the entry's `writer` says."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = source.read_bytes().splitlines(keepends=True)
    cut = plan["split_at_line"] - 1
    head = b"".join(lines[:cut])
    if plan.get("mid_line"):
        head += lines[cut][: len(lines[cut]) // 2]
    data = b"".join(lines)
    written = target.with_name(plan.get("temp_name", target.name))
    writer = HeldWriter(written)
    try:
        writer.write(head)
        time.sleep(plan["pause"])  # the stall under test, longer than the settle time
        writer.write(data[len(head) :])
        writer.close()
    finally:
        writer.kill()
    if written != target:
        written.rename(target)  # the uploader's final rename (rclone)


@pytest.fixture(scope="module", params=["kind", "strict"])
def corpus_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CorpusRun]:
    """Drop the whole corpus into one daemon; wait until every file has settled.

    Once against the kind sandbox, once against the strict one (docs/sandbox.md).
    """
    work = tmp_path_factory.mktemp(f"corpus_run_{request.param}")
    source = _make.materialize(work / "source")
    roots = {box_name(spec): work / box_name(spec) for spec in MANIFEST.values()}
    settings = {box_name(spec): box_settings(spec) for spec in MANIFEST.values()}
    with Sandbox(replace(SETTINGS, profile=request.param)) as sandbox:
        config = write_config(
            work,
            base_url=sandbox.base_url,
            client_id=sandbox.settings.client_id,
            client_secret=sandbox.settings.client_secret,
            dropboxes={name: {"root": str(root), **settings[name]} for name, root in roots.items()},
        )
        daemon = DaemonProcess(config, work / "daemon.log").start()
        try:
            began = time.monotonic()
            writers = []
            for name, spec in MANIFEST.items():
                inbox = roots[box_name(spec)] / "inbox" / route_folder(spec)
                if "writer" in spec:
                    args = (source / name, inbox / name, spec["writer"])
                    writers.append(threading.Thread(target=_write_with_a_stall, args=args))
                    writers[-1].start()
                else:
                    _drop(source / name, inbox / name)
            for writer in writers:
                writer.join()
            ignored = sum(1 for spec in MANIFEST.values() if spec["outcome"] == "ignored")

            def settled() -> bool:
                count = sum(
                    len(originals_under(root / "done")) + len(originals_under(root / "failed"))
                    for root in roots.values()
                )
                return count >= len(MANIFEST) - ignored

            wait_for(settled, timeout=50, what="every corpus file in done/ or failed/")
            seconds = time.monotonic() - began
            reply = requests.get(f"{sandbox.base_url}/sandbox/leads.json", timeout=10)
            leads = {lead["fields"]["email"].lower(): lead for lead in reply.json()["leads"]}
            print(f"corpus of {len(MANIFEST)} files settled in {seconds:.1f} s")
            yield CorpusRun(source, roots, leads, daemon, seconds)
        finally:
            assert daemon.stop() == 0


def test_corpus_has_at_least_40_files() -> None:
    assert len(MANIFEST) >= 40


def test_no_file_is_left_behind_and_the_daemon_logged_no_crash(corpus_run: CorpusRun) -> None:
    ignored = {name for name, spec in MANIFEST.items() if spec["outcome"] == "ignored"}
    for root in corpus_run.roots.values():
        assert {p.name for p in originals_under(root / "inbox")} <= ignored
        assert not originals_under(root / "processing")
    crashes = {"submit_crashed", "settle_failed", "claim_failed", "settle_move_failed"}
    assert not [e for e in corpus_run.daemon.events() if e.get("event") in crashes]


def _result(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".result.json").read_text())
    return data


def _failure_lines(final: Path, route: str) -> list[int]:
    """The original line numbers the failures file beside `final` lists."""
    ext = ".tsv" if route == "tsv" else ".csv"
    failures = final.with_name(final.name + ".failures" + ext)
    if not failures.exists():
        return []
    reader = csv.reader(io.StringIO(failures.read_text(encoding="utf-8-sig")),
                        delimiter=DELIMITERS[route])  # fmt: skip
    header, *rows = list(reader)
    assert header[0] == "Line", header
    return [int(row[0]) for row in rows]


def _lookup_values(data: bytes, spec: dict[str, Any]) -> list[str]:
    """Every non-empty email of a file, read with the standard csv module."""
    encoding = spec.get("read_as", {}).get("encoding") or spec.get("encoding", "utf-8")
    text = data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    header, *rows = list(csv.reader(io.StringIO(text), delimiter=DELIMITERS[spec["route"]]))
    column = [h.strip().lower() for h in header].index("email")
    return [row[column].strip() for row in rows if len(row) > column and row[column].strip()]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_corpus_file_ends_as_expected_through_the_daemon(name: str, corpus_run: CorpusRun) -> None:
    spec = MANIFEST[name]
    dropped = (corpus_run.source / name).read_bytes()
    if spec["outcome"] == "ignored":
        left = corpus_run.final(name, "inbox")
        assert left.read_bytes() == dropped  # left in place, untouched
        logged = [e for e in corpus_run.daemon.events() if e.get("event") == "file_ignored"]
        assert [e for e in logged if Path(e["file"]).name == name]
        return
    final = corpus_run.final(name, spec["outcome"])
    other = corpus_run.final(name, "done" if spec["outcome"] == "failed" else "failed")
    assert final.exists(), f"{name} is not in {spec['outcome']}/ (other side: {other.exists()})"
    assert final.read_bytes() == dropped  # byte for byte, in every case
    result = _result(final)
    assert result["outcome"] == spec["outcome"], result["reason"]
    assert result["original"] == {
        "size": len(dropped),
        "sha256": hashlib.sha256(dropped).hexdigest(),
    }
    if spec["outcome"] == "failed":
        reason = result["reason"].lower()
        for words in spec["reason"]:
            assert words.lower() in reason, result["reason"]
        if "line" in spec:
            assert f"line {spec['line']}" in reason, result["reason"]
        assert result["parts"] == []  # refused before any import slot was spent
        return
    counts = result["counts"]
    assert counts["blank_rows"] == spec.get("blank_rows", 0)
    assert result["ignored_columns"] == spec.get("ignored_columns", [])
    read_as = spec.get("read_as", {"encoding": "utf-8", "by": "utf-8"})
    encoding = result["encoding"]
    assert (encoding["name"], encoding["decided_by"]) == (read_as["encoding"], read_as["by"])
    assert encoding["converted_to"] == (None if read_as["encoding"] == "utf-8" else "utf-8")
    assert result["rounds"] == 1  # every writer was waited for: nothing imported twice
    assert result["imported"]["size"] == len(dropped)
    for email, fields in spec.get("leads", {}).items():
        lead = corpus_run.leads[email.lower()]["fields"]
        for field, value in fields.items():
            assert lead[field] == value, (email, field, lead[field])
    local = spec.get("local_failures", [])
    assert counts["rows_failed_locally"] == len(local)
    imported = counts["leads_processed"] + counts["rows_failed"] + counts["rows_failed_locally"]
    assert imported == spec["rows"], counts
    lines = _failure_lines(final, spec["route"])
    assert set(local) <= set(lines)
    assert len(lines) == counts["rows_failed"] + counts["rows_failed_locally"]
    if spec.get("lookup_field", "email") == "email":
        emails = _lookup_values(dropped, spec)
        assert len(emails) == spec["rows"] - len(local)
        missing = [e for e in emails if e.lower() not in corpus_run.leads]
        assert not missing, missing[:5]
