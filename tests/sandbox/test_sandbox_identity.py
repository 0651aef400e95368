"""Identity: client-credentials tokens, reuse until expiry, and bearer-only auth (600/601/602)."""

from __future__ import annotations

import requests
from contract import validate
from sandbox_client import Client, MakeSandbox, wait_for

from dropbox_importer.sandbox import Sandbox

TOKEN_PATH = "/identity/oauth/token"


def credentials(sandbox: Sandbox) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": sandbox.settings.client_id,
        "client_secret": sandbox.settings.client_secret,
    }


def test_get_with_query_params_returns_a_bearer_token(sandbox: Sandbox) -> None:
    response = requests.get(sandbox.base_url + TOKEN_PATH, params=credentials(sandbox))
    assert response.status_code == 200
    body = response.json()
    validate(body, TOKEN_PATH)
    assert body["token_type"] == "bearer"
    assert 3590 <= body["expires_in"] <= 3600


def test_post_with_form_body_returns_the_same_token_until_it_expires(sandbox: Sandbox) -> None:
    first = requests.post(sandbox.base_url + TOKEN_PATH, data=credentials(sandbox)).json()
    second = requests.post(sandbox.base_url + TOKEN_PATH, data=credentials(sandbox)).json()
    validate(second, TOKEN_PATH, "post")
    assert second["access_token"] == first["access_token"]
    assert second["expires_in"] <= first["expires_in"]


def test_bad_credentials_get_401_with_an_oauth_error(sandbox: Sandbox) -> None:
    params = {**credentials(sandbox), "client_secret": "wrong"}
    response = requests.get(sandbox.base_url + TOKEN_PATH, params=params)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "unauthorized"
    assert body["error_description"]
    assert "wrong" not in response.text


def test_wrong_grant_type_is_refused(sandbox: Sandbox) -> None:
    params = {**credentials(sandbox), "grant_type": "password"}
    response = requests.get(sandbox.base_url + TOKEN_PATH, params=params)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_an_expired_token_gets_602_and_a_new_one_is_issued(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(token_lifetime_seconds=0.3)
    client = Client(sandbox)
    old = client.token
    body = wait_for(
        lambda: (b := client.get("/rest/v1/leads/describe.json").json())["success"] is False and b,
        what="the token to expire",
    )
    assert body["errors"] == [{"code": "602", "message": "Access token expired"}]
    validate(body, "/rest/v1/leads/describe.json")
    client.token = client.get_token()
    assert client.token != old
    assert client.get("/rest/v1/leads/describe.json").json()["success"] is True


def test_a_missing_token_gets_600(sandbox: Sandbox) -> None:
    body = requests.get(sandbox.base_url + "/rest/v1/leads/partitions.json").json()
    validate(body, "/rest/v1/leads/partitions.json")
    assert body["success"] is False
    assert body["errors"][0]["code"] == "600"


def test_an_unknown_token_gets_601(sandbox: Sandbox) -> None:
    response = requests.get(
        sandbox.base_url + "/bulk/v1/leads/batch/1.json",
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert response.status_code == 200
    body = response.json()
    validate(body, "/bulk/v1/leads/batch/{batchId}.json")
    assert body["errors"] == [{"code": "601", "message": "Access token invalid"}]


def test_a_token_in_the_query_string_is_refused_like_a_missing_one(sandbox: Sandbox) -> None:
    client = Client(sandbox)
    response = requests.get(
        sandbox.base_url + "/rest/v1/leads/describe.json", params={"access_token": client.token}
    )
    assert response.json()["errors"][0]["code"] == "600"


def test_identity_calls_do_not_count_against_the_daily_quota(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(daily_quota=2)
    client = Client(sandbox)
    for _ in range(5):
        client.get_token()
    assert client.get("/rest/v1/leads/describe.json").json()["success"] is True
    assert client.get("/rest/v1/leads/describe.json").json()["success"] is True
    assert client.get("/rest/v1/leads/describe.json").json()["errors"][0]["code"] == "607"
