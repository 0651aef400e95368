"""The cut recorded in the journal keeps every import kind's parameters across a restart."""

from __future__ import annotations

import pytest

from dropbox_importer.marketo.models import ImportFormat, ImportKind, ImportParams
from dropbox_importer.pipeline.cut import CutSettings


@pytest.mark.parametrize(
    "params",
    [
        ImportParams(ImportFormat.CSV, list_id=5, partition_name="EU", lookup_field="id"),
        ImportParams(ImportFormat.TSV, program_id=1001, program_member_status="No Show"),
        ImportParams(ImportFormat.SSV, object_name="car_c"),
    ],
)
def test_a_recorded_cut_reads_back_as_the_same_import(params: ImportParams) -> None:
    settings = CutSettings(params, "cp1252", 4096)
    assert CutSettings.from_json(settings.to_json()) == settings


def test_a_cut_recorded_before_the_import_kinds_reads_back_as_leads() -> None:
    old = (
        '{"encoding": "utf-8", "format": "csv", "list_id": 7, "lookup_field": null, '
        '"max_part_bytes": 9500000, "partition_name": null}'
    )
    settings = CutSettings.from_json(old)
    assert settings.params.kind is ImportKind.LEADS and settings.params.list_id == 7
