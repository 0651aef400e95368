"""The core round trip: token, create, status, failures, warnings, introspection."""

from __future__ import annotations

from sandbox_client import Client

from dropbox_importer.sandbox import Sandbox


def test_a_file_imports_with_its_failures_and_warnings_reported(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    final = client.import_file(
        "email,firstName,favouriteColour\na@example.com,Ada,red\nnot-an-email,Bob,\n",
        listId=1001,
    )
    assert final["status"] == "Complete"
    assert final["numOfLeadsProcessed"] == 1
    assert final["numOfRowsFailed"] == 1
    assert final["numOfRowsWithWarning"] == 1
    assert final["message"] == (
        "Import completed with errors, 1 records imported (1 members), 1 failed"
    )
    batch_id = final["batchId"]
    failures = client.get(f"/bulk/v1/leads/batch/{batch_id}/failures.json").text
    assert failures.splitlines() == [
        "email,firstName,favouriteColour,Import Failure Reason",
        "not-an-email,Bob,Invalid email address 'not-an-email'",
    ]
    warnings = client.get(f"/bulk/v1/leads/batch/{batch_id}/warnings.json").text
    assert "a@example.com,Ada,red,Unknown field 'favouriteColour' ignored" in warnings
    leads = client.introspect("leads")["leads"]
    assert [(lead["fields"]["email"], lead["lists"]) for lead in leads] == [
        ("a@example.com", [1001])
    ]
