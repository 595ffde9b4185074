"""`verify`: every exported file re-hashed against its sidecar, and what is wrong listed."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from exporter.destination.index import INDEX_NAME, STATE_DIR
from exporter.destination.lock import RunLock
from exporter.destination.verify import Finding, render_json, render_text, verify_output
from exporter.errors import LockedError, UsageError
from exporter.simulator import Catalog

from .support import export, exported_files, portal_for, write_manifest


def catalog() -> Catalog:
    """What every verify test exports: 8 small images of 3 products, the same each time."""
    return Catalog.generate(products=3, images=8, seed=5, image_size=(200, 3000))


def export_once(base: Path) -> Path:
    """A real export of `catalog()` over loopback into `base/out`; its manifest is `base/m.csv`."""
    manifest = write_manifest(base / "m.csv", catalog().pairs())

    async def run() -> None:
        async with portal_for(catalog()) as portal:
            result = await export(portal, manifest, base / "out")
        assert result.exit_code == 0

    asyncio.run(run())
    return base / "out"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real export over loopback, made once; each test works on its own copy."""
    return export_once(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def out(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "out", symlinks=True))


def rel(out: Path, file: Path) -> str:
    return file.relative_to(out).as_posix()


def test_a_clean_export_verifies_ok_with_every_image_checked(out: Path) -> None:
    files = exported_files(out)
    result = verify_output(out)
    assert result.ok
    assert result.findings == ()
    assert result.checked == len(files) == 8
    assert result.bytes == sum(f.stat().st_size for f in files)


def test_flipped_byte_deleted_file_and_stray_temporary_are_exactly_three_findings(
    out: Path,
) -> None:
    flipped, deleted = exported_files(out)[:2]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    deleted.unlink()
    stray = flipped.parent / ".x.png.deadbeef.b24-partial"
    stray.write_bytes(b"half")
    findings = verify_output(out).findings
    assert sorted((f.kind, f.path) for f in findings) == sorted(
        [
            ("corrupt", rel(out, flipped)),
            ("missing", rel(out, deleted) + ".json"),
            ("temporary", rel(out, stray)),
        ]
    )
    assert next(f for f in findings if f.kind == "corrupt").detail == "sha256 differs"


def test_findings_are_sorted_by_path(out: Path) -> None:
    for file in exported_files(out)[::2]:
        file.write_bytes(b"x")
    paths = [f.path for f in verify_output(out).findings]
    assert len(paths) == 4
    assert paths == sorted(paths)


def test_a_truncated_file_is_corrupt_with_both_sizes(out: Path) -> None:
    file = exported_files(out)[0]
    size = file.stat().st_size
    file.write_bytes(file.read_bytes()[:100])
    assert verify_output(out).findings == (
        Finding("corrupt", rel(out, file), f"size 100, sidecar says {size}"),
    )


def test_a_data_file_without_sidecar_is_an_orphan(out: Path) -> None:
    file = exported_files(out)[0]
    file.with_name(file.name + ".json").unlink()
    assert verify_output(out).findings == (
        Finding("orphan", rel(out, file), "file without sidecar"),
    )


def test_an_image_named_like_json_without_sidecar_is_an_orphan(out: Path) -> None:
    stray = out / "1" / "7_scan.json"
    stray.write_bytes(b"\x89PNG\r\n\x1a\n not json")
    assert [(f.kind, f.path) for f in verify_output(out).findings] == [("orphan", "1/7_scan.json")]


def test_report_and_state_folder_are_never_findings(out: Path) -> None:
    assert (out / "report.json").is_file()
    assert (out / STATE_DIR / INDEX_NAME).is_file()
    (out / STATE_DIR / "stray.bin").write_bytes(b"state")
    shutil.copy(out / "report.json", out / "nightly-report.json")
    result = verify_output(out)
    assert result.ok, result.findings


def test_an_unreadable_sidecar_is_a_finding(out: Path) -> None:
    file = exported_files(out)[0]
    sidecar = file.with_name(file.name + ".json")
    sidecar.write_text('{"productImage": {"id": 1', encoding="utf-8")
    assert verify_output(out).findings == (
        Finding("unreadable-sidecar", rel(out, sidecar), "not valid JSON"),
    )


def test_a_sidecar_without_a_digest_is_unreadable(out: Path) -> None:
    file = exported_files(out)[0]
    sidecar = file.with_name(file.name + ".json")
    document = json.loads(sidecar.read_text(encoding="utf-8"))
    del document["file"]["sha256"]
    sidecar.write_text(json.dumps(document), encoding="utf-8")
    [finding] = verify_output(out).findings
    assert (finding.kind, finding.path) == ("unreadable-sidecar", rel(out, sidecar))


def test_a_file_renamed_with_its_sidecar_is_corrupt_by_name(out: Path) -> None:
    file = exported_files(out)[0]
    moved = file.with_name("renamed.png")
    file.rename(moved)
    file.with_name(file.name + ".json").rename(moved.with_name("renamed.png.json"))
    assert verify_output(out).findings == (
        Finding("corrupt", rel(out, moved), f"sidecar is for {file.name!r}"),
    )


def test_json_rendering_parses_with_stable_keys(out: Path) -> None:
    exported_files(out)[0].write_bytes(b"x")
    document = json.loads(render_json(verify_output(out)))
    assert set(document) == {"root", "checked", "bytes", "ok", "findings"}
    assert document["root"] == str(out)
    assert document["ok"] is False
    assert document["checked"] == 8
    [finding] = document["findings"]
    assert set(finding) == {"kind", "path", "detail"}
    assert finding["kind"] == "corrupt"


def test_text_rendering_has_a_line_per_finding_and_a_summary(out: Path) -> None:
    file = exported_files(out)[0]
    file.unlink()
    lines = render_text(verify_output(out)).splitlines()
    assert lines[0].startswith(f"missing: {rel(out, file)}.json: ")
    assert lines[-1].endswith(": 1 problem (1 missing)")
    assert len(lines) == 2


def test_text_rendering_of_a_clean_export_says_ok(out: Path) -> None:
    assert render_text(verify_output(out)).startswith("checked 8 files (")
    assert render_text(verify_output(out)).endswith(": ok")


def test_control_characters_in_names_are_escaped_in_text(out: Path) -> None:
    (out / "evil\x1b[31m.png").write_bytes(b"x")
    text = render_text(verify_output(out))
    assert "\x1b" not in text
    assert "orphan: evil\\x1b[31m.png: file without sidecar" in text


def test_progress_is_told_every_byte_hashed(out: Path) -> None:
    seen: list[int] = []
    result = verify_output(out, progress=seen.append)
    assert sum(seen) == result.bytes


def test_verify_writes_nothing_into_the_output(out: Path) -> None:
    (out / STATE_DIR / "lock").unlink(missing_ok=True)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    verify_output(out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_symlinked_folders_are_not_followed(out: Path) -> None:
    (out / "loop").symlink_to(out, target_is_directory=True)
    assert verify_output(out).ok


def test_verify_refuses_while_a_run_holds_the_lock(out: Path) -> None:
    with RunLock(out / STATE_DIR), pytest.raises(LockedError, match="a run is exporting"):
        verify_output(out)


def test_a_missing_output_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        verify_output(tmp_path / "nowhere")


def test_a_file_as_output_folder_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(UsageError, match="is not a folder"):
        verify_output(tmp_path / "f")


def test_a_pipe_is_reported_without_being_opened(out: Path) -> None:
    os.mkfifo(out / "pipe.png")
    assert verify_output(out).findings == (Finding("orphan", "pipe.png", "not a regular file"),)


def test_an_empty_folder_holds_no_export_and_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no export found in .*is the backup volume mounted"):
        verify_output(tmp_path)


def test_stray_files_without_any_sidecar_or_index_are_no_export(tmp_path: Path) -> None:
    (tmp_path / "lost+found").mkdir()
    (tmp_path / "notes.txt").write_text("mount the volume first")
    (tmp_path / "settings.json").write_text('{"theme": "dark"}')
    with pytest.raises(UsageError, match="no export found"):
        verify_output(tmp_path)


def test_an_export_whose_index_was_removed_is_still_verified(out: Path) -> None:
    (out / STATE_DIR / INDEX_NAME).unlink()
    result = verify_output(out)
    assert result.ok
    assert result.checked == 8


def test_sidecars_left_without_files_or_index_are_missing_not_no_export(out: Path) -> None:
    (out / STATE_DIR / INDEX_NAME).unlink()
    files = exported_files(out)
    for file in files:
        file.unlink()
    findings = verify_output(out).findings
    assert [(f.kind, f.path) for f in findings] == [
        ("missing", rel(out, f) + ".json") for f in files
    ]


def test_exports_deleted_with_their_sidecars_are_missing_by_the_index(out: Path) -> None:
    files = exported_files(out)
    for file in files:
        file.with_name(file.name + ".json").unlink()
        file.unlink()
    findings = verify_output(out).findings
    assert [(f.kind, f.path) for f in findings] == [("missing", rel(out, f)) for f in files]
    assert all(
        f.detail.startswith("in the index, but its file and sidecar are gone (image ")
        for f in findings
    )
