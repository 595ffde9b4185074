"""Group commit: files that finish together are made durable together, and never less so.

A group's files and sidecars are written, fsynced and renamed, then each folder is
fsynced, and only then does the index name them. One member failing fails only itself;
a full disk mid-group leaves each file whole or gone; a kill after the renames and
before the index lines costs the next run those downloads, never a broken export.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from exporter.config import OutputConfig
from exporter.destination import folder
from exporter.destination.folder import SMALL_BODY_BYTES, FolderDestination
from exporter.destination.group import GroupCommit
from exporter.destination.index import INDEX_NAME, STATE_DIR
from exporter.errors import OutputError
from exporter.jobs.export import ExportJob
from exporter.model import ImageRef, ProductImage, SavedFile
from exporter.simulator import Catalog

from .support import export_config, exported_files, portal_for, sidecar_of, write_manifest

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
LAYOUT = "{productId}/{name}"
PARTIAL = "*.b24-partial"
REAL_WRITEV = os.writev


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
    path = root / STATE_DIR / INDEX_NAME
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


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


async def test_the_index_names_a_group_only_after_its_folders_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "out"
    fsynced: list[tuple[str, int, int]] = []  # (folder, files renamed there, index lines)

    def recording_fsync_dir(path: Path) -> None:
        renamed = sum(1 for p in path.iterdir() if p.suffix == ".png")
        lines = len(index_of(root))
        fsynced.append((path.name, renamed, lines))

    monkeypatch.setattr(folder, "fsync_dir", recording_fsync_dir)
    destination = Recorded(root)
    await destination.open()
    try:
        outcomes = await commit_together(destination, [image(1 + n % 2, n + 1) for n in range(8)])
    finally:
        await destination.close()
    assert all(isinstance(outcome, SavedFile) for outcome in outcomes)
    # Group one: image 1 in folder 1. Group two: the seven others, in folders 1 and 2,
    # each folder fsynced once, with every file in place and no index line for them yet.
    assert fsynced == [("1", 1, 0), ("2", 4, 1), ("1", 4, 1)]
    assert len(index_of(root)) == 8


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
    assert sorted(line["id"] for line in index_of(root)) == [1, 2, 3, 5, 6, 7, 8]
    assert list(root.rglob(PARTIAL)) == []


async def test_a_full_disk_mid_group_fails_the_rest_clearly_and_leaves_nothing_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = 0

    def filling_writev(fd: int, buffers: Sequence[bytes]) -> int:
        nonlocal writes
        writes += 1
        if writes >= 4:  # the disk is full from the fourth file on
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return REAL_WRITEV(fd, buffers)

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
    assert sorted(line["id"] for line in index_of(root)) == [1, 2, 3]
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


# End to end, against the simulated portal.


class SimulatedKill(Exception):
    """Stands for kill -9 at one chosen moment."""


async def test_a_kill_after_a_group_is_renamed_and_before_its_index_lines_costs_only_downloads(
    tmp_path: Path,
) -> None:
    # The moment between a group's renames and its index lines: its files and sidecars
    # are whole on disk, the index does not name them. The next run fetches those images
    # again onto the same names (their sidecars say whose they are), nothing doubled.
    class KilledBeforeTheThirdIndexLine(FolderDestination):
        lines = 0

        def _record(self, image: ProductImage, saved: SavedFile) -> None:
            self.lines += 1
            if self.lines >= 3:  # and from then on: a killed process writes nothing more
                raise SimulatedKill
            super()._record(image, saved)

    catalog = Catalog.generate(products=3, images=24, seed=61, image_size=(200, 2000))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    async with portal_for(catalog) as portal:
        config = export_config(portal.webhook_url, manifest, out)
        dying = KilledBeforeTheThirdIndexLine(config.output, config.portal.host)
        with pytest.raises(SimulatedKill):
            await ExportJob(config, destination=dying).run()
        indexed = len(index_of(out))
        on_disk_before = {p.relative_to(out).as_posix() for p in exported_files(out)}
        portal.stats.reset()
        result = await ExportJob(config).run()
        downloads = portal.stats.downloads
    assert indexed == 2
    assert len(on_disk_before) > indexed  # landed whole, not yet named by the index
    assert result.exit_code == 0
    assert downloads == 24 - indexed
    on_disk = {p.relative_to(out).as_posix() for p in exported_files(out)}
    assert on_disk_before <= on_disk
    assert len(on_disk) == 24  # the same names again, no "-2" copies
    assert list(out.rglob(PARTIAL)) == []
    for file in exported_files(out):
        image_id = sidecar_of(file)["productImage"]["id"]
        assert file.read_bytes() == catalog.image_bytes(image_id)


async def test_a_disk_filling_up_mid_run_stops_it_with_exit_4_and_the_next_run_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = 0

    def filling_writev(fd: int, buffers: Sequence[bytes]) -> int:
        nonlocal writes
        writes += 1
        if writes > 10:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return REAL_WRITEV(fd, buffers)

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
        assert {line["id"] for line in index_of(out)} == {
            sidecar_of(file)["productImage"]["id"] for file in exported_files(out)
        }
        again = await ExportJob(config).run()
    assert again.exit_code == 0
    assert again.report["counts"]["skipped"] == full.report["counts"]["exported"]
    assert len(exported_files(out)) == 40
