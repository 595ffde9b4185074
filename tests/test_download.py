"""Receiving a download: every byte written and hashed, however it arrives and is written."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from exporter.destination import folder
from exporter.destination.folder import FileSink
from exporter.destination.receive import receive
from exporter.model import Incoming
from exporter.portal.auth import WebhookAuth
from exporter.portal.client import PortalClient
from exporter.portal.ratelimit import TokenBucket
from exporter.portal.retry import RetryPolicy

REAL_WRITEV = os.writev
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _store(path: Path, pieces: list[bytes]) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        folder.digest_and_write(pieces, digest, fd)
    finally:
        os.close(fd)
    return digest.hexdigest()


def test_short_writes_are_continued_until_every_byte_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def stingy_writev(fd: int, buffers: Sequence[bytes]) -> int:
        calls.append(len(buffers))
        return REAL_WRITEV(fd, [bytes(buffers[0][:999])])  # never more than 999 bytes

    monkeypatch.setattr(os, "writev", stingy_writev)
    pieces = [bytes([n]) * size for n, size in enumerate((5000, 1, 70_000, 999, 1000))]
    whole = b"".join(pieces)
    digest = _store(tmp_path / "f", pieces)
    assert (tmp_path / "f").read_bytes() == whole
    assert digest == hashlib.sha256(whole).hexdigest()
    assert len(calls) > len(pieces)  # the short writes did happen


def test_more_pieces_than_one_writev_takes_are_written_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    largest = []

    def recording_writev(fd: int, buffers: Sequence[bytes]) -> int:
        largest.append(len(buffers))
        return REAL_WRITEV(fd, buffers)

    monkeypatch.setattr(os, "writev", recording_writev)
    pieces = [n.to_bytes(2, "big") for n in range(5000)]  # tiny chunks of a chunked body
    digest = _store(tmp_path / "f", pieces)
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)
    assert digest == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert max(largest) <= 1024


async def test_a_chunked_body_in_small_chunks_is_stored_whole(tmp_path: Path) -> None:
    body = PNG_SIGNATURE + bytes(range(256)) * 400  # a PNG head, then ~100 KB

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()  # no Content-Length: HTTP chunks instead
        await response.prepare(request)
        for start in range(0, len(body), 777):
            await response.write(body[start : start + 777])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/image", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    lengths: list[int | None] = []

    async def into_sink(incoming: Incoming) -> FileSink:
        lengths.append(incoming.length)
        sink = await FileSink.create(tmp_path, tmp_path / "image.png", incoming.content_type)
        await receive(incoming, sink)
        return sink

    try:
        async with aiohttp.ClientSession() as session:
            client = PortalClient(
                base_url=f"http://127.0.0.1:{port}",
                auth=WebhookAuth(f"http://127.0.0.1:{port}/rest/1/code/"),
                session=session,
                limiter=TokenBucket(1000, 1000),
                retry=RetryPolicy(max_attempts=1),
                timeout_seconds=10,
                downloads_share_limit=False,
            )
            received = await client.download(f"http://127.0.0.1:{port}/image", into_sink)
    finally:
        await runner.cleanup()
    assert lengths == [None]  # no Content-Length: HTTP chunks
    assert received.size == len(body)
    assert received.sha256 == hashlib.sha256(body).hexdigest()
    saved = await received.commit()
    assert received.final.read_bytes() == body
    assert saved.sha256 == hashlib.sha256(body).hexdigest()
