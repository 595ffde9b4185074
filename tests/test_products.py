"""Product context from the catalog lists: known ids and external codes looked up in batches."""

from __future__ import annotations

import math
from typing import Any

import pytest

from exporter.config import MAX_BATCH_SIZE
from exporter.model import ProductInfo
from exporter.portal import products as products_module
from exporter.portal.products import describe_products, find_products, walk_described
from exporter.simulator import Catalog
from exporter.simulator import errors as sim_errors
from exporter.simulator import methods as sim_methods
from exporter.simulator.catalog import OFFERS_IBLOCK_ID as OFFERS
from exporter.simulator.catalog import PRODUCT_IBLOCK_ID as PRODUCTS
from exporter.simulator.context import CallContext, MethodResult
from exporter.simulator.products import offer_list

from .support import client_for, portal_for


def catalog_with_variations(products: int = 3000, variations: int = 400) -> Catalog:
    catalog = Catalog.generate(products=products, images=0, seed=5)
    for number in range(variations):
        catalog.add_variation(1 + number % 50, 100_000 + number, name=f"Size {number}")
    return catalog


def expected(catalog: Catalog, product_id: int) -> ProductInfo:
    info = catalog.product_info(product_id)
    return ProductInfo(
        product_id,
        iblock_id=catalog.iblock_of(product_id),
        name=info.name,
        xml_id=info.xml_id,
        type=catalog.product_type(product_id),
        parent_id=catalog.parent_of(product_id),
    )


@pytest.mark.parametrize("slice_calls", [None, MAX_BATCH_SIZE], ids=["default", "one-batch"])
async def test_known_ids_are_described_2500_per_request_variations_with_their_parent(
    monkeypatch: pytest.MonkeyPatch, slice_calls: int | None
) -> None:
    if slice_calls is not None:
        # One batch of page commands a slice: 3,400 products are two slices of the
        # product catalog (2,500 and 900), each read before the next is sent.
        monkeypatch.setattr(products_module, "SLICE_CALLS", slice_calls)
    catalog = catalog_with_variations()
    wanted = catalog.product_ids()
    async with portal_for(catalog) as portal, client_for(portal) as client:
        described, record = await describe_products(client, wanted)
        requests = portal.stats.rest_requests
    assert record.complete
    assert described == {pid: expected(catalog, pid) for pid in wanted}
    assert described[100_007].parent_id == 8 and described[100_007].type == 4
    assert described[8].type == 3
    # One catalog list, the products' own catalog in 2,500s, the offers for the rest.
    assert requests == 1 + math.ceil(3400 / 2500) + math.ceil(400 / 2500)


async def test_an_id_no_catalog_has_is_left_out_and_the_lookup_still_complete() -> None:
    catalog = catalog_with_variations(products=10, variations=0)
    async with portal_for(catalog) as portal, client_for(portal) as client:
        described, record = await describe_products(client, [3, 999_999])
    assert set(described) == {3}
    assert record.complete


async def test_a_catalog_that_refuses_its_list_leaves_the_lookup_incomplete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refusing(params: dict[str, Any], context: CallContext) -> MethodResult:
        raise sim_errors.catalog_access_denied()

    spec = sim_methods.MethodSpec("catalog.product.offer.list", refusing)
    monkeypatch.setitem(sim_methods._METHODS, "catalog.product.offer.list", spec)
    catalog = catalog_with_variations(products=60, variations=5)
    async with portal_for(catalog) as portal, client_for(portal) as client:
        described, record = await describe_products(client, catalog.product_ids())
    assert set(described) == set(catalog.product_ids(PRODUCTS))
    assert not record.complete
    assert [iblock for iblock, _ in record.failed] == [OFFERS]


async def test_codes_naming_many_products_are_all_found_past_a_full_page() -> None:
    catalog = Catalog(1)
    for product_id in range(1, 71):
        catalog.add_product(product_id, xml_id="SHARED" if product_id % 10 else f"own-{product_id}")
    odd = "a+b&c=d/é %2B"  # parse_str would damage this without percent-encoding
    catalog.add_product(500, xml_id=odd)
    async with portal_for(catalog) as portal, client_for(portal) as client:
        matches, record = await find_products(client, "xmlId", ["SHARED", "own-20", odd, "none"])
    assert record.complete
    assert sorted(info.id for info in matches["SHARED"]) == [
        pid for pid in range(1, 71) if pid % 10
    ]
    assert [info.id for info in matches["own-20"]] == [20]
    assert [info.id for info in matches[odd]] == [500]
    assert "none" not in matches


async def test_the_whole_catalog_walked_with_its_context(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    def recording(params: dict[str, Any], context: CallContext) -> MethodResult:
        seen.append(params)
        return offer_list(params, context)

    spec = sim_methods.MethodSpec("catalog.product.offer.list", recording)
    monkeypatch.setitem(sim_methods._METHODS, "catalog.product.offer.list", spec)
    catalog = catalog_with_variations(products=120, variations=70)
    async with portal_for(catalog) as portal, client_for(portal) as client:
        infos = [info async for page in walk_described(client) for info in page]
    assert sorted(infos, key=lambda info: info.id) == [
        expected(catalog, pid) for pid in catalog.product_ids()
    ]
    assert seen and all("parentId" in params["select"] for params in seen)
