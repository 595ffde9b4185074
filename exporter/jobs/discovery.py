"""`discover`: every image of some products, or of the whole catalog, into a manifest.

It walks the catalog (or takes the products given) through the same kind of client as
an export, lists each product's images in batches and writes the manifest whole or
not at all.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from exporter.config import Config
from exporter.errors import (
    AccessDeniedError,
    FatalPortalError,
    PortalUnavailableError,
    exit_status,
    with_remedy,
)
from exporter.jobs.session import http_session, portal_client
from exporter.manifest import check_manifest_path, write_manifest
from exporter.portal.catalog import DiscoveryProgress, discover_images, walk_catalog
from exporter.portal.metadata import MetadataFetcher
from exporter.portal.ratelimit import BucketStore, Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DiscoveryResult:
    """How a discovery ended."""

    exit_code: int
    rows: int  # images written to the manifest
    found: DiscoveryProgress
    aborted_by: str | None = None


@dataclass(frozen=True, slots=True)
class DiscoveryJob:
    """`discover`: every image of some products, or of the whole catalog, into a manifest."""

    config: Config
    out: Path  # the manifest to write
    _: KW_ONLY
    products: list[int] | None = None  # None walks the whole catalog
    on_change: Callable[[DiscoveryProgress], None] | None = None  # sees each step
    clock: Clock | None = None
    budget: BucketStore | None = None  # the limiter's state; by default the shared file

    async def run(self) -> DiscoveryResult:
        """Raises `UsageError` for an unwritable manifest name before any request."""
        check_manifest_path(self.out)
        config = self.config
        found = DiscoveryProgress(on_change=self.on_change)
        rows = 0
        async with http_session(config) as session:
            client = portal_client(config, session, clock=self.clock, budget=self.budget)
            fetcher = MetadataFetcher(client, batch_size=config.batch_size)
            pages: AsyncIterable[list[int]] | list[list[int]]
            try:
                if self.products is None:
                    pages = walk_catalog(
                        client,
                        batch_size=config.batch_size,
                        progress=found,
                    )
                else:
                    pages = [self.products]
                refs = discover_images(client, fetcher, pages, progress=found)
                rows = await write_manifest(self.out, refs)
            except (FatalPortalError, PortalUnavailableError) as exc:
                log.error("aborted: %s", with_remedy(exc))
                return DiscoveryResult(exit_status(exc), rows, found, str(exc))
        for iblock, error in found.skipped_iblocks:
            log.warning("catalog iblock %d was not walked: %s", iblock, error)
        if rows == 0:
            log.warning("no images found: %s has no rows", self.out)
        denied = [e for _, e in found.failed_products if isinstance(e, AccessDeniedError)]
        if rows == 0 and found.failed_products and len(denied) == len(found.failed_products):
            refusal = FatalPortalError(denied[0].code, "access denied for every product")
            log.error("aborted: %s", with_remedy(refusal))
            return DiscoveryResult(exit_status(refusal), rows, found, refusal.description)
        return DiscoveryResult(exit_status(failed=not found.complete), rows, found)
