"""`discover`: find every image of some products, or of the whole catalog, for a manifest.

The whole catalog is walked iblock by iblock with the fast paging Bitrix24 documents
for big lists (`>id` filter, id ascending, `start=-1`, so the portal counts no total):
each iblock's next page depends on the last id of its previous one, so every round
packs one page command per unfinished iblock into a `batch`. The product ids found are
resolved to images with `catalog.productImage.list`, 50 products per batch, and the
manifest is streamed to a temporary file that replaces the target only when complete.
"""

from __future__ import annotations

import logging
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, TypeVar

from exporter.config import MAX_BATCH_SIZE
from exporter.errors import (
    AccessDeniedError,
    BatchRefusedError,
    FatalPortalError,
    ImageError,
    OperationTimeLimitError,
    PortalError,
    PortalUnavailableError,
    garbled_answer,
    unfit_answer,
)
from exporter.model import ImageRef
from exporter.portal.batch import BatchCall
from exporter.portal.client import PortalClient
from exporter.portal.metadata import ROUND_STEPS, MetadataFetcher
from exporter.portal.retry import GAVE_UP, Tries

log = logging.getLogger(__name__)

T = TypeVar("T")

CATALOG_LIST_METHOD = "catalog.catalog.list"
PRODUCT_LIST_METHOD = "catalog.product.list"
PAGE_SIZE = 50  # catalog.product.list always answers 50 per page; fewer means the last one


@dataclass
class DiscoveryProgress:
    """What a discovery found so far, and what it had to skip; `on_change` sees each step."""

    catalogs: int = 0  # iblocks to walk
    products: int = 0  # distinct product ids handed to discover_images
    images: int = 0  # image refs found
    requests: int = 0  # REST requests the client has sent
    skipped_iblocks: list[tuple[int, PortalError]] = field(default_factory=list)
    failed_products: list[tuple[int, PortalError]] = field(default_factory=list)
    on_change: Callable[[DiscoveryProgress], None] | None = field(default=None, repr=False)

    @property
    def complete(self) -> bool:
        """Whether nothing was skipped: the manifest names every image discovered."""
        return not self.skipped_iblocks and not self.failed_products

    def notify(self, client: PortalClient) -> None:
        """Take the client's request count and tell `on_change`."""
        self.requests = client.counts.rest
        if self.on_change is not None:
            self.on_change(self)


async def catalog_iblocks(
    client: PortalClient, progress: DiscoveryProgress | None = None
) -> list[int]:
    """Every trade catalog's iblock id: product catalogs and offers (variation) catalogs.

    A refusal here (no right to read the trade catalog) refuses the whole discovery.
    """
    iblocks: dict[int, None] = {}
    start: object = 0
    while True:
        params = {"start": start} if start else {}
        try:
            answer = await client.call(CATALOG_LIST_METHOD, params)
        except ImageError as exc:
            raise FatalPortalError(
                exc.code, f"cannot list the catalogs: {exc.description}"
            ) from None
        result = answer.get("result")
        catalogs = result.get("catalogs") if isinstance(result, Mapping) else None
        if not isinstance(catalogs, list):
            raise garbled_answer(200, "a catalog list without catalogs")
        for entry in catalogs:
            iblock = _as_id(entry.get("iblockId") if isinstance(entry, Mapping) else None)
            if iblock is None:
                raise garbled_answer(200, "a catalog without an iblockId")
            iblocks[iblock] = None
        start = answer.get("next")
        if not start or not catalogs:
            break
    found = list(iblocks)
    if progress is not None:
        progress.catalogs = len(found)
        progress.notify(client)
    return found


async def walk_products(
    client: PortalClient,
    iblocks: Iterable[int],
    *,
    batch_size: int = MAX_BATCH_SIZE,
    progress: DiscoveryProgress | None = None,
) -> AsyncIterator[list[int]]:
    """Pages of the product ids of every iblock, walked side by side, one page per round.

    An iblock whose page fails for good (access denied, not found, still failing after
    as many rounds as the retry policy allows) is skipped with a warning and recorded in
    `progress`; a `FatalPortalError` propagates, and so does one raised when every
    iblock was denied.
    """
    progress = progress or DiscoveryProgress()
    last_id = dict.fromkeys(iblocks, 0)  # unfinished iblock → last product id seen
    walked = len(last_id)
    denied: list[PortalError] = []
    tries: dict[int, Tries] = {}
    alone = batch_size <= 1
    while last_id:
        outcomes, refused = await _page_round(
            client, last_id, min(batch_size, MAX_BATCH_SIZE), alone
        )
        alone = alone or refused
        for iblock, outcome in outcomes.items():
            if isinstance(outcome, FatalPortalError):
                raise outcome
            if isinstance(outcome, PortalError):
                step = client.retry.next_step(outcome, tries.get(iblock, Tries()))
                tries[iblock] = step.tries
                if step.action in ROUND_STEPS:
                    continue  # asked again next round (alone, if refused in a batch)
            try:
                ids = _page_ids(outcome, last_id[iblock])
            except PortalError as exc:
                log.warning("catalog iblock %d skipped: %s", iblock, exc)
                progress.skipped_iblocks.append((iblock, exc))
                if isinstance(exc, AccessDeniedError):
                    denied.append(exc)
                del last_id[iblock]
                continue
            if ids:
                last_id[iblock] = ids[-1]
                yield ids
            if len(ids) < PAGE_SIZE:
                del last_id[iblock]
        progress.notify(client)
    if walked and len(denied) == walked:
        raise FatalPortalError(denied[0].code, "access denied to every catalog")


async def walk_catalog(
    client: PortalClient,
    *,
    batch_size: int = MAX_BATCH_SIZE,
    progress: DiscoveryProgress | None = None,
) -> AsyncIterator[list[int]]:
    """Pages of the product ids of every catalog: `catalog_iblocks`, then `walk_products`.

    A request that gets no answer after every retry stops the walk: without its pages
    the catalog cannot be known (`PortalUnavailableError`).
    """
    progress = progress or DiscoveryProgress()
    try:
        iblocks = await catalog_iblocks(client, progress)
        async for page in walk_products(client, iblocks, batch_size=batch_size, progress=progress):
            yield page
    except GAVE_UP as exc:
        raise PortalUnavailableError(f"the catalog could not be walked: {exc}") from None


async def discover_images(
    client: PortalClient,
    fetcher: MetadataFetcher,
    product_pages: AsyncIterable[Sequence[int]] | Iterable[Sequence[int]],
    *,
    chunk: int = MAX_BATCH_SIZE,
    progress: DiscoveryProgress | None = None,
) -> AsyncIterator[ImageRef]:
    """Every image of the given products, listed `chunk` products per request.

    Pages are regrouped into full chunks, so small last pages of many iblocks cost no
    extra requests; a repeated product id is listed once. A product whose list fails
    is logged and recorded in `progress.failed_products`, never silently dropped.
    """
    progress = progress or DiscoveryProgress()
    seen: set[int] = set()
    pending: list[int] = []
    async for page in _each(product_pages):
        fresh = [pid for pid in page if pid not in seen]
        seen.update(fresh)
        pending.extend(fresh)
        progress.products += len(fresh)
        while len(pending) >= chunk:
            head, pending = pending[:chunk], pending[chunk:]
            for ref in await _list(client, fetcher, head, progress):
                yield ref
    if pending:
        for ref in await _list(client, fetcher, pending, progress):
            yield ref


# Helpers


async def _page_round(
    client: PortalClient, last_id: Mapping[int, int], batch_size: int, alone: bool
) -> tuple[dict[int, Any | PortalError], bool]:
    """One page of each unfinished iblock; also whether the portal refused them in batch."""
    calls = [(iblock, _page_call(iblock, after)) for iblock, after in last_id.items()]
    outcomes: dict[int, Any | PortalError] = {}
    refused = False
    size = 1 if alone else batch_size
    for begin in range(0, len(calls), size):
        chunk = calls[begin : begin + size]
        if len(chunk) == 1:
            iblock, call = chunk[0]
            try:
                answer = await client.call(call.method, _page_params(iblock, last_id[iblock]))
            except (ImageError, OperationTimeLimitError) as exc:
                outcomes[iblock] = exc
            else:
                outcomes[iblock] = answer.get("result")
            continue
        try:
            batch = await client.batch([call for _, call in chunk])
        except BatchRefusedError as exc:  # refused as a whole (HTTP 405)
            outcomes.update((iblock, exc) for iblock, _ in chunk)
            refused = True
            continue
        for iblock, call in chunk:
            outcomes[iblock] = outcome = batch.outcomes[call.key]
            refused = refused or isinstance(outcome, BatchRefusedError)
    return outcomes, refused


def _page_params(iblock: int, after: int) -> dict[str, Any]:
    """The fast-paging query: products of one iblock with ids above `after`, no count."""
    return {
        "select": ["id", "iblockId"],
        "filter": {"iblockId": iblock, ">id": after},
        "order": {"id": "asc"},
        "start": -1,
    }


def _page_call(iblock: int, after: int) -> BatchCall:
    # A batch command is a query string, so nested params go as PHP keys: filter[>id]=…
    params = _page_params(iblock, after)
    pairs: list[tuple[str, int | str]] = [
        (f"select[{index}]", name) for index, name in enumerate(params["select"])
    ]
    pairs += [(f"filter[{key}]", value) for key, value in params["filter"].items()]
    pairs += [(f"order[{key}]", value) for key, value in params["order"].items()]
    pairs.append(("start", params["start"]))
    return BatchCall(f"iblock{iblock}", PRODUCT_LIST_METHOD, tuple(pairs))


def _page_ids(result: Any | PortalError, after: int) -> list[int]:
    """The ascending product ids of one page, checked to move past `after`."""
    if isinstance(result, PortalError):
        raise result
    products = result.get("products") if isinstance(result, Mapping) else None
    if not isinstance(products, list):
        raise garbled_answer(200, "a product list without products")
    ids = [_as_id(entry.get("id") if isinstance(entry, Mapping) else None) for entry in products]
    valid = [pid for pid in ids if pid is not None]
    if len(valid) != len(ids):
        raise garbled_answer(200, "a product without an id")
    valid.sort()
    if valid and valid[0] <= after:
        # The portal ignored the >id filter: walking on would repeat this page forever.
        raise unfit_answer(f"the portal repeated products up to id {after}")
    return valid


async def _list(
    client: PortalClient, fetcher: MetadataFetcher, ids: list[int], progress: DiscoveryProgress
) -> list[ImageRef]:
    refs: list[ImageRef] = []
    for product_id, outcome in await fetcher.list_products(ids):
        if isinstance(outcome, PortalError):
            log.warning("product %d: images not listed: %s", product_id, outcome)
            progress.failed_products.append((product_id, outcome))
            continue
        refs.extend(image.ref for image in outcome)
    progress.images += len(refs)
    progress.notify(client)
    return refs


async def _each(items: AsyncIterable[T] | Iterable[T]) -> AsyncIterator[T]:
    """Iterate a sync or async iterable the same way."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def _as_id(value: object) -> int | None:
    """A positive id from an int or a string of digits; None for anything else."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None
