"""Group commit: files that finish together are made durable together, and never less so.

A group's index lines are appended; then its files are written, fsynced and renamed,
each followed by its sidecar the same way, and each folder is fsynced once. One member
failing fails only itself; a full disk mid-group leaves each file whole or gone; a kill
anywhere in between leaves the next run exactly what was done on disk to skip, and the
rest to fetch again.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from exporter.config import OutputConfig
from exporter.destination import folder
from exporter.destination import index as index_module
from exporter.destination.folder import SMALL_BODY_BYTES, FolderDestination
from exporter.destination.group import GroupCommit
from exporter.destination.index import STATE_DIR
from exporter.errors import OutputError
from exporter.jobs.export import ExportJob
from exporter.model import ImageRef, ProductImage, SavedFile
from exporter.simulator import Catalog

from .support import (
    export_config,
    exported_files,
    index_rows,
    portal_for,
    sidecar_of,
    write_manifest,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
LAYOUT = "{productId}/{name}"
PARTIAL = "*.b24-partial"
REAL_WRITEV = os.writev


def disk_full_after(writes: int) -> Callable[[int, Sequence[bytes]], int]:
    """An `os.writev` that writes `writes` times, then finds the disk full."""
    done = 0

    def filling_writev(fd: int, buffers: Sequence[bytes]) -> int:
        nonlocal done
        done += 1
        if done > writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return REAL_WRITEV(fd, buffers)

    return filling_writev


def image(product_id: int, image_id: int) -> ProductImage:
    fields = {"id": image_id, "productId": product_id, "name": f"{image_id}.png"}
    return ProductImage(
        ref=ImageRef(product_id, image_id),
        name=f"{image_id}.png",
        type="MORE_PHOTO",
        fields=fields,
        method="catalog.productImage.get",
        download_url="https://example.bitrix24.com/rest/download.json?auth=x&token=y",
    )


def body(image_id: int) -> bytes:
    return PNG + image_id.to_bytes(4, "big")


def index_of(root: Path) -> list[dict[str, Any]]:
    """The index's rows on disk: what a kill at this moment leaves."""
    return index_rows(root / STATE_DIR)


class Recorded(FolderDestination):
    """A folder destination that records the size of each group it commits."""

    def __init__(self, root: Path) -> None:
        super().__init__(OutputConfig(root, LAYOUT), "example.bitrix24.com")
        self.groups: list[int] = []

    def _land_group(self, group: Sequence[Any]) -> list[SavedFile | BaseException]:
        self.groups.append(len(group))
        return super()._land_group(group)


async def commit_together(
    destination: FolderDestination,
    images: list[ProductImage],
    before: Callable[[], None] = lambda: None,
) -> list[SavedFile | BaseException]:
    """Receive every image, call `before`, then commit them all at once (one task each,
    as the pipeline's commit workers do); the outcome of each, in order."""
    sinks = []
    for one in images:
        sink = await destination.open_sink(one, "image/png")
        await sink.write([body(one.ref.image_id)])
        sinks.append(sink)
    before()
    outcomes: list[SavedFile | BaseException] = [OutputError("not run")] * len(images)

    async def commit(n: int) -> None:
        try:
            outcomes[n] = await destination.commit(images[n], sinks[n])
        except OutputError as exc:
            outcomes[n] = exc

    async with anyio.create_task_group() as tg:
        for n in range(len(images)):
            tg.start_soon(commit, n)
    return outcomes


# The grouping itself.


async def test_commits_waiting_while_one_is_under_way_go_together() -> None:
    groups: list[list[int]] = []

    async def commit_group(items: Sequence[int]) -> list[int | BaseException]:
        groups.append(list(items))
        await anyio.sleep(0)  # under way: the others arrive meanwhile
        return [item * 10 for item in items]

    grouped: GroupCommit[int, int] = GroupCommit(commit_group)
    results: dict[int, int] = {}

    async def commit(item: int) -> None:
        results[item] = await grouped.commit(item)

    async with anyio.create_task_group() as tg:
        for item in range(1, 9):
            tg.start_soon(commit, item)
    assert groups == [[1], [2, 3, 4, 5, 6, 7, 8]]  # the first alone: nothing waits for a group
    assert results == {item: item * 10 for item in range(1, 9)}


async def test_a_failed_group_fails_its_members_and_the_next_group_still_commits() -> None:
    calls = 0

    async def commit_group(items: Sequence[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        await anyio.sleep(0)
        if calls == 1:
            raise OSError(errno.EIO, "I/O error")
        return [item if item != 5 else ValueError("five") for item in items]

    grouped: GroupCommit[int, int] = GroupCommit(commit_group)
    outcomes: dict[int, object] = {}

    async def commit(item: int) -> None:
        try:
            outcomes[item] = await grouped.commit(item)
        except (OSError, ValueError) as exc:
            outcomes[item] = type(exc)

    async with anyio.create_task_group() as tg:
        for item in range(1, 7):
            tg.start_soon(commit, item)
    assert outcomes == {1: OSError, 2: 2, 3: 3, 4: 4, 5: ValueError, 6: 6}


# A folder's group: durable first, then named by the index.


async def test_files_committed_together_each_land_whole_with_sidecar_and_index_line(
    tmp_path: Path,
) -> None:
    destination = Recorded(tmp_path / "out")
    await destination.open()
    try:
        images = [image(1 + n % 2, n + 1) for n in range(8)]
        outcomes = await commit_together(destination, images)
    finally:
        await destination.close()
    assert destination.groups == [1, 7]
    root = tmp_path / "out"
    for one, saved in zip(images, outcomes, strict=True):
        assert isinstance(saved, SavedFile)
        data = (root / saved.key).read_bytes()
        assert data == body(one.ref.image_id)
        sidecar = sidecar_of(root / saved.key)
        assert sidecar["file"]["sha256"] == hashlib.sha256(data).hexdigest() == saved.sha256
    assert sorted(line["id"] for line in index_of(root)) == list(range(1, 9))
    assert list(root.rglob(PARTIAL)) == []


async def test_the_index_names_a_group_before_it_lands_and_folders_are_fsynced_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "out"
    seen: list[tuple[str, int, int, int]] = []  # (moment, files, sidecars, index lines)

    def on_disk(folder: Path) -> tuple[int, int]:
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        return sum(n.endswith(".png") for n in names), sum(n.endswith(".json") for n in names)

    def recording_fsync_dir(where: str | Path) -> None:
        seen.append((f"fsync {Path(where).name}", *on_disk(Path(where)), len(index_of(root))))

    class Watched(Recorded):
        def _record(self, image: ProductImage, key: str, size: int) -> None:
            folder = root / str(image.ref.product_id)
            told = len(self._opened().entries)  # the rows the index tells (written or not)
            seen.append((f"index {image.ref.image_id}", *on_disk(folder), told))
            super()._record(image, key, size)

    monkeypatch.setattr(folder, "fsync_dir", recording_fsync_dir)
    destination = Watched(root)
    await destination.open()
    try:
        outcomes = await commit_together(destination, [image(1 + n % 2, n + 1) for n in range(8)])
    finally:
        await destination.close()
    assert all(isinstance(outcome, SavedFile) for outcome in outcomes)
    assert destination.groups == [1, 7]
    # Group one: image 1. Group two: the seven others, in folders 2 and 1: every index
    # line before the group's first file lands; each folder fsynced once, after every
    # file and sidecar of the group is in place.
    assert seen == [
        ("index 1", 0, 0, 0), ("fsync 1", 1, 1, 1),
        ("index 2", 0, 0, 1), ("index 3", 1, 1, 2), ("index 4", 0, 0, 3), ("index 5", 1, 1, 4),
        ("index 6", 0, 0, 5), ("index 7", 1, 1, 6), ("index 8", 0, 0, 7),
        ("fsync 2", 4, 4, 8), ("fsync 1", 4, 4, 8),
    ]  # fmt: skip


async def test_a_sidecar_lands_only_once_its_index_row_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The index's rows are written by a thread of its own: a group waits for them
    # before its sidecars land, so a kill never leaves a done export the index lacks.
    root = tmp_path / "out"
    events: list[str] = []
    real_apply, real_write = index_module._apply, folder.write_atomic_sync

    def slow_apply(db: Any, changes: Any) -> None:
        time.sleep(0.05)  # a writer held back (a checkpoint's fsync on a busy disk)
        real_apply(db, changes)
        events.extend(f"row {ref.image_id}" for _number, ref, _entry in changes)

    def watched_write(path: Any, data: bytes, **options: Any) -> None:
        if str(path).endswith(".json"):
            events.append(f"sidecar {Path(path).name.removesuffix('.png.json')}")
        real_write(path, data, **options)

    destination = Recorded(root)
    await destination.open()
    monkeypatch.setattr(index_module, "_apply", slow_apply)
    monkeypatch.setattr(folder, "write_atomic_sync", watched_write)
    try:
        outcomes = await commit_together(destination, [image(1, n) for n in range(1, 6)])
    finally:
        await destination.close()
    assert all(isinstance(outcome, SavedFile) for outcome in outcomes)
    for n in range(1, 6):
        assert events.index(f"row {n}") < events.index(f"sidecar {n}")


async def test_one_member_failing_fails_only_itself(tmp_path: Path) -> None:
    root = tmp_path / "out"
    destination = Recorded(root)
    await destination.open()
    try:
        images = [image(1 + n % 2, n + 1) for n in range(8)]
        taken = root / "2" / "4.png.json"  # image 4's sidecar place, taken by a folder
        outcomes = await commit_together(
            destination, images, lambda: taken.mkdir(parents=True, exist_ok=True)
        )
        done = {one.ref.image_id for one in images if destination.is_done(one.ref)}
    finally:
        await destination.close()
    failed = outcomes[3]
    assert isinstance(failed, OutputError)
    assert "cannot write the sidecar" in str(failed)
    assert not (root / "2" / "4.png").exists()  # its file taken back with it
    assert done == {1, 2, 3, 5, 6, 7, 8}
    assert list(root.rglob(PARTIAL)) == []


async def test_a_full_disk_mid_group_fails_the_rest_clearly_and_leaves_nothing_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filling_writev = disk_full_after(3)  # the disk is full from the fourth file on

    monkeypatch.setattr(os, "writev", filling_writev)
    root = tmp_path / "out"
    destination = Recorded(root)
    await destination.open()
    try:
        images = [image(1 + n % 2, n + 1) for n in range(8)]
        outcomes = await commit_together(destination, images)
        done = {one.ref.image_id for one in images if destination.is_done(one.ref)}
    finally:
        await destination.close()
    assert destination.groups == [1, 7]
    assert all(isinstance(outcome, SavedFile) for outcome in outcomes[:3])
    for outcome in outcomes[3:]:
        assert isinstance(outcome, OutputError)
        assert "No space left on device" in str(outcome)
    assert done == {1, 2, 3}
    assert list(root.rglob(PARTIAL)) == []
    on_disk = {p.relative_to(root).as_posix() for p in exported_files(root)}
    assert on_disk == {"1/1.png", "2/2.png", "1/3.png"}


async def test_a_large_body_streams_to_its_temporary_and_a_small_one_waits_in_memory(
    tmp_path: Path,
) -> None:
    root = tmp_path / "out"
    destination = FolderDestination(OutputConfig(root, LAYOUT), "example.bitrix24.com")
    await destination.open()
    try:
        small = await destination.open_sink(image(1, 1), "image/png")
        await small.write([PNG])
        large = await destination.open_sink(image(1, 2), "image/png")
        await large.write([PNG, bytes(SMALL_BODY_BYTES)])
        assert len(list(root.rglob(PARTIAL))) == 1  # the large one's, nothing of the small
        saved = [await destination.commit(image(1, n), s) for n, s in ((1, small), (2, large))]
    finally:
        await destination.close()
    assert [s.size for s in saved] == [len(PNG), len(PNG) + SMALL_BODY_BYTES]
    assert (root / "1" / "2.png").read_bytes() == PNG + bytes(SMALL_BODY_BYTES)
    assert list(root.rglob(PARTIAL)) == []


async def test_a_large_file_is_fsynced_on_its_own_before_it_joins_a_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, int]] = []  # ("fsync", file size), ("group", a member's size)
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        size = os.fstat(fd).st_size
        if size > 0:  # files, not folders of zero length on tmpfs
            events.append(("fsync", size))
        real_fsync(fd)

    class Watched(Recorded):
        def _land_group(self, group: Sequence[Any]) -> list[SavedFile | BaseException]:
            events.extend(("group", sink.size) for _, sink in group)
            return super()._land_group(group)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    root = tmp_path / "out"
    destination = Watched(root)
    await destination.open()
    large = len(PNG) + SMALL_BODY_BYTES
    try:
        sinks = []
        for n, pieces in enumerate(([PNG, bytes(SMALL_BODY_BYTES)], [PNG]), start=1):
            sink = await destination.open_sink(image(1, n), "image/png")
            await sink.write(pieces)
            sinks.append(sink)
        async with anyio.create_task_group() as tg:
            for n, sink in enumerate(sinks, start=1):
                tg.start_soon(destination.commit, image(1, n), sink)
    finally:
        await destination.close()
    assert events.index(("fsync", large)) < events.index(("group", large))
    assert events.index(("group", len(PNG))) < events.index(("fsync", len(PNG)))
    assert (root / "1" / "1.png").stat().st_size == large
    assert (root / "1" / "2.png").read_bytes() == PNG


# End to end, against the simulated portal.


class SimulatedKill(Exception):
    """Stands for kill -9 at one chosen moment."""


def done_on_disk(out: Path) -> set[int]:
    """Image ids that count as done by the contract: a sidecar, and a file of its size."""
    done = set()
    for file in exported_files(out):
        sidecar = file.with_name(file.name + ".json")
        if sidecar.is_file():
            document = json.loads(sidecar.read_text(encoding="utf-8"))
            if document["file"]["size"] == file.stat().st_size:
                done.add(document["productImage"]["id"])
    return done


class KilledBeforeTheSecondGroupLands(FolderDestination):
    """Killed with a group's index lines written and nothing of it on disk yet."""

    groups = 0

    def _land_group(self, group: Sequence[Any]) -> list[SavedFile | BaseException]:
        self.groups += 1
        if self.groups >= 2:  # and from then on: a killed process writes nothing more
            raise SimulatedKill
        return super()._land_group(group)


class KilledBeforeTheFifthSidecar(FolderDestination):
    """Killed inside a group, between a file in place and its sidecar."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sidecars = 0

    def _land_group(self, group: Sequence[Any]) -> list[SavedFile | BaseException]:
        real = folder.write_atomic_sync

        def dying(path: Any, data: bytes, **options: Any) -> None:
            self.sidecars += 1
            if self.sidecars >= 5:
                raise SimulatedKill
            real(path, data, **options)

        folder.write_atomic_sync = dying  # type: ignore[assignment]
        try:
            return super()._land_group(group)
        finally:
            folder.write_atomic_sync = real


@pytest.mark.parametrize(
    ("dying", "cut_short"),
    [(KilledBeforeTheSecondGroupLands, False), (KilledBeforeTheFifthSidecar, True)],
    ids=["before the group lands", "between a file and its sidecar"],
)  # fmt: skip
async def test_a_kill_inside_a_group_leaves_the_next_run_only_what_was_not_done(
    tmp_path: Path, dying: type[FolderDestination], cut_short: bool
) -> None:
    # Index lines ahead of their files, and files under their final names without
    # sidecars, are not done: the next run fetches those images again onto the same
    # names, and skips exactly the images done on disk.
    catalog = Catalog.generate(products=3, images=24, seed=61, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        config = export_config(portal.webhook_url, manifest, out)
        with pytest.raises(SimulatedKill):
            await ExportJob(config, destination=dying(config.output, config.portal.host)).run()
        done_before = done_on_disk(out)
        without_sidecar = len(exported_files(out)) - len(done_before)
        indexed = {line["id"] for line in index_of(out)}
        portal.stats.reset()
        result = await ExportJob(config).run()
        downloads = portal.stats.downloads
    assert done_before
    assert done_before < indexed  # the index is ahead of the disk, never behind it
    assert (without_sidecar > 0) is cut_short
    assert result.exit_code == 0
    assert result.report["counts"]["skipped"] == len(done_before)
    assert downloads == 24 - len(done_before)
    assert len(exported_files(out)) == 24  # the same names again, no "-2" copies
    assert list(out.rglob(PARTIAL)) == []
    for file in exported_files(out):
        image_id = sidecar_of(file)["productImage"]["id"]
        assert file.read_bytes() == catalog.image_bytes(image_id)


async def test_a_disk_filling_up_mid_run_stops_it_with_exit_4_and_the_next_run_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filling_writev = disk_full_after(10)

    catalog = Catalog.generate(products=4, images=40, seed=62, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        config = export_config(portal.webhook_url, manifest, out)
        with monkeypatch.context() as patched:
            patched.setattr(os, "writev", filling_writev)
            full = await ExportJob(config).run()
        assert full.exit_code == 4
        assert "No space left on device" in full.report["abortedBy"]
        assert list(out.rglob(PARTIAL)) == []
        for file in exported_files(out):
            image_id = sidecar_of(file)["productImage"]["id"]
            assert file.read_bytes() == catalog.image_bytes(image_id)
        assert {line["id"] for line in index_of(out)} >= {
            sidecar_of(file)["productImage"]["id"] for file in exported_files(out)
        }
        again = await ExportJob(config).run()
    assert again.exit_code == 0
    assert again.report["counts"]["skipped"] == full.report["counts"]["exported"]
    assert len(exported_files(out)) == 40
