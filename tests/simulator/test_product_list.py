"""catalog.product.list: required select/filter, paging by 50, and the start=-1 fast mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter.simulator import Catalog, PortalSettings

from .helpers import PortalClient, portal_client

SELECT = ["id", "iblockId"]


@pytest.fixture
async def big() -> AsyncIterator[PortalClient]:
    """A catalog of 120 products in iblock 24 and 3 offers in iblock 26."""
    catalog = Catalog.generate(products=120, images=120, seed=5)
    for product_id in (1001, 1002, 1003):
        catalog.add_product(product_id, iblock_id=26)
    async with portal_client(catalog, PortalSettings(rps=None)) as client:
        yield client


async def _page(client: PortalClient, **params: Any) -> Any:
    body = {"select": SELECT, "filter": {"iblockId": 24}, **params}
    answer = await client.call("catalog.product.list", body)
    assert answer.status == 200, answer.raw
    return answer.json


def _ids(page: Any) -> list[int]:
    return [product["id"] for product in page["result"]["products"]]


async def test_first_page_has_50_products_total_and_next(big: PortalClient) -> None:
    page = await _page(big)
    assert _ids(page) == list(range(1, 51))
    assert page["total"] == 120
    assert page["next"] == 50


async def test_products_carry_id_and_iblock_id(big: PortalClient) -> None:
    page = await _page(big)
    assert page["result"]["products"][0] == {"id": 1, "iblockId": 24}


async def test_last_page_has_no_next(big: PortalClient) -> None:
    page = await _page(big, start=100)
    assert _ids(page) == list(range(101, 121))
    assert page["total"] == 120
    assert "next" not in page


async def test_start_minus_one_sends_neither_total_nor_next(big: PortalClient) -> None:
    page = await _page(big, start=-1, order={"id": "asc"}, filter={"iblockId": 24, ">id": 60})
    assert _ids(page) == list(range(61, 111))
    assert "total" not in page and "next" not in page


async def test_fast_paging_walks_the_whole_iblock(big: PortalClient) -> None:
    seen: list[int] = []
    while True:
        page = await _page(big, start=-1, filter={"iblockId": 24, ">id": seen[-1] if seen else 0})
        seen.extend(_ids(page))
        if len(_ids(page)) < 50:
            break
    assert seen == list(range(1, 121))


async def test_filter_on_iblock_returns_only_that_iblock(big: PortalClient) -> None:
    page = await _page(big, filter={"iblockId": 26})
    assert _ids(page) == [1001, 1002, 1003]
    assert page["total"] == 3


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({">=id": 118}, [118, 119, 120]),
        ({"=id": 7}, [7]),
        ({"id": [3, 5]}, [3, 5]),
        ({"<id": 3}, [1, 2]),
    ],
)
async def test_id_filters_narrow_the_result(
    big: PortalClient, condition: dict[str, Any], expected: list[int]
) -> None:
    page = await _page(big, filter={"iblockId": 24, **condition})
    assert _ids(page) == expected


async def test_descending_order_starts_from_the_highest_id(big: PortalClient) -> None:
    page = await _page(big, order={"id": "desc"})
    assert _ids(page)[:3] == [120, 119, 118]


async def test_select_without_iblock_id_is_error_0(big: PortalClient) -> None:
    answer = await big.call("catalog.product.list", {"select": ["id"], "filter": {"iblockId": 24}})
    assert answer.status == 400
    assert answer.json["error"] == 0


async def test_filter_without_iblock_id_is_error_0(big: PortalClient) -> None:
    answer = await big.call("catalog.product.list", {"select": SELECT, "filter": {">id": 0}})
    assert answer.status == 400
    assert answer.json["error"] == 0


async def test_nested_query_string_params_work(big: PortalClient) -> None:
    query = "select[]=id&select[]=iblockId&filter[iblockId]=24&filter[>id]=115"
    answer = await big.send("GET", f"{big.running.webhook_url}catalog.product.list?{query}")
    assert _ids(answer.json) == [116, 117, 118, 119, 120]


async def test_deny_all_refuses_product_list(catalog: Catalog) -> None:
    async with portal_client(catalog, PortalSettings(rps=None, deny_all=True)) as client:
        answer = await client.call(
            "catalog.product.list", {"select": SELECT, "filter": {"iblockId": 24}}
        )
    assert answer.json == {"error": 200040300010, "error_description": "Access Denied"}


async def test_parents_and_variations_are_listed_with_their_types() -> None:
    catalog = Catalog.generate(products=3, images=3, seed=2)
    catalog.add_variation(2, 501)
    catalog.add_variation(2, 502)
    catalog.add_product(503, iblock_id=26)
    select = ["id", "iblockId", "type"]
    async with portal_client(catalog, PortalSettings(rps=None)) as client:
        products = await client.call(
            "catalog.product.list", {"select": select, "filter": {"iblockId": 24}}
        )
        offers = await client.call(
            "catalog.product.offer.list", {"select": select, "filter": {"iblockId": 26}}
        )
    assert products.json["result"]["products"] == [
        {"id": 1, "iblockId": 24, "type": 1},
        {"id": 2, "iblockId": 24, "type": 3},
        {"id": 3, "iblockId": 24, "type": 1},
    ]
    assert offers.json["result"]["offers"] == [
        {"id": 501, "iblockId": 26, "type": 4},
        {"id": 502, "iblockId": 26, "type": 4},
        {"id": 503, "iblockId": 26, "type": 5},
    ]
