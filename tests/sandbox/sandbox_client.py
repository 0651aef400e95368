"""A thin `requests` client for the sandbox tests: tokens, uploads and waits with deadlines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from dropbox_importer.sandbox import Sandbox
from tests.waiting import wait_for

__all__ = ["Client", "MakeSandbox", "wait_for"]


# The type of the `make_sandbox` fixture of tests/conftest.py.
MakeSandbox = Callable[..., Sandbox]


class Client:
    """Calls one sandbox with plain `requests`, the way any Marketo client would."""

    def __init__(self, sandbox: Sandbox) -> None:
        """Bind to a running sandbox and fetch a token."""
        self.base = sandbox.base_url
        self.settings = sandbox.settings
        self.session = requests.Session()
        self.token = self.get_token()

    def get_token(self) -> str:
        """A token for the sandbox's own credentials."""
        response = self.session.get(
            f"{self.base}/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": self.settings.client_id,
                "client_secret": self.settings.client_secret,
            },
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}

    def create(
        self, content: bytes | str, *, name: str = "leads.csv", **params: Any
    ) -> requests.Response:
        """`POST /bulk/v1/leads.json` with the file and query params (format defaults to csv)."""
        data = content.encode() if isinstance(content, str) else content
        params.setdefault("format", "csv")
        return self.session.post(
            f"{self.base}/bulk/v1/leads.json",
            params=params,
            files={"file": (name, data, "text/csv")},
            headers=self.auth,
        )

    def upload(
        self, path: str, content: bytes | str, *, name: str = "data.csv", **params: Any
    ) -> requests.Response:
        """`POST` a file to any bulk import path (format defaults to csv)."""
        data = content.encode() if isinstance(content, str) else content
        params.setdefault("format", "csv")
        return self.session.post(
            f"{self.base}{path}",
            params=params,
            files={"file": (name, data, "text/csv")},
            headers=self.auth,
        )

    def finish(self, status_path: str) -> dict[str, Any]:
        """Poll a status path until its batch is Complete or Failed; return the final status."""

        def final() -> dict[str, Any] | None:
            body = self.get(status_path).json()
            assert body["success"], body
            result: dict[str, Any] = body["result"][0]
            return result if result["status"] in ("Complete", "Failed") else None

        found: dict[str, Any] = wait_for(final, what=f"{status_path} to finish")
        return found

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """An authenticated GET of a Marketo path."""
        return self.session.get(f"{self.base}{path}", headers=self.auth, **kwargs)

    def status(self, batch_id: int) -> dict[str, Any]:
        """The batch's status record."""
        body = self.get(f"/bulk/v1/leads/batch/{batch_id}.json").json()
        assert body["success"], body
        result: dict[str, Any] = body["result"][0]
        return result

    def import_file(self, content: bytes | str, **params: Any) -> dict[str, Any]:
        """Create a batch and wait until it is Complete or Failed; return its final status."""
        body = self.create(content, **params).json()
        assert body["success"], body
        batch_id = body["result"][0]["batchId"]
        return wait_for(
            lambda: (s := self.status(batch_id))["status"] in ("Complete", "Failed") and s,
            what=f"batch {batch_id} to finish",
        )

    def introspect(self, name: str) -> Any:
        """`GET /sandbox/{name}.json` (no auth needed)."""
        response = self.session.get(f"{self.base}/sandbox/{name}.json")
        response.raise_for_status()
        return response.json()
