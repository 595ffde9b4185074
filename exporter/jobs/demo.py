"""`demo`: the product against its built-in simulated portal.

It needs no setup and no network: it starts the simulated portal in-process on
loopback with a generated catalog and a tight rate limit, runs a real export against
it, and reports what the portal saw. `write_manifest` also gives `simulate` its
manifest of the generated catalog.
"""

from __future__ import annotations

import csv
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from exporter.config import RateLimitConfig, parse_config
from exporter.jobs.dryrun import seconds_at_limit
from exporter.jobs.export import ExportJob, ExportResult
from exporter.jobs.progress import ProgressView
from exporter.portal.ratelimit import MemoryStore, headroom
from exporter.simulator import Catalog, PortalSettings, serve_portal

DEMO_RATE = 20.0  # requests per second the demo portal allows
DEMO_BURST = 20
DEMO_SEED = 24
DEMO_PRODUCT_ROWS = 2  # products named without image ids, resolved with .list


@dataclass(frozen=True, slots=True)
class PortalFigures:
    """What the simulated portal saw during a demo run."""

    seconds: float
    requests: int
    refused: int


class Demo:
    """One demo run: a generated catalog, a simulated portal, a real export."""

    def __init__(self, images: int, output: Path, progress: ProgressView | None = None) -> None:
        self.catalog = Catalog.generate(
            products=max(1, images // 5),
            images=images,
            seed=DEMO_SEED,
            image_size=(20_000, 120_000),
        )
        self.output = output
        self.progress = progress
        self.job: ExportJob | None = None
        self.figures: PortalFigures | None = None

    def interrupt(self, signum: int) -> None:
        """A signal is about to stop the demo's export."""
        if self.job is not None:
            self.job.interrupt(signum)

    async def run(self) -> ExportResult:
        settings = PortalSettings(rps=DEMO_RATE, burst=DEMO_BURST)
        with tempfile.TemporaryDirectory(prefix="b24-demo-") as scratch:
            manifest = Path(scratch, "manifest.csv")
            write_manifest(self.catalog, manifest, product_rows=DEMO_PRODUCT_ROWS)
            async with serve_portal(self.catalog, settings) as portal:
                raw = {
                    "portal": {"webhook_url": portal.webhook_url},
                    "manifest": str(manifest),
                    "output": {"dir": str(self.output.resolve())},
                    "rate_limit": {"requests_per_second": DEMO_RATE, "burst": DEMO_BURST},
                }
                config = parse_config(raw, base_dir=Path.cwd(), env={}, source="demo")
                # The simulated portal lives and dies with this process: no shared budget.
                self.job = ExportJob(config, budget=MemoryStore(), progress=self.progress)
                began = time.monotonic()
                result = await self.job.run()
                stats = portal.stats
                self.figures = PortalFigures(
                    seconds=time.monotonic() - began,
                    requests=stats.rest_requests + stats.download_requests,
                    refused=stats.rate_limited,
                )
                return result


def seconds_on_the_default_plan(requests: int) -> float:
    """How long the portal's default plan (2 requests/s, burst 50) lets `requests` take."""
    plan = RateLimitConfig(requests_per_second=2.0, burst=50, downloads_share_limit=True)
    return seconds_at_limit(requests, plan, plan.burst - headroom(plan.burst))


def write_manifest(catalog: Catalog, path: Path, product_rows: int = 0) -> None:
    """A CSV manifest of the catalog; the first `product_rows` products as product-only rows."""
    whole = set(catalog.product_ids()[:product_rows])
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["productId", "id"])
        for product_id in sorted(whole):
            writer.writerow([product_id, ""])
        for product_id, image_id in catalog.pairs():
            if product_id not in whole:
                writer.writerow([product_id, image_id])
