"""Program members: leads found or created by email, statuses from the program's channel."""

from __future__ import annotations

from typing import Any

import pytest
from contract import validate
from sandbox_client import Client, MakeSandbox

from dropbox_importer.sandbox import Sandbox
from dropbox_importer.sandbox.catalog import Channel, ObjectCatalog, Program

CREATE = "/bulk/v1/program/{programId}/members/import.json"
STATUS = "/bulk/v1/program/members/import/{batchId}/status.json"
DESCRIBE = "/rest/v1/program/members/describe.json"
PROGRAM = "/rest/asset/v1/program/{id}.json"
CHANNELS = "/rest/asset/v1/channels.json"


def create(client: Client, content: str, program: int = 1001, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = client.upload(
        f"/bulk/v1/program/{program}/members/import.json", content, **params
    ).json()
    validate(body, CREATE, "post")
    return body


def import_members(client: Client, content: str, status: str, **params: Any) -> dict[str, Any]:
    body = create(client, content, programMemberStatus=status, **params)
    assert body["success"], body
    batch_id = body["result"][0]["batchId"]
    return client.finish(f"/bulk/v1/program/members/import/{batch_id}/status.json")


def members(client: Client, program: int = 1001) -> dict[str, dict[str, Any]]:
    (found,) = [p for p in client.introspect("programs")["programs"] if p["id"] == program]
    return {m["email"]: m for m in found["members"]}


def test_attendees_join_with_their_status_and_missing_leads_are_created(
    sandbox: Sandbox,
) -> None:
    client = Client(sandbox)
    client.import_file("email,firstName\nada@example.com,Ada\n")
    final = import_members(
        client,
        "Email,lastName,attendedMinutes\nADA@example.com,Lovelace,45\ngrace@example.com,Hopper,\n",
        "Attended",
    )
    assert (final["status"], final["numOfLeadsProcessed"], final["numOfRowsFailed"]) == (
        "Complete",
        2,
        0,
    )
    found = members(client)
    assert {email.lower(): m["status"] for email, m in found.items()} == {
        "ada@example.com": "Attended",
        "grace@example.com": "Attended",
    }
    assert found["ada@example.com"]["fields"] == {"attendedMinutes": 45}
    assert found["ada@example.com"]["reachedSuccess"] is True
    leads = {lead["fields"]["email"].lower(): lead for lead in client.introspect("leads")["leads"]}
    assert set(leads) == {"ada@example.com", "grace@example.com"}  # ada was not duplicated
    assert leads["ada@example.com"]["fields"]["lastName"] == "Lovelace"  # lead fields written
    assert leads["grace@example.com"]["fields"]["lastName"] == "Hopper"


def test_a_second_import_moves_members_to_the_new_status(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    import_members(client, "email\nada@example.com\n", "Registered")
    import_members(client, "email\nada@example.com\n", "No Show")
    assert members(client)["ada@example.com"]["status"] == "No Show"
    assert members(client, 1002) == {}


def test_status_answers_fit_the_published_schema_and_other_kinds_do_not_see_them(
    sandbox: Sandbox,
) -> None:
    client = Client(sandbox)
    body = create(client, "email\nada@example.com\n", programMemberStatus="Invited")
    batch_id = body["result"][0]["batchId"]
    assert body["result"][0]["status"] == "Queued"
    final = client.finish(f"/bulk/v1/program/members/import/{batch_id}/status.json")
    validate(client.get(f"/bulk/v1/program/members/import/{batch_id}/status.json").json(), STATUS)
    assert final["message"] == "Import succeeded, 1 records imported"
    # One queue, one series of ids, but each kind's paths know only their own batches.
    lead_status = client.get(f"/bulk/v1/leads/batch/{batch_id}.json").json()
    assert lead_status["errors"][0]["code"] == "1003"
    lead_batch = client.create("email\nb@example.com\n").json()["result"][0]["batchId"]
    other = client.get(f"/bulk/v1/program/members/import/{lead_batch}/status.json").json()
    assert other["errors"][0]["code"] == "1003"


@pytest.mark.parametrize(
    ("program", "params", "message"),
    [
        (
            1001,
            {"programMemberStatus": "Engaged"},
            "Invalid programMemberStatus 'Engaged' for program 1001: the Webinar channel's "
            "statuses are Invited, Registered, Attended, No Show",
        ),
        (1001, {"programMemberStatus": "attended"}, "Invalid programMemberStatus 'attended'"),
        (1001, {}, "Invalid programMemberStatus ''"),
        (4040, {"programMemberStatus": "Attended"}, "Program '4040' not found"),
        (1001, {"programMemberStatus": "Attended", "format": "xls"}, "Invalid format 'xls'"),
    ],
)
def test_bad_parameters_get_1003_naming_what_is_valid(
    sandbox: Sandbox, program: int, params: dict[str, str], message: str
) -> None:
    body = create(Client(sandbox), "email\nada@example.com\n", program, **params)
    assert body["success"] is False
    assert body["errors"][0]["code"] == "1003"
    assert body["errors"][0]["message"].startswith(message)


def test_bad_rows_fail_with_reasons_in_the_failures_file(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    final = import_members(
        client,
        "email,attendedMinutes,shoeSize\n"
        "ada@example.com,12,9\n"
        ",5,9\n"
        "not-an-email,5,9\n"
        "grace@example.com,lots,9\n",
        "Registered",
    )
    assert (final["numOfLeadsProcessed"], final["numOfRowsFailed"]) == (1, 3)
    assert final["numOfRowsWithWarning"] == 1
    base = f"/bulk/v1/program/members/import/{final['batchId']}"
    failures = client.get(f"{base}/failures.json").text.splitlines()
    assert failures == [
        "email,attendedMinutes,shoeSize,Import Failure Reason",
        ",5,9,Value for required field 'email' not found",
        "not-an-email,5,9,Invalid email address 'not-an-email'",
        "grace@example.com,lots,9,Invalid value 'lots' for field 'attendedMinutes' of type integer",
    ]
    warnings = client.get(f"{base}/warnings.json").text.splitlines()
    assert warnings[1] == "ada@example.com,12,9,Unknown field 'shoeSize' ignored"


def test_describe_lists_the_member_fields(sandbox: Sandbox) -> None:
    body = Client(sandbox).get(DESCRIBE).json()
    validate(body, DESCRIBE)
    fields = {f["name"]: f for f in body["result"][0]["fields"]}
    assert fields["attendedMinutes"]["updateable"] is True
    assert fields["statusName"]["updateable"] is False


def test_a_program_names_its_channel_and_the_channel_its_statuses(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    body = client.get("/rest/asset/v1/program/1001.json").json()
    validate(body, PROGRAM)
    (program,) = body["result"]
    assert (program["id"], program["name"], program["channel"]) == (
        1001,
        "Partner webinar",
        "Webinar",
    )
    body = client.get(CHANNELS).json()
    validate(body, CHANNELS)
    (webinar,) = [c for c in body["result"] if c["name"] == program["channel"]]
    statuses = [s["name"] for s in webinar["progressionStatuses"]]
    assert statuses == ["Invited", "Registered", "Attended", "No Show"]


def test_an_unknown_program_is_an_empty_answer_with_a_warning(sandbox: Sandbox) -> None:
    body = Client(sandbox).get("/rest/asset/v1/program/4040.json").json()
    validate(body, PROGRAM)
    assert (body["success"], body["result"]) == (True, [])
    assert body["warnings"] == ["No assets found for the given search criteria."]


def test_channels_are_paged(make_sandbox: MakeSandbox) -> None:
    catalog = ObjectCatalog(
        channels=tuple(Channel(n, f"Channel {n}", ("Member",)) for n in range(1, 6)),
        programs=(Program(7, "Seven", "Channel 3"),),
    )
    client = Client(make_sandbox(catalog=catalog))
    page = client.get(CHANNELS, params={"maxReturn": 2, "offset": 2}).json()
    assert [c["name"] for c in page["result"]] == ["Channel 3", "Channel 4"]
    past = client.get(CHANNELS, params={"offset": 5}).json()
    assert past["result"] == [] and past["warnings"]
    assert client.get(CHANNELS, params={"maxReturn": 201}).json()["errors"][0]["code"] == "1003"
    assert client.get("/rest/asset/v1/program/7.json").json()["result"][0]["channel"] == "Channel 3"
