"""The index of done images: appended line by line, the last line for an image wins."""

from __future__ import annotations

import json
from pathlib import Path

from exporter.destination.index import INDEX_NAME, STATE_DIR, ExportIndex
from exporter.model import ImageRef

FRONT = ImageRef(1, 7)
BACK = ImageRef(1, 8)


def index_file(root: Path) -> Path:
    return root / STATE_DIR / INDEX_NAME


def lines_of(root: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in index_file(root).read_text().splitlines()]


def test_a_forgotten_image_is_gone_after_reloading(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/7_front.png", 100)
    index.add(BACK, "1/8_back.png", 200)
    index.forget(FRONT)
    index.close()
    reloaded = ExportIndex.read(tmp_path)
    assert set(reloaded.entries) == {BACK}
    assert reloaded.path_of(FRONT) is None


def test_forget_appends_a_removal_line_without_a_path(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/7_front.png", 100)
    index.forget(FRONT)
    index.close()
    assert lines_of(tmp_path)[-1] == {"productId": 1, "id": 7, "removed": True}


def test_an_image_exported_again_after_being_forgotten_is_back(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/7_front.png", 100)
    index.forget(FRONT)
    index.add(FRONT, "1/7_front.png", 120)
    index.close()
    assert ExportIndex.read(tmp_path).entries[FRONT].size == 120


def test_a_removal_line_cut_short_is_ignored(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(FRONT, "1/7_front.png", 100)
    index.close()
    with index_file(tmp_path).open("a") as out:
        out.write('{"productId": 1, "id": 7, "rem')
    assert ExportIndex.read(tmp_path).path_of(FRONT) == "1/7_front.png"


def test_lines_written_before_removals_existed_still_load(tmp_path: Path) -> None:
    index_file(tmp_path).parent.mkdir()
    index_file(tmp_path).write_text(
        '{"productId": 1, "id": 7, "path": "1/7_front.png", "size": 100}\n'
        '{"productId": 1, "id": 8, "path": "1/8_back.png", "size": 200}\n'
    )
    assert ExportIndex.read(tmp_path).path_of(FRONT) == "1/7_front.png"
    assert ExportIndex.read(tmp_path).path_of(BACK) == "1/8_back.png"


def test_the_periodic_rewrite_keeps_a_forgotten_image_out(tmp_path: Path) -> None:
    index = ExportIndex.open(tmp_path)
    index.add(BACK, "1/8_back.png", 200)
    for _ in range(600):
        index.add(FRONT, "1/7_front.png", 100)
        index.forget(FRONT)
    index.close()
    ExportIndex.open(tmp_path).close()
    assert lines_of(tmp_path) == [{"productId": 1, "id": 8, "path": "1/8_back.png", "size": 200}]
