"""Custom objects: records upserted on their dedupe fields; a missing rows file answers 404."""

from __future__ import annotations

from typing import Any

from contract import validate
from sandbox_client import Client, MakeSandbox

from dropbox_importer.sandbox import LeadField, Sandbox
from dropbox_importer.sandbox.catalog import CustomObjectType, ObjectCatalog

CREATE = "/bulk/v1/customobjects/{apiName}/import.json"
STATUS = "/bulk/v1/customobjects/{apiName}/import/{batchId}/status.json"
DESCRIBE = "/rest/v1/customobjects/{customObjectName}/describe.json"


def import_records(client: Client, content: str, api_name: str = "car_c") -> dict[str, Any]:
    body = client.upload(f"/bulk/v1/customobjects/{api_name}/import.json", content).json()
    validate(body, CREATE, "post")
    assert body["success"], body
    (created,) = body["result"]
    assert (created["status"], created["objectApiName"]) == ("Queued", api_name)
    path = f"/bulk/v1/customobjects/{api_name}/import/{created['batchId']}/status.json"
    final = client.finish(path)
    validate(client.get(path).json(), STATUS)
    return final


def records(client: Client, api_name: str = "car_c") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.introspect("customobjects")["customObjects"][api_name]
    return found


def test_records_are_inserted_then_updated_on_the_dedupe_field(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    final = import_records(client, "vin,model,year\nVIN001,Model T,1908\nVIN002,Beetle,1938\n")
    assert final["numOfObjectsProcessed"] == 2
    assert final["operation"] == "import"
    assert final["importTime"].endswith(("second", "seconds"))
    import_records(client, "VIN,Year\nvin001,1909\n")
    by_vin = {r["fields"]["vin"].upper(): r for r in records(client)}
    assert set(by_vin) == {"VIN001", "VIN002"}
    assert by_vin["VIN001"]["fields"] == {"vin": "VIN001", "model": "Model T", "year": 1909}
    assert by_vin["VIN001"]["marketoGUID"] != by_vin["VIN002"]["marketoGUID"]


def test_bad_rows_fail_and_a_file_without_rows_answers_404(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    final = import_records(client, "vin,model,year\nVIN001,T,1908\n,Beetle,1938\nVIN003,X,new\n")
    assert (final["numOfObjectsProcessed"], final["numOfRowsFailed"]) == (1, 2)
    base = f"/bulk/v1/customobjects/car_c/import/{final['batchId']}"
    assert client.get(f"{base}/failures.json").text.splitlines() == [
        "vin,model,year,Import Failure Reason",
        ",Beetle,1938,Value for dedupe field 'vin' not found",
        "VIN003,X,new,Invalid value 'new' for field 'year' of type integer",
    ]
    assert client.get(f"{base}/warnings.json").status_code == 404
    clean = import_records(client, "vin\nVIN009\n")
    missing = client.get(f"/bulk/v1/customobjects/car_c/import/{clean['batchId']}/failures.json")
    assert missing.status_code == 404


def test_an_unknown_object_is_refused_and_not_described(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    body = client.upload("/bulk/v1/customobjects/boat_c/import.json", "vin\nX\n").json()
    assert (body["success"], body["errors"][0]["code"]) == (False, "1003")
    described = client.get("/rest/v1/customobjects/boat_c/describe.json").json()
    assert described["errors"][0]["code"] == "1013"


def test_a_batch_is_known_only_under_its_own_object(make_sandbox: MakeSandbox) -> None:
    boat = CustomObjectType("boat_c", "Boat", (LeadField("hull"),), dedupe_fields=("hull",))
    client = Client(make_sandbox(catalog=ObjectCatalog(custom_objects=(boat,))))
    final = import_records(client, "hull\nH1\n", "boat_c")
    wrong = client.get(f"/bulk/v1/customobjects/car_c/import/{final['batchId']}/status.json")
    assert wrong.json()["errors"][0]["code"] == "1003"
    assert records(client, "boat_c")[0]["fields"] == {"hull": "H1"}


def test_describe_names_fields_and_dedupe_fields(sandbox: Sandbox) -> None:
    body = Client(sandbox).get("/rest/v1/customobjects/car_c/describe.json").json()
    validate(body, DESCRIBE)
    (described,) = body["result"]
    assert described["dedupeFields"] == ["vin"]
    names = {f["name"]: f["updateable"] for f in described["fields"]}
    assert names == {
        "marketoGUID": False,
        "createdAt": False,
        "updatedAt": False,
        "vin": True,
        "model": True,
        "year": True,
    }
