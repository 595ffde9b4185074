"""catalog.productImage.add inside batch: parse_str decoding of base64, and refusals."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote, urlencode

from exporter.simulator import Catalog, PortalSettings

from .helpers import PortalClient, portal_client

ADD = "catalog.productImage.add"
HEAD = b"\x89PNG\r\n\x1a\n\x00"
"""Nine bytes, so what follows starts a new base64 quantum."""
NOT_SAVED = {"error": 0, "error_description": "Could not save image."}
REFUSED = {
    "error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
    "error_description": "Method is not allowed for batch usage",
}


def _command(product_id: int, name: str, encoded: str, type: str = "MORE_PHOTO") -> str:
    """An add command whose base64 goes into the query exactly as given."""
    return (
        f"{ADD}?fields[productId]={product_id}&fields[type]={type}"
        f"&fileContent[0]={quote(name)}&fileContent[1]={encoded}"
    )


async def _batch(client: PortalClient, cmd: dict[str, str]) -> Any:
    answer = await client.call("batch", {"halt": 0, "cmd": cmd})
    assert answer.status == 200, answer.raw
    return answer.json["result"]


async def _stored(client: PortalClient, result: Any, key: str) -> bytes:
    image = result["result"][key]["productImage"]
    download = await client.download(image["downloadUrl"])
    assert download.status == 200
    return download.raw


async def test_percent_encoded_base64_arrives_intact(client: PortalClient) -> None:
    data = HEAD + bytes(range(256)) * 4
    encoded = base64.b64encode(data).decode()
    assert "+" in encoded and "/" in encoded
    result = await _batch(client, {"a": _command(1, "photo.png", quote(encoded, safe=""))})
    assert result["result_error"] == []
    assert await _stored(client, result, "a") == data


async def test_a_command_built_like_http_build_query_arrives_intact(client: PortalClient) -> None:
    data = HEAD + bytes(range(255, -1, -1)) * 2 + b"\xfb\xef"
    encoded = base64.b64encode(data).decode()
    assert "+" in encoded and "=" in encoded
    query = urlencode(
        {
            "fields[productId]": 2,
            "fields[type]": "DETAIL_PICTURE",
            "fileContent[0]": "вид сбоку.png",
            "fileContent[1]": encoded,
        }
    )
    result = await _batch(client, {"d": f"{ADD}?{query}"})
    image = result["result"]["d"]["productImage"]
    assert (image["name"], image["type"]) == ("вид сбоку.png", "DETAIL_PICTURE")
    assert await _stored(client, result, "d") == data


async def test_raw_slashes_and_padding_survive(client: PortalClient) -> None:
    data = HEAD + b"\xff\xff\xff" + b"ab"
    encoded = base64.b64encode(data).decode()
    assert "/" in encoded and encoded.endswith("=") and "+" not in encoded
    result = await _batch(client, {"a": _command(3, "slash.png", encoded)})
    assert await _stored(client, result, "a") == data


async def test_raw_plus_signs_arrive_as_spaces_and_damage_the_image(client: PortalClient) -> None:
    data = HEAD + b"\xfb\xef\xbe" + b"\xff\xff\xff" + b"\x10\x20\x30"
    encoded = base64.b64encode(data).decode()
    assert encoded.count("+") == 4
    result = await _batch(client, {"a": _command(4, "damaged.png", encoded)})
    stored = await _stored(client, result, "a")
    assert result["result_error"] == []
    assert stored != data
    assert len(stored) == len(data) - 3
    assert stored == base64.b64decode(encoded.replace("+", ""))


async def test_a_raw_plus_that_breaks_the_decoding_is_could_not_save(
    client: PortalClient,
) -> None:
    data = HEAD + b"\xf8\x00\x00"
    encoded = base64.b64encode(data).decode()
    assert encoded.count("+") == 1
    result = await _batch(
        client,
        {
            "bad": _command(5, "broken.png", encoded),
            "good": _command(5, "fine.png", quote(encoded, safe="")),
        },
    )
    assert result["result_error"] == {"bad": NOT_SAVED}
    assert await _stored(client, result, "good") == data
    assert [row["name"] for row in await client.listed(5)].count("broken.png") == 0


async def test_several_adds_in_one_batch_get_consecutive_ids(client: PortalClient) -> None:
    encoded = quote(base64.b64encode(HEAD + b"one").decode(), safe="")
    cmd = {f"p{pid}": _command(pid, f"{pid}.png", encoded) for pid in (1, 2, 3)}
    cmd["detail1"] = _command(1, "d1.png", encoded, type="DETAIL_PICTURE")
    cmd["detail2"] = _command(1, "d2.png", encoded, type="DETAIL_PICTURE")
    result = await _batch(client, cmd)
    ids = [result["result"][key]["productImage"]["id"] for key in cmd]
    assert ids == [1021, 1022, 1023, 1024, 1025]
    details = [row for row in await client.listed(1) if row["type"] == "DETAIL_PICTURE"]
    assert [(row["id"], row["name"]) for row in details] == [(1025, "d2.png")]
    assert client.stats.commands[ADD] == 5


async def test_errors_of_adds_arrive_per_command(catalog: Catalog) -> None:
    encoded = quote(base64.b64encode(HEAD).decode(), safe="")
    settings = PortalSettings(rps=None, write_denied_products=frozenset({2}))
    async with portal_client(catalog, settings) as client:
        result = await _batch(
            client,
            {
                "denied": _command(2, "a.png", encoded),
                "unknown": _command(99_999, "a.png", encoded),
                "text": _command(1, "a.txt", encoded),
                "no_file": f"{ADD}?fields[productId]=1",
            },
        )
    assert result["result"] == []
    assert result["result_error"] == {
        "denied": {"error": 200040300020, "error_description": "Access Denied"},
        "unknown": {"error": 0, "error_description": "Product was not found"},
        "text": NOT_SAVED,
        "no_file": {
            "error": 100,
            "error_description": "Could not find value for parameter {fileContent}",
        },
    }


async def test_a_portal_can_refuse_adds_in_batch_while_single_adds_work(catalog: Catalog) -> None:
    data = HEAD + b"refused"
    encoded = quote(base64.b64encode(data).decode(), safe="")
    async with portal_client(catalog, PortalSettings(rps=None, batch_refuses_add=True)) as client:
        result = await _batch(
            client,
            {
                "add": _command(1, "a.png", encoded),
                "upper": _command(1, "a.png", encoded).replace(ADD, ADD.upper()),
                "get": "catalog.productImage.get?productId=1&id=1001",
                "delete": "catalog.productImage.delete?productId=1&id=1006",
            },
        )
        after_batch = await client.listed(1)
        single = await client.add_image(1, data)
    assert result["result_error"] == {"add": REFUSED, "upper": REFUSED}
    assert set(result["result"]) == {"get", "delete"}
    assert [row["id"] for row in after_batch] == [1001, 1002, 1003, 1004, 1005]
    assert single.status == 200
    assert single.json["result"]["productImage"]["id"] == 1021
