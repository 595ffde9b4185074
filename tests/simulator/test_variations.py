"""Parents with variations: with the quirk on, a parent's images answer for its newest variation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter.simulator import Catalog, PortalSettings

from .helpers import PortalClient, portal_client

PARENT, OLDER, NEWER = 10, 11, 12


@pytest.fixture
def catalog() -> Catalog:
    """Parent 10 with an image of its own; variations 12 (added first) and 11 with theirs."""
    catalog = Catalog()
    catalog.add_product(PARENT)
    catalog.add_image(PARENT, name="parent.png", image_id=2001, type="DETAIL_PICTURE")
    catalog.add_variation(PARENT, NEWER)
    catalog.add_variation(PARENT, OLDER)
    catalog.add_image(OLDER, name="older.png", image_id=2011)
    catalog.add_image(NEWER, name="newer.png", image_id=2012)
    catalog.add_image(NEWER, name="newer 2.png", image_id=2013)
    catalog.add_image(1, name="simple.png", image_id=2100)
    return catalog


@pytest.fixture
async def quirky(catalog: Catalog) -> AsyncIterator[PortalClient]:
    settings = PortalSettings(rps=None, variations_answer_for_parent=True)
    async with portal_client(catalog, settings) as client:
        yield client


def _listed(answer: Any) -> list[tuple[int, int]]:
    assert answer.status == 200, answer.raw
    return [(image["productId"], image["id"]) for image in answer.json["result"]["productImages"]]


async def test_list_of_a_parent_answers_its_newest_variations_images(quirky: PortalClient) -> None:
    answer = await quirky.call("catalog.productImage.list", {"productId": PARENT})
    assert _listed(answer) == [(NEWER, 2012), (NEWER, 2013)]
    assert answer.json["total"] == 2


async def test_get_of_a_parent_finds_only_the_newest_variations_images(
    quirky: PortalClient,
) -> None:
    variation = await quirky.call("catalog.productImage.get", {"productId": PARENT, "id": 2012})
    own = await quirky.call("catalog.productImage.get", {"productId": PARENT, "id": 2001})
    older = await quirky.call("catalog.productImage.get", {"productId": PARENT, "id": 2011})
    assert variation.status == 200
    assert variation.json["result"]["productImage"]["productId"] == NEWER
    assert variation.json["result"]["productImage"]["id"] == 2012
    for answer in (own, older):
        assert answer.status == 400
        assert answer.json == {"error": 0, "error_description": "Image does not exist"}


async def test_variations_and_simple_products_answer_for_themselves(quirky: PortalClient) -> None:
    older = await quirky.call("catalog.productImage.list", {"productId": OLDER})
    simple = await quirky.call("catalog.productImage.list", {"productId": 1})
    assert _listed(older) == [(OLDER, 2011)]
    assert _listed(simple) == [(1, 2100)]


async def test_inside_batch_a_parent_answers_for_its_newest_variation(
    quirky: PortalClient,
) -> None:
    cmd = {"l10": f"catalog.productImage.list?productId={PARENT}"}
    answer = await quirky.call("batch", {"cmd": cmd})
    images = answer.json["result"]["result"]["l10"]["productImages"]
    assert [image["productId"] for image in images] == [NEWER, NEWER]
    assert answer.json["result"]["result_total"] == {"l10": 2}


async def test_without_the_quirk_a_parent_answers_its_own_images(catalog: Catalog) -> None:
    async with portal_client(catalog, PortalSettings(rps=None)) as client:
        listed = await client.call("catalog.productImage.list", {"productId": PARENT})
        own = await client.call("catalog.productImage.get", {"productId": PARENT, "id": 2001})
        variation = await client.call("catalog.productImage.get", {"productId": PARENT, "id": 2012})
    assert _listed(listed) == [(PARENT, 2001)]
    assert own.json["result"]["productImage"]["productId"] == PARENT
    assert variation.json == {"error": 0, "error_description": "Image does not exist"}


async def test_after_its_newest_variation_is_deleted_a_parent_answers_for_the_next(
    quirky: PortalClient, catalog: Catalog
) -> None:
    catalog.remove_product(NEWER)
    answer = await quirky.call("catalog.productImage.list", {"productId": PARENT})
    assert _listed(answer) == [(OLDER, 2011)]


async def test_a_parent_whose_variations_are_all_deleted_answers_for_itself(
    quirky: PortalClient, catalog: Catalog
) -> None:
    catalog.remove_product(NEWER)
    catalog.remove_product(OLDER)
    images = await quirky.call("catalog.productImage.list", {"productId": PARENT})
    products = await quirky.call(
        "catalog.product.list",
        {"select": ["id", "iblockId", "type"], "filter": {"iblockId": 24, "id": PARENT}},
    )
    assert _listed(images) == [(PARENT, 2001)]
    assert products.json["result"]["products"] == [{"id": PARENT, "iblockId": 24, "type": 6}]


async def test_variations_of_a_deleted_parent_stay_without_a_product(
    quirky: PortalClient, catalog: Catalog
) -> None:
    catalog.remove_product(PARENT)
    parent = await quirky.call("catalog.productImage.list", {"productId": PARENT})
    offers = await quirky.call(
        "catalog.product.offer.list",
        {"select": ["id", "iblockId", "type"], "filter": {"iblockId": 26}},
    )
    older = await quirky.call("catalog.productImage.list", {"productId": OLDER})
    assert parent.json == {"error": 0, "error_description": "Product was not found"}
    assert [row["type"] for row in offers.json["result"]["offers"]] == [5, 5]
    assert _listed(older) == [(OLDER, 2011)]
