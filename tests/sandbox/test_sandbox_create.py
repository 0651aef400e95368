"""`POST /bulk/v1/leads.json`: parameters, multipart handling and every refusal code."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import requests
from contract import validate
from sandbox_client import Client, MakeSandbox

from dropbox_importer.sandbox import Sandbox

CREATE = "/bulk/v1/leads.json"
CSV = "email,firstName\nada@example.com,Ada\n"


def code_of(response: requests.Response) -> str:
    body = response.json()
    validate(body, CREATE, "post")
    assert body["success"] is False, body
    code: str = body["errors"][0]["code"]
    return code


def test_create_answers_a_queued_batch(sandbox: Sandbox) -> None:
    body = Client(sandbox).create(CSV).json()
    validate(body, CREATE, "post")
    (result,) = body["result"]
    assert result["status"] == "Queued"
    assert result["importId"] == str(result["batchId"])


@pytest.mark.parametrize("keep", [True, False])
def test_the_uploaded_file_can_be_read_back_byte_for_byte(
    make_sandbox: MakeSandbox, keep: bool
) -> None:
    sandbox = make_sandbox(keep_uploads=keep)
    data = "email,firstName\r\nzoé@example.com,Zoë\r\n"
    status = Client(sandbox).import_file(data)
    url = f"{sandbox.base_url}/sandbox/batches/{status['batchId']}/file"
    got = requests.get(url, timeout=10)
    if keep:
        assert got.status_code == 200 and got.content == data.encode()
    else:
        assert got.status_code == 410  # freed once the batch finished
    missing = requests.get(f"{sandbox.base_url}/sandbox/batches/999999/file", timeout=10)
    assert missing.status_code == 404


def test_format_may_come_from_a_form_field(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    response = client.session.post(
        sandbox.base_url + CREATE,
        data={"format": "csv"},
        files={"file": ("leads.csv", CSV)},
        headers=client.auth,
    )
    assert response.json()["success"] is True


@pytest.mark.parametrize(
    "params",
    [
        {"format": "xls"},
        {"format": ""},
        {"format": "csv", "listId": "999"},
        {"format": "csv", "listId": "abc"},
        {"format": "csv", "partitionName": "Nowhere"},
        {"format": "csv", "lookupField": "shoeSize"},
    ],
)
def test_bad_parameters_get_1003(sandbox: Sandbox, params: dict[str, str]) -> None:
    assert code_of(Client(sandbox).create(CSV, **params)) == "1003"


def test_an_empty_file_gets_1003(sandbox: Sandbox) -> None:
    assert code_of(Client(sandbox).create(b"")) == "1003"


def test_a_body_that_is_not_multipart_gets_612(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    response = client.session.post(
        sandbox.base_url + CREATE,
        params={"format": "csv"},
        data=CSV,
        headers={**client.auth, "Content-Type": "text/csv"},
    )
    assert code_of(response) == "612"


def test_multipart_without_a_file_part_gets_613(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    response = client.session.post(
        sandbox.base_url + CREATE,
        params={"format": "csv"},
        files={"other": ("x.csv", CSV)},
        headers=client.auth,
    )
    assert code_of(response) == "613"


def test_truncated_multipart_gets_613(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    body = b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\nemail\n'
    response = client.session.post(
        sandbox.base_url + CREATE,
        params={"format": "csv"},
        data=body,
        headers={**client.auth, "Content-Type": "multipart/form-data; boundary=XX"},
    )
    assert code_of(response) == "613"


def test_a_file_over_the_limit_gets_http_413(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(max_file_bytes=100_000)
    response = Client(sandbox).create(b"email\n" + b"a@example.com\n" * 10_000)
    assert response.status_code == 413
    assert Client(sandbox).create(CSV).json()["success"] is True


def test_a_body_far_over_the_limit_gets_413_without_being_parsed(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(max_file_bytes=1000)
    response = Client(sandbox).create(b"x" * 3_000_000)
    assert response.status_code == 413


def test_a_binary_file_is_accepted_then_the_batch_fails(sandbox: Sandbox) -> None:
    final = Client(sandbox).import_file(b"\xff\xfe\x00\x81garbage\x00")
    assert final["status"] == "Failed"
    assert "UTF-8" in final["message"]


def test_unknown_paths_get_404_with_610(sandbox: Sandbox) -> None:
    response = requests.get(sandbox.base_url + "/rest/v1/nothing/here.json")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "610"


def test_garbage_on_the_socket_does_not_hurt_the_server(sandbox: Sandbox) -> None:
    host, port = sandbox.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"\x00\x01\x02 NOT HTTP\r\n\r\n")
        raw.recv(1024)
    assert Client(sandbox).create(CSV).json()["success"] is True


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_marketos_own_curl_example_works(sandbox: Sandbox, tmp_path: Path) -> None:
    client = Client(sandbox)
    lead_data = tmp_path / "lead_data.csv"
    lead_data.write_text("FirstName,LastName,Email,Company\nAda,Lovelace,ada@example.com,AE\n")
    out = subprocess.run(
        [
            "curl", "-sS",
            "-H", f"Authorization: Bearer {client.token}",
            "-F", "format=csv",
            "-F", f"file=@{lead_data}",
            f"{sandbox.base_url}/bulk/v1/leads.json",
        ],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    body = json.loads(out.stdout)
    assert body["success"] is True, body
    final = client.import_file(lead_data.read_bytes())
    assert final["numOfLeadsProcessed"] == 1
