"""Every corpus file meets the outcome expected.yaml promises, as far as the file layer decides."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from dropbox_importer.csvfile import FileRejected, inspect_file, split_file
from dropbox_importer.marketo.models import ImportFormat


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
    committed = {p.name for p in _make.HERE.iterdir() if p.suffix in (".csv", ".tsv")}
    listed = {name for name, spec in MANIFEST.items() if not spec.get("generated")}
    assert committed == listed


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_corpus_file_meets_its_expected_outcome(name: str, corpus: Path, tmp_path: Path) -> None:
    spec: dict[str, Any] = MANIFEST[name]
    expected = {**spec, **spec.get("inspect", {})}
    fmt = ImportFormat(spec["route"])
    encoding = spec.get("encoding", "utf-8")
    path = corpus / name
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
    parts = split_file(
        path, fmt, tmp_path, encoding=encoding, skip_lines=frozenset(result.empty_lookup_lines)
    )
    assert sum(part.rows for part in parts) == result.rows - len(result.empty_lookup_lines)
    for part in parts:
        data = part.path.read_bytes()
        assert len(data) == part.bytes < 10_000_000
        assert not data.startswith(b"\xef\xbb\xbf")
        data.decode("utf-8")
