"""Several Marketo instances: each numbers its batches alike; each answer reaches its file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config

pytestmark = pytest.mark.slow

HEADER = "email,firstName,lastName,company\n"


@pytest.fixture(params=["kind", "strict"])
def sandbox_profile(request: pytest.FixtureRequest) -> str:
    profile: str = request.param
    return profile


def test_two_instances_with_the_same_batch_ids_each_settle_their_own_files(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    # Two instances number their batches alike: each one's first job is the same batch id,
    # and both are in flight at once (2 s of overhead each).
    sandboxes = [make_sandbox(job_overhead_seconds=2.0) for _ in range(2)]
    roots = [tmp_path / "east", tmp_path / "west"]
    config = write_config(
        tmp_path,
        base_url=sandboxes[0].base_url,
        client_id=sandboxes[0].settings.client_id,
        client_secret=sandboxes[0].settings.client_secret,
        dropboxes={
            "east": {"root": str(roots[0]), "watch": "events"},
            "west": {"root": str(roots[1]), "watch": "events", "instance": "second"},
        },
    )
    data = yaml.safe_load(config.read_text())
    data["instances"]["second"] = {
        **data["instances"]["main"],
        "base_url": sandboxes[1].base_url,
        "client_id": sandboxes[1].settings.client_id,
        "client_secret": sandboxes[1].settings.client_secret,
    }
    config.write_text(yaml.safe_dump(data))
    texts = {
        "east": HEADER + "".join(f"east{n}@example.com,E{n},Last,Co\n" for n in range(3)),
        "west": HEADER + "".join(f"west{n}@example.com,W{n},Last,Co\n" for n in range(5)),
    }
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        for root in roots:
            (root / "inbox").mkdir(parents=True, exist_ok=True)
        for root, text in zip(roots, texts.values(), strict=True):
            aside = root / "inbox" / ".leads.csv.part"
            aside.write_text(text)
            aside.rename(root / "inbox" / "leads.csv")
        wait_for(
            lambda: all(len(originals_under(root / "done")) == 1 for root in roots),
            timeout=60,
            what="both files in done/",
        )
    finally:
        assert daemon.stop() == 0

    batch_ids = set()
    for root, sandbox, (name, text) in zip(roots, sandboxes, texts.items(), strict=True):
        done = root / "done" / "leads.csv"
        assert done.read_text() == text
        result = json.loads(done.with_name("leads.csv.result.json").read_text())
        assert result["counts"]["leads_processed"] == text.count("\n") - 1
        [part] = result["parts"]
        batch_ids.add(part["batch_id"])
        leads = requests.get(f"{sandbox.base_url}/sandbox/leads.json", timeout=10).json()
        assert sorted(lead["fields"]["email"] for lead in leads["leads"]) == sorted(
            f"{name}{n}@example.com" for n in range(text.count("\n") - 1)
        )
    assert len(batch_ids) == 1, "the case needs both instances to give the same batch id"
