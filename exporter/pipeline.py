"""The export job, end to end: manifest → metadata (batched) → downloads → commits → report.

    manifest rows ─► refs ─────► metadata batches ─┐
                └──► products ─► image lists ──────┴─► images ─► N downloads ─► N commits
                                                                 (temporary,   (fsync, rename,
                                                                  SHA-256)      sidecar, index)

Stages are tasks joined by bounded memory streams: a slow stage pushes back on the one
before it, so memory stays flat for any manifest, and downloads start while metadata is
still being fetched. Done images are skipped before any request. A fatal answer or an
interruption cancels every stage; in-flight temporaries are removed and the report is
written either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import anyio
from anyio.streams.memory import MemoryObjectReceiveStream as Receiver
from anyio.streams.memory import MemoryObjectSendStream as Sender

from exporter.auth import make_auth
from exporter.budget import shared_store
from exporter.client import PortalClient, RequestCounts
from exporter.config import Config
from exporter.download import Received, commit, receive
from exporter.errors import (
    AccessDeniedError,
    ConfigError,
    DownloadError,
    ExporterError,
    FatalPortalError,
    ImageError,
    OutputError,
    PortalError,
    PortalUnavailableError,
    StaleLinkError,
    TransientError,
    UsageError,
    primary_exception,
)
from exporter.files import discard, remove_temporaries
from exporter.index import STATE_DIR, ExportIndex
from exporter.lock import RunLock
from exporter.manifest import iter_manifest, validate_manifest
from exporter.metadata import ImageRef, MetadataFetcher, ProductImage
from exporter.paths import PathRegistry, render_layout
from exporter.progress import ProgressView, Snapshot
from exporter.ratelimit import BucketStore, Clock, TokenBucket
from exporter.redact import redact
from exporter.report import (
    EXIT_ABORTED,
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Failure,
    Tally,
    build_report,
    write_report,
)
from exporter.sidecar import SavedFile, owner_of, write_sidecar

log = logging.getLogger(__name__)

T = TypeVar("T")

# With no image read successfully yet, this many access-denied answers mean the
# credentials cannot read the catalog at all: stop instead of asking for every image.
DENIED_EVERYWHERE_THRESHOLD = 50
BATCH_LINGER_SECONDS = 0.05  # how long a short batch waits for more refs to arrive
# This many images in a row failing transiently (each after all its retries), with no
# success between, mean the portal is down or unreachable: stop rather than spend hours
# failing every remaining image.
UNAVAILABLE_THRESHOLD = 100
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
    ) -> None:
        """`budget` holds the limiter's state; by default a file shared by every exporter
        process on this machine that talks to the same portal. `progress` shows the
        run's counters as it goes."""
        self.config = config
        self.force = force
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
        if config.manifest is None:
            raise ConfigError("no manifest: set `manifest` in the config or pass --manifest")
        rows = validate_manifest(config.manifest)
        log.info(
            "exporting %d manifest rows from %s into %s",
            rows,
            config.portal.host,
            config.output_dir,
        )
        try:
            config.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {config.output_dir}: {exc.strerror}") from None
        with RunLock(config.output_dir / STATE_DIR):
            removed = remove_temporaries(config.output_dir)
            if removed:
                log.info("removed %d temporary files left by an interrupted run", removed)
            index = ExportIndex.open(config.output_dir)
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
        aborted_by: str | None = None
        exit_code = EXIT_FAILURES  # unless the run says otherwise below
        try:
            async with _session(config) as session:
                client = self._client(session)
                counts = client.counts
                pipeline = _Pipeline(config, client, index, tally, force=self.force)

                def snapshot() -> Snapshot:
                    return _snapshot(tally, client.counts, time.monotonic() - began)

                await pipeline.run(self._progress, snapshot)
                if self._progress is not None:
                    self._progress.close(snapshot())
            exit_code = pipeline.exit_code()
        except FatalPortalError as exc:
            aborted_by, exit_code = str(exc), EXIT_ABORTED
            log.error("aborted: %s", exc)
        except (OutputError, PortalUnavailableError) as exc:
            aborted_by, exit_code = str(exc), EXIT_FAILURES
            log.error("aborted: %s", exc)
        except UsageError as exc:
            aborted_by, exit_code = str(exc), EXIT_USAGE
            raise
        except anyio.get_cancelled_exc_class():
            exit_code = EXIT_INTERRUPTED
            raise
        except Exception as exc:
            aborted_by = f"internal error: {type(exc).__name__}"
            raise
        finally:
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
        config = self.config
        rate = config.rate_limit
        return PortalClient(
            base_url=config.portal.base_url,
            auth=make_auth(config.portal, session),
            session=session,
            limiter=TokenBucket(
                rate.requests_per_second,
                rate.burst,
                self._clock,
                self._budget or shared_store(config.portal.host),
            ),
            max_attempts=config.max_attempts,
            timeout_seconds=config.portal.timeout_seconds,
            downloads_share_limit=rate.downloads_share_limit,
            clock=self._clock,
        )


class _Pipeline:
    """The stages of one run and the state they share (counts, seen images, paths)."""

    def __init__(
        self,
        config: Config,
        client: PortalClient,
        index: ExportIndex,
        tally: Tally,
        *,
        force: bool,
    ) -> None:
        self.config = config
        self.client = client
        self.index = index
        self.tally = tally
        self.force = force
        self.metadata = MetadataFetcher(
            client, batch_size=config.batch_size, max_attempts=config.max_attempts
        )
        self.registry = PathRegistry(config.output_dir, index, reserved=[config.report])
        self._seen: set[int] = set()
        self._images_read = 0  # images whose metadata the portal returned
        self._denied = 0  # access-denied failures
        self._transient_streak = 0  # transient failures since the last success

    async def run(
        self, progress: ProgressView | None = None, snapshot: Callable[[], Snapshot] | None = None
    ) -> None:
        """Run every stage to the end; `progress` is shown `snapshot()`s meanwhile."""
        try:
            async with anyio.create_task_group() as outer:
                if progress is not None and snapshot is not None:
                    outer.start_soon(_show_progress, progress, snapshot)
                await self._stages()
                outer.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise primary_exception(group) from None

    async def _stages(self) -> None:
        size = self.config.batch_size
        refs_tx, refs_rx = anyio.create_memory_object_stream[ImageRef](size * 2)
        products_tx, products_rx = anyio.create_memory_object_stream[int](size * 2)
        images_tx, images_rx = anyio.create_memory_object_stream[ProductImage](size * 2)
        workers = self.config.download_concurrency
        done_tx, done_rx = anyio.create_memory_object_stream[tuple[ProductImage, Received]](workers)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read_manifest, refs_tx, products_tx)
                tg.start_soon(self._fetch_metadata, refs_rx, images_tx.clone())
                tg.start_soon(self._resolve_products, products_rx, images_tx)
                for _ in range(workers):
                    tg.start_soon(self._download_worker, images_rx.clone(), done_tx.clone())
                    tg.start_soon(self._commit_worker, done_rx.clone())
                images_rx.close()
                done_tx.close()
                done_rx.close()
        except BaseExceptionGroup as group:
            raise primary_exception(group) from None

    def exit_code(self) -> int:
        """0 when every image is exported or done; 3 when access was denied for all."""
        tally = self.tally
        if tally.failed == 0:
            return EXIT_OK
        if self._images_read == 0 and tally.skipped == 0 and self._denied == tally.failed:
            log.error("access denied for every image: the credentials cannot read the catalog")
            return EXIT_ABORTED
        return EXIT_FAILURES

    # Stage 1: the manifest, deduplicated, done images skipped without a request.

    async def _read_manifest(self, refs: Sender[ImageRef], products: Sender[int]) -> None:
        assert self.config.manifest is not None
        listed: set[int] = set()
        async with refs, products:
            for number, row in enumerate(iter_manifest(self.config.manifest)):
                if row.image_id is None:
                    if row.product_id not in listed:
                        listed.add(row.product_id)
                        await products.send(row.product_id)
                    continue
                ref = ImageRef(row.product_id, row.image_id)
                if self._is_new(ref):
                    await refs.send(ref)
                elif number % 512 == 0:
                    await anyio.lowlevel.checkpoint()  # a long run of done images yields too

    def _is_new(self, ref: ImageRef) -> bool:
        """Count an image the first time it is seen; False for repeats and done ones."""
        key = ref.product_id << 64 | ref.image_id
        if key in self._seen:
            return False
        self._seen.add(key)
        self.tally.total += 1
        if not self.force and self.index.is_done(ref):
            self.tally.skipped += 1
            return False
        return True

    # Stage 2: metadata, for named images (get) and for whole products (list).

    async def _fetch_metadata(self, refs: Receiver[ImageRef], images: Sender[ProductImage]) -> None:
        async with refs, images:
            while batch := await _next_batch(refs, self.config.batch_size):
                for ref, outcome in await self.metadata.get_images(batch):
                    if isinstance(outcome, PortalError):
                        self._fail(ref.product_id, ref.image_id, outcome)
                    else:
                        self._images_read += 1
                        self._transient_streak = 0
                        await images.send(outcome)

    async def _resolve_products(
        self, products: Receiver[int], images: Sender[ProductImage]
    ) -> None:
        async with products, images:
            while batch := await _next_batch(products, self.config.batch_size):
                for product_id, outcome in await self.metadata.list_products(batch):
                    if isinstance(outcome, PortalError):
                        self.tally.total += 1
                        self._fail(product_id, None, outcome)
                        continue
                    self._images_read += len(outcome)
                    self._transient_streak = 0
                    for image in outcome:
                        if self._is_new(image.ref):
                            await images.send(image)

    # Stage 3: downloads into temporaries. Stage 4: fsync, rename, sidecar, index line.

    async def _download_worker(
        self, images: Receiver[ProductImage], done: Sender[tuple[ProductImage, Received]]
    ) -> None:
        async with images, done:
            async for image in images:
                received = await self._download(image)
                if received is None:
                    continue
                try:
                    await done.send(received)
                except BaseException:
                    received[1].discard()
                    raise

    async def _download(self, image: ProductImage) -> tuple[ProductImage, Received] | None:
        ref = image.ref
        try:
            try:
                return image, await self._receive(image)
            except StaleLinkError:
                log.info("%s: download link refused; fetching fresh metadata", ref)
                [(_, fresh)] = await self.metadata.get_images([ref])
                if isinstance(fresh, PortalError):
                    raise fresh from None
                return fresh, await self._receive(fresh)
        except (ImageError, TransientError, DownloadError) as exc:
            self._fail(ref.product_id, ref.image_id, exc)
            return None

    async def _receive(self, image: ProductImage) -> Received:
        async def attempt() -> Received:
            async with self.client.open_download(image.download_url) as response:
                content_type = response.headers.get("Content-Type", "")
                wanted = render_layout(self.config.layout, image, content_type)
                final = self.registry.claim(image.ref, wanted, owner_of)
                return await receive(response, final)

        return await self.client.with_retries(attempt, paced=self.client.downloads_paced)

    async def _commit_worker(self, done: Receiver[tuple[ProductImage, Received]]) -> None:
        async with done:
            try:
                async for image, received in done:
                    await self._commit(image, received)
            except BaseException:
                # Stopped (a signal, a fatal error): files still waiting are temporaries.
                for _, waiting in _drain(done):
                    waiting.discard()
                raise

    async def _commit(self, image: ProductImage, received: Received) -> None:
        saved = await commit(received)
        await anyio.to_thread.run_sync(write_sidecar_checked, image, saved, self.config.portal.host)
        relative = saved.path.relative_to(self.config.output_dir).as_posix()
        self.index.add(image.ref, relative, saved.size)
        self.tally.exported += 1
        self.tally.bytes += saved.size
        self._transient_streak = 0
        log.debug("%s: saved %s (%d bytes)", image.ref, relative, saved.size)

    def _fail(self, product_id: int, image_id: int | None, error: ExporterError) -> None:
        code = getattr(error, "code", type(error).__name__)
        description = getattr(error, "description", str(error))
        self.tally.fail(Failure(product_id, image_id, str(code), str(description)))
        what = f"product {product_id}" + (f" image {image_id}" if image_id is not None else "")
        log.warning("%s failed: %s", what, redact(str(error)))
        if isinstance(error, TransientError):
            self._transient_streak += 1
            if self._transient_streak >= UNAVAILABLE_THRESHOLD:
                raise PortalUnavailableError(
                    f"{self._transient_streak} images in a row failed after every retry "
                    f"(last: {error}); stopping — run again when the portal answers"
                )
        if isinstance(error, AccessDeniedError):
            self._denied += 1
            if self._images_read == 0 and self._denied >= DENIED_EVERYWHERE_THRESHOLD:
                raise FatalPortalError(
                    error.code,
                    f"access denied for all of the first {self._denied} images: "
                    "the credentials cannot read the catalog",
                    error.status,
                )


def write_sidecar_checked(image: ProductImage, saved: SavedFile, portal_host: str) -> None:
    """Write a file's sidecar; if that fails, take the file back too (an export is both)."""
    try:
        write_sidecar(image, saved, portal_host, datetime.now(UTC))
    except OSError as exc:
        discard(saved.path)
        raise OutputError(f"cannot write the sidecar of {saved.path}: {exc.strerror}") from None


async def _show_progress(view: ProgressView, snapshot: Callable[[], Snapshot]) -> None:
    while True:
        await anyio.sleep(view.interval)
        view.show(snapshot())


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


def _drain(stream: Receiver[T]) -> list[T]:
    """Whatever is queued in a stream right now."""
    items: list[T] = []
    while True:
        try:
            items.append(stream.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return items


async def _next_batch(stream: Receiver[T], size: int) -> list[T]:
    """Up to `size` items: what is queued now, plus a short wait for stragglers."""
    batch: list[T] = []
    try:
        batch.append(await stream.receive())
        while len(batch) < size:
            try:
                batch.append(stream.receive_nowait())
            except anyio.WouldBlock:
                with anyio.move_on_after(BATCH_LINGER_SECONDS):
                    batch.append(await stream.receive())
                    continue
                break
    except anyio.EndOfStream:
        pass
    return batch


def _session(config: Config) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=config.download_concurrency + 4, ttl_dns_cache=300)
    # A larger read buffer means fewer pauses of the socket for big downloads.
    return aiohttp.ClientSession(connector=connector, read_bufsize=READ_BUFFER_BYTES)
