"""`retry`: a failed file goes back to its inbox route; nothing is overwritten or lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.actions.cli_harness import Run, WriteConfig, run_subprocess

ROUTE = "csv,list=1001"
BODY = b"Email,FirstName\na@example.com,Ann\n"


def _failed(root: Path, route: str = ROUTE, name: str = "leads.csv", results: bool = True) -> Path:
    path = root / "failed" / route / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(BODY)
    if results:
        path.with_name(name + ".result.json").write_text(json.dumps({"outcome": "failed"}))
        path.with_name(name + ".failures.csv").write_text("Line,Email,Reason\n2,a,bad\n")
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    return path


def test_retry_moves_the_file_back_and_keeps_its_results_aside(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    failed = _failed(tmp_path / "acme")

    code, out, err = run_cli("retry", "--config", config, failed)

    assert code == 0, err
    inbox_file = tmp_path / "acme" / "inbox" / ROUTE / "leads.csv"
    assert inbox_file.read_bytes() == BODY
    assert inbox_file.stat().st_nlink == 1  # the daemon refuses hard-linked files
    assert not failed.exists()
    (aside,) = [p for p in failed.parent.iterdir() if p.is_dir()]
    assert aside.name.startswith("leads.csv.retried-") and aside.name.endswith("Z")
    assert sorted(p.name for p in aside.iterdir()) == [
        "leads.csv.failures.csv",
        "leads.csv.result.json",
    ]
    assert json.loads((aside / "leads.csv.result.json").read_text()) == {"outcome": "failed"}
    assert list(failed.parent.glob("leads.csv.*.*")) == []  # the original names are free again
    assert str(inbox_file) in out and str(aside) in out


def test_a_second_retry_within_the_same_second_keeps_both_sets_of_results(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    root = tmp_path / "acme"
    first = _failed(root)
    assert run_cli("retry", "--config", config, first)[0] == 0
    (root / "inbox" / ROUTE / "leads.csv").unlink()  # the daemon took it, and it failed again
    second = _failed(root)

    assert run_cli("retry", "--config", config, second)[0] == 0

    asides = [p for p in first.parent.iterdir() if p.is_dir()]
    assert len(asides) == 2
    assert all(len(list(a.iterdir())) == 2 for a in asides)


def test_retry_never_overwrites_a_file_in_the_inbox(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    failed = _failed(tmp_path / "acme")
    newer = tmp_path / "acme" / "inbox" / ROUTE / "leads.csv"
    newer.parent.mkdir(parents=True)
    newer.write_bytes(b"Email\nnew@example.com\n")

    code, out, err = run_cli("retry", "--config", config, failed)

    assert code == 1
    assert out == ""
    assert "already exists; nothing was moved" in err
    assert newer.read_bytes() == b"Email\nnew@example.com\n"
    assert failed.read_bytes() == BODY
    assert failed.with_name("leads.csv.result.json").exists()


@pytest.mark.parametrize(
    "where",
    ["inbox", "done", "outside", "dotdot"],
)
def test_retry_refuses_a_path_outside_a_failed_folder(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run, where: str
) -> None:
    config = write_config()
    root = tmp_path / "acme"
    _failed(root)
    target = {
        "inbox": root / "inbox" / ROUTE / "x.csv",
        "done": root / "done" / ROUTE / "x.csv",
        "outside": tmp_path / "elsewhere" / "x.csv",
        "dotdot": root / "failed" / ".." / "done" / ROUTE / "x.csv",
    }[where]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(BODY)

    code, _, err = run_cli("retry", "--config", config, target)

    assert code == 2
    assert "is not inside a drop box's failed/ folder" in err
    assert str(root / "failed") in err
    assert target.read_bytes() == BODY


def test_retry_points_from_a_result_file_to_its_original(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    failed = _failed(tmp_path / "acme")

    code, _, err = run_cli("retry", "--config", config, str(failed) + ".result.json")

    assert code == 2
    assert f"retry the original instead: {failed}" in err
    assert failed.exists()


def test_retry_refuses_a_symlink_and_a_missing_file(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    failed = _failed(tmp_path / "acme", results=False)
    secret = tmp_path / "secret.csv"
    secret.write_bytes(BODY)
    link = failed.with_name("link.csv")
    link.symlink_to(secret)

    assert run_cli("retry", "--config", config, link)[0] == 2
    code, _, err = run_cli("retry", "--config", config, failed.with_name("gone.csv"))
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "acme" / "inbox" / ROUTE / "link.csv").exists()


def test_retry_at_the_top_of_failed_with_a_ready_marker_box(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config(dropboxes={"acme": {"ready_marker": "done"}})
    failed = _failed(tmp_path / "acme", route="", results=False)

    code, out, _ = run_cli("retry", "--config", config, failed)

    assert code == 0
    inbox = tmp_path / "acme" / "inbox"
    assert (inbox / "leads.csv").read_bytes() == BODY
    # The daemon only claims a file once its marker exists: retry writes it.
    assert (inbox / "leads.csv.done").exists()
    assert "earlier result files" not in out


def test_retry_as_a_process_from_a_relative_path(tmp_path: Path, write_config: WriteConfig) -> None:
    config = write_config()
    failed = _failed(tmp_path / "acme", route="tsv/list=1002", name="x.tsv")

    relative = failed.relative_to(tmp_path / "acme")

    result = run_subprocess("retry", "--config", str(config), str(relative), cwd=tmp_path / "acme")

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "acme" / "inbox" / "tsv" / "list=1002" / "x.tsv").read_bytes() == BODY


def _failed_at(path: Path, finished: str) -> Path:
    path.with_name(path.name + ".result.json").write_text(
        json.dumps({"outcome": "failed", "timings": {"finished": finished}})
    )
    return path


def test_several_paths_move_and_a_wrong_one_stops_them_all_before_anything_moves(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    root = tmp_path / "acme"
    first = _failed(root, name="a.csv")
    second = _failed(root, name="b.csv")

    code, _, err = run_cli("retry", "--config", config, first, second, root / "done" / "x.csv")
    assert code == 2 and "is not inside a drop box's failed/ folder" in err
    assert first.exists() and second.exists()

    code, out, _ = run_cli("retry", "--config", config, first, second)

    assert code == 0
    assert sorted(p.name for p in (root / "inbox" / ROUTE).iterdir()) == ["a.csv", "b.csv"]
    assert "2 of 2 file(s) moved back" in out


def test_since_and_route_pick_every_failed_file_that_matches(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config(dropboxes={"acme": {}, "globex": {}})
    acme, globex = tmp_path / "acme", tmp_path / "globex"
    _failed_at(_failed(acme, name="early.csv"), "2026-11-29T01:00:00.000000Z")
    _failed_at(_failed(acme, name="late.csv"), "2026-11-29T02:30:00.000000Z")
    _failed_at(_failed(acme, route="tsv", name="late.tsv"), "2026-11-29T03:00:00.000000Z")
    _failed_at(_failed(globex, name="late.csv"), "2026-11-29T02:45:00.000000Z")

    dry = run_cli("retry", "--config", config, "--since", "2026-11-29T02:00Z", "--dry-run")
    code, _, err = run_cli(
        "retry", "--config", config, "--dropbox", "acme", "--since", "2026-11-29T02:00Z"
    )

    assert dry[0] == 0 and dry[1].count("would move") == 3
    assert (acme / "failed" / ROUTE / "late.csv").exists() is False
    assert code == 0, err
    assert (acme / "inbox" / ROUTE / "late.csv").exists()
    assert (acme / "inbox" / "tsv" / "late.tsv").exists()
    assert (acme / "failed" / ROUTE / "early.csv").exists()  # failed before 02:00
    assert (globex / "failed" / ROUTE / "late.csv").exists()  # another drop box
    code, _out, err = run_cli("retry", "--config", config, "--route", "nope")
    assert code == 0 and "no failed file matches: nothing moved" in err
    code, _, err = run_cli("retry", "--config", config)
    assert code == 2 and "name the failed files (PATH ...) or pick them with" in err


def test_to_puts_the_file_into_a_corrected_route_that_must_parse(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    root = tmp_path / "acme"
    failed = _failed(root, route="csv,list=abc")

    bad = run_cli("retry", "--config", config, failed, "--to", "csv,list=xyz")
    escape = run_cli("retry", "--config", config, failed, "--to", "../done")
    code, _out, err = run_cli("retry", "--config", config, failed, "--to", "csv,list=1001")

    assert bad[0] == 2 and "listId must be a whole number" in bad[2]
    assert escape[0] == 2 and "must be a route folder path inside inbox/" in escape[2]
    assert code == 0, err
    assert (root / "inbox" / "csv,list=1001" / "leads.csv").read_bytes() == BODY
    assert not (root / "inbox" / "csv,list=abc").exists()
    (aside,) = [p for p in failed.parent.iterdir() if p.is_dir()]  # results stay where they were
    assert (aside / "leads.csv.result.json").exists()
