"""`verify --repair`: corrupt exports moved aside with their sidecars, forgotten, fetched again."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.destination.index import INDEX_NAME, STATE_DIR, ExportIndex
from exporter.destination.lock import RunLock
from exporter.destination.sidecar import read_sidecar, sidecar_path
from exporter.destination.verify import (
    REPAIRED_DIR,
    Finding,
    render_json,
    render_text,
    repair_output,
    verify_output,
)
from exporter.errors import LockedError, UsageError

from .support import export, exported_files, portal_for
from .test_verify import catalog, export_once

IMAGES = len(catalog().pairs())


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real export over loopback, made once; each test works on its own copy."""
    return export_once(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def out(pristine: Path, tmp_path: Path) -> Path:
    shutil.copy(pristine.parent / "m.csv", tmp_path / "m.csv")
    return Path(shutil.copytree(pristine, tmp_path / "out"))


def rel(out: Path, file: Path) -> str:
    return file.relative_to(out).as_posix()


def flip_a_byte(file: Path) -> bytes:
    """Same size, other content: only the SHA-256 tells."""
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    return bytes(data)


def test_a_flipped_byte_is_moved_aside_forgotten_and_exported_again(out: Path) -> None:
    victim = exported_files(out)[3]
    original = victim.read_bytes()
    facts = read_sidecar(victim)
    assert facts is not None
    sidecar = sidecar_path(victim).read_bytes()
    flipped = flip_a_byte(victim)
    corrupt = (Finding("corrupt", rel(out, victim), "sha256 differs"),)
    assert verify_output(out).findings == corrupt

    repaired = repair_output(out)

    assert repaired.findings == corrupt
    assert not repaired.ok
    [moved] = repaired.repaired or ()
    assert moved.path == rel(out, victim)
    assert moved.moved_to.startswith(f"{STATE_DIR}/{REPAIRED_DIR}/")
    assert moved.moved_to.endswith("/" + rel(out, victim))
    assert (out / moved.moved_to).read_bytes() == flipped
    assert sidecar_path(out / moved.moved_to).read_bytes() == sidecar
    assert not victim.exists()
    assert not sidecar_path(victim).exists()
    index = ExportIndex.read(out)
    assert index.path_of(facts.ref) is None
    assert len(index.entries) == IMAGES - 1
    assert verify_output(out).ok

    async def run_again() -> dict[str, int]:
        async with portal_for(catalog()) as portal:
            result = await export(portal, out.parent / "m.csv", out)
        assert result.exit_code == 0
        counts: dict[str, int] = result.report["counts"]
        return counts

    counts = asyncio.run(run_again())
    assert counts == {
        "total": IMAGES, "exported": 1, "skipped": IMAGES - 1, "failed": 0, "gone": 0
    }  # fmt: skip
    assert victim.read_bytes() == original
    assert verify_output(out).ok


def test_only_corrupt_files_are_moved_and_every_other_finding_is_left_alone(out: Path) -> None:
    corrupt, deleted = exported_files(out)[:2]
    flip_a_byte(corrupt)
    deleted.unlink()
    orphan = out / "stray.png"
    orphan.write_bytes(b"stray")
    temporary = corrupt.parent / ".x.png.deadbeef.b24-partial"
    temporary.write_bytes(b"half")
    before = verify_output(out).findings
    assert {f.kind for f in before} == {"corrupt", "missing", "orphan", "temporary"}

    repaired = repair_output(out)

    assert repaired.findings == before
    assert [m.path for m in repaired.repaired or ()] == [rel(out, corrupt)]
    assert sidecar_path(deleted).is_file()
    assert orphan.read_bytes() == b"stray"
    assert temporary.read_bytes() == b"half"
    assert {f.kind for f in verify_output(out).findings} == {"missing", "orphan", "temporary"}


def test_a_file_whose_sidecar_names_another_is_moved_with_it(out: Path) -> None:
    file = exported_files(out)[0]
    renamed = file.with_name("renamed.png")
    file.rename(renamed)
    sidecar_path(file).rename(sidecar_path(renamed))

    repaired = repair_output(out)

    assert [(f.kind, f.path) for f in repaired.findings] == [("corrupt", rel(out, renamed))]
    [moved] = repaired.repaired or ()
    assert sidecar_path(out / moved.moved_to).is_file()
    assert not renamed.exists()
    assert verify_output(out).ok


def test_a_clean_export_is_left_as_it_is(out: Path) -> None:
    repaired = repair_output(out)
    assert repaired.ok
    assert repaired.repaired == ()
    assert not (out / STATE_DIR / REPAIRED_DIR).exists()


def test_an_export_without_its_index_is_repaired_too(out: Path) -> None:
    (out / STATE_DIR / INDEX_NAME).unlink()
    victim = exported_files(out)[0]
    flip_a_byte(victim)
    facts = read_sidecar(victim)
    assert facts is not None
    assert [m.path for m in repair_output(out).repaired or ()] == [rel(out, victim)]
    assert ExportIndex.read(out).path_of(facts.ref) is None
    assert verify_output(out).ok


def test_an_earlier_repair_is_never_written_over(out: Path) -> None:
    victim = exported_files(out)[0]
    now = datetime.now(UTC)
    earlier = [
        out / STATE_DIR / REPAIRED_DIR / (now + timedelta(seconds=s)).strftime("%Y%m%dT%H%M%SZ")
        for s in range(3)
    ]
    for folder in earlier:
        (folder / rel(out, victim)).parent.mkdir(parents=True)
        (folder / rel(out, victim)).write_bytes(b"an earlier repair")
    flip_a_byte(victim)
    [moved] = repair_output(out).repaired or ()
    assert out / moved.moved_to.removesuffix("/" + rel(out, victim)) not in earlier
    assert all(
        (folder / rel(out, victim)).read_bytes() == b"an earlier repair" for folder in earlier
    )


def test_repair_is_refused_while_a_run_holds_the_lock(out: Path) -> None:
    victim = exported_files(out)[0]
    flip_a_byte(victim)
    with RunLock(out / STATE_DIR), pytest.raises(LockedError, match="another run"):
        repair_output(out)
    assert victim.exists()
    assert not (out / STATE_DIR / REPAIRED_DIR).exists()


def test_repair_holds_the_run_lock_while_it_works(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flip_a_byte(exported_files(out)[0])
    seen: list[str] = []

    def probe(moved_from: Path, moved_to: Path) -> None:
        try:
            with RunLock(out / STATE_DIR):
                seen.append("free")
        except LockedError:
            seen.append("held")
        original_rename(moved_from, moved_to)

    original_rename = Path.rename
    monkeypatch.setattr(Path, "rename", probe)
    repair_output(out)
    assert seen == ["held", "held"]


def test_repair_of_a_folder_without_an_export_writes_nothing_into_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no export found"):
        repair_output(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_json_of_a_repair_lists_what_went_where(out: Path) -> None:
    victim = exported_files(out)[0]
    flip_a_byte(victim)
    document = json.loads(render_json(repair_output(out)))
    [moved] = document["repaired"]
    assert set(moved) == {"path", "movedTo"}
    assert moved["path"] == rel(out, victim)
    assert (out / moved["movedTo"]).is_file()
    assert [f["kind"] for f in document["findings"]] == ["corrupt"]


def test_text_of_a_repair_says_what_moved_where_after_the_summary(out: Path) -> None:
    victim = exported_files(out)[0]
    flip_a_byte(victim)
    result = repair_output(out)
    [moved] = result.repaired or ()
    lines = render_text(result).splitlines()
    assert lines[0] == f"corrupt: {rel(out, victim)}: sha256 differs"
    assert lines[1].endswith(": 1 problem (1 corrupt)")
    assert lines[2:] == [
        f"moved aside: {rel(out, victim)} -> {moved.moved_to} (with its sidecar)",
        "repaired 1 corrupt file: the next run exports it again",
    ]
