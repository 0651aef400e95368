"""Secrets never reach a log line."""

import io
import json

import structlog

from dropbox_importer import logs


def test_secret_keys_are_masked_in_json_logs() -> None:
    out = io.StringIO()
    logs.configure(json=True, stream=out)
    structlog.get_logger().info("token_fetched", access_token="abc123", client_secret="s3cr3t")
    line = json.loads(out.getvalue())
    assert line["event"] == "token_fetched"
    assert line["access_token"] == "***"
    assert line["client_secret"] == "***"
    assert "abc123" not in out.getvalue()
