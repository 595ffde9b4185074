"""Image metadata: gets packed into batches, per-image errors as values, refusals raised.

A scripted portal (aioresponses) answers `batch`, `catalog.productImage.get` and `.list`
from the command strings it receives; the client waits on a fake clock.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from exporter.errors import FatalPortalError, ImageError, PortalError, TransientError
from exporter.portal.auth import WebhookAuth
from exporter.portal.client import PortalClient
from exporter.portal.metadata import (
    GET_METHOD,
    LIST_METHOD,
    ImageRef,
    MetadataFetcher,
    ProductImage,
    parse_image,
)
from exporter.portal.ratelimit import TokenBucket
from exporter.portal.retry import RetryPolicy

from .support import FakeClock

PORTAL = "https://example.bitrix24.com"
WEBHOOK_CODE = "SECRETCODE"
WEBHOOK = f"{PORTAL}/rest/1/{WEBHOOK_CODE}/"
BATCH_URL = WEBHOOK + "batch"

# The docs' list answer (reference/examples/catalog.productImage.list.200.json).
LIST_EXAMPLE: dict[str, Any] = {
    "result": {
        "productImages": [
            {
                "createTime": "2024-10-17T10:48:05+02:00",
                "detailUrl": "/upload/iblock/6f1/bkm7jmwso31wisk423gtp28iagy2e8v0/test.jpeg",
                "downloadUrl": (
                    "http://dev.bx/rest/download.json?sessid=ae1ada0e5c85babd18ce4af4c702d1d9"
                    "&token=catalog%7CaWQ9NzY1MSZfPTEzSk9hR2tKNHBRY1I2cFBPNjhvaTFHNTNiYjVsVmdx"
                    "%7CImRvd25sb2FkfGNhdGFsb2d8YVdROU56WTFNU1pmUFRFelNrOWhSMnRLTkhCUlkxSTJjRkJQ"
                    "TmpodmFURkhOVE5pWWpWc1ZtZHh8YWUxYWRhMGU1Yzg1YmFiZDE4Y2U0YWY0YzcwMmQxZDki."
                    "iC0Yzi9feK8V1Zr0WSlp5GZpcmD0osnJGHN%2FZL%2FkQI4%3D"
                ),
                "id": 1,
                "name": "test.jpeg",
                "productId": 1,
                "type": "MORE_PHOTO",
            }
        ]
    },
    "total": 1,
    "time": {"start": 1729163241.324569, "finish": 1729163241.860237, "duration": 0.5356},
}


def image(product_id: int, image_id: int) -> dict[str, Any]:
    """A `catalog_product_image` as the portal sends it; its link carries the webhook code."""
    return {
        "createTime": "2024-10-17T10:48:05+02:00",
        "detailUrl": f"/upload/iblock/6f1/{product_id}x{image_id}/photo {image_id}.jpeg",
        "downloadUrl": f"{WEBHOOK[:-1]}/download/?token=catalog%7C{product_id}-{image_id}%7Csig",
        "id": image_id,
        "name": f"photo {image_id}.jpeg",
        "productId": product_id,
        "type": "MORE_PHOTO",
    }


Answer = tuple[int, dict[str, Any]]  # HTTP status (for a call alone), body or error entry


class ScriptedPortal:
    """Answers each get/list from its parameters, alone or inside a batch, and counts."""

    def __init__(self, mocked: aioresponses) -> None:
        self.batch_sizes: list[int] = []
        self.single_calls: list[tuple[str, dict[str, Any]]] = []
        self.errors: dict[tuple[str, int, int], Answer] = {}  # (method, pid, id) → error
        self.refused_in_batch: set[str] = set()  # methods the portal will not batch
        self.batch_status: int | None = None  # answer every batch with this HTTP error
        self.forget_in_next_batch: set[str] = set()  # keys the next answer leaves out
        self.fixed_result: dict[str, Any] = {}  # method → `result` for every good call
        mocked.post(BATCH_URL, callback=self._batch, repeat=True)
        for method in (GET_METHOD, LIST_METHOD):
            mocked.post(WEBHOOK + method, callback=self._single(method), repeat=True)

    def fail(self, method: str, pid: int, image_id: int, status: int, error: Any) -> None:
        self.errors[(method, pid, image_id)] = (status, {"error": error, "error_description": ""})

    def _answer(self, method: str, params: dict[str, Any]) -> tuple[bool, Answer]:
        pid, image_id = int(params["productId"]), int(params.get("id", 0))
        if (method, pid, image_id) in self.errors:
            return False, self.errors[(method, pid, image_id)]
        if method in self.fixed_result:
            return True, (200, self.fixed_result[method])
        if method == GET_METHOD:
            return True, (200, {"productImage": image(pid, image_id)})
        return True, (200, {"productImages": [image(pid, 1), image(pid, 2)]})

    def _batch(self, url: URL, **kwargs: Any) -> CallbackResult:
        commands: dict[str, str] = kwargs["json"]["cmd"]
        self.batch_sizes.append(len(commands))
        if self.batch_status is not None:
            error = {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}
            return CallbackResult(status=self.batch_status, payload=error)
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, command in commands.items():
            method, _, query = command.partition("?")
            if method in self.refused_in_batch:
                errors[key] = {
                    "error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
                    "error_description": "Method is not allowed for batch usage",
                }
                continue
            ok, (_, body) = self._answer(method, dict(parse_qsl(query)))
            if ok:
                results[key] = body
            else:
                errors[key] = body
                results[key] = []  # halt=0: a failed command may show up as [] here
        for key in self.forget_in_next_batch:
            results.pop(key, None)
        self.forget_in_next_batch.clear()
        body = {
            "result": {
                "result": results or [],
                "result_error": errors or [],
                "result_total": [],
                "result_next": [],
                "result_time": [],
            },
            "time": {"start": 1.0, "finish": 1.2},
        }
        return CallbackResult(status=200, payload=body)

    def _single(self, method: str) -> Any:
        def answer(url: URL, **kwargs: Any) -> CallbackResult:
            params = dict(kwargs["json"])
            self.single_calls.append((method, params))
            ok, (status, body) = self._answer(method, params)
            if ok:
                return CallbackResult(status=200, payload={"result": body, "time": {}})
            return CallbackResult(status=status, payload=body)

        return answer


@pytest.fixture
def portal(mocked: aioresponses) -> ScriptedPortal:
    return ScriptedPortal(mocked)


@pytest.fixture
async def client() -> AsyncIterator[PortalClient]:
    clock = FakeClock()
    async with aiohttp.ClientSession() as session:
        yield PortalClient(
            base_url=PORTAL,
            auth=WebhookAuth(WEBHOOK),
            session=session,
            limiter=TokenBucket(rate=2, burst=50, clock=clock),
            retry=RetryPolicy(max_attempts=3),
            timeout_seconds=10.0,
            downloads_share_limit=True,
            clock=clock,
            rng=random.Random(0),
        )


def refs(count: int, product_id: int = 1) -> list[ImageRef]:
    return [ImageRef(product_id, image_id) for image_id in range(1, count + 1)]


# Packing into batches.


async def test_120_images_with_batch_size_50_go_out_as_batches_of_50_50_and_20(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    fetcher = MetadataFetcher(client, batch_size=50)
    found = await fetcher.get_images(refs(120))
    assert portal.batch_sizes == [50, 50, 20]
    assert portal.single_calls == []
    assert all(isinstance(outcome, ProductImage) for _, outcome in found)


async def test_each_image_comes_back_paired_with_its_own_ref(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    fetcher = MetadataFetcher(client, batch_size=50)
    found = await fetcher.get_images(refs(7))
    for ref, outcome in found:
        assert isinstance(outcome, ProductImage)
        assert outcome.ref == ref
        assert outcome.method == GET_METHOD


async def test_batch_size_one_sends_single_calls_only(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    fetcher = MetadataFetcher(client, batch_size=1)
    found = await fetcher.get_images(refs(3))
    assert portal.batch_sizes == []
    assert [params for _, params in portal.single_calls] == [
        {"productId": 1, "id": 1},
        {"productId": 1, "id": 2},
        {"productId": 1, "id": 3},
    ]
    assert all(isinstance(outcome, ProductImage) for _, outcome in found)


# Per-command outcomes.


async def test_a_per_command_image_error_fails_only_that_image(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    portal.fail(GET_METHOD, 1, 2, 400, 0)
    fetcher = MetadataFetcher(client, batch_size=50)
    found = dict(await fetcher.get_images(refs(3)))
    assert isinstance(found[ImageRef(1, 2)], ImageError)
    assert isinstance(found[ImageRef(1, 1)], ProductImage)
    assert isinstance(found[ImageRef(1, 3)], ProductImage)
    assert portal.batch_sizes == [3]  # a per-image error is not sent again


async def test_a_per_command_fatal_error_is_raised(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    portal.fail(GET_METHOD, 1, 2, 401, "insufficient_scope")
    fetcher = MetadataFetcher(client, batch_size=50)
    with pytest.raises(FatalPortalError):
        await fetcher.get_images(refs(3))


async def test_commands_refused_inside_a_batch_are_sent_alone(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    portal.refused_in_batch.add(GET_METHOD)
    fetcher = MetadataFetcher(client, batch_size=50)
    found = await fetcher.get_images(refs(3))
    assert portal.batch_sizes == [3]
    assert len(portal.single_calls) == 3
    assert all(isinstance(outcome, ProductImage) for _, outcome in found)


async def test_after_a_batch_refusal_later_calls_of_that_method_go_alone_directly(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    portal.refused_in_batch.add(GET_METHOD)
    fetcher = MetadataFetcher(client, batch_size=50)
    await fetcher.get_images(refs(3))
    await fetcher.get_images(refs(4, product_id=2))
    assert portal.batch_sizes == [3]  # no second batch
    assert len(portal.single_calls) == 7


async def test_a_batch_refusal_of_one_method_keeps_other_methods_batched(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    portal.refused_in_batch.add(GET_METHOD)
    fetcher = MetadataFetcher(client, batch_size=50)
    await fetcher.get_images(refs(2))
    await fetcher.list_products([1, 2, 3])
    assert portal.batch_sizes == [2, 3]


async def test_a_command_missing_from_the_batch_answer_is_asked_again(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    portal.forget_in_next_batch.add("p1_i2")
    fetcher = MetadataFetcher(client, batch_size=50)
    found = dict(await fetcher.get_images(refs(3)))
    assert isinstance(found[ImageRef(1, 2)], ProductImage)
    assert portal.single_calls == [(GET_METHOD, {"productId": 1, "id": 2})]


# Whole products.


async def test_list_products_returns_every_image_of_each_product(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    fetcher = MetadataFetcher(client, batch_size=50)
    listed = dict(await fetcher.list_products([5, 6]))
    images = listed[5]
    assert not isinstance(images, PortalError)
    assert [image.ref for image in images] == [ImageRef(5, 1), ImageRef(5, 2)]
    assert all(image.method == LIST_METHOD for image in images)
    assert portal.batch_sizes == [2]


async def test_list_products_fails_only_the_product_the_portal_does_not_know(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    portal.fail(LIST_METHOD, 6, 0, 400, 0)
    fetcher = MetadataFetcher(client, batch_size=50)
    listed = dict(await fetcher.list_products([5, 6]))
    assert isinstance(listed[6], ImageError)
    assert not isinstance(listed[5], PortalError)


async def test_list_products_parses_the_docs_list_answer(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    fetcher = MetadataFetcher(client, batch_size=1)
    portal.fixed_result[LIST_METHOD] = LIST_EXAMPLE["result"]
    [(product_id, images)] = await fetcher.list_products([1])
    assert not isinstance(images, PortalError)
    [only] = images
    assert (product_id, only.ref, only.name, only.type) == (
        1,
        ImageRef(1, 1),
        "test.jpeg",
        "MORE_PHOTO",
    )
    assert only.download_url == LIST_EXAMPLE["result"]["productImages"][0]["downloadUrl"]


# parse_image: what is kept, and what never travels.


def test_parse_image_keeps_every_field_but_the_download_link_verbatim() -> None:
    raw = dict(image(1, 7), extraField={"nested": [1, "two"]}, createTime="2024-10-17")
    parsed = parse_image(raw, GET_METHOD)
    expected = {key: value for key, value in raw.items() if key != "downloadUrl"}
    assert dict(parsed.fields) == expected


def test_parse_image_keeps_the_download_link_apart() -> None:
    raw = image(1, 7)
    assert parse_image(raw, GET_METHOD).download_url == raw["downloadUrl"]


def test_parse_image_accepts_ids_sent_as_digit_strings() -> None:
    raw = dict(image(1, 7), id="7", productId="1")
    assert parse_image(raw, GET_METHOD).ref == ImageRef(1, 7)


def test_repr_of_an_image_never_shows_its_download_link() -> None:
    parsed = parse_image(image(1, 7), GET_METHOD)
    shown = repr(parsed)
    assert "download/?token" not in shown
    assert WEBHOOK_CODE not in shown
    assert "photo 7.jpeg" in shown  # the repr is still useful


def test_an_image_without_a_download_link_fails_that_image() -> None:
    raw = image(1, 7)
    del raw["downloadUrl"]
    with pytest.raises(ImageError):
        parse_image(raw, GET_METHOD)


async def test_an_answer_about_another_image_fails_that_image(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    portal.fixed_result[GET_METHOD] = {"productImage": image(1, 99)}
    fetcher = MetadataFetcher(client, batch_size=50)
    [(_, outcome)] = await fetcher.get_images([ImageRef(1, 7)])
    assert isinstance(outcome, ImageError)


# Retries stay within max_attempts, and a failing batch fails images, not the run.


async def test_a_single_call_that_keeps_failing_is_sent_at_most_max_attempts_times(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    portal.fail(GET_METHOD, 1, 1, 500, "INTERNAL_SERVER_ERROR")
    fetcher = MetadataFetcher(client, batch_size=1)
    [(_, outcome)] = await fetcher.get_images(refs(1))
    assert isinstance(outcome, TransientError)
    assert len(portal.single_calls) == 3  # client max_attempts is 3 too


async def test_a_batch_that_keeps_failing_fails_its_images_instead_of_raising(
    portal: ScriptedPortal, client: PortalClient
) -> None:
    portal.batch_status = 500
    fetcher = MetadataFetcher(client, batch_size=50)
    found = await fetcher.get_images(refs(3))
    assert all(isinstance(outcome, TransientError) for _, outcome in found)
    assert portal.batch_sizes == [3, 3, 3]
