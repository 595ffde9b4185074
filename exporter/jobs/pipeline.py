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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream as Receiver
from anyio.streams.memory import MemoryObjectSendStream as Sender

from exporter.atomic import discard
from exporter.config import Config
from exporter.destination.download import Received, commit, receive
from exporter.destination.index import ExportIndex
from exporter.destination.paths import PathRegistry, render_layout
from exporter.destination.sidecar import owner_of, write_sidecar
from exporter.errors import (
    AccessDeniedError,
    DownloadError,
    ExporterError,
    FatalPortalError,
    ImageError,
    OutputError,
    PortalError,
    PortalUnavailableError,
    StaleLinkError,
    TransientError,
    exit_status,
    primary_exception,
)
from exporter.jobs.progress import ProgressView, Snapshot
from exporter.jobs.report import Failure, Tally
from exporter.manifest import iter_manifest
from exporter.model import ImageRef, ProductImage, SavedFile
from exporter.portal.catalog import DiscoveryProgress, walk_catalog
from exporter.portal.client import PortalClient
from exporter.portal.metadata import MetadataFetcher
from exporter.portal.retry import Action, Tries
from exporter.redact import redact

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


class Pipeline:
    """The stages of one run and the state they share (counts, seen images, paths)."""

    def __init__(
        self,
        config: Config,
        client: PortalClient,
        index: ExportIndex,
        tally: Tally,
        *,
        force: bool,
        discover: bool = False,
    ) -> None:
        self.config = config
        self.client = client
        self.index = index
        self.tally = tally
        self.force = force
        self.discover = discover
        self.metadata = MetadataFetcher(
            client,
            batch_size=config.batch_size,
        )
        self.registry = PathRegistry(config.output.dir, index, reserved=[config.report])
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
                source = self._discover_products if self.discover else self._read_manifest
                tg.start_soon(source, refs_tx, products_tx)
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
        failed = tally.failed > 0 or bool(tally.warnings)
        refused = (
            failed
            and self._images_read == 0
            and tally.skipped == 0
            and self._denied == tally.failed
        )
        if refused:
            log.error("access denied for every image: the credentials cannot read the catalog")
        return exit_status(failed=failed, refused=refused)

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

    async def _discover_products(self, refs: Sender[ImageRef], products: Sender[int]) -> None:
        """Every product and variation of every catalog, found with the fast paging."""
        refs.close()  # no image is named: each product's images come from its list
        found = DiscoveryProgress()
        async with products:
            pages = walk_catalog(
                self.client,
                batch_size=self.config.batch_size,
                progress=found,
            )
            listed: set[int] = set()
            async for page in pages:
                for product_id in page:
                    if product_id not in listed:
                        listed.add(product_id)
                        await products.send(product_id)
        for iblock, error in found.skipped_iblocks:
            self.tally.warnings.append(f"catalog (iblock {iblock}) not walked: {error}")
        log.info("discovery: %d products in %d catalogs", len(listed), found.catalogs)

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
        tries = Tries()
        try:
            while True:
                try:
                    return image, await self._receive(image)
                except StaleLinkError as exc:
                    step = self.client.retry.next_step(exc, tries)
                    if step.action is not Action.RENEW_LINK:
                        raise
                    tries = step.tries
                log.info("%s: download link refused; fetching fresh metadata", ref)
                [(_, fresh)] = await self.metadata.get_images([ref])
                if isinstance(fresh, PortalError):
                    raise fresh from None
                image = fresh
        except (ImageError, TransientError, DownloadError) as exc:
            self._fail(ref.product_id, ref.image_id, exc)
            return None

    async def _receive(self, image: ProductImage) -> Received:
        async def attempt() -> Received:
            async with self.client.open_download(image.download_url) as response:
                content_type = response.headers.get("Content-Type", "")
                wanted = render_layout(self.config.output.layout, image, content_type)
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
        # A signal must not split a file from its sidecar and index line: shielded (it
        # waits at most for one fsync and two renames).
        with anyio.CancelScope(shield=True):
            saved = await commit(received)
            relative = saved.path.relative_to(self.config.output.dir).as_posix()
            # The index line before the sidecar: a line without its sidecar is not done
            # (`is_done` checks the sidecar), but a sidecar without its line (a kill
            # between the two) would cost the next run a download.
            self.index.add(image.ref, relative, saved.size)
            await anyio.to_thread.run_sync(
                write_sidecar_checked, image, saved, self.config.portal.host
            )
        self.tally.exported += 1
        self.tally.bytes += saved.size
        self._transient_streak = 0
        log.debug("%s: saved %s (%d bytes)", image.ref, relative, saved.size)

    def _fail(self, product_id: int, image_id: int | None, error: ExporterError) -> None:
        self.tally.fail(Failure.of(product_id, image_id, error))
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
