"""Marketo answers classified and parsed into typed values, without a server."""

from __future__ import annotations

import pytest

from dropbox_importer.marketo.models import BatchState, LeadField, Partition, StaticList
from dropbox_importer.marketo.policy import HTTP_5XX, HTTP_429
from dropbox_importer.marketo.responses import (
    MalformedResponseError,
    classify,
    parse_batch_id,
    parse_batch_status,
    parse_fields,
    parse_list,
    parse_partitions,
)


def error_body(code: str, message: str = "m") -> dict[str, object]:
    return {"requestId": "e42b#1", "success": False, "errors": [{"code": code, "message": message}]}


def test_response_level_error_carries_code_and_is_not_counted() -> None:
    outcome = classify(200, error_body("606", "Max rate limit '100' exceeded"))
    assert (outcome.condition, outcome.refused) == ("606", True)
    assert "rate limit" in outcome.message


@pytest.mark.parametrize(
    ("status", "condition"), [(500, HTTP_5XX), (503, HTTP_5XX), (429, HTTP_429), (413, "http_413")]
)
def test_http_failures_are_conditions_not_marketo_codes(status: int, condition: str) -> None:
    outcome = classify(status, None)
    assert outcome.condition == condition and not outcome.refused


def test_success_carries_the_result() -> None:
    outcome = classify(200, {"requestId": "1", "success": True, "result": [{"batchId": 3}]})
    assert outcome.ok and parse_batch_id(outcome.result) == 3


def test_non_json_is_a_download_only_where_one_is_expected() -> None:
    assert classify(200, None, raw_ok=True).ok
    assert classify(200, None).condition == "malformed"


def test_batch_status_parses_documented_fields() -> None:
    status = parse_batch_status(
        [
            {
                "batchId": 3404,
                "importId": "3404",
                "status": "Complete",
                "numOfLeadsProcessed": 2,
                "numOfRowsFailed": 1,
                "numOfRowsWithWarning": 0,
                "message": "Import completed with errors, 2 records imported (2 members), 1 failed",
            }
        ]
    )
    assert status.status is BatchState.COMPLETE and status.status.terminal
    assert (status.leads_processed, status.rows_failed, status.rows_with_warning) == (2, 1, 0)


@pytest.mark.parametrize(
    "result", [[], [{"batchId": 1, "status": "Exploded"}], [{"status": "Queued"}]]
)
def test_malformed_batch_status_is_an_error(result: list[object]) -> None:
    with pytest.raises(MalformedResponseError):
        parse_batch_status(result)


def test_fields_use_the_rest_name_and_skip_soap_only_fields() -> None:
    fields = parse_fields(
        [
            {
                "id": 1,
                "displayName": "Email Address",
                "dataType": "email",
                "length": 255,
                "rest": {"name": "email", "readOnly": False},
            },
            {
                "id": 2,
                "displayName": "Id",
                "dataType": "integer",
                "rest": {"name": "id", "readOnly": True},
            },
            {"id": 3, "displayName": "Soap only", "dataType": "string", "soap": {"name": "X"}},
        ]
    )
    assert fields == [
        LeadField("email", "email", 255, "Email Address", False),
        LeadField("id", "integer", None, "Id", True),
    ]


def test_partitions_and_lists() -> None:
    assert parse_partitions([{"id": 1, "name": "Default", "description": "d"}]) == [
        Partition(1, "Default", "d")
    ]
    assert parse_list([]) is None
    listed = parse_list(
        [{"id": 9, "name": "L", "programName": "P", "createdAt": "x", "updatedAt": "y"}]
    )
    assert listed == StaticList(9, "L", "", "P")
