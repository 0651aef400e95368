"""Config keys of metrics, notify and retention: loaded values and line-numbered mistakes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dropbox_importer.config import ConfigError, load_config
from dropbox_importer.config.model import MetricsConfig, NotifyConfig, RetentionConfig

HEAD = """\
instances:
  main: {base_url: "https://123-ABC-456.mktorest.com", client_id: c, client_secret: s}
"""
BOX = "dropboxes:\n  acme:\n    root: acme\n    instance: main\n"


def write(tmp_path: Path, top: str = "", box: str = "") -> Path:
    """A config with one instance, extra top-level lines and extra lines in drop box acme."""
    body = textwrap.indent(textwrap.dedent(box), "    ")
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + textwrap.dedent(top) + BOX + body)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return caught.value.problems


def test_metrics_absent_is_off_and_empty_mapping_uses_the_default(tmp_path: Path) -> None:
    assert load_config(write(tmp_path), environ={}).metrics is None
    config = load_config(write(tmp_path, "metrics: {}\n"), environ={})
    assert config.metrics == MetricsConfig("127.0.0.1", 9464, False)


def test_metrics_takes_an_ipv6_loopback_in_brackets(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "metrics: {listen: '[::1]:9000'}\n"), environ={})
    assert config.metrics == MetricsConfig("::1", 9000, False)


def test_metrics_refuses_a_remote_address_without_allow_remote(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "metrics:\n  listen: 0.0.0.0:9464\n"))
    assert len(found) == 1 and found[0].startswith(f"{tmp_path / 'config.yaml'}:4: metrics.listen:")
    assert "allow_remote" in found[0]
    config = load_config(
        write(tmp_path, "metrics: {listen: 0.0.0.0:9464, allow_remote: true}\n"), environ={}
    )
    assert config.metrics == MetricsConfig("0.0.0.0", 9464, True)


def test_metrics_listen_needs_a_port(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "metrics: {listen: localhost}\n"))
    assert len(found) == 1 and ":3: metrics.listen: expected host:port" in found[0]


def test_notify_defaults_to_failed_only(tmp_path: Path) -> None:
    path = write(tmp_path, box="notify: {command: [/bin/true]}\n")
    notify = load_config(path, environ={}).dropboxes["acme"].notify
    assert notify == NotifyConfig(None, ("/bin/true",), frozenset({"failed"}), 10.0, 5)


def test_notify_webhook_is_never_echoed_nor_in_a_repr(tmp_path: Path) -> None:
    url = "https://hooks.example.com/T0/B0/token-xyz"
    box = load_config(write(tmp_path, box=f"notify: {{webhook: '{url}'}}\n"), environ={})
    assert box.dropboxes["acme"].notify is not None
    assert "token-xyz" not in repr(box)
    found = problems(write(tmp_path, box="notify: {webhook: 'ftp://x/token-xyz'}\n"))
    assert len(found) == 1 and ":7: dropboxes.acme.notify.webhook: expected" in found[0]
    assert "token-xyz" not in found[0]


def test_notify_without_a_target_or_with_an_unknown_outcome_is_refused(tmp_path: Path) -> None:
    found = problems(write(tmp_path, box="notify: {when: [failed]}\n"))
    assert len(found) == 1 and ":7: dropboxes.acme.notify: names no target" in found[0]
    found = problems(write(tmp_path, box="notify: {command: [x], when: [rejected]}\n"))
    assert len(found) == 1 and "dropboxes.acme.notify.when: expected a list of outcomes" in found[0]


def test_retention_archive_dir_is_relative_to_the_config(tmp_path: Path) -> None:
    box = "retention: {done_days: 7, action: archive, archive_dir: archive/acme}\n"
    retention = load_config(write(tmp_path, box=box), environ={}).dropboxes["acme"].retention
    assert retention == RetentionConfig(7.0, None, "archive", tmp_path / "archive" / "acme")


@pytest.mark.parametrize(
    ("box", "key", "words"),
    [
        ("retention: {action: delete}\n", "dropboxes.acme.retention", "sets no age"),
        ("retention: {done_days: 1, action: archive}\n", ".archive_dir", "needs a folder"),
        ("retention: {done_days: 1, archive_dir: /a}\n", ".archive_dir", "only used with"),
        ("retention: {done_days: 0}\n", ".done_days", "a number above 0"),
        ("retention: {done_days: 1, action: shred}\n", ".action", "delete | archive"),
        (
            "retention: {done_days: 1, action: archive, archive_dir: acme/done/old}\n",
            ".archive_dir",
            "inside the drop box's done/",
        ),
    ],
)
def test_retention_mistakes_name_line_key_and_fix(
    tmp_path: Path, box: str, key: str, words: str
) -> None:
    found = problems(write(tmp_path, box=box))
    assert len(found) == 1, found
    assert f"{tmp_path / 'config.yaml'}:7: " in found[0] and key in found[0]
    assert words in found[0]


def test_web_is_off_by_default_loopback_unless_allowed(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), environ={}).web is None
    on = load_config(write(tmp_path, "web: {}\n"), environ={}).web
    assert on is not None and (on.host, on.port) == ("127.0.0.1", 9465)
    found = problems(write(tmp_path, "web: {listen: '0.0.0.0:9465'}\n"))
    assert len(found) == 1 and "the status page has no authentication" in found[0]
    allowed = write(tmp_path, "web: {listen: '0.0.0.0:9465', allow_remote: true}\n")
    assert load_config(allowed, environ={}).web is not None
