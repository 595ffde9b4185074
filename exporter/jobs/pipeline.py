"""The export job's stages, wired: manifest → metadata (batched) → downloads → commits.

    manifest rows ─► refs ─────► metadata batches ─┐
                └──► products ─► image lists ──────┴─► images ─► N downloads ─► N commits
                                                                 (into sinks,  (file, index
                                                                  SHA-256)      line, sidecar)

Stages are tasks joined by bounded memory streams: a slow stage pushes back on the one
before it, so memory stays flat for any manifest, and downloads start while metadata is
still being fetched. Done images are skipped before any request (`Selection`). Where
files land and under which name is the destination's business; the counts and the
circuit breakers are `RunState`'s. A fatal answer or an interruption cancels every
stage; in-flight files are discarded and the report is written either way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream as Receiver
from anyio.streams.memory import MemoryObjectSendStream as Sender

from exporter.config import Config
from exporter.destination.base import Destination, Sink
from exporter.destination.receive import receive
from exporter.errors import (
    DownloadError,
    ImageError,
    NotFoundError,
    PortalError,
    StaleLinkError,
    TransientError,
    primary_exception,
)
from exporter.jobs.context import ProductContext
from exporter.jobs.progress import ProgressView, Snapshot, show_progress
from exporter.jobs.state import RunState, Selection, Verdict
from exporter.manifest import iter_manifest
from exporter.model import ImageRef, Incoming, ProductImage, ProductInfo
from exporter.portal.catalog import DiscoveryProgress
from exporter.portal.client import PortalClient
from exporter.portal.metadata import MetadataFetcher
from exporter.portal.products import describe_products, walk_described
from exporter.portal.retry import GAVE_UP, Action, Tries

log = logging.getLogger(__name__)

T = TypeVar("T")
Named = tuple[ImageRef, bool]  # an image a manifest row names; True: done, only rechecked
Listed = tuple[int, ProductInfo | None]  # a product whose images are listed, and its context

BATCH_LINGER_SECONDS = 0.05  # how long a short batch waits for more refs to arrive


class Pipeline:
    """The stages of one run, joined by streams; what they share is passed in."""

    def __init__(
        self,
        config: Config,
        client: PortalClient,
        destination: Destination,
        state: RunState,
        *,
        force: bool,
        discover: bool = False,
        recheck: bool = False,
    ) -> None:
        """`recheck` asks the portal for the metadata of done images named by pairs (no
        download), to see which are gone."""
        self.config = config
        self.client = client
        self.destination = destination
        self.state = state
        self.discover = discover
        self.recheck = recheck
        self.force = force
        self.metadata = MetadataFetcher(client, batch_size=config.batch_size)
        self.selection = Selection(destination.is_done, force=force)
        self._since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # for images found gone
        # The manifest's products, described (out of memory: a database of their own).
        self._context = ProductContext()

    async def run(
        self, progress: ProgressView | None = None, snapshot: Callable[[], Snapshot] | None = None
    ) -> None:
        """Run every stage to the end; `progress` is shown `snapshot()`s meanwhile."""
        try:
            async with anyio.create_task_group() as outer:
                if progress is not None and snapshot is not None:
                    outer.start_soon(show_progress, progress, snapshot)
                await self._stages()
                outer.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise primary_exception(group) from None
        finally:
            self._context.close()

    async def _stages(self) -> None:
        if not self.discover:
            await self._describe_named()
        size = self.config.batch_size
        refs_tx, refs_rx = anyio.create_memory_object_stream[Named](size * 2)
        products_tx, products_rx = anyio.create_memory_object_stream[Listed](size * 2)
        images_tx, images_rx = anyio.create_memory_object_stream[ProductImage](size * 2)
        workers = self.config.download_concurrency
        done_tx, done_rx = anyio.create_memory_object_stream[tuple[ProductImage, Sink]](workers)
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

    # Before the stages: the context of the manifest's products, for sidecars and layout.

    async def _describe_named(self) -> None:
        """Look up the products this run saves images of, before the first download, and
        give done images whose sidecars lack their product block the block (no download).
        Without the catalog's answer, images are saved without the block (a notice in the
        log and the report; a later run adds it)."""
        assert self.config.manifest is not None
        wanted: set[int] = set()
        fill_in: list[ImageRef] = []
        for number, row in enumerate(iter_manifest(self.config.manifest)):
            if row.image_id is None:
                wanted.add(row.product_id)
            else:
                ref = ImageRef(row.product_id, row.image_id)
                if self.force or not self.destination.described(ref):
                    wanted.add(row.product_id)
                    if not self.force and self.destination.is_done(ref):
                        fill_in.append(ref)
            if number % 512 == 0:
                await anyio.lowlevel.checkpoint()
        if not wanted:
            return
        found = self._context
        try:
            _, lookup = await describe_products(
                self.client, wanted, batch_size=self.config.batch_size, into=found
            )
        except GAVE_UP as exc:  # the portal does not answer: the stages will find out
            self.state.notice(f"products not described (sidecars without the product): {exc}")
            found.clear()  # none of them, rather than some
            return
        if lookup.complete:  # a product no catalog lists is known to be in none
            for pid in wanted:
                if pid not in found:
                    found[pid] = ProductInfo(pid)
        else:
            why = "; ".join(
                f"{f'iblock {iblock}' if iblock else 'the catalogs'}: {error}"
                for iblock, error in lookup.failed
            )
            self.state.notice(f"products not described, catalog lists not read ({why})")
        filled = 0
        for ref in fill_in:
            if (product := found.get(ref.product_id)) is not None:
                await self.destination.describe(ref, product)
                filled += 1
        if filled:
            log.info("product context added to %d sidecars of earlier runs", filled)

    def _in_context(self, image: ProductImage, product: ProductInfo | None) -> ProductImage:
        return image if product is None else dataclasses.replace(image, product=product)

    # Stage 1: the manifest, deduplicated, done images skipped without a request.

    async def _read_manifest(self, refs: Sender[Named], products: Sender[Listed]) -> None:
        assert self.config.manifest is not None
        listed: set[int] = set()
        async with refs, products:
            for number, row in enumerate(iter_manifest(self.config.manifest)):
                if row.image_id is None:
                    if row.product_id not in listed:
                        listed.add(row.product_id)
                        await products.send((row.product_id, self._context.get(row.product_id)))
                    continue
                ref = ImageRef(row.product_id, row.image_id)
                verdict = self.selection.judge(ref)
                if self.state.count(verdict, named=True):
                    await refs.send((ref, False))
                elif verdict is Verdict.DONE and self.recheck:
                    await refs.send((ref, True))
                elif number % 512 == 0:
                    await anyio.lowlevel.checkpoint()  # a long run of done images yields too

    async def _discover_products(self, refs: Sender[Named], products: Sender[Listed]) -> None:
        """Every product and variation of every catalog, described, found with the fast
        paging."""
        refs.close()  # no image is named: each product's images come from its list
        found = DiscoveryProgress()
        async with products:
            pages = walk_described(self.client, batch_size=self.config.batch_size, progress=found)
            listed: set[int] = set()
            async for page in pages:
                for product in page:
                    if product.id not in listed:
                        listed.add(product.id)
                        await products.send((product.id, product))
            if not found.skipped_iblocks:
                # Products of the backup that the whole catalog no longer has: listed once
                # more (a deleted one answers "not found"), so their images are marked gone.
                for product_id in sorted(self.destination.exported_products() - listed):
                    await products.send((product_id, None))
        for iblock, error in found.skipped_iblocks:
            self.state.warn(f"catalog (iblock {iblock}) not walked: {error}")
        log.info("discovery: %d products in %d catalogs", len(listed), found.catalogs)

    # Stage 2: metadata, for named images (get) and for whole products (list).

    async def _fetch_metadata(self, refs: Receiver[Named], images: Sender[ProductImage]) -> None:
        async with refs, images:
            while batch := await _next_batch(refs, self.config.batch_size):
                rechecked = {ref for ref, recheck in batch if recheck}
                found = await self.metadata.get_images([ref for ref, _ in batch])
                for ref, outcome in found:
                    in_backup = ref in rechecked or self.destination.is_done(ref)
                    if isinstance(outcome, NotFoundError) and in_backup:
                        await self._gone(ref)
                    elif ref in rechecked and isinstance(outcome, PortalError):
                        self.state.warn(f"{ref}: not rechecked: {outcome}")
                    elif isinstance(outcome, PortalError):
                        self.state.fail(ref.product_id, ref.image_id, outcome)
                    elif ref in rechecked:
                        self.state.read(1)
                        await self._present(ref)  # there, and saved already
                    else:
                        self.state.read(1)
                        await images.send(
                            self._in_context(outcome, self._context.get(ref.product_id))
                        )

    async def _resolve_products(
        self, products: Receiver[Listed], images: Sender[ProductImage]
    ) -> None:
        async with products, images:
            while batch := await _next_batch(products, self.config.batch_size):
                context = dict(batch)
                for product_id, outcome in await self.metadata.list_products(list(context)):
                    backed_up = self.destination.images_of(product_id)
                    if isinstance(outcome, NotFoundError) and backed_up:
                        for ref in backed_up:  # the product is gone, and its images with it
                            await self._gone(ref)
                        continue
                    if isinstance(outcome, PortalError):
                        self.state.fail_product(product_id, outcome)
                        continue
                    self.state.read(len(outcome))
                    await self._compare_listing(product_id, outcome, backed_up)
                    product = context[product_id]
                    for image in outcome:
                        verdict = self.selection.judge(image.ref)
                        if verdict is Verdict.DONE:
                            await self._present(image.ref)
                            if product is not None and not self.destination.described(image.ref):
                                await self.destination.describe(image.ref, product)
                        if self.state.count(verdict):
                            await images.send(self._in_context(image, product))

    async def _compare_listing(
        self, product_id: int, listed: list[ProductImage], backed_up: list[ImageRef]
    ) -> None:
        """Images of the backup that a product no longer lists are gone.

        Compared by image id: a parent with variations answers with a variation's
        productId (§5c), and an image id names one file whatever product it is under.
        """
        answered = {image.ref.product_id for image in listed} - {product_id}
        for other in sorted(answered):
            backed_up = backed_up + self.destination.images_of(other)
        there = {image.ref.image_id for image in listed}
        for ref in backed_up:
            if ref.image_id not in there:
                await self._gone(ref)

    async def _gone(self, ref: ImageRef) -> None:
        """An image of the backup that the portal no longer has: marked, counted, kept."""
        if self.destination.gone_since(ref) is not None:
            return  # seen gone by an earlier run: nothing new
        await self.destination.mark_gone(ref, self._since)
        self.state.gone(ref, self.destination.key_of(ref), self._since)

    async def _present(self, ref: ImageRef) -> None:
        """An image of the backup that the portal has (again): not gone any more."""
        if self.destination.gone_since(ref) is not None:
            log.info("%s is back on the portal", ref)
            await self.destination.mark_gone(ref, None)

    # Stage 3: downloads into the destination's sinks. Stage 4: commits (file, index
    # line, sidecar).

    async def _download_worker(
        self, images: Receiver[ProductImage], done: Sender[tuple[ProductImage, Sink]]
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

    async def _download(self, image: ProductImage) -> tuple[ProductImage, Sink] | None:
        """The image received whole into a sink, or None when it failed (recorded)."""
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
            self.state.fail(ref.product_id, ref.image_id, exc)
            return None

    async def _receive(self, image: ProductImage) -> Sink:
        async def into_destination(incoming: Incoming) -> Sink:
            # The destination names the file: the same name on every attempt.
            sink = await self.destination.open_sink(image, incoming.content_type)
            return await receive(incoming, sink)

        return await self.client.download(image.download_url, into_destination)

    async def _commit_worker(self, done: Receiver[tuple[ProductImage, Sink]]) -> None:
        async with done:
            try:
                async for image, sink in done:
                    await self._commit(image, sink)
            except BaseException:
                # Stopped (a signal, a fatal error): files still waiting are temporaries.
                for _, waiting in _drain(done):
                    waiting.discard()
                raise

    async def _commit(self, image: ProductImage, sink: Sink) -> None:
        # A signal must not split a file from its sidecar and index line: shielded (it
        # waits at most for one fsync and two renames).
        with anyio.CancelScope(shield=True):
            saved = await self.destination.commit(image, sink)
        self.state.exported(image.ref, saved.key, saved.size)
        log.debug("%s: saved %s (%d bytes)", image.ref, saved.key, saved.size)


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
