"""The index of done images: one row per image, the older JSON-lines index moved into it."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from exporter.destination import index as index_module
from exporter.destination.index import (
    INDEX_NAME,
    LEGACY_INDEX_NAME,
    STATE_DIR,
    ExportIndex,
    IndexEntry,
)
from exporter.errors import OutputError
from exporter.model import ImageRef

from .support import index_rows

FRONT = ImageRef(1, 7)
BACK = ImageRef(1, 8)


def state(root: Path) -> Path:
    return root / STATE_DIR


def write_legacy(root: Path, *lines: str) -> Path:
    legacy = state(root) / LEGACY_INDEX_NAME
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return legacy


def line(record: dict[str, object]) -> str:
    return json.dumps(record)


def test_a_forgotten_image_is_gone_after_reloading(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/7_front.png", 100)
    index.add(BACK, "1/8_back.png", 200)
    index.forget(FRONT)
    index.close()
    reloaded = ExportIndex.read(tmp_path)
    assert set(reloaded.entries) == {BACK}
    assert reloaded.path_of(FRONT) is None


def test_an_image_exported_again_after_being_forgotten_is_back(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/7_front.png", 100)
    index.forget(FRONT)
    index.add(FRONT, "1/7_front.png", 120)
    index.close()
    assert ExportIndex.read(tmp_path).entries[FRONT].size == 120


def test_a_new_state_of_an_image_replaces_its_row(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/7_front.png", 100)
    index.add(FRONT, "1/7_front.png", 100, "2026-11-27T03:00:00Z", described=True)
    index.close()
    assert index_rows(state(tmp_path)) == [
        {"productId": 1, "id": 7, "path": "1/7_front.png", "size": 100,
         "gone": "2026-11-27T03:00:00Z", "product": True},
    ]  # fmt: skip


def test_a_change_is_told_at_once_and_reaches_the_database_while_the_run_goes_on(
    tmp_path: Path,
) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/7_front.png", 100)
    index.add(BACK, "1/8_back.png", 200)
    index.forget(BACK)
    assert index.path_of(FRONT) == "1/7_front.png"
    assert index.holders("1/7_FRONT.png") == [FRONT]
    assert index.images_of(1) == [FRONT]
    assert len(index.entries) == 1  # waits for the writer
    assert ExportIndex.read(tmp_path).path_of(FRONT) == "1/7_front.png"  # not closed yet
    index.close()


def test_rows_not_asked_for_are_written_by_the_index_thread_not_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers: list[int] = []
    wrote = threading.Event()
    real = index_module._apply

    def apply(db: Any, changes: Any) -> None:
        writers.append(threading.get_ident())
        real(db, changes)
        wrote.set()

    index = ExportIndex.open(tmp_path)
    monkeypatch.setattr(index_module, "_apply", apply)
    for n in range(1, 50):
        index.add(ImageRef(1, n), f"1/{n}.png", n)
    assert wrote.wait(10)
    assert writers[0] != threading.get_ident()
    index.close()
    assert len(index_rows(state(tmp_path))) == 49


def test_rows_asked_for_are_written_in_the_asking_thread(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/7_front.png", 100)
    index.written()
    assert index_rows(state(tmp_path)) == [
        {"productId": 1, "id": 7, "path": "1/7_front.png", "size": 100}
    ]
    index.close()


def test_an_index_that_cannot_be_written_fails_the_run_as_an_output_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(db: Any, changes: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    index = ExportIndex.open(tmp_path)
    monkeypatch.setattr(index_module, "_apply", full)
    index.add(FRONT, "1/7_front.png", 100)
    with pytest.raises(OutputError, match="disk is full"):
        index.close()


def test_the_paths_of_many_images_at_once(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    for n in range(1, 1500):
        index.add(ImageRef(1, n), f"1/{n}.png", n)
    len(index.entries)  # written by now
    index.add(ImageRef(2, 1), "2/1.png", 1)  # perhaps still waiting to be written
    index.forget(ImageRef(1, 3))
    asked = [ImageRef(1, n) for n in range(1, 1500)] + [ImageRef(2, 1), ImageRef(9, 9)]
    found = index.paths_of(asked)
    assert found[ImageRef(1, 1499)] == "1/1499.png"
    assert found[ImageRef(2, 1)] == "2/1.png"
    assert ImageRef(1, 3) not in found and ImageRef(9, 9) not in found
    assert len(found) == 1499
    index.close()


def test_paths_are_held_case_insensitively(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/Photo.JPG", 100)
    assert index.holders("1/photo.jpg") == [FRONT]
    assert index.holders("1/photo-2.jpg") == []
    index.close()


def test_the_images_of_a_product_and_those_gone(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(BACK, "1/8_back.png", 200, "2026-11-27T03:00:00Z")
    index.add(FRONT, "1/7_front.png", 100)
    index.add(ImageRef(2, 9), "2/9_side.png", 300)
    assert index.images_of(1) == [FRONT, BACK]
    assert index.products() == {1, 2}
    assert index.gone() == [(BACK, "2026-11-27T03:00:00Z")]
    assert index.gone_since(BACK) == "2026-11-27T03:00:00Z"
    assert len(index.entries) == 3
    index.close()


def test_walking_the_index_sees_every_row_across_pages(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    refs = [ImageRef(p, i) for p in range(1, 4) for i in range(1, 900)]
    for ref in refs:
        index.add(ref, f"{ref.product_id}/{ref.image_id}.png", ref.image_id)
    assert [ref for ref, _path in index.paths()] == refs
    assert [entry.size for entry in index.entries.values()] == [r.image_id for r in refs]
    index.close()


def test_an_index_of_json_lines_is_moved_into_the_database(tmp_path: Path) -> None:
    legacy = write_legacy(
        tmp_path,
        line({"productId": 1, "id": 7, "path": "1/7_front.png", "size": 100}),
        line({"productId": 1, "id": 8, "path": "1/8_back.png", "size": 200, "product": True}),
        line({"productId": 1, "id": 7, "path": "1/7_front.png", "size": 100,
              "gone": "2026-11-27T03:00:00Z"}),
        line({"productId": 2, "id": 9, "path": "2/9_side.png", "size": 300}),
        line({"productId": 2, "id": 9, "removed": True}),
        '{"productId": 3, "id": 1, "pa',
    )  # fmt: skip
    index = ExportIndex.open(tmp_path)
    index.close()
    assert not legacy.exists()
    assert index_rows(state(tmp_path)) == [
        {"productId": 1, "id": 7, "path": "1/7_front.png", "size": 100,
         "gone": "2026-11-27T03:00:00Z"},
        {"productId": 1, "id": 8, "path": "1/8_back.png", "size": 200, "product": True},
    ]  # fmt: skip


def test_lines_written_before_removals_existed_still_load(tmp_path: Path) -> None:
    write_legacy(
        tmp_path,
        '{"productId": 1, "id": 7, "path": "1/7_front.png", "size": 100}',
        '{"productId": 1, "id": 8, "path": "1/8_back.png", "size": 200}',
    )
    assert ExportIndex.read(tmp_path).path_of(FRONT) == "1/7_front.png"
    assert ExportIndex.read(tmp_path).path_of(BACK) == "1/8_back.png"


def test_reading_an_older_index_writes_nothing(tmp_path: Path) -> None:
    legacy = write_legacy(tmp_path, line({"productId": 1, "id": 7, "path": "a", "size": 1}))
    index = ExportIndex.read(tmp_path)
    index.add(BACK, "1/8_back.png", 200)  # a dry run's change keeps to memory
    assert index.path_of(BACK) == "1/8_back.png"
    assert sorted(p.name for p in state(tmp_path).iterdir()) == [LEGACY_INDEX_NAME]
    assert legacy.read_text(encoding="utf-8").count("\n") == 1


def test_a_change_to_an_index_opened_to_read_keeps_to_memory(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/7_front.png", 100)
    index.close()
    read = ExportIndex.read(tmp_path)
    read.add(BACK, "1/8_back.png", 200)
    read.forget(FRONT)
    assert set(read.entries) == {BACK}
    read.close()
    assert set(ExportIndex.read(tmp_path).entries) == {FRONT}


def test_an_older_index_beside_the_database_is_the_newer_one(tmp_path: Path) -> None:
    # An older exporter, which knows only the JSON lines, ran since the database was made.
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/7_front.png", 100)
    index.close()
    write_legacy(tmp_path, line({"productId": 1, "id": 8, "path": "1/8_back.png", "size": 200}))
    assert set(ExportIndex.read(tmp_path).entries) == {BACK}
    ExportIndex.open(tmp_path).close()
    assert [row["id"] for row in index_rows(state(tmp_path))] == [8]


def test_a_damaged_index_is_rebuilt_from_the_sidecars(tmp_path: Path) -> None:
    path = state(tmp_path) / INDEX_NAME
    path.parent.mkdir()
    path.write_bytes(b"not a database at all" * 100)
    index = ExportIndex.open_at(tmp_path, path, lambda: {FRONT: IndexEntry("1/7_front.png", 100)})
    assert index.path_of(FRONT) == "1/7_front.png"
    index.close()
    assert [row["id"] for row in index_rows(state(tmp_path))] == [7]


def test_a_missing_index_is_written_from_the_sidecars_once(tmp_path: Path) -> None:
    path = state(tmp_path) / INDEX_NAME
    rebuilt: list[int] = []

    def rebuild() -> dict[ImageRef, IndexEntry]:
        rebuilt.append(1)
        return {FRONT: IndexEntry("1/7_front.png", 100)}

    ExportIndex.open_at(tmp_path, path, rebuild).close()
    ExportIndex.open_at(tmp_path, path, rebuild).close()
    assert rebuilt == [1]
    assert not any(p.name.endswith(".b24-partial") for p in path.parent.iterdir())


def test_a_row_written_after_it_was_read_ahead_is_told_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = ExportIndex.open(tmp_path)
    for n in range(1, 11):
        index.add(ImageRef(1, n), f"1/{n}.png", n)
    assert len(index.entries) == 10  # all written
    for n in range(1, 5):  # in order: the index reads ahead more and more rows
        assert index.path_of(ImageRef(1, n)) == f"1/{n}.png"
    release = threading.Event()
    real = index_module._apply

    def slow(db: Any, changes: Any) -> None:
        release.wait(10)
        real(db, changes)

    monkeypatch.setattr(index_module, "_apply", slow)
    index.add(ImageRef(1, 9), "1/9-new.png", 99)  # waits to be written
    assert index.path_of(ImageRef(1, 8)) == "1/8.png"  # reads 9 ahead, as it was
    release.set()
    assert len(index.entries) == 10  # 9 is written now
    assert index.path_of(ImageRef(1, 9)) == "1/9-new.png"
    index.forget(ImageRef(1, 8))
    assert index.path_of(ImageRef(1, 8)) is None
    index.close()
    assert index_rows(state(tmp_path))[7] == {
        "productId": 1, "id": 9, "path": "1/9-new.png", "size": 99,
    }  # fmt: skip


def test_lookups_in_no_order_find_every_row(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    refs = [ImageRef(p, i) for p in range(1, 30) for i in range(1, 30)]
    for ref in refs:
        index.add(ref, f"{ref.product_id}/{ref.image_id}.png", 1)
    len(index.entries)
    shuffled = refs[::7] + refs[3::5] + refs
    assert all(index.path_of(r) == f"{r.product_id}/{r.image_id}.png" for r in shuffled)
    assert index.path_of(ImageRef(1, 30)) is None and index.path_of(ImageRef(30, 1)) is None
    index.close()
