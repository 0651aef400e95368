"""Validate sandbox answers against Adobe's published OpenAPI (Swagger 2.0) files."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

REFERENCE = Path(__file__).parent / "reference"
FILES = {
    "identity": "marketo-identity-openapi.json",
    "lead-database": "marketo-lead-database-openapi.json",
    "programs-customobjects": "marketo-bulk-programs-customobjects-openapi.json",
    "asset-programs": "marketo-asset-programs-openapi.json",
}


@cache
def _spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((REFERENCE / FILES[name]).read_text())
    return spec


def spec_of(path: str) -> str:
    """The name of the file (a key of FILES) that describes `path`, as the spec writes it."""
    found = [name for name in FILES if path in _spec(name)["paths"]]
    assert len(found) == 1, f"{path} is in {found or 'no reference file'}"
    return found[0]


def _operation(path: str, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = _spec(spec_of(path))
    operation: dict[str, Any] = spec["paths"][path][method]
    return spec, operation


def response_schema(path: str, method: str = "get") -> dict[str, Any]:
    """The HTTP 200 schema of one operation, with the spec's definitions so `$ref`s resolve."""
    spec, operation = _operation(path, method)
    schema = operation["responses"]["200"]["schema"]
    return {**schema, "definitions": spec["definitions"]}


def produces(path: str, method: str = "get") -> list[str]:
    """The content types the operation answers with, as the spec names them."""
    _, operation = _operation(path, method)
    return list(operation.get("produces", []))


def validate(body: Any, path: str, method: str = "get") -> None:
    """Raise jsonschema.ValidationError unless `body` fits the operation's response schema."""
    jsonschema.Draft4Validator(response_schema(path, method)).validate(body)
