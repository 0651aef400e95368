"""What a partner may change, against the real daemon and the sandbox: refused files change nothing.

Each refusal test seeds the sandbox with a lead that opted out, drops one file a partner could
make, and ends with the sandbox's leads, lists, partitions and batches exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import DaemonProcess, originals_under, wait_for
from tests.daemon.test_end_to_end import FAST, daemon_on, drop, result_of
from tests.sandbox.sandbox_client import Client

pytestmark = pytest.mark.slow

SEED = "email,firstName,unsubscribed,unsubscribedReason\nada@example.com,Adele,true,asked us\n"
# A partner's file that would change the seeded lead if it were sent.
CHANGE = "email,firstName\nada@example.com,Ada\nnew@example.com,New\n"
RESUBSCRIBE = "email,firstName,unsubscribed\nada@example.com,Ada,false\n"

NEWSLETTER = {"format": "csv", "listId": 1001, "partitionName": "Europe"}
NAMED_ONLY = {"allow": {"folders": "named"}, "routes": {"newsletter": NEWSLETTER}}
LIMITED = {
    "allow": {"lists": [1001], "partitions": ["Europe"], "lookup_fields": ["email"]},
}


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for process in started:
        assert process.stop() == 0


def sandbox_state(client: Client) -> dict[str, Any]:
    """Everything a refused file must leave as it was: leads (with lists, partition), lists,
    partitions and the import batches."""
    return {
        "leads": client.introspect("leads")["leads"],
        "batches": client.introspect("batches")["batches"],
        "partitions": client.get("/rest/v1/leads/partitions.json").json()["result"],
        "lists": [client.get(f"/rest/v1/lists/{n}.json").json()["result"] for n in (1001, 1002)],
    }


def seeded(make_sandbox: Callable[..., Any]) -> tuple[Any, Client]:
    sandbox = make_sandbox(**FAST)
    client = Client(sandbox)
    status = client.import_file(SEED, listId=1002, partitionName="Americas")
    assert status["status"] == "Complete" and status["numOfLeadsProcessed"] == 1
    [lead] = client.introspect("leads")["leads"]
    assert lead["fields"]["unsubscribed"] is True
    return sandbox, client


def rename_route_folder(root: Path) -> str:
    """A partner renames the operator's route folder, then uploads into it."""
    (root / "inbox" / "newsletter").mkdir(parents=True)
    (root / "inbox" / "newsletter").rename(root / "inbox" / "csv,list=1002")
    return "csv,list=1002"


# (drop box settings, folder the partner uses, file, the rule the reason must name)
REFUSALS: dict[str, tuple[dict[str, Any], str | Callable[[Path], str], str, str]] = {
    "partner_made_folder": (NAMED_ONLY, "list=9999", CHANGE, "allow.folders: named"),
    "renamed_route_folder": (NAMED_ONLY, rename_route_folder, CHANGE, "allow.folders: named"),
    "list_outside_allow": (LIMITED, "csv,list=1002", CHANGE, "allow.lists: 1001"),
    "partition_outside_allow": (LIMITED, "partition=Americas", CHANGE, "allow.partitions: Europe"),
    "lookup_id_outside_allow": (LIMITED, "lookup=id", CHANGE, "allow.lookup_fields: email"),
    "unsubscribed_column_rejected": ({}, "partition=Americas", RESUBSCRIBE, "columns.allow"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_file_changes_nothing_in_marketo(
    case: str, tmp_path: Path, make_sandbox: Callable[..., Any], daemons: list[DaemonProcess]
) -> None:
    settings, folder, text, rule = REFUSALS[case]
    sandbox, client = seeded(make_sandbox)
    before = sandbox_state(client)
    root = tmp_path / "acme"
    daemons.append(daemon_on(tmp_path, sandbox, {"acme": {"root": str(root), **settings}}))
    route = folder(root) if callable(folder) else folder
    drop(root, f"{route}/leads.csv", text)
    failed = root / "failed" / route / "leads.csv"
    wait_for(failed.exists, timeout=30, what=f"{failed} in failed/")
    assert failed.read_text() == text
    result = result_of(failed)
    reason = result["reason"]
    assert rule in reason and "ask the operator" in reason, reason
    # Nothing about other tenants: no other list, partition or list name.
    for other in ("1003", "Default", "Americas", "Newsletter", "Webinar", "Demo list"):
        assert other not in reason or other in route, reason
    assert result["parts"] == [] and result["timings"]["submitted"] is None
    assert sandbox_state(client) == before
    assert not originals_under(root / "done")


def test_unsubscribed_column_dropped_leaves_the_opt_out_and_imports_the_rest(
    tmp_path: Path, make_sandbox: Callable[..., Any], daemons: list[DaemonProcess]
) -> None:
    sandbox, client = seeded(make_sandbox)
    before = {lead["id"]: lead for lead in client.introspect("leads")["leads"]}
    root = tmp_path / "acme"
    box = {"root": str(root), "columns": {"on_denied": "drop"}}
    daemons.append(daemon_on(tmp_path, sandbox, {"acme": box}))
    drop(root, "partition=Americas/leads.csv", RESUBSCRIBE)  # where the lead lives
    done = root / "done" / "partition=Americas" / "leads.csv"
    wait_for(done.exists, timeout=30, what="leads.csv in done/")
    assert done.read_text() == RESUBSCRIBE
    [lead] = client.introspect("leads")["leads"]
    old = before[lead["id"]]
    assert lead["fields"]["unsubscribed"] is True  # still opted out
    assert lead["fields"]["unsubscribedReason"] == "asked us"
    assert lead["fields"]["firstName"] == "Ada"  # the allowed column was imported
    assert (lead["lists"], lead["partitionName"]) == (old["lists"], old["partitionName"])
    result = result_of(done)
    assert result["outcome"] == "done"
    [dropped] = [c for c in result["columns"] if c["fate"] == "denied"]
    assert dropped["column"] == "unsubscribed" and "columns.allow" in dropped["how"]


def test_unsubscribed_is_sent_when_the_operator_allows_it(
    tmp_path: Path, make_sandbox: Callable[..., Any], daemons: list[DaemonProcess]
) -> None:
    # The sandbox would have re-subscribed the lead: what the refusals above prevent is real.
    sandbox, client = seeded(make_sandbox)
    root = tmp_path / "acme"
    box = {"root": str(root), "columns": {"allow": ["email", "firstName", "unsubscribed"]}}
    daemons.append(daemon_on(tmp_path, sandbox, {"acme": box}))
    drop(root, "partition=Americas/leads.csv", RESUBSCRIBE)
    done = root / "done" / "partition=Americas" / "leads.csv"
    wait_for(done.exists, timeout=30, what="leads.csv in done/")
    [lead] = client.introspect("leads")["leads"]
    assert lead["fields"]["unsubscribed"] is False
