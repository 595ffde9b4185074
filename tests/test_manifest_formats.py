"""The registry of manifest formats is the one source of suffixes, help text and round trips."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.errors import ConfigError, ManifestError
from exporter.manifest import (
    FORMATS,
    ManifestFormat,
    check_manifest_path,
    formats_help,
    iter_manifest,
    validate_manifest,
    write_manifest,
)
from exporter.portal.metadata import ImageRef

SUFFIXES = [suffix for fmt in FORMATS for suffix in fmt.suffixes]
REGISTERED = [(suffix, fmt) for fmt in FORMATS for suffix in fmt.suffixes]


async def each(refs: list[ImageRef]) -> AsyncIterator[ImageRef]:
    for ref in refs:
        yield ref


def test_the_help_text_is_the_registered_suffixes() -> None:
    assert formats_help() == ".csv, .yaml or .yml"
    assert formats_help(short=True) == ".csv/.yaml"
    assert re.split(", | or ", formats_help()) == SUFFIXES
    assert formats_help(short=True).split("/") == [fmt.suffixes[0] for fmt in FORMATS]


def test_each_suffix_belongs_to_one_format_and_is_lower_case() -> None:
    assert len(SUFFIXES) == len(set(SUFFIXES))
    assert all(suffix.startswith(".") and suffix == suffix.lower() for suffix in SUFFIXES)
    assert len({fmt.name for fmt in FORMATS}) == len(FORMATS)


def test_an_unknown_suffix_is_refused_with_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as read_error:
        validate_manifest(tmp_path / "m.json")
    with pytest.raises(ConfigError) as write_error:
        check_manifest_path(tmp_path / "m.json")

    assert str(read_error.value).endswith(f"; use {formats_help()}")
    assert str(write_error.value).endswith(f"; use {formats_help()}")


@pytest.mark.parametrize(("suffix", "fmt"), REGISTERED, ids=SUFFIXES)
def test_every_registered_suffix_picks_its_format_in_any_letter_case(
    tmp_path: Path, suffix: str, fmt: ManifestFormat
) -> None:
    assert check_manifest_path(tmp_path / f"m{suffix}") is fmt
    assert check_manifest_path(tmp_path / f"m{suffix.upper()}") is fmt


@pytest.mark.parametrize("suffix", SUFFIXES)
async def test_every_registered_format_reads_back_what_it_wrote(
    tmp_path: Path, suffix: str
) -> None:
    refs = [ImageRef(7, 70), ImageRef(3, 30), ImageRef(7, 71), ImageRef(3, 30), ImageRef(9, 1)]
    path = tmp_path / f"m{suffix}"

    assert await write_manifest(path, each(refs)) == 4
    assert validate_manifest(path) == 4
    read_back = [ImageRef(row.product_id, row.image_id) for row in iter_manifest(path)]
    assert read_back == list(dict.fromkeys(refs))
