"""Shared test helpers: a simulated portal over loopback, manifests, and export configs."""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from exporter.config import Config, parse_config
from exporter.destination.index import INDEX_NAME
from exporter.jobs.export import ExportJob, ExportResult
from exporter.portal.auth import WebhookAuth
from exporter.portal.client import PortalClient
from exporter.portal.ratelimit import TokenBucket
from exporter.portal.retry import RetryPolicy
from exporter.simulator import (
    Catalog,
    PortalSettings,
    RunningPortal,
    SimulatedPortal,
    serve_in_thread,
    serve_portal,
)

FAST = {"requests_per_second": 1000, "burst": 1000}


class FakeClock:
    """A clock that only moves when someone sleeps on it: no test waits for real time."""

    def __init__(self) -> None:
        self.time = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds
        await anyio.lowlevel.checkpoint()

    @property
    def slept(self) -> float:
        return sum(self.sleeps)


def catalog_of(products: int, images: int, seed: int = 3) -> Catalog:
    """A generated catalog of small images (200 to 3,000 bytes)."""
    return Catalog.generate(products=products, images=images, seed=seed, image_size=(200, 3000))


def write_manifest(path: Path, rows: Iterable[tuple[int, int | None]]) -> Path:
    """A CSV manifest; a row with None as image id is product-only."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["productId", "id"])
        for product_id, image_id in rows:
            writer.writerow([product_id, "" if image_id is None else image_id])
    return path


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def raw_config(webhook_url: str, manifest: Path, out_dir: Path, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "portal": {"webhook_url": webhook_url},
        "manifest": str(manifest),
        "output": {"dir": str(out_dir)},
        "rate_limit": dict(FAST),
        "concurrency": {"downloads": 4},
    }
    return merge(raw, extra)


def export_config(webhook_url: str, manifest: Path, out_dir: Path, **extra: Any) -> Config:
    raw = raw_config(webhook_url, manifest, out_dir, **extra)
    return parse_config(raw, base_dir=out_dir.parent, env={})


async def export(
    portal: RunningPortal, manifest: Path, out_dir: Path, *, force: bool = False, **extra: Any
) -> ExportResult:
    """One export run against a simulated portal."""
    config = export_config(portal.webhook_url, manifest, out_dir, **extra)
    return await ExportJob(config, force=force).run()


@asynccontextmanager
async def portal_for(
    catalog: Catalog, settings: PortalSettings | None = None
) -> AsyncIterator[RunningPortal]:
    async with serve_portal(catalog, settings or PortalSettings(rps=None)) as portal:
        yield portal


def portal_in_thread(
    catalog: Catalog,
    settings: PortalSettings | None = None,
    prepare: Callable[[SimulatedPortal, asyncio.AbstractEventLoop], None] | None = None,
) -> AbstractContextManager[RunningPortal]:
    """The simulated portal on a thread of its own (for the CLI's `main()` and exporter
    processes), with no rate limit unless `settings` say otherwise."""
    return serve_in_thread(catalog, settings or PortalSettings(rps=None), prepare)


def exported_files(output: Path) -> list[Path]:
    """Every exported data file under `output` (not sidecars, state or the report)."""
    return sorted(
        p
        for p in output.rglob("*")
        if p.is_file() and not p.name.endswith(".json") and ".b24-image-exporter" not in p.parts
    )


def sidecar_of(file: Path) -> dict[str, Any]:
    return json.loads(file.with_name(file.name + ".json").read_text(encoding="utf-8"))


def all_text_under(root: Path) -> str:
    """Every file under root as text, for searching for secrets."""
    return "\n".join(
        p.read_bytes().decode("utf-8", errors="replace") for p in root.rglob("*") if p.is_file()
    )


@asynccontextmanager
async def client_for(portal: RunningPortal) -> AsyncIterator[PortalClient]:
    async with aiohttp.ClientSession() as session:
        yield PortalClient(
            base_url=portal.base_url,
            auth=WebhookAuth(portal.webhook_url),
            session=session,
            limiter=TokenBucket(1000, 1000),
            retry=RetryPolicy(max_attempts=3),
            timeout_seconds=10,
            downloads_share_limit=True,
        )


def index_rows(state_dir: Path) -> list[dict[str, Any]]:
    """The rows of an export's index (in `state_dir`), in the order of the images, as the
    JSON lines of older exporters told them; none when there is no index."""
    path = state_dir / INDEX_NAME
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT product_id, image_id, path, size, gone, described FROM images "
            "ORDER BY product_id, image_id"
        ).fetchall()
    finally:
        db.close()
    records = []
    for product_id, image_id, file, size, gone, described in rows:
        record: dict[str, Any] = {"productId": product_id, "id": image_id, "path": file}
        record["size"] = size
        if gone is not None:
            record["gone"] = gone
        if described:
            record["product"] = True
        records.append(record)
    return records


def drop_index_rows(state_dir: Path, count: int) -> None:
    """Lose the index rows of the last `count` images (a power loss before a checkpoint)."""
    db = sqlite3.connect(state_dir / INDEX_NAME)
    try:
        db.execute(
            "DELETE FROM images WHERE (product_id, image_id) IN (SELECT product_id, image_id "
            "FROM images ORDER BY product_id DESC, image_id DESC LIMIT ?)",
            (count,),
        )
        db.commit()
    finally:
        db.close()
