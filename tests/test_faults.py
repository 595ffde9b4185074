"""Faults on the way: dropped connections, a full disk. Nothing half-written is left."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exporter.jobs.export import ExportJob
from exporter.jobs.state import UNAVAILABLE_THRESHOLD
from exporter.simulator import Catalog, PortalSettings, SimulatedPortal
from exporter.simulator import serve as serve_portal_app

from .support import (
    FakeClock,
    export_config,
    exported_files,
    sidecar_of,
    write_manifest,
)

Handler = Any


@asynccontextmanager
async def serve(portal: SimulatedPortal) -> AsyncIterator[str]:
    """Serve a portal whose app the test may have wrapped; yields its webhook URL."""
    async with serve_portal_app(portal) as running:
        yield running.webhook_url


def cutting_downloads(times: int) -> Any:
    """A middleware that drops the connection in the middle of the first `times` downloads."""
    remaining = [times]

    @web.middleware
    async def cut(request: web.Request, handler: Handler) -> web.StreamResponse:
        if "/download" not in request.path or remaining[0] <= 0:
            return await handler(request)
        remaining[0] -= 1
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 100_000
        await response.prepare(request)
        await response.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 2000)
        assert request.transport is not None
        request.transport.close()
        return response

    return cut


async def test_a_dropped_connection_mid_body_is_retried_and_the_file_is_whole(
    tmp_path: Path,
) -> None:
    catalog = Catalog.generate(products=2, images=6, seed=5, image_size=(3000, 6000))
    portal = SimulatedPortal(catalog, PortalSettings(rps=None))
    portal.app.middlewares.append(cutting_downloads(3))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with serve(portal) as webhook:
        config = export_config(webhook, manifest, tmp_path / "out")
        result = await ExportJob(config).run()
    assert result.exit_code == 0
    assert result.report["requests"]["retried"] >= 3
    files = exported_files(tmp_path / "out")
    assert len(files) == 6
    for file in files:
        assert file.read_bytes() == catalog.image_bytes(sidecar_of(file)["productImage"]["id"])
    assert list((tmp_path / "out").rglob("*.b24-partial")) == []


async def test_a_download_that_keeps_dropping_fails_only_that_image(tmp_path: Path) -> None:
    catalog = Catalog.generate(products=1, images=1, seed=5)
    portal = SimulatedPortal(catalog, PortalSettings(rps=None))
    portal.app.middlewares.append(cutting_downloads(100))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with serve(portal) as webhook:
        config = export_config(webhook, manifest, tmp_path / "out", retries={"max_attempts": 3})
        result = await ExportJob(config).run()
    assert result.exit_code == 1
    [failure] = result.report["failures"]
    assert failure["error"] in ("SHORT_BODY", "CONNECTION_DROPPED")
    assert exported_files(tmp_path / "out") == []
    assert list((tmp_path / "out").rglob("*.b24-partial")) == []


def _full_disk_writev(fd: int, buffers: Any) -> int:
    """Like os.writev on a disk that fills up: stores a little, then fails with ENOSPC."""
    os.write(fd, bytes(buffers[0][:10]))
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


async def test_a_full_disk_stops_the_run_with_a_clear_message_and_no_half_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog.generate(products=2, images=8, seed=5)
    monkeypatch.setattr(os, "writev", _full_disk_writev)
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    out = tmp_path / "out"
    portal = SimulatedPortal(catalog, PortalSettings(rps=None))
    async with serve(portal) as webhook:
        result = await ExportJob(export_config(webhook, manifest, out)).run()
    assert result.exit_code == 4  # the backup did not complete
    assert result.aborted_by is not None
    assert "No space left on device" in result.aborted_by
    assert str(out) in result.aborted_by
    assert exported_files(out) == []
    assert list(out.rglob("*.b24-partial")) == []
    assert (out / "report.json").exists()


async def test_an_unreachable_portal_stops_the_run_instead_of_failing_every_image(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rows = [(1 + i // 10, 1000 + i) for i in range(1000)]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    config = export_config(f"http://127.0.0.1:{port}/rest/1/abcdef12/", manifest, tmp_path / "o")
    clock = FakeClock()
    result = await ExportJob(config, clock=clock).run()
    assert result.exit_code == 4  # the backup did not complete
    assert result.aborted_by is not None
    assert "in a row failed after every retry" in result.aborted_by
    assert "CONNECT_FAILED" in result.aborted_by
    assert result.report["counts"]["failed"] == UNAVAILABLE_THRESHOLD
    # The catalog list (for the products' context, given up: a warning), then two
    # batches of metadata: six attempts each.
    assert result.report["requests"]["rest"] == 3 * 6
    assert clock.slept > 0  # it did back off between attempts


def serving_html_as_png(times: int) -> Any:
    """A middleware that answers the first `times` downloads 200 image/png with an HTML page."""
    remaining = [times]

    @web.middleware
    async def fake(request: web.Request, handler: Handler) -> web.StreamResponse:
        if "/download" not in request.path or remaining[0] <= 0:
            return await handler(request)
        remaining[0] -= 1
        page = b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"
        return web.Response(body=page, content_type="image/png")

    return fake


async def test_an_html_page_sent_as_an_image_is_retried_not_stored(tmp_path: Path) -> None:
    catalog = Catalog.generate(products=1, images=3, seed=5)
    portal = SimulatedPortal(catalog, PortalSettings(rps=None))
    portal.app.middlewares.append(serving_html_as_png(2))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with serve(portal) as webhook:
        config = export_config(webhook, manifest, tmp_path / "out")
        result = await ExportJob(config, clock=FakeClock()).run()
    assert result.exit_code == 0
    assert result.report["requests"]["retried"] == 2
    for file in exported_files(tmp_path / "out"):
        assert file.read_bytes() == catalog.image_bytes(sidecar_of(file)["productImage"]["id"])


async def test_an_image_that_is_always_an_html_page_fails_with_a_clear_error(
    tmp_path: Path,
) -> None:
    catalog = Catalog.generate(products=1, images=1, seed=5)
    portal = SimulatedPortal(catalog, PortalSettings(rps=None))
    portal.app.middlewares.append(serving_html_as_png(100))
    manifest = write_manifest(tmp_path / "m.csv", catalog.pairs())
    async with serve(portal) as webhook:
        config = export_config(webhook, manifest, tmp_path / "out")
        result = await ExportJob(config, clock=FakeClock()).run()
    assert result.exit_code == 1
    [failure] = result.report["failures"]
    assert failure["error"] == "UNEXPECTED_CONTENT"
    assert "HTML page" in failure["description"]
    assert exported_files(tmp_path / "out") == []
    assert list((tmp_path / "out").rglob("*.b24-partial")) == []
