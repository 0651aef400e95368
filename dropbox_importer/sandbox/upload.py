"""The uploaded file of a bulk import create, as every kind of import receives it."""

from __future__ import annotations

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from dropbox_importer.sandbox.responses import error, json_response


def read_upload(request: Request, max_file_bytes: int) -> tuple[dict[str, str], bytes] | Response:
    """The parameters (query and form fields) and the bytes of the part named `file`.

    Marketo's refusals otherwise: 612 when the body is not multipart, 613 when it is broken or
    has no `file` part, HTTP 413 when the file is over `max_file_bytes`.
    """
    if request.mimetype != "multipart/form-data":
        return error("612", f"Invalid Content Type '{request.mimetype or 'none'}'")
    try:
        form, files = request.form, request.files
    except RequestEntityTooLarge:
        return too_large(max_file_bytes)
    except Exception:  # werkzeug raises several types on broken multipart bodies
        return error("613", "Invalid Multipart Request")
    upload = files.get("file")
    if upload is None:
        return error("613", "Invalid Multipart Request: no part named 'file'")
    payload = upload.stream.read()
    if len(payload) > max_file_bytes:
        return too_large(max_file_bytes)
    return {**form.to_dict(), **request.args.to_dict()}, payload


def too_large(limit: int) -> Response:
    """HTTP 413 with a JSON body naming the limit."""
    return json_response(
        {
            "requestId": "",
            "success": False,
            "result": [],
            "warnings": [],
            "errors": [
                {"code": "413", "message": f"Request Entity Too Large (limit {limit} bytes)"}
            ],
        },
        status=413,
    )
