"""Adds whose answers are lost after processing, and request bodies above the size cap."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import quote

import aiohttp
import pytest

from exporter.simulator import Catalog, FaultSettings, PortalSettings

from .helpers import Answer, PortalClient, portal_client

HEAD = b"\x89PNG\r\n\x1a\n\x00"


def _lossy(share: float, seed: int = 0) -> PortalSettings:
    return PortalSettings(rps=None, lost_add_answers=share, faults=FaultSettings(seed=seed))


async def _outcomes(client: PortalClient, count: int) -> list[bool]:
    """Send ``count`` different adds to product 1; True where the answer was lost."""
    lost = []
    for index in range(count):
        try:
            answer = await client.add_image(1, HEAD + index.to_bytes(3, "big"))
        except aiohttp.ServerDisconnectedError:
            lost.append(True)
        else:
            assert answer.status == 200, answer.raw
            lost.append(False)
    return lost


# Lost answers


async def test_a_lost_add_was_processed_all_the_same(catalog: Catalog) -> None:
    data = HEAD + b"lost"
    async with portal_client(catalog, _lossy(1.0)) as client:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.add_image(1, data)
        listed = await client.listed(1)
        download = await client.download(listed[-1]["downloadUrl"])
        stats = client.stats
    assert [row["id"] for row in listed] == [1001, 1002, 1003, 1004, 1005, 1006, 1021]
    assert download.raw == data
    assert (stats.lost_answers, stats.adds_by_product) == (1, {1: 1})


async def test_a_failing_add_loses_its_answer_too(catalog: Catalog) -> None:
    async with portal_client(catalog, _lossy(1.0)) as client:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.add_image(99_999, HEAD)
        assert client.stats.errors[0] == 1
        assert client.stats.lost_answers == 1


async def test_a_batch_with_an_add_is_processed_and_its_answer_lost(catalog: Catalog) -> None:
    encoded = quote(base64.b64encode(HEAD + b"batch").decode(), safe="")
    add = "catalog.productImage.add?fields[productId]=2&fileContent[0]=b.png"
    add += f"&fileContent[1]={encoded}"
    async with portal_client(catalog, _lossy(1.0)) as client:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.call(
                "batch", {"cmd": {"l": "catalog.productImage.list?productId=2", "a": add}}
            )
        reads = await client.call("batch", {"cmd": {"l": "catalog.productImage.list?productId=2"}})
        listed = await client.listed(2)
    assert reads.status == 200
    assert [row["name"] for row in listed][-1] == "b.png"
    assert len(listed) == 4


async def test_other_calls_keep_their_answers(catalog: Catalog) -> None:
    async with portal_client(catalog, _lossy(1.0)) as client:
        listed = await client.call("catalog.productImage.list", {"productId": 1})
        deleted = await client.call("catalog.productImage.delete", {"productId": 1, "id": 1006})
    assert (listed.status, deleted.status) == (200, 200)


async def test_which_answers_are_lost_follows_the_faults_seed(catalog: Catalog) -> None:
    async with portal_client(catalog, _lossy(0.5, seed=3)) as first:
        one = await _outcomes(first, 24)
        stored = len(await first.listed(1))
        lost = first.stats.lost_answers
    async with portal_client(
        Catalog.generate(products=6, images=20, seed=7), _lossy(0.5, seed=3)
    ) as second:
        two = await _outcomes(second, 24)
    async with portal_client(
        Catalog.generate(products=6, images=20, seed=7), _lossy(0.5, seed=4)
    ) as third:
        three = await _outcomes(third, 24)
    assert one == two
    assert one != three
    assert True in one and False in one
    assert stored == 6 + 24
    assert lost == one.count(True)


async def test_retrying_a_lost_add_stores_a_duplicate(catalog: Catalog) -> None:
    data = HEAD + b"twice"
    async with portal_client(catalog, _lossy(1.0)) as client:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.add_image(3, data)
        portal = client.running.portal
        portal.settings = replace(portal.settings, lost_add_answers=0.0)
        retried = await client.add_image(3, data)
        listed = await client.listed(3)
        stats = client.stats
    assert retried.status == 200
    assert [row["id"] for row in listed][-2:] == [1021, 1022]
    assert stats.duplicate_adds == 1
    assert stats.adds_by_product == {3: 2}


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_lost_add_answers_must_be_a_share(share: float) -> None:
    with pytest.raises(ValueError, match="lost_add_answers"):
        PortalSettings(lost_add_answers=share)


# Body size cap


@pytest.fixture
async def capped(catalog: Catalog) -> AsyncIterator[PortalClient]:
    async with portal_client(catalog, PortalSettings(rps=None, max_request_bytes=2_000)) as client:
        yield client


async def test_a_body_above_the_cap_gets_the_nginx_413_page(capped: PortalClient) -> None:
    answer = await capped.add_image(1, HEAD + bytes(2_000))
    listed = await capped.listed(1)
    stats = capped.stats
    assert answer.status == 413
    assert answer.headers["Content-Type"].startswith("text/html")
    assert b"<title>413 Request Entity Too Large</title>" in answer.raw
    assert b"<center>nginx</center>" in answer.raw
    assert len(listed) == 6
    assert stats.oversized_requests == 1
    assert stats.by_method == {"catalog.productImage.list": 1}
    assert stats.adds_by_product == {}


async def _post_add(client: PortalClient, body: bytes | AsyncIterator[bytes]) -> Answer:
    """POST a JSON add body as given: bytes, or pieces sent chunked."""
    return await client.send(
        "POST",
        client.running.webhook_url + "catalog.productImage.add",
        data=body,
        headers={"Content-Type": "application/json"},
    )


async def _pieces(payload: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


async def test_a_body_at_the_cap_is_served(capped: PortalClient) -> None:
    body = {"fields": {"productId": 1}, "fileContent": ["a.png", ""]}
    room = 2_000 - len(json.dumps(body).encode())
    body["fileContent"] = ["a.png", "A" * (room - room % 4)]
    raw = json.dumps(body).encode()
    assert len(raw) <= 2_000
    answer = await _post_add(capped, raw)
    assert answer.status == 200, answer.raw


async def test_a_chunked_body_above_the_cap_is_refused_too(capped: PortalClient) -> None:
    body = {"fields": {"productId": 1}, "fileContent": ["a.png", "A" * 4_000]}
    answer = await _post_add(capped, _pieces(json.dumps(body).encode(), 500))
    assert answer.status == 413
    assert len(await capped.listed(1)) == 6


async def test_a_chunked_body_within_the_cap_is_served(capped: PortalClient) -> None:
    body = {"fields": {"productId": 1}, "fileContent": ["a.png", "QUJD"]}
    answer = await _post_add(capped, _pieces(json.dumps(body).encode(), 10))
    assert answer.status == 200, answer.raw
    image = answer.json["result"]["productImage"]
    assert (await capped.download(image["downloadUrl"])).raw == b"ABC"


async def test_a_batch_above_the_cap_runs_none_of_its_commands(capped: PortalClient) -> None:
    cmd = {f"g{index}": "catalog.productImage.get?productId=1&id=1001" for index in range(50)}
    answer = await capped.call("batch", {"cmd": cmd})
    assert answer.status == 413
    assert capped.stats.commands == {}


async def test_without_a_cap_uploads_above_a_mebibyte_are_stored(client: PortalClient) -> None:
    data = HEAD + bytes(range(256)) * 8_000
    body = {"fields": {"productId": 1}, "fileContent": ["big.png", base64.b64encode(data).decode()]}
    answer = await _post_add(client, _pieces(json.dumps(body).encode(), 256 * 1024))
    image = answer.json["result"]["productImage"]
    assert (await client.download(image["downloadUrl"])).raw == data


@pytest.mark.parametrize("cap", [0, -5])
def test_max_request_bytes_must_be_positive(cap: int) -> None:
    with pytest.raises(ValueError, match="max_request_bytes"):
        PortalSettings(max_request_bytes=cap)
