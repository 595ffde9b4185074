"""Product rows: name, xmlId, type and an offer's parentId; filters by id lists and xmlId."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter.simulator import Catalog, PortalSettings

from .helpers import PortalClient, portal_client

FIELDS = ["id", "iblockId", "name", "xmlId", "type"]


@pytest.fixture
def catalog() -> Catalog:
    """Products 1-60 generated (seed 4); parent 2 with variations 501, 502; offer 503 alone."""
    catalog = Catalog.generate(products=60, images=60, seed=4)
    catalog.add_variation(2, 501, name="Red mug", xml_id="mug-red")
    catalog.add_variation(2, 502)
    catalog.add_product(503, iblock_id=26, name="Lonely offer", xml_id="lonely")
    return catalog


@pytest.fixture
async def client(catalog: Catalog) -> AsyncIterator[PortalClient]:
    async with portal_client(catalog, PortalSettings(rps=None)) as client:
        yield client


async def _rows(client: PortalClient, method: str, key: str, **params: Any) -> list[Any]:
    answer = await client.call(method, params)
    assert answer.status == 200, answer.raw
    rows: list[Any] = answer.json["result"][key]
    return rows


async def _products(client: PortalClient, **params: Any) -> list[Any]:
    return await _rows(client, "catalog.product.list", "products", **params)


async def test_rows_answer_the_selected_fields_in_select_order(
    client: PortalClient, catalog: Catalog
) -> None:
    rows = await _products(client, select=FIELDS, filter={"iblockId": 24, "id": [1, 2]})
    assert rows == [
        {
            "id": 1,
            "iblockId": 24,
            "name": catalog.product_info(1).name,
            "xmlId": catalog.product_info(1).xml_id,
            "type": 1,
        },
        {
            "id": 2,
            "iblockId": 24,
            "name": catalog.product_info(2).name,
            "xmlId": catalog.product_info(2).xml_id,
            "type": 3,
        },
    ]
    assert list(rows[0]) == FIELDS


async def test_generated_products_have_distinct_names_and_xml_ids(client: PortalClient) -> None:
    rows = await _products(client, select=FIELDS, filter={"iblockId": 24})
    assert len({row["xmlId"] for row in rows}) == 50
    assert all(row["name"] and row["name"] != f"Product {row['id']}" for row in rows)


async def test_offers_answer_parent_id_as_value_and_value_id(client: PortalClient) -> None:
    rows = await _rows(
        client,
        "catalog.product.offer.list",
        "offers",
        select=[*FIELDS, "parentId"],
        filter={"iblockId": 26},
    )
    assert [(row["id"], row["name"], row["xmlId"], row["type"]) for row in rows] == [
        (501, "Red mug", "mug-red", 4),
        (502, "Product 502", "502", 4),
        (503, "Lonely offer", "lonely", 5),
    ]
    first, second, lonely = (row["parentId"] for row in rows)
    assert (first["value"], second["value"]) == (2, 2)
    assert set(first) == {"value", "valueId"}
    assert isinstance(first["valueId"], int) and first["valueId"] != second["valueId"]
    assert lonely is None


async def test_products_do_not_answer_parent_id(client: PortalClient) -> None:
    rows = await _products(client, select=["id", "iblockId", "parentId"], filter={"iblockId": 24})
    assert rows[0] == {"id": 1, "iblockId": 24}


async def test_an_id_list_is_in_and_keeps_ascending_order(client: PortalClient) -> None:
    rows = await _products(
        client, select=["id", "iblockId"], filter={"iblockId": 24, "id": [40, 3, 999, 501, 17]}
    )
    assert [row["id"] for row in rows] == [3, 17, 40]


async def test_an_id_list_is_paged_like_any_filter(client: PortalClient) -> None:
    answer = await client.call(
        "catalog.product.list",
        {"select": ["id", "iblockId"], "filter": {"iblockId": 24, "id": list(range(1, 56))}},
    )
    assert len(answer.json["result"]["products"]) == 50
    assert (answer.json["total"], answer.json["next"]) == (55, 50)


async def test_an_id_list_combines_with_a_lower_bound(client: PortalClient) -> None:
    rows = await _products(
        client, select=["id", "iblockId"], filter={"iblockId": 24, "id": [5, 10, 15], ">id": 5}
    )
    assert [row["id"] for row in rows] == [10, 15]


async def test_not_in_an_id_list(client: PortalClient) -> None:
    rows = await _products(
        client, select=["id", "iblockId"], filter={"iblockId": 24, "!id": [1, 2], "<=id": 4}
    )
    assert [row["id"] for row in rows] == [3, 4]


async def test_an_id_list_still_needs_the_iblock_filter(client: PortalClient) -> None:
    answer = await client.call(
        "catalog.product.list", {"select": ["id", "iblockId"], "filter": {"id": [1, 2]}}
    )
    assert answer.status == 400
    assert answer.json["error"] == 0


async def test_an_id_list_in_a_batch_command_query(client: PortalClient) -> None:
    query = "select[]=id&select[]=xmlId&select[]=iblockId&filter[iblockId]=24"
    query += "&filter[id][]=7&filter[id][]=9"
    answer = await client.call("batch", {"cmd": {"page": f"catalog.product.list?{query}"}})
    rows = answer.json["result"]["result"]["page"]["products"]
    assert [(row["id"], list(row)) for row in rows] == [
        (7, ["id", "xmlId", "iblockId"]),
        (9, ["id", "xmlId", "iblockId"]),
    ]


async def test_filter_by_xml_id_list(client: PortalClient, catalog: Catalog) -> None:
    wanted = [catalog.product_info(pid).xml_id for pid in (12, 4)]
    rows = await _products(
        client, select=["id", "iblockId", "xmlId"], filter={"iblockId": 24, "xmlId": wanted}
    )
    assert [row["id"] for row in rows] == [4, 12]


async def test_filter_by_type_on_the_offers_iblock(client: PortalClient) -> None:
    rows = await _rows(
        client,
        "catalog.product.offer.list",
        "offers",
        select=["id", "iblockId"],
        filter={"iblockId": 26, "type": 5},
    )
    assert rows == [{"id": 503, "iblockId": 26}]


def test_same_seed_and_another_first_id_gives_the_same_products_under_other_ids() -> None:
    source = Catalog.generate(products=8, images=20, seed=9)
    target = Catalog.generate(products=8, images=0, seed=9, first_id=301)
    assert target.product_ids() == list(range(301, 309))
    assert target.pairs() == []
    for offset in range(8):
        assert target.product_info(301 + offset) == source.product_info(1 + offset)


def test_another_seed_gives_other_xml_ids() -> None:
    one = Catalog.generate(products=3, images=0, seed=1)
    other = Catalog.generate(products=3, images=0, seed=2)
    assert {one.product_info(pid).xml_id for pid in (1, 2, 3)}.isdisjoint(
        other.product_info(pid).xml_id for pid in (1, 2, 3)
    )


def test_first_id_keeps_image_ids_above_product_ids() -> None:
    catalog = Catalog.generate(products=5, images=5, seed=3, first_id=998)
    assert min(image_id for _, image_id in catalog.pairs()) == 10_001


def test_first_id_must_be_positive() -> None:
    with pytest.raises(ValueError, match="first_id"):
        Catalog.generate(products=1, images=0, first_id=0)


def test_a_twin_has_the_products_under_shifted_ids_and_no_images(catalog: Catalog) -> None:
    twin = catalog.twin(id_offset=10_000)
    assert twin.product_ids() == [pid + 10_000 for pid in catalog.product_ids()]
    assert twin.pairs() == []
    for product_id in catalog.product_ids():
        shifted = product_id + 10_000
        assert twin.product_info(shifted) == catalog.product_info(product_id)
        assert twin.iblock_of(shifted) == catalog.iblock_of(product_id)
        assert twin.product_type(shifted) == catalog.product_type(product_id)
    assert twin.parent_of(10_501) == 10_002
    assert twin.parent_of(10_503) is None
