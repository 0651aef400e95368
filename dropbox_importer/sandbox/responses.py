"""Marketo's response envelope and request ids."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from werkzeug.wrappers import Response

_counter = itertools.count(0x1000)

# Texts of the codes the sandbox answers with itself (faults have their own table).
MESSAGES = {
    "600": "Access token not specified",
    "601": "Access token invalid",
    "602": "Access token expired",
    "606": "Max rate limit '100' exceeded with in '20' secs",
    "607": "Daily quota reached",
    "609": "Invalid JSON",
    "610": "Requested resource not found",
    "612": "Invalid Content Type",
    "613": "Invalid Multipart Request",
    "615": "Concurrent access limit reached",
    "1003": "Invalid data",
    "1013": "Object not found",
    "1016": "Too many imports",
}


def request_id() -> str:
    """A Marketo-style request id: a hex counter, '#', the hex time in milliseconds."""
    return f"{next(_counter):x}#{int(time.time() * 1000):x}"


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON response with an explicit length (so keep-alive clients know where it ends)."""
    return Response(json.dumps(body), status=status, mimetype="application/json")


def success(result: list[Any]) -> Response:
    """`{"requestId", "success": true, "result": [...]}` with empty errors and warnings."""
    return json_response(
        {"requestId": request_id(), "success": True, "result": result, "errors": [], "warnings": []}
    )


def error(code: str, message: str | None = None, status: int = 200) -> Response:
    """Marketo's error answer: HTTP 200 (by default), success false, one coded error."""
    body = {
        "requestId": request_id(),
        "success": False,
        "result": [],
        "errors": [{"code": code, "message": message or MESSAGES.get(code, "Error")}],
        "warnings": [],
    }
    return json_response(body, status)


def is_error(response: Response) -> bool:
    """Whether a response is a refusal (success false or an HTTP error): it doesn't count."""
    if response.status_code >= 400:
        return True
    if response.mimetype != "application/json":
        return False
    return b'"success": false' in response.get_data()
