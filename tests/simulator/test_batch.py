"""batch: per-command sections, PHP's empty-array quirk, limits, halt, refused methods."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exporter.simulator import Catalog, PortalSettings

from .helpers import EXAMPLES, PortalClient, portal_client

SECTIONS = {"result", "result_error", "result_total", "result_next", "result_time"}


def _get(product_id: int, image_id: int) -> str:
    return f"catalog.productImage.get?productId={product_id}&id={image_id}"


async def _batch(client: PortalClient, cmd: Any, halt: Any = 0) -> Any:
    answer = await client.call("batch", {"halt": halt, "cmd": cmd})
    assert answer.status == 200, answer.raw
    return answer.json


async def test_answer_has_the_documented_envelope(client: PortalClient, catalog: Catalog) -> None:
    body = await _batch(client, {"a": _get(*catalog.pairs()[0])})
    example = json.loads((Path(EXAMPLES) / "batch.200.json").read_text())
    assert body.keys() == example.keys()
    assert set(body["result"]) == SECTIONS
    assert (
        body["result"]["result_time"]["a"].keys()
        == example["result"]["result_time"]["get_user"].keys()
    )


async def test_result_entry_is_the_methods_result_value(
    client: PortalClient, catalog: Catalog
) -> None:
    product_id, image_id = catalog.pairs()[0]
    body = await _batch(client, {"p1_i1": _get(product_id, image_id)})
    entry = body["result"]["result"]["p1_i1"]
    assert entry.keys() == {"productImage"}
    assert entry["productImage"]["id"] == image_id


async def test_empty_sections_are_json_arrays(client: PortalClient, catalog: Catalog) -> None:
    body = await _batch(client, {"a": _get(*catalog.pairs()[0])})
    assert body["result"]["result_error"] == []
    assert body["result"]["result_total"] == []
    assert body["result"]["result_next"] == []


async def test_list_commands_fill_result_total(client: PortalClient, catalog: Catalog) -> None:
    body = await _batch(client, {"l2": "catalog.productImage.list?productId=2"})
    assert body["result"]["result_total"] == {"l2": len(catalog.images_of(2))}


async def test_failing_command_lands_in_result_error_only(
    client: PortalClient, catalog: Catalog
) -> None:
    good = catalog.pairs()[0]
    body = await _batch(client, {"good": _get(*good), "bad": _get(1, 987_654)})
    result = body["result"]
    assert set(result["result"]) == {"good"}
    assert result["result_error"] == {
        "bad": {"error": 0, "error_description": "Image does not exist"}
    }
    assert set(result["result_time"]) == {"good"}


async def test_sequential_integer_keys_come_back_as_lists(
    client: PortalClient, catalog: Catalog
) -> None:
    body = await _batch(client, [_get(*catalog.pairs()[0]), _get(*catalog.pairs()[1])])
    assert isinstance(body["result"]["result"], list)
    assert len(body["result"]["result"]) == 2


async def test_commands_beyond_fifty_are_refused_each(
    client: PortalClient, catalog: Catalog
) -> None:
    pair = catalog.pairs()[0]
    cmd = {f"c{index}": _get(*pair) for index in range(53)}
    body = await _batch(client, cmd)
    assert len(body["result"]["result"]) == 50
    assert body["result"]["result_error"] == {
        f"c{index}": {
            "error": "ERROR_BATCH_LENGTH_EXCEEDED",
            "error_description": "Max batch length exceeded",
        }
        for index in (50, 51, 52)
    }
    assert client.stats.commands["catalog.productImage.get"] == 50


async def test_halt_stops_at_the_first_failing_command(
    client: PortalClient, catalog: Catalog
) -> None:
    pair = catalog.pairs()[0]
    body = await _batch(client, {"a": _get(*pair), "b": _get(1, 987_654), "c": _get(*pair)}, halt=1)
    assert set(body["result"]["result"]) == {"a"}
    assert set(body["result"]["result_error"]) == {"b"}


async def test_without_halt_later_commands_still_run(
    client: PortalClient, catalog: Catalog
) -> None:
    pair = catalog.pairs()[0]
    body = await _batch(client, {"a": _get(1, 987_654), "b": _get(*pair)}, halt=False)
    assert set(body["result"]["result"]) == {"b"}


async def test_nested_batch_download_and_upload_are_not_allowed(client: PortalClient) -> None:
    body = await _batch(
        client, {"n": "batch?cmd[x]=profile", "d": "download?token=x", "u": "upload"}
    )
    refused = {
        "error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
        "error_description": "Method is not allowed for batch usage",
    }
    assert body["result"]["result_error"] == {"n": refused, "d": refused, "u": refused}


async def test_unknown_command_method_is_method_not_found(client: PortalClient) -> None:
    body = await _batch(client, {"x": "no.such.method"})
    assert body["result"]["result_error"]["x"]["error"] == "ERROR_METHOD_NOT_FOUND"


async def test_images_can_be_refused_in_batch_while_single_calls_work(catalog: Catalog) -> None:
    product_id, image_id = catalog.pairs()[0]
    async with portal_client(
        catalog, PortalSettings(rps=None, batch_allows_images=False)
    ) as client:
        body = await _batch(client, {"a": _get(product_id, image_id)})
        single = await client.call(
            "catalog.productImage.get", {"productId": product_id, "id": image_id}
        )
    assert body["result"]["result_error"]["a"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"
    assert single.status == 200


async def test_commands_carry_the_outer_oauth_auth(client: PortalClient, catalog: Catalog) -> None:
    answer = await client.call_oauth("batch", {"cmd": {"a": _get(*catalog.pairs()[0])}})
    url = answer.json["result"]["result"]["a"]["productImage"]["downloadUrl"]
    assert "/rest/download.json?auth=" in url


async def test_batch_counts_once_as_a_request_and_per_command(
    client: PortalClient, catalog: Catalog
) -> None:
    cmd = {f"k{index}": _get(*pair) for index, pair in enumerate(catalog.pairs()[:5])}
    cmd["bad"] = _get(1, 987_654)
    await _batch(client, cmd)
    stats = client.stats
    assert (stats.rest_requests, stats.batches, stats.by_method["batch"]) == (1, 1, 1)
    assert stats.commands["catalog.productImage.get"] == 6
    assert stats.errors[0] == 1


async def test_form_encoded_batch_with_nested_cmd_works(
    client: PortalClient, catalog: Catalog
) -> None:
    product_id, image_id = catalog.pairs()[0]
    data = {"halt": "0", "cmd[a]": f"catalog.productImage.get?productId={product_id}&id={image_id}"}
    answer = await client.send("POST", client.running.webhook_url + "batch", data=data)
    assert answer.json["result"]["result"]["a"]["productImage"]["id"] == image_id


async def test_a_batch_with_image_commands_can_be_refused_whole(catalog: Catalog) -> None:
    product_id, image_id = catalog.pairs()[0]
    settings = PortalSettings(rps=None, batch_refused_whole=True)
    async with portal_client(catalog, settings) as client:
        refused = await client.call(
            "batch", {"cmd": {"c": "catalog.catalog.list", "a": _get(product_id, image_id)}}
        )
        others = await client.call("batch", {"cmd": {"c": "catalog.catalog.list"}})
        single = await client.call(
            "catalog.productImage.get", {"productId": product_id, "id": image_id}
        )
    assert refused.status == 405
    assert refused.json == {
        "error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
        "error_description": "Method is not allowed for batch usage",
    }
    assert others.status == 200
    assert set(others.json["result"]["result"]) == {"c"}
    assert single.status == 200


async def test_a_batch_refused_whole_runs_none_of_its_commands(catalog: Catalog) -> None:
    settings = PortalSettings(rps=None, batch_refused_whole=True, batch_allows_images=False)
    async with portal_client(catalog, settings) as client:
        refused = await client.call(
            "batch",
            {"cmd": {"c": "catalog.catalog.list", "l": "CATALOG.PRODUCTIMAGE.LIST?productId=1"}},
        )
        stats = await client.send("GET", client.running.base_url + "/_simulator/stats")
    assert refused.status == 405
    assert stats.json["commands"] == {}
