"""A job from start to end: checks, the lock, the portal client, the pipeline, the report.

`ExportJob` is one `run`: it validates the manifest before any request, locks the
output folder, builds the one client every request goes through, runs the pipeline
with progress shown, and writes the report however the run ends. The stages
themselves are in `exporter.jobs.pipeline`. `DiscoveryJob` is one `discover`: it walks
the catalog (or some products) through the same kind of client and writes a manifest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from exporter.atomic import remove_temporaries
from exporter.config import Config
from exporter.destination.index import STATE_DIR, ExportIndex
from exporter.destination.lock import RunLock
from exporter.errors import (
    EXIT_FAILURES,
    AccessDeniedError,
    ConfigError,
    FatalPortalError,
    OutputError,
    PortalUnavailableError,
    UsageError,
    exit_status,
)
from exporter.jobs.dryrun import Plan, check_metadata, discover_plan, read_plan
from exporter.jobs.pipeline import Pipeline
from exporter.jobs.progress import ProgressView, Snapshot
from exporter.jobs.report import Tally, build_report, write_report
from exporter.manifest import check_manifest_path, validate_manifest, write_manifest
from exporter.model import RequestCounts
from exporter.portal.auth import make_auth
from exporter.portal.budget import shared_store
from exporter.portal.catalog import (
    DiscoveryProgress,
    discover_images,
    walk_catalog,
)
from exporter.portal.client import PortalClient
from exporter.portal.metadata import MetadataFetcher
from exporter.portal.ratelimit import BucketStore, Clock, TokenBucket
from exporter.portal.retry import RetryPolicy

log = logging.getLogger(__name__)

READ_BUFFER_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ExportResult:
    """How a run ended."""

    exit_code: int
    report: dict[str, Any]
    report_path: Path
    aborted_by: str | None = None
    seconds: float = 0.0  # wall time of the run


class ExportJob:
    """One run of the export over one manifest into one output folder."""

    def __init__(
        self,
        config: Config,
        *,
        force: bool = False,
        clock: Clock | None = None,
        budget: BucketStore | None = None,
        progress: ProgressView | None = None,
        discover: bool = False,
    ) -> None:
        """`budget` holds the limiter's state; by default a file shared by every exporter
        process on this machine that talks to the same portal. `progress` shows the
        run's counters as it goes. `discover` exports every image of the catalog,
        found by walking it, instead of the manifest's."""
        self.config = config
        self.force = force
        self.discover = discover
        self.result: ExportResult | None = None
        self._clock = clock
        self._budget = budget
        self._progress = progress

    async def run(self) -> ExportResult:
        """Validate, lock the output, export, write the report; returns how it ended.

        Raises `UsageError` (nothing requested) before the run starts. If the run is
        cancelled (a signal), the report is written and `self.result` set before the
        cancellation propagates.
        """
        config = self.config
        if self.discover:
            log.info("exporting every catalog image of %s into %s", config.portal.host,
                     config.output.dir)  # fmt: skip
        elif config.manifest is None:
            raise ConfigError("no manifest: set `manifest` in the config or pass --manifest")
        else:
            rows = validate_manifest(config.manifest)
            log.info("exporting %d manifest rows from %s into %s", rows, config.portal.host,
                     config.output.dir)  # fmt: skip
        try:
            config.output.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {config.output.dir}: {exc.strerror}") from None
        with RunLock(config.output.dir / STATE_DIR):
            removed = remove_temporaries(config.output.dir)
            if removed:
                log.info("removed %d temporary files left by an interrupted run", removed)
            index = ExportIndex.open(config.output.dir)
            try:
                return await self._run_locked(index)
            finally:
                index.close()

    async def _run_locked(self, index: ExportIndex) -> ExportResult:
        config = self.config
        started = datetime.now(UTC)
        began = time.monotonic()
        tally = Tally()
        counts = RequestCounts()
        stopped_by: BaseException | None = None
        exit_code = EXIT_FAILURES  # unless the pipeline finishes and says otherwise
        try:
            async with _session(config) as session:
                client = self._client(session)
                counts = client.counts
                pipeline = Pipeline(
                    config, client, index, tally, force=self.force, discover=self.discover
                )

                def snapshot() -> Snapshot:
                    return _snapshot(tally, client.counts, time.monotonic() - began)

                await pipeline.run(self._progress, snapshot)
                if self._progress is not None:
                    self._progress.close(snapshot())
            exit_code = pipeline.exit_code()
        except STOPS_THE_RUN as exc:
            stopped_by = exc
            log.error("aborted: %s", exc)
        except BaseException as exc:
            stopped_by = exc
            raise
        finally:
            if stopped_by is not None:
                exit_code = exit_status(stopped_by)
            aborted_by = _aborted_by(stopped_by)
            report = build_report(
                started_at=started,
                finished_at=datetime.now(UTC),
                portal=config.portal.host,
                tally=tally,
                counts=counts,
                exit_code=exit_code,
                aborted_by=aborted_by,
            )
            write_report(config.report, report)
            seconds = time.monotonic() - began
            self.result = ExportResult(exit_code, report, config.report, aborted_by, seconds)
        return self.result

    def _client(self, session: aiohttp.ClientSession) -> PortalClient:
        return portal_client(self.config, session, clock=self._clock, budget=self._budget)


# Errors that end a run early on purpose: the report and the exit code say why.
STOPS_THE_RUN = (FatalPortalError, OutputError, PortalUnavailableError)


def _aborted_by(stopped_by: BaseException | None) -> str | None:
    """Why a run stopped early, for the report: None when it finished or was interrupted."""
    if stopped_by is None or not isinstance(stopped_by, Exception):
        return None
    if isinstance(stopped_by, (*STOPS_THE_RUN, UsageError)):
        return str(stopped_by)
    return f"internal error: {type(stopped_by).__name__}"


def portal_client(
    config: Config,
    session: aiohttp.ClientSession,
    *,
    clock: Clock | None = None,
    budget: BucketStore | None = None,
) -> PortalClient:
    """The client a job talks to the portal through: one limiter, one budget, one auth."""
    rate = config.rate_limit
    return PortalClient(
        base_url=config.portal.base_url,
        auth=make_auth(config.portal, session),
        session=session,
        limiter=TokenBucket(
            rate.requests_per_second,
            rate.burst,
            clock,
            budget or shared_store(config.portal.host),
        ),
        retry=RetryPolicy.from_config(config.retries),
        timeout_seconds=config.portal.timeout_seconds,
        downloads_share_limit=rate.downloads_share_limit,
        clock=clock,
    )


def _snapshot(tally: Tally, counts: RequestCounts, elapsed: float) -> Snapshot:
    return Snapshot(
        total=tally.total,
        exported=tally.exported,
        skipped=tally.skipped,
        failed=tally.failed,
        bytes=tally.bytes,
        requests=counts.rest + counts.download,
        rate_limited=counts.rate_limited,
        retried=counts.retried,
        elapsed=elapsed,
    )


def _session(config: Config) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=config.download_concurrency + 4, ttl_dns_cache=300)
    # A larger read buffer means fewer pauses of the socket for big downloads.
    return aiohttp.ClientSession(connector=connector, read_bufsize=READ_BUFFER_BYTES)


@dataclass(frozen=True, slots=True)
class DiscoveryResult:
    """How a discovery ended."""

    exit_code: int
    rows: int  # images written to the manifest
    found: DiscoveryProgress
    aborted_by: str | None = None


class DiscoveryJob:
    """`discover`: every image of some products, or of the whole catalog, into a manifest."""

    def __init__(
        self,
        config: Config,
        out: Path,
        *,
        products: list[int] | None = None,
        on_change: Callable[[DiscoveryProgress], None] | None = None,
        clock: Clock | None = None,
        budget: BucketStore | None = None,
    ) -> None:
        """`products` None walks the whole catalog; `on_change` sees each step."""
        self.config = config
        self.out = out
        self.products = products
        self._on_change = on_change
        self._clock = clock
        self._budget = budget

    async def run(self) -> DiscoveryResult:
        """Raises `UsageError` for an unwritable manifest name before any request."""
        check_manifest_path(self.out)
        config = self.config
        found = DiscoveryProgress(on_change=self._on_change)
        rows = 0
        async with _session(config) as session:
            client = portal_client(config, session, clock=self._clock, budget=self._budget)
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
            except FatalPortalError as exc:
                log.error("aborted: %s", exc)
                return DiscoveryResult(exit_status(exc), rows, found, str(exc))
        for iblock, error in found.skipped_iblocks:
            log.warning("catalog iblock %d was not walked: %s", iblock, error)
        if rows == 0:
            log.warning("no images found: %s has no rows", self.out)
        denied = [e for _, e in found.failed_products if isinstance(e, AccessDeniedError)]
        if rows == 0 and found.failed_products and len(denied) == len(found.failed_products):
            refused = exit_status(failed=True, refused=True)
            return DiscoveryResult(refused, rows, found, "access denied for every product")
        return DiscoveryResult(exit_status(failed=not found.complete), rows, found)


async def dry_run(
    config: Config,
    *,
    discover: bool = False,
    metadata: bool = False,
    clock: Clock | None = None,
    budget: BucketStore | None = None,
) -> Plan:
    """What a run would do; the portal is asked only for discovery and `metadata`."""
    index = ExportIndex.read(config.output.dir)
    if discover:
        plan = Plan()
    elif config.manifest is None:
        raise ConfigError("no manifest: set `manifest` in the config or pass --manifest")
    else:
        plan = read_plan(config.manifest, index)
    if discover or metadata:
        async with _session(config) as session:
            client = portal_client(config, session, clock=clock, budget=budget)
            if discover:
                await discover_plan(client, config, plan)
            if metadata:
                await check_metadata(client, config, plan, index)
    return plan
