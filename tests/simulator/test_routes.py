"""URL forms, parameter encodings, authentication and the envelope of every answer."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from exporter.simulator import Catalog

from .helpers import PortalClient


async def test_wrong_webhook_code_is_401_no_auth_found(client: PortalClient) -> None:
    url = f"{client.running.base_url}/rest/1/wrongcode/catalog.productImage.getFields"
    answer = await client.send("POST", url, json={})
    assert answer.status == 401
    assert answer.json == {
        "error": "NO_AUTH_FOUND",
        "error_description": "Wrong authorization data",
    }


async def test_wrong_webhook_user_id_is_401(client: PortalClient) -> None:
    code = client.running.portal.settings.webhook_code
    url = f"{client.running.base_url}/rest/2/{code}/catalog.productImage.getFields"
    assert (await client.send("POST", url, json={})).status == 401


async def test_oauth_call_with_auth_in_the_json_body_works(client: PortalClient) -> None:
    answer = await client.call_oauth("catalog.productImage.list", {"productId": 1})
    assert answer.status == 200


async def test_oauth_call_with_auth_in_the_query_string_works(client: PortalClient) -> None:
    token = client.running.portal.settings.access_token
    url = f"{client.running.oauth_url}catalog.productImage.list?{urlencode({'auth': token})}"
    assert (await client.send("POST", url, json={"productId": 1})).status == 200


async def test_oauth_call_with_a_form_body_works(client: PortalClient) -> None:
    token = client.running.portal.settings.access_token
    answer = await client.send(
        "POST",
        client.running.oauth_url + "catalog.productImage.list",
        data={"auth": token, "productId": "1"},
    )
    assert answer.status == 200


async def test_oauth_call_without_auth_is_401(client: PortalClient) -> None:
    answer = await client.send(
        "POST", client.running.oauth_url + "catalog.productImage.list", json={}
    )
    assert answer.status == 401
    assert answer.json["error"] == "NO_AUTH_FOUND"


async def test_oauth_call_with_a_wrong_token_is_401(client: PortalClient) -> None:
    url = client.running.oauth_url + "catalog.productImage.list"
    answer = await client.send("POST", url, json={"auth": "nope", "productId": 1})
    assert answer.status == 401


async def test_get_with_query_string_params_works(client: PortalClient, catalog: Catalog) -> None:
    product_id, image_id = catalog.pairs()[0]
    url = (
        f"{client.running.webhook_url}catalog.productImage.get?productId={product_id}&id={image_id}"
    )
    answer = await client.send("GET", url)
    assert answer.json["result"]["productImage"]["id"] == image_id


async def test_method_with_json_suffix_works(client: PortalClient) -> None:
    answer = await client.call("catalog.productImage.list.json", {"productId": 1})
    assert answer.status == 200


async def test_method_names_are_case_insensitive(client: PortalClient) -> None:
    answer = await client.call("CATALOG.PRODUCTIMAGE.LIST", {"productId": 1})
    assert answer.status == 200


async def test_unknown_method_is_404_method_not_found(client: PortalClient) -> None:
    answer = await client.call("catalog.nothing.here")
    assert answer.status == 404
    assert answer.json == {
        "error": "ERROR_METHOD_NOT_FOUND",
        "error_description": "Method not found!",
    }


async def test_success_carries_a_plausible_time_block(client: PortalClient) -> None:
    time_block = (await client.call("catalog.productImage.list", {"productId": 1})).json["time"]
    assert time_block["finish"] >= time_block["start"]
    assert time_block["duration"] == time_block["finish"] - time_block["start"]
    assert 0 <= time_block["processing"] <= time_block["duration"] + 1e-6
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
    assert iso.match(time_block["date_start"]) and iso.match(time_block["date_finish"])


async def test_json_is_encoded_the_way_php_does(client: PortalClient) -> None:
    answer = await client.call_oauth("catalog.productImage.list", {"productId": 1})
    assert answer.headers["Content-Type"].startswith("application/json")
    assert b"http:\\/\\/" in answer.raw
    assert b"\\u0026token=" in answer.raw
    assert b"&" not in answer.raw and b"/" not in answer.raw.replace(b"\\/", b"")


async def test_unparsable_json_body_counts_as_no_params(client: PortalClient) -> None:
    url = client.running.webhook_url + "catalog.productImage.list"
    async with client.session.post(
        url, data=b"{nope", headers={"Content-Type": "application/json"}
    ) as r:
        body = await r.json()
    assert body["error"] == 100
