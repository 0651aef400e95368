"""Every corpus file meets the outcome expected.yaml promises, as far as the file layer decides."""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path
from typing import Any

import pytest

from dropbox_importer.csvfile import FileRejected, inspect_file, split_file
from dropbox_importer.marketo.models import ImportFormat
from dropbox_importer.pipeline.ready import is_ignored


def _load_make() -> Any:
    # By path: `tests` is no package on pytest's default import path.
    path = Path(__file__).resolve().parents[1] / "corpus" / "make.py"
    spec = importlib.util.spec_from_file_location("corpus_make", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_make = _load_make()
load_manifest, materialize = _make.load_manifest, _make.materialize

MANIFEST = load_manifest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return materialize(tmp_path_factory.mktemp("corpus"))


def test_corpus_is_big_enough_and_complete() -> None:
    assert len(MANIFEST) >= 40
    committed = {
        p.name for p in _make.HERE.iterdir() if p.suffix in (".csv", ".tsv") and p.is_file()
    }
    listed = {name for name, spec in MANIFEST.items() if not spec.get("generated")}
    assert committed == listed


def _sent_rows(parts: list[Any], fmt: ImportFormat) -> dict[str, dict[str, str]]:
    """Every row the parts would send, by lower-cased email, as {column: value}."""
    rows: dict[str, dict[str, str]] = {}
    for part in parts:
        text = part.path.read_bytes().decode("utf-8")
        for row in csv.DictReader(io.StringIO(text, newline=""), delimiter=fmt.delimiter):
            fields = {k.strip().lower(): v for k, v in row.items()}
            rows[fields.get("email", "").lower()] = fields
    return rows


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_corpus_file_meets_its_expected_outcome(name: str, corpus: Path, tmp_path: Path) -> None:
    spec: dict[str, Any] = MANIFEST[name]
    expected = {**spec, **spec.get("inspect", {})}
    fmt = ImportFormat(spec["route"])
    encoding = spec.get("encoding", "utf-8")
    path = corpus / name
    if expected["outcome"] == "ignored":
        assert is_ignored(name), name
        return
    assert not is_ignored(name), name
    if expected["outcome"] == "failed":
        with pytest.raises(FileRejected) as caught:
            inspect_file(path, fmt, encoding=encoding, lookup_field=spec.get("lookup_field"))
        for words in expected["reason"]:
            assert words.lower() in caught.value.reason.lower(), caught.value.reason
        if "line" in expected:
            assert caught.value.line == expected["line"]
        return
    result = inspect_file(path, fmt, encoding=encoding, lookup_field=spec.get("lookup_field"))
    assert result.rows == expected["rows"]
    assert result.empty_lookup_lines == expected.get("local_failures", [])
    assert len(result.blank_lines) == expected.get("blank_rows", 0)
    assert result.ignored_columns == expected.get("ignored_columns", [])
    read_as = expected.get("read_as", {"encoding": "utf-8", "by": "utf-8"})
    assert (result.encoding, result.encoding_by) == (read_as["encoding"], read_as["by"])
    parts = split_file(
        path,
        fmt,
        tmp_path,
        encoding=result.encoding,
        skip_lines=result.skip_lines(),
        header=result.header[: result.named_columns] if result.ignored_columns else None,
        keep=tuple(range(result.named_columns)) if result.ignored_columns else None,
    )
    assert sum(part.rows for part in parts) == result.rows - len(result.empty_lookup_lines)
    for part in parts:
        data = part.path.read_bytes()
        assert len(data) == part.bytes < 10_000_000
        assert not data.startswith(b"\xef\xbb\xbf")
        data.decode("utf-8")
    if expected.get("leads") or expected.get("ignored_columns"):
        sent = _sent_rows(parts, fmt)
        for email, fields in expected.get("leads", {}).items():
            for column, value in fields.items():
                assert sent[email.lower()][column.lower()] == value, (email, column)
        for row in sent.values():
            assert "" not in row, "an unnamed column was sent"
