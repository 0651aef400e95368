"""The strict profile, over plain HTTP: each harsher reading of Marketo, next to the kind one."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import requests
from contract import produces, validate
from sandbox_client import Client, MakeSandbox, wait_for

CREATE = "/bulk/v1/leads.json"
STATUS = "/bulk/v1/leads/batch/{batchId}.json"
FAILURES = "/bulk/v1/leads/batch/{batchId}/failures.json"
HOLD = 3600.0  # a job overhead no test waits out: jobs stay where the test put them


def code_of(response: requests.Response) -> str:
    """'ok' or the Marketo error code of a JSON answer."""
    body = response.json()
    return "ok" if body["success"] else str(body["errors"][0]["code"])


def release(client: Client) -> None:
    """Let every held job finish at once."""
    reply = client.session.post(
        f"{client.base}/sandbox/speed.json", json={"job_overhead_seconds": 0.0}
    )
    reply.raise_for_status()


def set_faults(client: Client, **faults: Any) -> None:
    client.session.post(f"{client.base}/sandbox/faults.json", json=faults).raise_for_status()


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# -- 1019 ---------------------------------------------------------------------------------


def test_strict_answers_1019_for_a_list_with_a_job_queued_or_importing(
    make_sandbox: MakeSandbox,
) -> None:
    client = Client(make_sandbox(profile="strict", max_importing=1, job_overhead_seconds=HOLD))
    assert code_of(client.create("email\na@example.com\n", listId=1001)) == "ok"  # importing
    assert code_of(client.create("email\nb@example.com\n", listId=1002)) == "ok"  # queued
    refused = client.create("email\nc@example.com\n", listId=1001)
    assert code_of(refused) == "1019"
    assert refused.json()["errors"][0]["message"] == "Import in progress"
    validate(refused.json(), CREATE, "post")
    assert code_of(client.create("email\nd@example.com\n", listId=1002)) == "1019"  # queued
    # Other lists, and imports with no list, go ahead.
    assert code_of(client.create("email\ne@example.com\n", listId=1003)) == "ok"
    assert code_of(client.create("email\nf@example.com\n")) == "ok"
    assert client.introspect("stats")["errorsByEndpoint"]["create"] == {"1019": 2}
    assert len(client.introspect("batches")["batches"]) == 4  # a refused create queues nothing
    release(client)
    wait_for(
        lambda: all(b["status"] == "Complete" for b in client.introspect("batches")["batches"]),
        what="every job to finish",
    )
    assert code_of(client.create("email\ng@example.com\n", listId=1001)) == "ok"


def test_strict_importing_only_lets_a_queued_job_share_its_list(
    make_sandbox: MakeSandbox,
) -> None:
    sandbox = make_sandbox(
        profile="strict", list_busy_from="importing", max_importing=1, job_overhead_seconds=HOLD
    )
    client = Client(sandbox)
    assert code_of(client.create("email\na@example.com\n", listId=1001)) == "ok"  # importing
    assert code_of(client.create("email\nb@example.com\n", listId=1002)) == "ok"  # queued
    assert code_of(client.create("email\nc@example.com\n", listId=1002)) == "ok"
    assert code_of(client.create("email\nd@example.com\n", listId=1001)) == "1019"


def test_kind_never_answers_1019(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox(job_overhead_seconds=HOLD))
    answers = [code_of(client.create(f"email\nx{i}@example.com\n", listId=1001)) for i in range(3)]
    assert answers == ["ok", "ok", "ok"]


# -- header names and email addresses ---------------------------------------------------


def test_strict_takes_header_names_as_sent_and_kind_trims_them(
    make_sandbox: MakeSandbox,
) -> None:
    spaced = " Email , FirstName \na@example.com,Ann\n"
    cased = "EMAIL,firstname\nb@example.com,Bob\n"
    strict = Client(make_sandbox(profile="strict"))
    final = strict.import_file(spaced)
    assert (final["numOfLeadsProcessed"], final["numOfRowsFailed"]) == (0, 1)
    assert strict.import_file(cased)["numOfLeadsProcessed"] == 1  # case never mattered
    kind = Client(make_sandbox())
    assert kind.import_file(spaced)["numOfLeadsProcessed"] == 1


def test_strict_fails_rows_whose_email_is_not_ascii(make_sandbox: MakeSandbox) -> None:
    text = "email,firstName\nzoë@example.com,Zoë\nann@bücher.de,Ann\nok@example.com,Ok\n"
    strict = Client(make_sandbox(profile="strict"))
    final = strict.import_file(text)
    assert (final["numOfLeadsProcessed"], final["numOfRowsFailed"]) == (1, 2)
    failures = strict.get(f"/bulk/v1/leads/batch/{final['batchId']}/failures.json")
    reasons = {row[0]: row[-1] for row in rows_of(failures.text)[1:]}
    assert reasons == {
        "zoë@example.com": "Invalid email address 'zoë@example.com'",
        "ann@bücher.de": "Invalid email address 'ann@bücher.de'",
    }
    assert Client(make_sandbox()).import_file(text)["numOfLeadsProcessed"] == 3


# -- failures and warnings files ----------------------------------------------------------


FAILING = "email,firstName,lastName,company\n" + "".join(
    f"bad-{i},F{i},{'L' if i % 2 else ''},\n" for i in range(8)
)


def test_strict_failures_file_drops_empty_columns_shuffles_rows_and_is_json(
    make_sandbox: MakeSandbox,
) -> None:
    client = Client(make_sandbox(profile="strict"))
    batch_id = client.import_file(FAILING)["batchId"]
    reply = client.get(f"/bulk/v1/leads/batch/{batch_id}/failures.json")
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].split(";")[0] in produces(FAILURES)
    header, *rows = rows_of(reply.text)
    # company is empty in every failed row: gone from the header and the rows.
    assert header == ["email", "firstName", "lastName", "Import Failure Reason"]
    original = [f"bad-{i}" for i in range(8)]
    assert sorted(row[0] for row in rows) == original
    assert [row[0] for row in rows] != original  # this seed's order is not the file's
    by_email = {row[0]: row for row in rows}
    assert by_email["bad-1"] == ["bad-1", "F1", "L", "Invalid email address 'bad-1'"]
    # The trailing-fields quirk still applies: an empty lastName before the reason is dropped.
    assert by_email["bad-0"] == ["bad-0", "F0", "Invalid email address 'bad-0'"]
    # No warnings: HTTP 404 rather than an empty file.
    warnings = client.get(f"/bulk/v1/leads/batch/{batch_id}/warnings.json")
    assert warnings.status_code == 404


def test_strict_row_order_is_replayed_by_the_same_seed(make_sandbox: MakeSandbox) -> None:
    orders = []
    for seed in (5, 5, 6):
        client = Client(make_sandbox(profile="strict", row_order_seed=seed))
        batch_id = client.import_file(FAILING)["batchId"]
        text = client.get(f"/bulk/v1/leads/batch/{batch_id}/failures.json").text
        orders.append([row[0] for row in rows_of(text)[1:]])
    assert orders[0] == orders[1]
    assert orders[0] != orders[2]


def test_kind_failures_file_keeps_every_column_in_order_as_csv(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox())
    batch_id = client.import_file(FAILING)["batchId"]
    reply = client.get(f"/bulk/v1/leads/batch/{batch_id}/failures.json")
    assert reply.headers["Content-Type"].startswith("text/csv")
    header, *rows = rows_of(reply.text)
    assert header == ["email", "firstName", "lastName", "company", "Import Failure Reason"]
    assert [row[0] for row in rows] == [f"bad-{i}" for i in range(8)]
    warnings = client.get(f"/bulk/v1/leads/batch/{batch_id}/warnings.json")
    assert warnings.status_code == 200
    assert rows_of(warnings.text) == [[*header[:-1], "Import Warning Reason"]]


# -- faults: lost answers, transient codes, failed batches -------------------------------


@pytest.mark.parametrize("profile", ["kind", "strict"])
def test_a_lost_answer_runs_the_call_then_closes_the_connection(
    make_sandbox: MakeSandbox, profile: str
) -> None:
    client = Client(make_sandbox(profile=profile))
    set_faults(client, lost_answer_rate=1.0, endpoints=["create"])
    with pytest.raises(requests.ConnectionError):
        client.create("email\nlost@example.com\n")
    set_faults(client, lost_answer_rate=0.0)
    [batch] = client.introspect("batches")["batches"]  # the create ran: its batch exists
    final = wait_for(
        lambda: (s := client.status(batch["batchId"]))["status"] == "Complete" and s,
        what="the batch whose answer was lost to complete",
    )
    assert final["numOfLeadsProcessed"] == 1
    assert client.introspect("stats")["errors"] == {"answer_lost": 1}


def test_strict_transient_faults_include_614(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox(profile="strict"))
    set_faults(client, rate=1.0)
    seen = {code_of(client.get("/rest/v1/leads/describe.json")) for _ in range(60)}
    assert seen == {"502", "604", "608", "611", "614", "713"}
    assert client.introspect("faults")["codes"] is None  # the profile's own


def test_strict_1016_carries_the_text_real_instances_send(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox(profile="strict", job_overhead_seconds=HOLD))
    answers = [client.create(f"email\nq{i}@example.com\n") for i in range(11)]
    assert [code_of(a) for a in answers] == ["ok"] * 10 + ["1016"]
    body = answers[-1].json()
    validate(body, CREATE, "post")
    message = body["errors"][0]["message"]
    assert message == "There are 10 imports currently being processed. Please try again later"


def test_strict_failed_batch_carries_its_counts_and_failed_rows(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox(profile="strict"))
    set_faults(client, failed_batch_rate=1.0)
    rows = [f"ok{i}@example.com" if i % 3 else f"bad{i}" for i in range(10)]
    final = client.import_file("email\n" + "\n".join(rows) + "\n")
    validate({"requestId": "x", "success": True, "result": [final], "errors": [],
              "warnings": []}, STATUS)  # fmt: skip
    assert final["status"] == "Failed"
    assert final["message"] == "Import failed: system error"
    # It failed half-way: the rows before that are processed and counted.
    assert final["numOfLeadsProcessed"] + final["numOfRowsFailed"] == 5
    assert final["numOfRowsFailed"] == 2  # bad0 and bad3
    text = client.get(f"/bulk/v1/leads/batch/{final['batchId']}/failures.json").text
    assert sorted(row[0] for row in rows_of(text)[1:]) == ["bad0", "bad3"]
    assert len(client.introspect("leads")["leads"]) == 3


# -- unknown batch ids --------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "code"), [("kind", "1003"), ("strict", "610")])
def test_unknown_and_forgotten_batch_ids_answer_the_profiles_code(
    make_sandbox: MakeSandbox, profile: str, code: str
) -> None:
    client = Client(make_sandbox(profile=profile))
    batch_id = client.import_file("email\nknown@example.com\n")["batchId"]
    forgotten = client.session.post(
        f"{client.base}/sandbox/batches.json", json={"forget": [batch_id, 99]}
    )
    assert forgotten.json() == {"forgotten": [batch_id]}
    for target in (batch_id, 424242, "nonsense"):
        for tail in (".json", "/failures.json", "/warnings.json"):
            reply = client.get(f"/bulk/v1/leads/batch/{target}{tail}")
            assert (reply.status_code, code_of(reply)) == (200, code), (target, tail)
    validate(client.get(f"/bulk/v1/leads/batch/{batch_id}.json").json(), STATUS)
    [batch] = client.introspect("batches")["batches"]
    assert batch["expired"] is True


# -- where credentials travel -------------------------------------------------------------


def test_stats_record_where_credentials_arrived_and_any_secret_in_a_url(
    make_sandbox: MakeSandbox,
) -> None:
    sandbox = make_sandbox(profile="strict")
    client = Client(sandbox)  # a GET with the credentials in the query string
    form = {
        "grant_type": "client_credentials",
        "client_id": sandbox.settings.client_id,
        "client_secret": sandbox.settings.client_secret,
    }
    requests.post(f"{client.base}/identity/oauth/token", data=form).raise_for_status()
    stats = client.introspect("stats")
    assert stats["identityCredentials"] == {"query": 1, "body": 1}
    assert stats["secretsInUrl"] == {"client_secret": 1, "access_token": 0}
    client.get("/rest/v1/leads/describe.json")  # the token in a header: fine
    client.session.get(f"{client.base}/rest/v1/leads/partitions.json?access_token={client.token}")
    client.session.get(f"{client.base}/rest/v1/lists/{client.token}.json", headers=client.auth)
    assert client.introspect("stats")["secretsInUrl"] == {"client_secret": 1, "access_token": 2}
