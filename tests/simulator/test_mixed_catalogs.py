"""Two product catalogs in one batch: with the quirk on, only the first one's products are found."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter.simulator import Catalog, PortalSettings

from .helpers import PortalClient, portal_client

NOT_FOUND = {"error": 0, "error_description": "Product was not found"}
FIRST, SECOND, VARIATION = 1, 40, 501
"""A product of catalog 24, one of catalog 30, a variation of product 1 (offers catalog 26)."""


@pytest.fixture
def catalog() -> Catalog:
    catalog = Catalog()
    catalog.add_image(FIRST, name="first.png", image_id=2001)
    catalog.add_product(SECOND, iblock_id=30)
    catalog.add_image(SECOND, name="second.png", image_id=2040)
    catalog.add_variation(FIRST, VARIATION)
    catalog.add_image(VARIATION, name="variation.png", image_id=2501)
    return catalog


@pytest.fixture
async def quirky(catalog: Catalog) -> AsyncIterator[PortalClient]:
    async with portal_client(catalog, PortalSettings(rps=None, batch_first_catalog_only=True)) as c:
        yield c


def _list(product_id: int) -> str:
    return f"catalog.productImage.list?productId={product_id}"


async def _batch(client: PortalClient, cmd: dict[str, str]) -> Any:
    answer = await client.call("batch", {"cmd": cmd})
    assert answer.status == 200, answer.raw
    return answer.json["result"]


async def test_image_commands_for_a_second_catalog_are_not_found(quirky: PortalClient) -> None:
    result = await _batch(
        quirky,
        {
            "a": f"catalog.productImage.get?productId={FIRST}&id=2001",
            "b": _list(SECOND),
            "c": f"catalog.productImage.get?productId={SECOND}&id=2040",
        },
    )
    assert set(result["result"]) == {"a"}
    assert result["result_error"] == {"b": NOT_FOUND, "c": NOT_FOUND}


async def test_the_same_calls_alone_succeed(quirky: PortalClient) -> None:
    listed = await quirky.call("catalog.productImage.list", {"productId": SECOND})
    got = await quirky.call("catalog.productImage.get", {"productId": SECOND, "id": 2040})
    assert listed.status == 200
    assert [image["id"] for image in listed.json["result"]["productImages"]] == [2040]
    assert got.status == 200


async def test_the_first_catalog_a_batch_looks_up_wins(quirky: PortalClient) -> None:
    result = await _batch(
        quirky, {"x": _list(99_999), "s": _list(SECOND), "f": _list(FIRST), "v": _list(VARIATION)}
    )
    assert set(result["result"]) == {"s"}
    assert result["result_error"] == {"x": NOT_FOUND, "f": NOT_FOUND, "v": NOT_FOUND}


async def test_a_catalog_and_its_offers_share_one_batch(quirky: PortalClient) -> None:
    result = await _batch(quirky, {"f": _list(FIRST), "v": _list(VARIATION)})
    assert set(result["result"]) == {"f", "v"}
    assert result["result_error"] == []


async def test_every_batch_starts_afresh(quirky: PortalClient) -> None:
    await _batch(quirky, {"f": _list(FIRST)})
    result = await _batch(quirky, {"s": _list(SECOND)})
    assert set(result["result"]) == {"s"}


async def test_without_the_quirk_a_batch_mixes_catalogs(catalog: Catalog) -> None:
    async with portal_client(catalog, PortalSettings(rps=None)) as client:
        result = await _batch(client, {"f": _list(FIRST), "s": _list(SECOND)})
    assert set(result["result"]) == {"f", "s"}
    assert result["result_error"] == []
