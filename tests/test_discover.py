"""`discover`: walking the catalog and writing a manifest, over loopback against the simulator."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.errors import ConfigError, FatalPortalError
from exporter.manifest import (
    check_manifest_path,
    iter_manifest,
    validate_manifest,
    write_manifest,
)
from exporter.model import ImageRef
from exporter.portal.catalog import (
    PAGE_SIZE,
    DiscoveryProgress,
    catalog_iblocks,
    discover_images,
    walk_products,
)
from exporter.portal.client import PortalClient
from exporter.portal.metadata import MetadataFetcher
from exporter.simulator import Catalog, PortalSettings
from exporter.simulator import batch as sim_batch
from exporter.simulator import errors as sim_errors
from exporter.simulator import methods as sim_methods
from exporter.simulator.context import CallContext, MethodResult
from exporter.simulator.products import product_list

from .support import client_for, portal_for


async def each(refs: list[ImageRef]) -> AsyncIterator[ImageRef]:
    for ref in refs:
        yield ref


OFFERS_IBLOCK = 26  # the simulator's offers catalog; its productIblockId is 24
IBLOCK_SIZES = {24: 500, OFFERS_IBLOCK: 437, 31: 263}  # 1,200 products; 24 ends on a full page


def three_catalogs(images: int = 5000, seed: int = 11) -> Catalog:
    """Two product iblocks and one offers iblock, product ids interleaved between them."""
    rng = random.Random(seed)
    catalog = Catalog(seed)
    iblocks = [iblock for iblock, size in IBLOCK_SIZES.items() for _ in range(size)]
    rng.shuffle(iblocks)
    ids = sorted(rng.sample(range(1, 100_000), len(iblocks)))
    for product_id, iblock in zip(ids, iblocks, strict=True):
        catalog.add_product(product_id, iblock_id=iblock)
    for _ in range(images):
        catalog.add_image(rng.choice(ids), name="photo.png", size=1)
    return catalog


def fast_paging_pages(size: int) -> int:
    """Pages of one iblock: a full last page needs one more, empty, page to end."""
    return size // PAGE_SIZE + 1


async def discover_all(
    client: PortalClient, progress: DiscoveryProgress | None = None
) -> list[ImageRef]:
    progress = progress or DiscoveryProgress()
    fetcher = MetadataFetcher(client, batch_size=50)
    iblocks = await catalog_iblocks(client, progress)
    pages = walk_products(client, iblocks, progress=progress)
    return [ref async for ref in discover_images(client, fetcher, pages, progress=progress)]


@pytest.fixture
def product_list_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The params of every catalog.product.list the simulator runs."""
    seen: list[dict[str, Any]] = []

    def recording(params: dict[str, Any], context: CallContext) -> MethodResult:
        seen.append(params)
        return product_list(params, context)

    spec = sim_methods.MethodSpec("catalog.product.list", recording)
    monkeypatch.setitem(sim_methods._METHODS, "catalog.product.list", spec)
    yield seen


def deny_iblock(monkeypatch: pytest.MonkeyPatch, denied: int) -> None:
    def refusing(params: dict[str, Any], context: CallContext) -> MethodResult:
        if str(params.get("filter", {}).get("iblockId")) == str(denied):
            raise sim_errors.catalog_access_denied()
        return product_list(params, context)

    spec = sim_methods.MethodSpec("catalog.product.list", refusing)
    monkeypatch.setitem(sim_methods._METHODS, "catalog.product.list", spec)


# The whole catalog


async def test_catalog_iblocks_lists_product_and_offers_catalogs() -> None:
    async with portal_for(three_catalogs(images=0)) as portal, client_for(portal) as client:
        iblocks = await catalog_iblocks(client)
    assert sorted(iblocks) == sorted(IBLOCK_SIZES)


async def test_discover_all_lists_every_image_once_within_the_request_budget() -> None:
    catalog = three_catalogs()
    seen: list[int] = []
    progress = DiscoveryProgress(on_change=lambda p: seen.append(p.requests))
    async with portal_for(catalog) as portal, client_for(portal) as client:
        refs = await discover_all(client, progress)
        stats = portal.stats
    assert seen == sorted(seen)
    assert seen[-1] == stats.rest_requests
    assert len(refs) == len(set(refs)) == 5000
    assert sorted((r.product_id, r.image_id) for r in refs) == sorted(catalog.pairs())
    rounds = max(fast_paging_pages(len(catalog.product_ids(i))) for i in IBLOCK_SIZES)
    products = len(catalog.product_ids())
    needed = 1 + rounds + math.ceil(products / 50)
    assert stats.rest_requests <= 1.1 * needed
    assert progress.requests == stats.rest_requests
    assert (progress.catalogs, progress.products, progress.images) == (3, products, 5000)
    assert progress.complete


async def test_fast_paging_sends_one_start_minus_one_page_per_fifty_products(
    product_list_calls: list[dict[str, Any]],
) -> None:
    catalog = three_catalogs(images=0)
    async with portal_for(catalog) as portal, client_for(portal) as client:
        pages = [page async for page in walk_products(client, await catalog_iblocks(client))]
        stats = portal.stats
    expected = sum(fast_paging_pages(size) for size in IBLOCK_SIZES.values())
    assert (
        stats.commands["catalog.product.list"] + stats.by_method.get("catalog.product.list", 0)
        == expected
    )
    assert len(product_list_calls) == expected
    for params in product_list_calls:
        assert str(params["start"]) == "-1"  # a JSON number when sent alone
        assert params["order"] == {"id": "asc"}
        assert params["select"] == ["id", "iblockId"]
        assert set(params["filter"]) == {"iblockId", ">id"}
    assert sorted(pid for page in pages for pid in page) == catalog.product_ids()


async def test_iblocks_are_walked_side_by_side_in_one_batch_per_round() -> None:
    catalog = three_catalogs(images=0)
    async with portal_for(catalog) as portal, client_for(portal) as client:
        iblocks = await catalog_iblocks(client)
        async for _ in walk_products(client, iblocks):
            pass
        stats = portal.stats
    rounds = max(fast_paging_pages(size) for size in IBLOCK_SIZES.values())
    assert stats.rest_requests == 1 + rounds


async def test_a_portal_refusing_product_list_in_batch_gets_single_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = Catalog(1)
    for product_id in range(1, 131):
        catalog.add_product(product_id, iblock_id=24 if product_id % 3 else 31)
    refused = {"catalog.product.list", "catalog.productimage.list"}
    monkeypatch.setattr(sim_batch, "is_product_image_method", lambda m: m.lower() in refused)
    settings = PortalSettings(rps=None, batch_allows_images=False)
    async with portal_for(catalog, settings) as portal, client_for(portal) as client:
        iblocks = await catalog_iblocks(client)
        pages = [page async for page in walk_products(client, iblocks)]
        stats = portal.stats
    assert sorted(pid for page in pages for pid in page) == catalog.product_ids()
    sizes = [len(catalog.product_ids(iblock)) for iblock in iblocks]
    assert stats.by_method["catalog.product.list"] == sum(map(fast_paging_pages, sizes))
    assert stats.by_method["batch"] == 1  # the first round, refused per command


async def test_an_iblock_answering_access_denied_is_skipped_and_the_others_walked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = three_catalogs()
    deny_iblock(monkeypatch, OFFERS_IBLOCK)
    progress = DiscoveryProgress()
    async with portal_for(catalog) as portal, client_for(portal) as client:
        refs = await discover_all(client, progress)
    offers = set(catalog.product_ids(OFFERS_IBLOCK))
    expected = sorted(pair for pair in catalog.pairs() if pair[0] not in offers)
    assert sorted((r.product_id, r.image_id) for r in refs) == expected
    [(iblock, error)] = progress.skipped_iblocks
    assert iblock == OFFERS_IBLOCK
    assert error.code == str(sim_errors.ACCESS_DENIED_CODE)
    assert not progress.complete


async def test_access_denied_on_every_iblock_refuses_the_discovery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = Catalog(1)
    catalog.add_product(5, iblock_id=24)
    deny_iblock(monkeypatch, 24)
    async with portal_for(catalog) as portal, client_for(portal) as client:
        with pytest.raises(FatalPortalError):
            async for _ in walk_products(client, [24]):
                pass


# Given products


async def test_given_products_list_only_their_images_and_report_unknown_ones() -> None:
    catalog = three_catalogs(images=600)
    chosen = catalog.product_ids()[::40]
    progress = DiscoveryProgress()
    async with portal_for(catalog) as portal, client_for(portal) as client:
        fetcher = MetadataFetcher(client, batch_size=50)
        given = [[*chosen, chosen[0], 999_999]]  # a repeat and a product that does not exist
        refs = [r async for r in discover_images(client, fetcher, given, progress=progress)]
        stats = portal.stats
    wanted = set(chosen)
    assert sorted((r.product_id, r.image_id) for r in refs) == sorted(
        pair for pair in catalog.pairs() if pair[0] in wanted
    )
    assert [pid for pid, _ in progress.failed_products] == [999_999]
    # The product that does not exist is asked once more on its own: in one batch, a
    # portal may answer "not found" for a second catalog's products (reference §5c).
    assert stats.commands["catalog.productImage.list"] == len(chosen) + 1
    assert stats.by_method["catalog.productImage.list"] == 1
    assert stats.rest_requests == math.ceil((len(chosen) + 1) / 50) + 1


# The manifest


@pytest.mark.parametrize("name", ["m.csv", "m.yaml", "m.YML"])
async def test_manifest_round_trips_through_the_reader_without_duplicates(
    tmp_path: Path, name: str
) -> None:
    refs = [ImageRef(1, 10), ImageRef(1, 11), ImageRef(7, 3), ImageRef(1, 10)]
    path = tmp_path / name
    assert await write_manifest(path, each(refs)) == 3
    assert validate_manifest(path) == 3
    rows = [(row.product_id, row.image_id) for row in iter_manifest(path)]
    assert rows == [(1, 10), (1, 11), (7, 3)]


async def test_yaml_manifest_has_one_flow_mapping_per_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    await write_manifest(path, each([ImageRef(1, 2)]))
    assert path.read_text(encoding="utf-8") == "images:\n  - {productId: 1, id: 2}\n"


async def test_manifest_streams_from_an_async_discovery(tmp_path: Path) -> None:
    catalog = three_catalogs(images=300)
    path = tmp_path / "all.csv"
    async with portal_for(catalog) as portal, client_for(portal) as client:
        fetcher = MetadataFetcher(client, batch_size=50)
        pages = walk_products(client, await catalog_iblocks(client))
        assert await write_manifest(path, discover_images(client, fetcher, pages)) == 300
    rows = sorted((row.product_id, row.image_id) for row in iter_manifest(path))
    assert rows == sorted(catalog.pairs())


@pytest.mark.parametrize("name", ["m.txt", "m.json", "manifest"])
async def test_unknown_manifest_extension_is_refused_before_any_request(
    tmp_path: Path, name: str
) -> None:
    catalog = three_catalogs(images=10)
    async with portal_for(catalog) as portal:
        with pytest.raises(ConfigError):
            check_manifest_path(tmp_path / name)
        with pytest.raises(ConfigError):
            await write_manifest(tmp_path / name, each([ImageRef(1, 2)]))
        assert portal.stats.http_requests == 0
    assert list(tmp_path.iterdir()) == []


def test_manifest_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        check_manifest_path(tmp_path / "nowhere" / "m.csv")


async def test_a_writer_failing_midway_leaves_no_file_and_the_old_manifest_intact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.csv"
    path.write_text("productId,id\n5,6\n", encoding="utf-8")

    async def failing() -> AsyncIterator[ImageRef]:
        for image_id in range(1, 1000):
            yield ImageRef(1, image_id)
        raise FatalPortalError("ACCESS_DENIED", "refused midway")

    with pytest.raises(FatalPortalError):
        await write_manifest(path, failing())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]
    assert path.read_text(encoding="utf-8") == "productId,id\n5,6\n"
