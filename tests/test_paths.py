"""Paths from portal data: made safe, bounded, inside the output folder, never shared."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from exporter.destination.paths import MAX_PART_BYTES, PathRegistry, render_layout, safe_part
from exporter.errors import ImageError
from exporter.model import ImageRef, ProductImage

LAYOUT = "{productId}/{id}_{name}"


def image(
    name: str, image_id: int = 7, product_id: int = 1, type_: str = "MORE_PHOTO"
) -> ProductImage:
    return ProductImage(
        ref=ImageRef(product_id, image_id),
        name=name,
        type=type_,
        fields={"id": image_id, "productId": product_id, "name": name},
        method="catalog.productImage.get",
        download_url="https://example.bitrix24.com/rest/download.json?auth=x&token=y",
    )


def nobody(_path: Path) -> ImageRef | None:
    return None


class NoEarlierPaths:
    """An output folder no run has exported into yet."""

    def path_of(self, ref: ImageRef) -> str | None:
        return None

    def paths_of(self, refs: Iterable[ImageRef]) -> dict[ImageRef, str]:
        return {ref: path for ref in refs if (path := self.path_of(ref)) is not None}

    def holders(self, path: str) -> list[ImageRef]:
        return []


@pytest.mark.parametrize(
    "name",
    [
        "../../x.jpg",
        "..",
        ".",
        "a/b\\c.jpg",
        "/etc/passwd",
        "C:\\Windows\\x.jpg",
        "bell\x07tab\tnl\n.jpg",
        "nul\x00byte.jpg",
        "rtl\u202egpj.exe",
        "zero\u200bwidth.jpg",
        "",
        "   ",
        "CON",
        "nul.txt",
        "x" * 300 + ".jpg",
        "я" * 300 + ".jpeg",
    ],
)
def test_hostile_name_becomes_one_safe_path_part(name: str) -> None:
    part = safe_part(name)
    assert part not in ("", ".", "..")
    assert "/" not in part and "\\" not in part
    assert not part.startswith(".")
    assert all(ch.isprintable() and ch not in "\u202e\u200b" for ch in part)
    assert len(part.encode()) <= MAX_PART_BYTES
    assert part.split(".")[0].lower() not in ("con", "nul")


def test_long_name_keeps_its_extension() -> None:
    part = safe_part("ф" * 400 + ".jpeg")
    assert part.endswith(".jpeg")
    assert len(part.encode()) <= MAX_PART_BYTES
    part.encode().decode("utf-8")  # cut on a character boundary


def test_ordinary_names_are_kept_as_they_are() -> None:
    for name in ("test.jpeg", "side view.png", "Фото 3.png", "Größentabelle.png"):
        assert safe_part(name) == name


def test_layout_renders_fields_into_folders() -> None:
    rendered = render_layout("{type}/{productId}/{id}.{ext}", image("Front.JPG"), "image/jpeg")
    assert rendered == PurePosixPath("MORE_PHOTO/1/7.jpg")


def test_a_value_can_never_add_a_folder_level() -> None:
    rendered = render_layout(LAYOUT, image("../../etc/passwd"), "image/png")
    assert len(rendered.parts) == 2
    assert rendered.parts[0] == "1"
    assert ".." not in rendered.parts


def test_type_from_the_portal_is_made_safe_too() -> None:
    rendered = render_layout("{type}/{id}_{name}", image("a.png", type_="../.."), "image/png")
    assert rendered.parts[0] not in ("..", ".")
    assert len(rendered.parts) == 2


def test_extension_comes_from_the_content_type_when_the_name_has_none() -> None:
    rendered = render_layout("{id}.{ext}", image("photo"), "image/png")
    assert rendered == PurePosixPath("7.png")


def test_empty_name_gets_a_placeholder_with_its_extension() -> None:
    assert render_layout(LAYOUT, image(""), "image/jpeg").name == "7_image.jpg"


async def test_two_images_with_one_path_get_different_paths(tmp_path: Path) -> None:
    registry = PathRegistry(tmp_path, NoEarlierPaths())
    wanted = PurePosixPath("1/same.jpg")
    first = await registry.claim(ImageRef(1, 7), wanted, nobody)
    second = await registry.claim(ImageRef(1, 8), wanted, nobody)
    assert first == tmp_path / "1/same.jpg"
    assert second == tmp_path / "1/same-2.jpg"


async def test_paths_differing_only_in_case_count_as_the_same(tmp_path: Path) -> None:
    registry = PathRegistry(tmp_path, NoEarlierPaths())
    await registry.claim(ImageRef(1, 7), PurePosixPath("1/Photo.jpg"), nobody)
    other = await registry.claim(ImageRef(1, 8), PurePosixPath("1/photo.JPG"), nobody)
    assert other.name == "photo-2.JPG"


async def test_an_image_keeps_the_path_an_earlier_run_gave_it(tmp_path: Path) -> None:
    class Earlier(NoEarlierPaths):
        def path_of(self, ref: ImageRef) -> str | None:
            return "1/old name.jpg" if ref == ImageRef(1, 7) else None

        def holders(self, path: str) -> list[ImageRef]:
            return [ImageRef(1, 7)] if path.casefold() == "1/old name.jpg" else []

    registry = PathRegistry(tmp_path, Earlier())
    assert await registry.claim(ImageRef(1, 7), PurePosixPath("1/new.jpg"), nobody) == (
        tmp_path / "1/old name.jpg"
    )
    other = await registry.claim(ImageRef(1, 8), PurePosixPath("1/OLD NAME.jpg"), nobody)
    assert other == tmp_path / "1/OLD NAME-2.jpg"


async def test_an_image_keeps_its_path_on_a_second_claim(tmp_path: Path) -> None:
    registry = PathRegistry(tmp_path, NoEarlierPaths())
    first = await registry.claim(ImageRef(1, 7), PurePosixPath("1/a.jpg"), nobody)
    again = await registry.claim(ImageRef(1, 7), PurePosixPath("1/renamed.jpg"), nobody)
    assert again == first


async def test_a_file_exported_for_another_image_is_never_taken(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1/a.jpg").write_bytes(b"theirs")
    (tmp_path / "1/a.jpg.json").write_text("{}")
    registry = PathRegistry(tmp_path, NoEarlierPaths())
    path = await registry.claim(
        ImageRef(1, 7), PurePosixPath("1/a.jpg"), lambda _p: ImageRef(1, 99)
    )
    assert path == tmp_path / "1/a-2.jpg"


async def test_an_earlier_export_of_the_same_image_is_reused(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1/a.jpg").write_bytes(b"mine")
    (tmp_path / "1/a.jpg.json").write_text("{}")
    registry = PathRegistry(tmp_path, NoEarlierPaths())
    path = await registry.claim(ImageRef(1, 7), PurePosixPath("1/a.jpg"), lambda _p: ImageRef(1, 7))
    assert path == tmp_path / "1/a.jpg"


async def test_counter_suffix_keeps_long_names_within_the_limit(tmp_path: Path) -> None:
    registry = PathRegistry(tmp_path, NoEarlierPaths())
    wanted = PurePosixPath(safe_part("x" * 400 + ".jpg"))
    await registry.claim(ImageRef(1, 1), wanted, nobody)
    second = await registry.claim(ImageRef(1, 2), wanted, nobody)
    assert second.name.endswith("-2.jpg")
    assert len(second.name.encode()) <= MAX_PART_BYTES


async def test_a_symlinked_folder_leading_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "1").symlink_to(outside)
    registry = PathRegistry(root, NoEarlierPaths())
    with pytest.raises(ImageError, match="outside the output folder"):
        await registry.claim(ImageRef(1, 7), PurePosixPath("1/a.jpg"), nobody)


async def test_the_report_path_is_never_given_to_an_image_or_its_sidecar(tmp_path: Path) -> None:
    registry = PathRegistry(tmp_path, NoEarlierPaths(), reserved=[tmp_path / "report.json"])
    # An image named "report" would get the sidecar report.json: it must go elsewhere.
    named_report = await registry.claim(ImageRef(1, 7), PurePosixPath("report"), nobody)
    named_report_json = await registry.claim(ImageRef(1, 8), PurePosixPath("report.json"), nobody)
    assert named_report == tmp_path / "report-2"
    assert named_report_json == tmp_path / "report-2.json"


class IndexedPaths(NoEarlierPaths):
    """An index that takes each export's path as the run commits it."""

    def __init__(self) -> None:
        self.rows: dict[ImageRef, str] = {}

    def path_of(self, ref: ImageRef) -> str | None:
        return self.rows.get(ref)

    def holders(self, path: str) -> list[ImageRef]:
        return [ref for ref, held in self.rows.items() if held.casefold() == path.casefold()]


async def test_a_committed_export_keeps_its_path_after_the_run_lets_go_of_the_claim(
    tmp_path: Path,
) -> None:
    index = IndexedPaths()
    registry = PathRegistry(tmp_path, index)
    for n in range(1, 3001):  # enough claims for the run to drop those the index holds
        ref = ImageRef(1, n)
        path = await registry.claim(ref, PurePosixPath(f"1/{n}.jpg"), nobody)
        index.rows[ref] = path.relative_to(tmp_path).as_posix()
    other = await registry.claim(ImageRef(2, 1), PurePosixPath("1/1.JPG"), nobody)
    assert other == tmp_path / "1/1-2.JPG"
    assert len(registry._path_of) < 3000  # the committed ones are the index's to hold


async def test_two_claims_in_flight_for_one_path_get_different_paths(tmp_path: Path) -> None:
    registry = PathRegistry(tmp_path, NoEarlierPaths())
    wanted = PurePosixPath("1/same.jpg")
    paths = await asyncio.gather(
        *(registry.claim(ImageRef(1, n), wanted, nobody) for n in range(1, 9))
    )
    assert len(set(paths)) == 8


async def test_claims_look_at_the_disk_outside_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1/a.jpg").write_bytes(b"theirs")
    (tmp_path / "1/a.jpg.json").write_text("{}")
    registry = PathRegistry(tmp_path, NoEarlierPaths())
    loop_thread = threading.get_ident()
    calls: list[tuple[str, int]] = []

    def watched(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            if str(path).startswith(str(tmp_path)):
                calls.append((name, threading.get_ident()))
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "stat", watched("stat", os.stat))
    monkeypatch.setattr(os, "lstat", watched("lstat", os.lstat))
    owner = watched("owner", lambda _path: ImageRef(1, 99))
    path = await registry.claim(ImageRef(1, 7), PurePosixPath("1/a.jpg"), owner)
    again = await registry.claim(ImageRef(1, 7), PurePosixPath("1/a.jpg"), owner)
    assert path == again == tmp_path / "1/a-2.jpg"
    assert {name for name, _thread in calls} == {"stat", "lstat", "owner"}
    assert all(thread != loop_thread for _name, thread in calls)


async def test_a_folder_not_there_when_the_run_began_is_not_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "1").mkdir()  # an earlier run's folder
    registry = PathRegistry(tmp_path, NoEarlierPaths())
    looked: list[str] = []

    def watched(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            if str(path).startswith(str(tmp_path)):
                looked.append(str(path))
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "stat", watched(os.stat))
    monkeypatch.setattr(os, "lstat", watched(os.lstat))
    first = await registry.claim(ImageRef(1, 1), PurePosixPath("9/a.jpg"), nobody)
    second = await registry.claim(ImageRef(1, 2), PurePosixPath("9/a.jpg"), nobody)
    third = await registry.claim(ImageRef(1, 3), PurePosixPath("9/b.jpg"), nobody)
    assert looked == []
    assert (first, second, third) == (tmp_path / "9/a.jpg", tmp_path / "9/a-2.jpg",
                                      tmp_path / "9/b.jpg")  # fmt: skip
    await registry.claim(ImageRef(1, 4), PurePosixPath("1/a.jpg"), nobody)
    assert looked  # a folder that was there may hold another image's export
