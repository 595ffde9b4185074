"""`verify` from the command line: which folder it checks, and the exit code a monitor sees."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from exporter.cli import main
from exporter.simulator import Catalog

from .support import export, exported_files, portal_for, write_manifest


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real export over loopback, made once; each test works on its own copy."""
    base = tmp_path_factory.mktemp("pristine")
    catalog = Catalog.generate(products=2, images=5, seed=9, image_size=(200, 2000))
    manifest = write_manifest(base / "m.csv", catalog.pairs())

    async def run() -> None:
        async with portal_for(catalog) as portal:
            result = await export(portal, manifest, base / "out")
        assert result.exit_code == 0

    asyncio.run(run())
    return base / "out"


@pytest.fixture
def out(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "out"))


def test_an_empty_folder_exits_2_asking_whether_the_volume_is_mounted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mnt").mkdir()
    assert main(["verify", "--output", str(tmp_path / "mnt")]) == 2
    err = capsys.readouterr().err
    assert f"error: no export found in {tmp_path / 'mnt'}" in err
    assert "is the backup volume mounted?" in err


def test_a_folder_with_its_index_but_no_sidecars_exits_1_listing_them_missing(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = exported_files(out)
    for file in files:
        file.with_name(file.name + ".json").unlink()
        file.unlink()
    assert main(["verify", "--output", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[:2] for line in lines[:-1]] == [
        ["missing", f.relative_to(out).as_posix()] for f in files
    ]
    assert lines[-1].endswith(f": {len(files)} problems ({len(files)} missing)")
