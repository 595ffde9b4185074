"""Test helpers: a fake clock, a small HTTP client for the portal, a PNG chunk reader."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from exporter.simulator import Catalog, PortalSettings, RunningPortal, serve_portal

BROWSER_HEADERS = {"User-Agent": "b24-image-exporter/0.1.0", "Accept": "*/*"}
EXAMPLES = "/work/shared/reference/examples"


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSleep:
    """An ``asyncio.sleep`` stand-in that moves a FakeClock instead of waiting.

    A sleep that would pass ``horizon`` parks until cancelled (and sets ``parked``), so
    a background task stops at a known point of fake time.
    """

    def __init__(self, clock: FakeClock, horizon: float = math.inf) -> None:
        self.clock = clock
        self.horizon = horizon
        self.slept: list[float] = []
        self.parked = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.clock.now + seconds > self.horizon:
            self.parked.set()
            await asyncio.Event().wait()
        self.clock.advance(seconds)
        await asyncio.sleep(0)


@dataclass
class Answer:
    """One HTTP answer, body decoded as JSON when it is JSON."""

    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class PortalClient:
    """Calls a running simulated portal over loopback HTTP."""

    session: aiohttp.ClientSession
    running: RunningPortal

    @property
    def stats(self) -> Any:
        return self.running.stats

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Answer:
        """POST a JSON body to the webhook URL."""
        return await self.send("POST", self.running.webhook_url + method, json=params or {})

    async def call_oauth(self, method: str, params: dict[str, Any] | None = None) -> Answer:
        """POST a JSON body with ``auth`` to the OAuth endpoint."""
        body = {"auth": self.running.portal.current_access_token, **(params or {})}
        return await self.send("POST", self.running.oauth_url + method, json=body)

    async def download(self, url: str, headers: dict[str, str] | None = None) -> Answer:
        """GET a download URL with browser-like headers unless ``headers`` replaces them."""
        if headers is None:
            headers = {**BROWSER_HEADERS, "Referer": self.running.base_url + "/"}
        return await self.send("GET", url, headers=headers)

    async def download_url(self, product_id: int, image_id: int) -> str:
        answer = await self.call(
            "catalog.productImage.get", {"productId": product_id, "id": image_id}
        )
        assert answer.status == 200, answer.raw
        url: str = answer.json["result"]["productImage"]["downloadUrl"]
        return url

    async def add_image(
        self, product_id: int, data: bytes, name: str = "photo.png", type: str | None = None
    ) -> Answer:
        """catalog.productImage.add with ``data`` as base64 in a JSON body."""
        fields: dict[str, Any] = {"productId": product_id}
        if type is not None:
            fields["type"] = type
        params = {"fields": fields, "fileContent": [name, base64.b64encode(data).decode()]}
        return await self.call("catalog.productImage.add", params)

    async def listed(self, product_id: int) -> list[Any]:
        """The product's images as catalog.productImage.list answers them."""
        answer = await self.call("catalog.productImage.list", {"productId": product_id})
        assert answer.status == 200, answer.raw
        images: list[Any] = answer.json["result"]["productImages"]
        return images

    async def send(self, verb: str, url: str, **kwargs: Any) -> Answer:
        async with self.session.request(verb, url, **kwargs) as response:
            raw = await response.read()
            return Answer(response.status, dict(response.headers), raw)


@asynccontextmanager
async def portal_client(
    catalog: Catalog, settings: PortalSettings, **options: Any
) -> AsyncIterator[PortalClient]:
    """Serve ``catalog`` and yield a client for it."""
    async with (
        serve_portal(catalog, settings, **options) as running,
        aiohttp.ClientSession() as session,
    ):
        yield PortalClient(session, running)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes, int]]:
    """(type, data, stored CRC) of every chunk after the signature; asserts the framing."""
    chunks = []
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunk_type = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        chunks.append((chunk_type, body, crc))
        offset += 12 + length
    assert offset == len(data), "chunks overrun the file"
    return chunks


def crc_ok(chunk_type: bytes, body: bytes, crc: int) -> bool:
    return zlib.crc32(chunk_type + body) == crc
