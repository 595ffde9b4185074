"""The destination protocol, one suite for every implementation: the folder and the store.

Each implementation comes with a harness that builds it and reads back what it holds,
so the same tests prove each one: whole or nothing, one name per image, done after a
commit, nothing left of a discarded or abandoned file, one writer at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from exporter.atomic import is_temporary
from exporter.config import OutputConfig, StoreConfig, store_state_dir
from exporter.destination.base import Destination
from exporter.destination.folder import FolderDestination
from exporter.destination.index import STATE_DIR
from exporter.destination.store import StoreDestination
from exporter.errors import LockedError, OutputError
from exporter.model import ImageRef, ProductImage
from tests.conftest import use_seaweed_identity
from tests.seaweed import TEST_BUCKET, SeaweedFS

T = TypeVar("T")
MiB = 1024 * 1024
LAYOUT = "{productId}/{name}"  # two images of one name collide: the destination must tell
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


@dataclass
class Harness:
    """Builds one kind of destination and reads back what it holds."""

    make: Callable[[], Destination]
    listing: Callable[[], set[str]]  # every key it holds, sidecars and leftovers included
    read: Callable[[str], bytes]
    leftovers: Callable[[], set[str]]  # what a file on its way leaves (temporaries, uploads)


def folder_harness(root: Path) -> Harness:
    def listing() -> set[str]:
        return {
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and STATE_DIR not in p.parts
        }

    return Harness(
        make=lambda: FolderDestination(OutputConfig(root, LAYOUT), "example.bitrix24.com"),
        listing=listing,
        read=lambda key: (root / key).read_bytes(),
        leftovers=lambda: {p.name for p in root.rglob("*") if is_temporary(p)},
    )


_stores = iter(range(1, 100_000))


def store_harness(server: SeaweedFS) -> Harness:
    """A fresh prefix of the test bucket in a real SeaweedFS, read back with a client of
    the test's own (on a thread of its own, so the sync reads work inside a test's loop)."""
    prefix = f"destination-{os.getpid()}-{next(_stores)}"
    store = StoreConfig(f"s3://{TEST_BUCKET}/{prefix}", TEST_BUCKET, prefix, server.endpoint)
    output = OutputConfig(store_state_dir(store, os.environ), LAYOUT, store)

    async def uploads() -> set[str]:
        async with server.client() as s3:
            page = await s3.list_multipart_uploads(Bucket=TEST_BUCKET, Prefix=prefix + "/")
            return {upload["Key"] for upload in page.get("Uploads") or []}

    async def objects() -> dict[str, bytes]:
        async with server.client() as client_:
            found: dict[str, bytes] = {}
            pages = client_.get_paginator("list_objects_v2").paginate(
                Bucket=TEST_BUCKET, Prefix=prefix + "/"
            )
            async for page in pages:
                for item in page.get("Contents") or []:
                    key = item["Key"][len(prefix) + 1 :]
                    if not key.startswith(STATE_DIR + "/"):
                        got = await client_.get_object(Bucket=TEST_BUCKET, Key=item["Key"])
                        async with got["Body"] as body:
                            found[key] = await body.read()
            return found

    def aside(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, work()).result()

    return Harness(
        make=lambda: StoreDestination(output, "example.bitrix24.com"),
        listing=lambda: set(aside(objects)),
        read=lambda key: aside(objects)[key],
        leftovers=lambda: aside(uploads),
    )


@pytest.fixture(params=["folder", "store"])
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Harness:
    if request.param == "store":
        use_seaweed_identity(monkeypatch, tmp_path)
        return store_harness(request.getfixturevalue("seaweed"))
    return folder_harness(tmp_path / "export")


@pytest.fixture
async def destination(harness: Harness) -> AsyncIterator[Destination]:
    dest = harness.make()
    await dest.open()
    yield dest
    await dest.close()


def image(product_id: int, image_id: int, name: str = "front.png") -> ProductImage:
    fields = {"id": image_id, "productId": product_id, "name": name, "type": "MORE_PHOTO"}
    return ProductImage(
        ref=ImageRef(product_id, image_id),
        name=name,
        type="MORE_PHOTO",
        fields=fields,
        method="catalog.productImage.get",
        download_url="https://example.bitrix24.com/rest/download.json?auth=x&token=y",
    )


async def test_a_committed_file_lands_whole_with_its_sidecar_and_counts_as_done(
    harness: Harness, destination: Destination
) -> None:
    one = image(1, 7)
    sink = await destination.open_sink(one, "image/png")
    await sink.write([PNG[:100], PNG[100:]])
    saved = await destination.commit(one, sink)
    await destination.close()
    assert saved.key == "1/front.png"
    assert (saved.size, saved.sha256) == (len(PNG), hashlib.sha256(PNG).hexdigest())
    assert saved.content_type == "image/png"
    assert harness.read(saved.key) == PNG
    sidecar = json.loads(harness.read(saved.key + ".json"))
    assert sidecar["file"] == {
        "name": "front.png",
        "size": len(PNG),
        "sha256": saved.sha256,
        "contentType": "image/png",
    }
    again = harness.make()
    await again.open()
    try:
        assert again.is_done(one.ref)
        assert not again.is_done(ImageRef(1, 8))
    finally:
        await again.close()


async def test_nothing_is_under_its_final_name_before_the_commit(
    harness: Harness, destination: Destination
) -> None:
    one = image(2, 9)
    sink = await destination.open_sink(one, "image/png")
    await sink.write([PNG])
    assert sink.key not in harness.listing()
    assert not destination.is_done(one.ref)
    sink.discard()


async def test_a_discarded_file_leaves_nothing(harness: Harness, destination: Destination) -> None:
    sink = await destination.open_sink(image(3, 1), "image/png")
    await sink.write([PNG])
    sink.discard()
    sink.discard()  # twice is harmless: cleanup paths may meet the same sink again
    assert harness.listing() == set()


async def test_a_file_abandoned_by_a_killed_run_is_gone_after_the_next_open(
    harness: Harness, destination: Destination
) -> None:
    sink = await destination.open_sink(image(3, 2), "image/png")
    big = [PNG, *(bytes(MiB) for _ in range(12))]  # more than a part: on its way in parts
    await sink.write(big)  # never committed nor discarded: the process died here
    await destination.close()
    assert harness.leftovers() != set()
    next_run = harness.make()
    await next_run.open()
    try:
        assert harness.listing() == set()
        assert harness.leftovers() == set()
    finally:
        await next_run.close()


async def test_a_completed_run_leaves_nothing_on_its_way(
    harness: Harness, destination: Destination
) -> None:
    for n, size in enumerate((1, 7, 13)):  # one piece, and files of several parts
        one = image(6, n + 1, f"poster {n}.png")
        sink = await destination.open_sink(one, "image/png")
        await sink.write([PNG, *(bytes(MiB) for _ in range(size))])
        await destination.commit(one, sink)
    await destination.close()
    assert harness.leftovers() == set()
    assert len(harness.listing()) == 6


async def test_an_image_gets_the_same_name_on_every_attempt(destination: Destination) -> None:
    one = image(4, 1)
    first = await destination.open_sink(one, "image/png")
    first.discard()  # a download that failed, to be retried
    second = await destination.open_sink(one, "image/png")
    second.discard()
    assert first.key == second.key


async def test_two_images_of_one_name_get_two_names(
    harness: Harness, destination: Destination
) -> None:
    keys = []
    for one in (image(5, 1, "same.png"), image(5, 2, "SAME.png"), image(5, 3, "same.png")):
        sink = await destination.open_sink(one, "image/png")
        await sink.write([PNG])
        keys.append((await destination.commit(one, sink)).key)
    assert len({key.casefold() for key in keys}) == 3  # apart on a case-blind disk too
    assert all(harness.read(key) == PNG for key in keys)


async def test_a_second_writer_is_refused_while_one_holds_the_destination(
    harness: Harness, destination: Destination
) -> None:
    with pytest.raises(LockedError):
        await harness.make().open()


async def test_reading_what_is_done_takes_no_lock_and_writes_nothing(harness: Harness) -> None:
    reader = harness.make()
    await reader.open(write=False)
    try:
        assert not reader.is_done(ImageRef(1, 1))
        assert harness.listing() == set()
        writer = harness.make()
        await writer.open()  # not refused: the reader holds no lock
        await writer.close()
    finally:
        await reader.close()


# The folder's own ways of failing.


async def test_a_folder_that_cannot_be_created_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot create"):
        await FolderDestination(OutputConfig(blocker / "out", LAYOUT), "portal").open()


async def test_a_sidecar_that_cannot_be_written_takes_its_file_back(tmp_path: Path) -> None:
    root = tmp_path / "export"
    destination = FolderDestination(OutputConfig(root, LAYOUT), "example.bitrix24.com")
    await destination.open()
    try:
        one = image(6, 1)
        sink = await destination.open_sink(one, "image/png")
        await sink.write([PNG])
        (root / (sink.key + ".json")).mkdir(parents=True)  # the sidecar's place: a folder
        with pytest.raises(OutputError, match="cannot write the sidecar"):
            await destination.commit(one, sink)
        assert not (root / sink.key).exists()
        assert not destination.is_done(one.ref)
    finally:
        await destination.close()
