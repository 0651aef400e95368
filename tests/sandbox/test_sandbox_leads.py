"""The lead database: dedupe, id updates, lists, partitions, row failures and warnings."""

from __future__ import annotations

from typing import Any

import pytest
from contract import validate
from sandbox_client import Client, MakeSandbox

from dropbox_importer.sandbox import LeadField, Sandbox


def leads(client: Client) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = client.introspect("leads")["leads"]
    return result


def reasons(client: Client, batch_id: int, kind: str) -> list[str]:
    return client.get(f"/bulk/v1/leads/batch/{batch_id}/{kind}.json").text.splitlines()


def test_rows_insert_then_update_by_email_whatever_the_header_case(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    client.import_file("FirstName,LastName,Email,Company\nAda,Lovelace,ada@example.com,AE\n")
    final = client.import_file("EMAIL,company\nADA@example.com,Analytical Engines\n")
    assert final["numOfLeadsProcessed"] == 1
    (lead,) = leads(client)
    assert lead["fields"]["firstName"] == "Ada"
    assert lead["fields"]["company"] == "Analytical Engines"


def test_lookup_by_id_only_updates_and_unknown_ids_fail(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    client.import_file("email\nada@example.com\n")
    lead_id = leads(client)[0]["id"]
    final = client.import_file(f"id,title\n{lead_id},Countess\n999,Nobody\n", lookupField="id")
    assert (final["numOfLeadsProcessed"], final["numOfRowsFailed"]) == (1, 1)
    assert len(leads(client)) == 1
    assert leads(client)[0]["fields"]["title"] == "Countess"
    failures = reasons(client, final["batchId"], "failures")
    assert failures[1] == "999,Nobody,Lead not found for id 999"


def test_list_membership_and_partition_come_from_the_parameters(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    final = client.import_file(
        "email\na@example.com\nb@example.com\n", listId=1002, partitionName="Europe"
    )
    assert final["message"] == "Import succeeded, 2 records imported (2 members)"
    assert [(lead["lists"], lead["partitionName"]) for lead in leads(client)] == [
        ([1002], "Europe"),
        ([1002], "Europe"),
    ]
    # The same email in another partition is another lead, as in Marketo.
    client.import_file("email\na@example.com\n", partitionName="Americas")
    assert len(leads(client)) == 3


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (",Ada,12", "Value for lookup field 'email' not found"),
        ("not-an-email,Ada,12", "Invalid email address 'not-an-email'"),
        (
            "ada@example.com,Ada,twelve",
            "Invalid value 'twelve' for field 'numberOfEmployees' of type integer",
        ),
        ("ada@example.com,Ada,12,extra", "Row has 4 fields where the header has 3"),
    ],
)
def test_bad_rows_fail_with_a_reason(sandbox: Sandbox, row: str, reason: str) -> None:
    client = Client(sandbox)
    final = client.import_file(f"email,firstName,numberOfEmployees\n{row}\n")
    assert (final["status"], final["numOfRowsFailed"]) == ("Complete", 1)
    failures = reasons(client, final["batchId"], "failures")
    assert failures[0] == "email,firstName,numberOfEmployees,Import Failure Reason"
    assert failures[1].endswith(reason)


def test_a_value_too_long_is_truncated_with_a_warning(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    final = client.import_file(f"email,firstName\nada@example.com,{'x' * 300}\n")
    assert (final["numOfLeadsProcessed"], final["numOfRowsWithWarning"]) == (1, 1)
    assert len(leads(client)[0]["fields"]["firstName"]) == 255
    warning = reasons(client, final["batchId"], "warnings")[1]
    assert warning.endswith("Value for field 'firstName' truncated to 255 characters")


def test_failures_file_drops_empty_trailing_fields_like_marketo(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    final = client.import_file("email,firstName,lastName\nbroken,,\n")
    # The reason lands under firstName: the documented quirk a client must survive.
    assert reasons(client, final["batchId"], "failures")[1] == (
        "broken,Invalid email address 'broken'"
    )


@pytest.mark.parametrize(("fmt", "sep"), [("tsv", "\t"), ("ssv", ";")])
def test_other_formats_use_their_own_delimiter_in_and_out(
    sandbox: Sandbox, fmt: str, sep: str
) -> None:
    client = Client(sandbox)
    final = client.import_file(
        f"email{sep}lastName\nbad{sep}Smith\nok@example.com{sep}Ok\n", format=fmt
    )
    assert final["numOfLeadsProcessed"] == 1
    failures = reasons(client, final["batchId"], "failures")
    assert failures[1] == f"bad{sep}Smith{sep}Invalid email address 'bad'"


def test_unknown_column_warns_on_every_row_by_default(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    final = client.import_file("email,shoeSize\na@example.com,42\nb@example.com,\n")
    assert (final["status"], final["numOfRowsWithWarning"]) == ("Complete", 2)
    warnings = reasons(client, final["batchId"], "warnings")
    assert all(line.endswith("Unknown field 'shoeSize' ignored") for line in warnings[1:])


def test_unknown_column_fails_the_batch_when_configured(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox(unknown_column="fail"))
    final = client.import_file("email,shoeSize\na@example.com,42\n")
    assert final["status"] == "Failed"
    assert "'shoeSize'" in final["message"]
    assert leads(client) == []


def test_custom_fields_are_described_and_imported(make_sandbox: MakeSandbox) -> None:
    client = Client(make_sandbox(custom_fields=(LeadField("shoeSize", "integer", None),)))
    body = client.get("/rest/v1/leads/describe.json").json()
    validate(body, "/rest/v1/leads/describe.json")
    names = {item["rest"]["name"]: item for item in body["result"]}
    for standard in ("id", "email", "firstName", "lastName", "company", "postalCode", "website"):
        assert standard in names
    assert names["shoeSize"]["dataType"] == "integer"
    assert names["email"]["length"] == 255
    client.import_file("email,shoeSize\na@example.com,42\n")
    assert leads(client)[0]["fields"]["shoeSize"] == 42


def test_partitions_and_lists_are_served(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    body = client.get("/rest/v1/leads/partitions.json").json()
    validate(body, "/rest/v1/leads/partitions.json")
    assert [p["name"] for p in body["result"]] == list(sandbox.settings.partitions)
    body = client.get("/rest/v1/lists/1001.json").json()
    validate(body, "/rest/v1/lists/{listId}.json")
    assert body["result"][0]["name"] == "Demo list"
    missing = client.get("/rest/v1/lists/4242.json").json()
    validate(missing, "/rest/v1/lists/{listId}.json")
    assert missing["errors"][0]["code"] == "1013"


def test_a_header_only_file_completes_with_nothing_imported(sandbox: Sandbox) -> None:
    final = Client(sandbox).import_file("email,firstName\n")
    assert final["status"] == "Complete"
    assert final["numOfLeadsProcessed"] == 0


def test_a_blank_header_row_fails_the_batch(sandbox: Sandbox) -> None:
    final = Client(sandbox).import_file("\n\n\na@example.com\n")
    assert final["status"] == "Failed"
    assert "header" in final["message"]
