"""Two simulated portals side by side: a source and a migration target matched by xmlId."""

from __future__ import annotations

from typing import Any

from exporter.simulator import Catalog, PortalSettings

from .helpers import PortalClient, portal_client

SELECT = ["id", "iblockId", "xmlId", "name", "type"]


async def _walk(client: PortalClient, method: str, key: str, iblock: int) -> list[Any]:
    """Every row of an iblock, by fast paging (start=-1, >id)."""
    rows: list[Any] = []
    while True:
        after = rows[-1]["id"] if rows else 0
        answer = await client.call(
            method,
            {
                "select": [*SELECT, "parentId"] if key == "offers" else SELECT,
                "filter": {"iblockId": iblock, ">id": after},
                "order": {"id": "asc"},
                "start": -1,
            },
        )
        assert answer.status == 200, answer.raw
        page = answer.json["result"][key]
        rows.extend(page)
        if len(page) < 50:
            return rows


async def _products(client: PortalClient) -> list[Any]:
    return await _walk(client, "catalog.product.list", "products", 24)


async def test_source_and_target_list_the_same_xml_ids_under_other_ids() -> None:
    source = Catalog.generate(products=70, images=90, seed=3)
    target = Catalog.generate(products=70, images=0, seed=3, first_id=701)
    async with (
        portal_client(source, PortalSettings(rps=None)) as old,
        portal_client(target, PortalSettings(rps=None)) as new,
    ):
        old_rows = await _products(old)
        new_rows = await _products(new)
        foreign_webhook = new.running.webhook_url.replace(
            new.running.base_url, old.running.base_url
        )
        crossed = await old.send("POST", foreign_webhook + "catalog.productImage.getFields")
    assert old.running.base_url != new.running.base_url
    assert len(old_rows) == len(new_rows) == 70
    assert {row["id"] for row in old_rows}.isdisjoint(row["id"] for row in new_rows)
    assert [(row["xmlId"], row["name"], row["type"]) for row in old_rows] == [
        (row["xmlId"], row["name"], row["type"]) for row in new_rows
    ]
    assert crossed.status == 401


async def test_images_copied_by_xml_id_arrive_byte_for_byte() -> None:
    source = Catalog.generate(products=5, images=14, seed=8, image_size=(200, 3_000))
    target = Catalog.generate(products=5, images=0, seed=8, first_id=9_001)
    async with (
        portal_client(source, PortalSettings(rps=None)) as old,
        portal_client(target, PortalSettings(rps=None)) as new,
    ):
        target_of = {row["xmlId"]: row["id"] for row in await _products(new)}
        copied: dict[int, list[tuple[str, str, bytes]]] = {}
        for row in await _products(old):
            destination = target_of[row["xmlId"]]
            for image in await old.listed(row["id"]):
                data = (await old.download(image["downloadUrl"])).raw
                added = await new.add_image(destination, data, image["name"], image["type"])
                assert added.status == 200, added.raw
                copied.setdefault(destination, []).append((image["name"], image["type"], data))
        restored = {
            product_id: [
                (image["name"], image["type"], (await new.download(image["downloadUrl"])).raw)
                for image in await new.listed(product_id)
            ]
            for product_id in target_of.values()
        }
        old_stats, new_stats = old.stats, new.stats
    assert restored == {pid: copied.get(pid, []) for pid in target_of.values()}
    assert sum(new_stats.adds_by_product.values()) == 14
    assert (new_stats.duplicate_adds, new_stats.downloads) == (0, 14)
    assert (sum(old_stats.adds_by_product.values()), old_stats.downloads) == (0, 14)


async def test_a_twin_keeps_variations_under_parents_with_the_same_xml_ids() -> None:
    source = Catalog()
    source.add_product(1, name="Mug", xml_id="mug")
    source.add_variation(1, 501, name="Mug red", xml_id="mug#red")
    source.add_variation(1, 502, name="Mug blue", xml_id="mug#blue")
    source.add_product(2, name="Plate", xml_id="plate")
    target = source.twin(id_offset=40_000)
    async with (
        portal_client(source, PortalSettings(rps=None)) as old,
        portal_client(target, PortalSettings(rps=None)) as new,
    ):
        portals = [
            (
                await _products(client),
                await _walk(client, "catalog.product.offer.list", "offers", 26),
            )
            for client in (old, new)
        ]

    def parents_by_xml_id(products: list[Any], offers: list[Any]) -> set[tuple[str, str]]:
        xml_id_of = {row["id"]: row["xmlId"] for row in products}
        return {(offer["xmlId"], xml_id_of[offer["parentId"]["value"]]) for offer in offers}

    (old_products, old_offers), (new_products, new_offers) = portals
    assert [row["id"] for row in new_offers] == [40_501, 40_502]
    assert parents_by_xml_id(old_products, old_offers) == {("mug#red", "mug"), ("mug#blue", "mug")}
    assert parents_by_xml_id(new_products, new_offers) == parents_by_xml_id(
        old_products, old_offers
    )
    assert [row["type"] for row in new_products] == [3, 1]
